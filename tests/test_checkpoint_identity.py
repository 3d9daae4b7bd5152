"""A checkpoint carries its run's identity (settings hash, seed, phase, format): --resume refuses another
run's, a damaged or incomplete one in one line naming the file, without touching the folder; a missing folder
says there is nothing to resume and trains a fresh run."""
from __future__ import annotations

import pickle
import shutil
import warnings

import pytest
import torch

import gradlab
from gradlab.cli import main
from gradlab.config import RunConfig
from gradlab.runs.executor import run_key

SETTINGS = dict(scenario="digits", tasks=2, epochs=1, max_per_class=20, imbalance=10, memory=5, progress=False)
ARGS = ["run", "--scenario", "digits", "--tasks", "2", "--epochs", "1", "--max-per-class", "20", "--imbalance", "10",
        "--memory", "5", "--quiet"]


class _Stop(Exception):
    pass


class _StopInPhase1:
    def before_epoch(self, ctx):
        if ctx.phase == 1:
            raise _Stop


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """Runs of seed 0 and seed 1 stopped after phase 0's checkpoint."""
    runs = {}
    for seed in (0, 1):
        out = tmp_path_factory.mktemp(f"seed{seed}") / "run"
        with pytest.raises(_Stop):
            gradlab.run(out=str(out), seed=seed, callbacks=[_StopInPhase1()], **SETTINGS)
        runs[seed] = out
    return runs


def _copy(src, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(src, folder)
    return folder


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _resume(folder, capsys, *flags):
    code = main([*ARGS, "--out", str(folder), "--resume", *flags])
    return code, capsys.readouterr().err


def _refused(folder, capsys, names, *flags):
    before = _files(folder)
    code, err = _resume(folder, capsys, *flags)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("gradlab: error:"), err
    assert "phase_0.pt" in lines[0] and names in lines[0], err
    assert _files(folder) == before
    return lines[0]


def test_another_runs_checkpoint_is_refused(interrupted, tmp_path, capsys):
    folder = _copy(interrupted[0], tmp_path)
    shutil.copy(interrupted[1] / "checkpoints" / "phase_0.pt", folder / "checkpoints" / "phase_0.pt")
    line = _refused(folder, capsys, "belongs to another run", "--seed", "0")
    assert "seed 1" in line and "seed 0" in line


def test_the_settings_hash_is_run_keys():
    from gradlab.runs.checkpoints import settings_hash

    cfg = RunConfig(**SETTINGS)
    assert run_key(cfg) == f"{cfg.method}-{settings_hash(cfg)}" and len(settings_hash(cfg)) == 12


@pytest.mark.parametrize("drop", [("model_structure",), ("model", "memory")], ids=["no-structure", "no-model"])
def test_a_checkpoint_missing_its_keys_is_refused_in_one_line(drop, interrupted, tmp_path, capsys):
    folder = _copy(interrupted[0], tmp_path)
    path = folder / "checkpoints" / "phase_0.pt"
    state = torch.load(path, weights_only=True)
    for key in drop:
        del state[key]
    torch.save(state, path)
    _refused(folder, capsys, drop[0])


def test_an_unreadable_checkpoint_gives_no_torch_warning(interrupted, tmp_path, capsys):
    folder = _copy(interrupted[0], tmp_path)
    (folder / "checkpoints" / "phase_0.pt").write_bytes(pickle.dumps({"phase": 0}))    # torch warns of its protocol
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _refused(folder, capsys, "cannot be read")
    assert not caught, [str(w.message) for w in caught]


def test_resume_on_a_missing_folder_warns_and_trains(tmp_path, capsys):
    out = tmp_path / "nothing" / "here"
    code, err = _resume(out, capsys)
    assert code == 0 and f"gradlab: warning: nothing to resume in {str(out)!r}: starting a fresh run" in err, err
    assert gradlab.load_run(out).complete


def test_a_checkpoint_without_identity_is_refused(interrupted, tmp_path, capsys):
    """Written before checkpoints carried their run: it cannot be told from another run's (--overwrite)."""
    folder = _copy(interrupted[0], tmp_path)
    path = folder / "checkpoints" / "phase_0.pt"
    state = torch.load(path, weights_only=True)
    del state["run"]
    torch.save(state, path)
    assert "--overwrite" in _refused(folder, capsys, "predates checkpoint identity")
