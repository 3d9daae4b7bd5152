"""One run on several processes (torchrun, gloo on CPU): 2 ranks train like 1 process on the same global batch.

The worker is tests/ddp_steps.py, run by torchrun with 1 and with 2 processes from the same phase-0 checkpoint.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import gradlab
from gradlab.data.device_data import Batch
from gradlab.errors import ConfigError
from gradlab.methods import build_method
from gradlab.training.distributed import GlobalBatchNorm, Ranks, check_method_runs_on_ranks, global_batch_norm

WORKER = Path(__file__).with_name("ddp_steps.py")
BASE = dict(scenario="digits", tasks=2, epochs=2, model="small", device="cpu", precision="fp32",
            channels_last=False, seed=3, batch_size=50, progress=False)


def torchrun(nproc: int, *args, check: bool = True) -> subprocess.CompletedProcess:
    """``torchrun --nproc-per-node nproc args``; 2 cores in all: one thread per rank, two for one process (the
    float noise of one process run with 1 thread instead of 2 is itself 1.5e-5 on EEIL's parameters here)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, 2 // nproc)), "GRADLAB_DDP_TIMEOUT": "120"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                           str(nproc), *map(str, args)], capture_output=True, text=True, env=env, timeout=600)
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def steps_on(ranks: int, tmp: Path, method: str, phase0: Path, sync_bn: bool = True) -> list[dict]:
    out = tmp / f"{method}-{ranks}-{sync_bn}"
    out.mkdir()
    torchrun(ranks, WORKER, "steps", out, method, str(sync_bn).lower(), phase0)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(ranks)]


def max_param_diff(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


@pytest.fixture(scope="module")
def phase0(tmp_path_factory):
    """Phase-0 checkpoints of DGR and EEIL (one process): both setups start the incremental phase from them."""
    root = tmp_path_factory.mktemp("phase0")
    for method in ("dgr", "eeil"):
        gradlab.run(method=method, out=str(root / method), **BASE)
    return {m: root / m / "checkpoints" / "phase_0.pt" for m in ("dgr", "eeil")}


@pytest.mark.parametrize("method", ["dgr", "eeil"])
def test_two_ranks_with_sync_bn_train_like_one_process(tmp_path, phase0, method):
    one, = steps_on(1, tmp_path, method, phase0[method])
    two = steps_on(2, tmp_path, method, phase0[method])
    assert one["world"] == 1 and two[0]["world"] == 2
    assert one["batch_norm"] == ["BatchNorm2d"] and two[0]["batch_norm"] == ["GlobalBatchNorm"]
    # the ranks hold one model, one memory (selected on rank 0, provably the same everywhere), one set of counts
    assert max_param_diff(two[0]["params"], two[1]["params"]) == 0.0
    assert two[0]["memory"] == two[1]["memory"] == one["memory"]
    # the global batch's trajectory: parameters (the grown head included) within 1e-5 of one process
    assert max_param_diff(one["params"], two[0]["params"]) < 1e-5
    assert len(one["steps"]) == len(two[0]["steps"]) > 4
    for a, b in zip(one["steps"], two[0]["steps"]):
        assert a["stage"] == b["stage"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)       # global loss, the same on every rank
    np.testing.assert_array_equal(one["correct"].numpy(), two[0]["correct"].numpy())   # evaluation split + summed
    # probes record global values: the per-class gradient norms of every step
    p1, p2 = one["probes"], two[0]["probes"]
    assert len(p1) == len(p2) > 0
    np.testing.assert_allclose(p2["value"].to_numpy(), p1["value"].to_numpy(), rtol=1e-4, atol=1e-6)
    pd.testing.assert_frame_equal(two[0]["probes"], two[1]["probes"])
    if method == "dgr":                       # DGR's statistics from the global batch, DAKD's lost counts global
        assert torch.equal(one["lost"], two[0]["lost"]) and torch.equal(two[0]["lost"], two[1]["lost"])
        assert one["lost"].sum() > 0
        for a, b, c in zip(one["steps"], two[0]["steps"], two[1]["steps"]):
            for key in ("phi", "omega", "beta"):
                torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-7)
                assert torch.equal(b[key], c[key])
    else:                                     # EEIL's balanced fine-tuning stage ran on both ranks too
        assert {s["stage"] for s in one["steps"]} == {None, "eeil-balanced"}


def test_without_sync_bn_each_rank_normalises_its_own_slice(tmp_path, phase0):
    one, = steps_on(1, tmp_path, "dgr", phase0["dgr"])
    two = steps_on(2, tmp_path, "dgr", phase0["dgr"], sync_bn=False)
    assert two[0]["batch_norm"] == ["BatchNorm2d"]
    assert max_param_diff(two[0]["params"], two[1]["params"]) == 0.0       # still one model
    assert max_param_diff(one["params"], two[0]["params"]) > 1e-4          # but BatchNorm saw half batches


def test_torchrun_gradlab_run_writes_one_folder_that_says_two_ranks(tmp_path):
    out = tmp_path / "runs" / "ddp"
    done = torchrun(2, "-m", "gradlab", "run", "--scenario", "digits", "--tasks", "2", "--epochs", "1",
                    "--method", "dgr", "--model", "small", "--device", "cpu", "--sync-bn", "true", "--out", out,
                    "--quiet")
    assert done.stdout.count("final accuracy") == 1 and "on 2 ranks" in done.stdout     # rank 0 reports
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["ranks"] == 2 and summary["final_accuracy"] > 0.2     # chance: 0.1
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["ddp"]
    assert gradlab.load_run(out).config.sync_bn is True


def test_a_two_rank_run_resumes_to_the_numbers_of_an_uninterrupted_one(tmp_path):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    torchrun(2, WORKER, "run", whole, "-1")
    done = torchrun(2, WORKER, "run", cut, "2")
    assert "interrupted" in done.stdout
    assert not json.loads((cut / "summary.json").read_text()).get("complete") if (cut / "summary.json").exists() else True
    assert (cut / "checkpoints" / "phase_1.pt").is_file()
    torchrun(2, WORKER, "run", cut, "resume")
    a, b = gradlab.load_run(whole), gradlab.load_run(cut)
    assert b.summary["complete"] and b.summary["ranks"] == 2 and "resumed_from" in b.summary
    pd.testing.assert_frame_equal(a.metrics, b.metrics)


def test_a_method_whose_loss_is_not_a_batch_mean_refuses_several_ranks(tmp_path):
    cfg = gradlab.RunConfig(method="lucir", **BASE)
    with pytest.raises(ConfigError, match=r"method 'lucir' cannot train on 2 ranks: its margin-ranking loss"):
        check_method_runs_on_ranks(build_method("lucir", cfg), Ranks(0, 2))
    check_method_runs_on_ranks(build_method("lucir", cfg), Ranks(0, 1))          # one process: fine
    for name in ("dgr", "finetune", "icarl", "eeil", "wa", "bic", "podnet", "sir", "eeil-2stage"):
        check_method_runs_on_ranks(build_method(name, gradlab.RunConfig(method=name, **BASE)), Ranks(1, 4))
    out = tmp_path / "lucir"
    done = torchrun(2, "-m", "gradlab", "run", "--scenario", "digits", "--method", "lucir", "--device", "cpu",
                    "--out", out, check=False)
    assert done.returncode != 0
    assert "cannot train on 2 ranks" in done.stderr and not out.exists()


DECLARED = ("finetune", "icarl", "eeil", "wa", "bic", "podnet", "sir", "eeil-2stage", "podnet-2stage", "ce", "kd",
            "gr", "dgr-no-dakd")


def test_every_method_that_declares_it_trains_on_two_ranks_like_one_process(tmp_path):
    """Each method that says distributed = True (DGR is tested above) finishes a tiny run on 2 ranks, with the final
    accuracy of one process within float noise (test predictions near a tie may flip)."""
    torchrun(2, WORKER, "methods", tmp_path / "two", *DECLARED)
    torchrun(1, WORKER, "methods", tmp_path / "one", *DECLARED)
    for name in DECLARED:
        two, one = (json.loads((tmp_path / n / name / "summary.json").read_text()) for n in ("two", "one"))
        assert two["complete"] and two["ranks"] == 2 and one["ranks"] == 1, name
        assert abs(two["final_accuracy"] - one["final_accuracy"]) <= 0.02, name


def test_a_method_of_your_own_refuses_several_ranks_until_it_declares_it():
    class Mine(gradlab.Method):
        name = "mine-not-registered"

        def losses(self, batch, out):
            return {}

    with pytest.raises(ConfigError, match=r"cannot train on 2 ranks: it does not declare that its losses are means"):
        check_method_runs_on_ranks(Mine(gradlab.RunConfig(**BASE)), Ranks(0, 2))
    Mine.distributed = True
    check_method_runs_on_ranks(Mine(gradlab.RunConfig(**BASE)), Ranks(0, 2))


def test_each_rank_takes_its_share_of_every_global_batch():
    x, y = torch.arange(70.0).reshape(7, 10), torch.arange(7)
    batch = Batch(x, y, y.clone())
    parts = [Ranks(r, 3) for r in range(3)]
    taken = [r.take(batch) for r in parts]
    assert torch.equal(torch.cat([t.y for t in taken]), y)                      # contiguous, all, once
    assert [len(t.y) for t in taken] == [2, 2, 3]
    assert sum(r.weight for r in parts) == pytest.approx(1.0)
    small = Batch(x[:2], y[:2], y[:2])                                           # fewer images than ranks
    assert all(len(r.take(small).y) == 2 and r.weight == pytest.approx(1 / 3) for r in parts)
    assert Ranks().take(batch) is batch


def test_global_batch_norm_is_plain_batch_norm_in_one_process():
    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    converted = global_batch_norm(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)))
    converted.load_state_dict(plain.state_dict())
    assert isinstance(converted[1], GlobalBatchNorm)
    x = torch.randn(5, 3, 8, 8)
    torch.testing.assert_close(converted(x), plain(x))
    assert set(converted.state_dict()) == set(plain.state_dict())
