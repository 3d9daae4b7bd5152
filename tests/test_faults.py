"""Faults: divergence, SIGKILL during a run and during an overwrite, two runs on one folder, stale locks.

Real processes (``python -m gradlab.cli run``) are killed with SIGKILL; the tests then read the folder the
way a user would, with ``load_run`` and a rerun.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings

import pytest
import torch

import gradlab
from gradlab.errors import RunDiverged, RunFolderError, RunFolderWarning
from gradlab.runs.folder import RunFolder, RunLock, lock_holder
from gradlab.runs.records import load_run
from gradlab.training.divergence import DivergenceGuard

DIGITS = ["--scenario", "digits", "--tasks", "3", "--quiet", "--probes", ""]


def _start(out, *flags):
    return subprocess.Popen([sys.executable, "-m", "gradlab.cli", "run", *DIGITS, "--out", str(out), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, process, timeout=120):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the run ended before {path} appeared: {process.communicate()}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def _strict_json(path):
    def refuse(constant):
        raise ValueError(f"{path} holds {constant}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


# ------------------------------------------------------------------------------------- divergence
def test_cli_divergence_exits_non_zero_and_the_folder_loads_as_diverged(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "gradlab.cli", "run", *DIGITS, "--epochs", "2", "--lr", "1e6",
                             "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 3, result.stderr
    assert "diverged in phase" in result.stderr and "Traceback" not in result.stderr
    summary = _strict_json(out / "summary.json")
    assert summary["status"] == "diverged" and summary["complete"] is False
    assert "average_incremental_accuracy" not in summary and "final_accuracy" not in summary
    with pytest.warns(RunFolderWarning, match="diverged"):
        record = load_run(out)
    assert record.status == "diverged" and not record.complete and "status=diverged" in repr(record)
    assert not (out / ".lock").exists()


@pytest.mark.parametrize("method", ["finetune", "dgr"])
def test_api_divergence_raises_and_names_phase_and_epoch(method, tmp_path):
    with pytest.raises(RunDiverged, match=r"phase \d+.*epoch \d+"):
        gradlab.run(scenario="digits", tasks=3, epochs=2, lr=1e6, method=method, out=str(tmp_path / "r"),
                    progress=False, probes=[])


class _PoisonLoss:
    """Makes one term of step ``at`` NaN, as a diverging method would."""

    def __init__(self, at):
        self.at = at

    def before_backward(self, ctx):
        if ctx.phase == 1 and ctx.step == self.at:
            ctx.losses["ce"] = ctx.losses["ce"] * float("nan")
            ctx.loss = sum(ctx.losses.values())


def test_the_guard_names_the_loss_term_and_stops_within_its_cadence(tmp_path):
    guard_every = DivergenceGuard().every
    seen = []

    class Steps:
        def after_step(self, ctx):
            seen.append((ctx.phase, ctx.step))

    with pytest.raises(RunDiverged, match=r"phase 1, epoch \d+ .*loss term\(s\) ce, total") as err:
        gradlab.run(scenario="digits", tasks=3, epochs=5, batch_size=16, out=str(tmp_path / "r"), progress=False,
                    probes=[], callbacks=[_PoisonLoss(at=3), Steps()])
    assert "(steps 0.." in str(err.value)
    assert max(step for phase, step in seen if phase == 1) <= 3 + guard_every
    summary = _strict_json(tmp_path / "r" / "summary.json")
    assert summary["status"] == "diverged" and summary["phases_done"] == 1


def test_non_finite_weights_are_caught_before_evaluation(tmp_path):
    class PoisonWeights:
        def after_task(self, ctx):
            with torch.no_grad():
                next(ctx.model.parameters()).fill_(float("inf"))

    with pytest.raises(RunDiverged, match="weight tensor"):
        gradlab.run(scenario="digits", tasks=2, epochs=1, out=str(tmp_path / "r"), progress=False, probes=[],
                    callbacks=[PoisonWeights()])
    assert not (tmp_path / "r" / "checkpoints").exists()        # nothing evaluated, nothing checkpointed


# ------------------------------------------------------------------------------------- one writer
def test_two_concurrent_runs_one_completes_the_other_names_the_holder(tmp_path):
    out = tmp_path / "run"
    first = _start(out, "--epochs", "120", "--seed", "1")
    _wait_for(out / ".lock", first)
    holder = lock_holder(out)
    second = subprocess.run([sys.executable, "-m", "gradlab.cli", "run", *DIGITS, "--epochs", "1", "--seed", "0",
                             "--method", "dgr", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert first.poll() is None, "the first run should still be training"
    assert second.returncode == 2 and "in use by another gradlab run" in second.stderr
    assert f"pid {holder['pid']}" in second.stderr and first.pid == holder["pid"]
    assert first.wait(timeout=600) == 0, first.communicate()
    record = load_run(out)
    assert record.complete and record.config.seed == 1 and record.config.method == "finetune"
    assert record.summary["seed"] == 1 and not (out / ".lock").exists()


def test_a_stale_lock_is_taken_over_and_a_foreign_host_is_respected(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / ".lock").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "started": 0}))
    assert lock_holder(tmp_path)["stale"]
    with RunLock(tmp_path):
        assert lock_holder(tmp_path)["pid"] == os.getpid()
    assert not (tmp_path / ".lock").exists()
    (tmp_path / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": "other-host", "started": 0}))
    with pytest.raises(RunFolderError, match="other-host"):
        RunLock(tmp_path).acquire()
    (tmp_path / ".lock").write_text("{half-writ")                # killed while writing its lock
    with RunLock(tmp_path):
        pass


# ------------------------------------------------------------------------------------- SIGKILL
def test_sigkill_during_a_run_leaves_a_folder_that_never_loads_as_finished(tmp_path):
    out = tmp_path / "run"
    process = _start(out, "--epochs", "60")
    _wait_for(out / "checkpoints" / "phase_0.pt", process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with pytest.warns(RunFolderWarning, match="unfinished run"):
        record = load_run(out)
    assert record.status == "incomplete" and not record.complete and not (out / "summary.json").exists()
    again = subprocess.run([sys.executable, "-m", "gradlab.cli", "run", *DIGITS, "--epochs", "1", "--out", str(out)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "already holds files" in again.stderr and "--overwrite" in again.stderr
    rerun = subprocess.run([sys.executable, "-m", "gradlab.cli", "run", *DIGITS, "--epochs", "1", "--out", str(out),
                            "--overwrite"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr                    # the dead run's lock is stale: taken over
    assert load_run(out).complete


def test_sigkill_during_an_overwrite_keeps_the_earlier_record(tmp_path):
    out = tmp_path / "run"
    gradlab.run(scenario="digits", tasks=3, epochs=1, seed=0, out=str(out), progress=False, probes=[])
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    process = _start(out, "--epochs", "60", "--seed", "1", "--overwrite")
    staging = tmp_path / f".run.new-{process.pid}"
    _wait_for(staging / "checkpoints" / "phase_0.pt", process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"} == before
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        record = load_run(out)
    assert record.complete and record.config.seed == 0
    gradlab.run(scenario="digits", tasks=3, epochs=1, seed=2, out=str(out), progress=False, probes=[], overwrite=True)
    assert load_run(out).config.seed == 2 and not staging.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_failed_overwrite_keeps_the_earlier_record(tmp_path):
    out = tmp_path / "run"
    gradlab.run(scenario="digits", tasks=2, epochs=1, out=str(out), progress=False, probes=[])
    with pytest.raises(RunDiverged, match="earlier record .* is kept"):
        gradlab.run(scenario="digits", tasks=2, epochs=1, out=str(out), progress=False, probes=[],
                    overwrite=True, callbacks=[_PoisonLoss(at=0)])
    assert load_run(out).complete and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    folder = RunFolder(out, overwrite=False)
    with pytest.raises(RunFolderError, match="already holds a finished run"):
        folder.open()
    assert not (out / ".lock").exists()


# ------------------------------------------------------------------------------------- settings without effect
def test_a_setting_without_effect_is_named_in_a_warning(tmp_path, capsys):
    from gradlab.cli import main
    from gradlab.config import RunConfig

    cfg = RunConfig(scenario="digits", loader_workers=3, lr_patience=2, probes=[], probe_every="step", memory_total=100,
                    memory=10)
    lines = cfg.unused_settings()
    assert [line.split()[0] for line in lines] == ["loader_workers", "lr_patience", "probe_every", "memory"]
    assert RunConfig(scenario="imagenet_subset", loader_workers=3).unused_settings() == []
    code = main(["run", "--scenario", "digits", "--tasks", "2", "--epochs", "1", "--quiet", "--loader-workers", "3",
                 "--lr-min", "0.01", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 0 and "gradlab: warning: loader_workers has no effect here" in err
    assert "gradlab: warning: lr_min has no effect here: only lr_schedule 'patience' uses it" in err
    with pytest.warns(UserWarning, match="data_root has no effect"):
        gradlab.run(scenario="digits", tasks=2, epochs=1, data_root="elsewhere", out=str(tmp_path / "api"),
                    progress=False, probes=[])
