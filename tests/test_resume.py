"""Resume: a run killed (SIGKILL) after a phase's checkpoint or after a mid-phase checkpoint, resumed, ends
with exactly the numbers of an uninterrupted run; every method resumes exactly; what cannot be resumed says why."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

import gradlab
from gradlab.errors import ConfigError
from gradlab.runs.records import load_run

ARGS = ["--scenario", "digits", "--tasks", "3", "--epochs", "12", "--checkpoint-every", "2", "--seed", "5",
        "--quiet", "--probes", "gradients,weights,accuracy"]
NOT_NUMBERS = ("wall_time_s", "resumed_from", "train_images_per_s", "eval_images_per_s")   # timings


def _cli(out, *flags, check=True):
    result = subprocess.run([sys.executable, "-m", "gradlab.cli", "run", *ARGS, "--out", str(out), *flags],
                            capture_output=True, text=True, timeout=600)
    assert not check or result.returncode == 0, result.stderr
    return result


def _kill_when(out, ready):
    process = subprocess.Popen([sys.executable, "-m", "gradlab.cli", "run", *ARGS, "--out", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not ready(out):
        assert process.poll() is None, f"the run ended before it could be killed: {process.communicate()[1]}"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()


def _same_numbers(a, b):
    assert {k: v for k, v in a.summary.items() if k not in NOT_NUMBERS} == \
           {k: v for k, v in b.summary.items() if k not in NOT_NUMBERS}
    np.testing.assert_array_equal(a.accuracy_matrix(), b.accuracy_matrix())
    assert a.metrics.equals(b.metrics) and a.probes.equals(b.probes)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    _cli(out)
    return load_run(out)


def _after_phase_0(out):
    return (out / "checkpoints" / "phase_0.pt").exists()


def _inside_phase_1(out):
    return (out / "checkpoints" / "phase_0.pt").exists() and (out / "checkpoints" / "mid_phase.pt").exists()


@pytest.mark.parametrize("ready", [_after_phase_0, _inside_phase_1], ids=["after-phase-0", "inside-phase-1"])
def test_sigkilled_run_resumes_to_the_uninterrupted_numbers(ready, uninterrupted, tmp_path):
    out = tmp_path / "run"
    _kill_when(out, ready)
    assert not (out / "summary.json").exists()
    with pytest.warns(UserWarning, match="can be resumed"):
        assert load_run(out).status == "incomplete"
    result = _cli(out, "--resume")
    record = load_run(out)
    assert record.complete and record.summary["resumed_from"].startswith(("after phase", "phase"))
    _same_numbers(record, uninterrupted)
    assert f"record: {out}" in result.stdout


class _Boom(Exception):
    pass


class _StopAt:
    def __init__(self, phase, epoch):
        self.phase, self.epoch = phase, epoch

    def before_epoch(self, ctx):
        if (ctx.phase, ctx.epoch) == (self.phase, self.epoch):
            raise _Boom


@pytest.mark.parametrize("method", ["dgr", "bic", "lucir", "podnet", "icarl", "eeil", "wa", "sir"])
def test_every_kind_of_method_resumes_exactly(method, tmp_path):
    settings = dict(scenario="digits", tasks=3, epochs=3, method=method, progress=False, checkpoint_every=1, seed=1)
    full = gradlab.run(out=str(tmp_path / "full"), **settings)
    for phase, epoch in ((1, 2), (2, 0)):          # inside phase 1; right after phase 1's checkpoint
        part = tmp_path / f"p{phase}e{epoch}"
        with pytest.raises(_Boom):
            gradlab.run(out=str(part), callbacks=[_StopAt(phase, epoch)], **settings)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _same_numbers(gradlab.run(out=str(part), resume=True, **settings), full)


def test_what_cannot_be_resumed_says_why(uninterrupted, tmp_path, capsys):
    finished = uninterrupted.path
    record = gradlab.run(str(finished / "config.yaml"), out=str(finished), resume=True)      # nothing to do
    assert record.complete and record.summary == uninterrupted.summary
    with pytest.raises(ConfigError, match=r"settings differ .* lr: stored 0.1, asked 0.2; seed: stored 5, asked 6"):
        gradlab.run(str(finished / "config.yaml"), out=str(finished), resume=True, lr=0.2, seed=6)
    with pytest.raises(ConfigError, match="contradict"):
        gradlab.run(str(finished / "config.yaml"), out=str(finished), resume=True, overwrite=True)
    result = _cli(finished, check=False)
    assert result.returncode == 2 and "finished run" in result.stderr and "--overwrite" in result.stderr

    off = tmp_path / "off"
    with pytest.raises(_Boom):
        gradlab.run(scenario="digits", tasks=2, epochs=1, checkpoints=False, out=str(off), progress=False,
                    callbacks=[_StopAt(1, 0)])
    with pytest.raises(ConfigError, match="checkpoints off"):
        gradlab.run(scenario="digits", tasks=2, epochs=1, checkpoints=False, out=str(off), resume=True)

    diverged = tmp_path / "diverged"
    (diverged).mkdir()
    (diverged / "config.yaml").write_text((finished / "config.yaml").read_text())
    (diverged / "summary.json").write_text(json.dumps({"status": "diverged", "complete": False}))
    with pytest.raises(ConfigError, match="diverged"):
        gradlab.run(str(finished / "config.yaml"), out=str(diverged), resume=True)

    with pytest.warns(UserWarning, match="nothing to resume"):
        fresh = gradlab.run(scenario="digits", tasks=2, epochs=1, out=str(tmp_path / "new"), resume=True,
                            progress=False)
    assert fresh.complete and "resumed_from" not in fresh.summary       # nothing to resume: a fresh run
