"""Ctrl-C and full disks end cleanly: one line on stderr, a known exit code, the lock released, nothing that
looks finished, and an earlier record (``--overwrite``) byte-identical.

Ctrl-C is a real SIGINT to ``python -m gradlab.cli``; a full disk is fault injection in the writers that
``gradlab.runs.records`` uses (so it runs anywhere, without mounting a small file system).
"""
from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

import gradlab
from gradlab.cli import main
from gradlab.runs.records import load_run
from gradlab.training import trainer as trainer_module

DIGITS = ["--scenario", "digits", "--tasks", "3", "--quiet", "--probes", ""]
FREE = r"\(\d+(\.\d)? (bytes|KiB|MiB|GiB) free there\)"


def _cli(*args):
    return [sys.executable, "-m", "gradlab.cli", *args]


def _wait_for(root, pattern, process, timeout=180):
    deadline = time.monotonic() + timeout
    while not any(Path(root).glob(pattern)):
        assert process.poll() is None, f"ended before {root}/{pattern} appeared: {process.communicate()}"
        assert time.monotonic() < deadline, f"{root}/{pattern} did not appear"
        time.sleep(0.05)


def _files(folder: Path) -> dict:
    """Every file under ``folder`` (the lock left out) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def _not_finished(out: Path) -> None:
    summary = out / "summary.json"
    assert not summary.exists() or json.loads(summary.read_text()).get("status") != "complete"
    assert not (out / ".lock").exists()


def _main(args: list[str]) -> int:
    """``gradlab.cli.main``; a KeyboardInterrupt escaping it is a failure (not pytest's own Ctrl-C)."""
    try:
        return main(args)
    except KeyboardInterrupt as err:
        pytest.fail(f"Ctrl-C escaped main: {err!r}")


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_mid_run_is_one_line_exit_130_and_resume_finishes(tmp_path):
    out = tmp_path / "run"
    flags = [*DIGITS, "--epochs", "40", "--checkpoint-every", "1", "--out", str(out)]
    process = subprocess.Popen(_cli("run", *flags), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(out, "checkpoints/*.pt", process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert "Traceback" not in err and len(_lines(err)) == 1, err
    assert re.match(r"gradlab: interrupted in phase \d+, epoch \d+; `.*gradlab run .*--resume` continues it from its "
                    r"last checkpoint$", err.strip()), err
    _not_finished(out)
    again = subprocess.run(_cli("run", *flags, "--resume"), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert load_run(out).complete and not (out / ".lock").exists()


class _CtrlC:
    """Ctrl-C at the first epoch of phase ``phase`` (what SIGINT raises in the main thread)."""

    def __init__(self, monkeypatch, phase=1):
        real = trainer_module.Trainer.train_epoch

        def train_epoch(trainer, epoch):
            if trainer.ctx.phase == phase:
                trainer.ctx.epoch = epoch
                raise KeyboardInterrupt
            return real(trainer, epoch)
        monkeypatch.setattr(trainer_module.Trainer, "train_epoch", train_epoch)


def test_ctrl_c_during_an_overwrite_keeps_the_earlier_record(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    gradlab.run(scenario="digits", tasks=3, epochs=1, out=str(out), progress=False, probes=[])
    before = _files(out)
    _CtrlC(monkeypatch)
    code = _main(["run", *DIGITS, "--epochs", "2", "--seed", "1", "--out", str(out), "--overwrite"])
    err = capsys.readouterr().err
    assert code == 130 and len(_lines(err)) == 1, err
    assert err.startswith("gradlab: interrupted in phase 1, epoch 0; the earlier record is kept; `") and "--overwrite`" in err
    assert _files(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert load_run(out).complete and not (out / ".lock").exists()


def test_ctrl_c_with_checkpoints_off_says_the_run_starts_again(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _CtrlC(monkeypatch)
    code = _main(["run", *DIGITS, "--epochs", "1", "--checkpoints", "false", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 130 and len(_lines(err)) == 1 and "--overwrite` starts it again (checkpoints are off)" in err, err
    _not_finished(out)
    with pytest.raises(KeyboardInterrupt, match="interrupted in phase 1"):      # the API still raises it
        gradlab.run(scenario="digits", tasks=3, epochs=1, out=str(tmp_path / "api"), progress=False, probes=[])
    assert not (tmp_path / "api" / ".lock").exists()


def test_ctrl_c_in_compare_ends_with_one_line_and_no_worker_tracebacks(tmp_path):
    cache = tmp_path / "cache"
    process = subprocess.Popen(_cli("compare", "--methods", "finetune,dgr", *DIGITS, "--epochs", "40",
                                    "--checkpoint-every", "1", "--workers", "2", "--yes", "--out",
                                    str(tmp_path / "cmp"), "--cache", str(cache)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(cache, "*/checkpoints/*.pt", process, timeout=300)
    os.killpg(process.pid, signal.SIGINT)            # a terminal's Ctrl-C: the parent and its workers
    _, err = process.communicate(timeout=180)
    assert process.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert _lines(err)[-1].startswith("gradlab: interrupted; finished runs are kept"), err
    assert not list(cache.rglob(".lock")) and not list(cache.rglob("summary.json"))


# ------------------------------------------------------------------------------------- full disk
class _DiskFull:
    """The ``nth`` atomic write of file ``name`` fails as on a full disk: an OSError(ENOSPC) from
    ``Path.write_text`` / ``DataFrame.to_parquet``, or torch.save's RuntimeError with no space left."""

    def __init__(self, monkeypatch, name, nth=1):
        self.name, self.left = name, nth
        text, parquet, save = Path.write_text, pd.DataFrame.to_parquet, torch.save
        monkeypatch.setattr(Path, "write_text", lambda p, *a, **k: self.check(p) or text(p, *a, **k))
        monkeypatch.setattr(pd.DataFrame, "to_parquet", lambda f, p, *a, **k: self.check(p) or parquet(f, p, *a, **k))
        monkeypatch.setattr(torch, "save", lambda obj, p, *a, **k: self.check(p, monkeypatch) or save(obj, p, *a, **k))

    def check(self, tmp, monkeypatch=None):
        if isinstance(tmp, (str, os.PathLike)) and Path(tmp).name.startswith(f".{self.name}."):
            self.left -= 1
            if self.left == 0:
                Path(tmp).write_bytes(b"partial")
                if monkeypatch is None:
                    raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left")
                import shutil

                monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1 << 20, 1 << 20, 0))
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")


def _full_disk_line(err: str, path: Path) -> None:
    assert "Traceback" not in err and len(_lines(err)) == 1, err
    assert err.startswith(f"gradlab: error: cannot write {str(path)!r}: No space left on device ("), err
    assert re.search(FREE, err), err


def test_a_full_disk_at_start_is_one_line_naming_the_file_and_the_free_space(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _DiskFull(monkeypatch, "config.yaml")
    code = _main(["run", *DIGITS, "--epochs", "1", "--out", str(out)])
    assert code == 2
    _full_disk_line(capsys.readouterr().err, out / "config.yaml")
    _not_finished(out)
    assert not list(out.rglob("*.tmp"))


@pytest.mark.parametrize("name, nth", [("metrics.parquet", 2), ("phase_1.pt", 1)])
def test_a_full_disk_mid_run_leaves_nothing_that_looks_finished(name, nth, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _DiskFull(monkeypatch, name, nth)
    code = _main(["run", *DIGITS, "--epochs", "1", "--out", str(out)])
    assert code == 2
    target = out / "checkpoints" / name if name.endswith(".pt") else out / name
    _full_disk_line(capsys.readouterr().err, target)
    _not_finished(out)
    assert (out / "checkpoints" / "phase_0.pt").is_file() and not list(out.rglob("*.tmp"))


@pytest.mark.parametrize("name", ["config.yaml", "phase_1.pt", "summary.json"])
def test_a_full_disk_during_an_overwrite_keeps_the_earlier_record(name, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    gradlab.run(scenario="digits", tasks=3, epochs=1, out=str(out), progress=False, probes=[])
    before = _files(out)
    _DiskFull(monkeypatch, name)
    code = _main(["run", *DIGITS, "--epochs", "1", "--seed", "1", "--out", str(out), "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot write" in err and f"{name}'" in err and re.search(FREE, err), err
    assert err.rstrip().endswith(f"; the earlier record in {str(out)!r} is kept"), err
    assert f"cannot write '{out}{os.sep}" in err and ".new-" not in err      # the file the user knows, not the temp
    assert "Traceback" not in err and len(_lines(err)) == 1, err
    assert _files(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert load_run(out).complete and not (out / ".lock").exists()
