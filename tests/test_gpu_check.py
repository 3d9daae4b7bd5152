"""benchmarks/gpu_check.py keeps running: its tiny CPU run passes and reports every section (a result or an honest
skip reason), and its host-sync check really fails a step that reads a tensor on the host (on CPU, with a stand-in
detector for CUDA's sync debug mode that trips on the same host reads)."""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from gradlab.data.fake_trees import write_fake_cifar100
from gradlab.training.trainer import Callback

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--json", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    return done, json.loads(out.read_text()) if out.exists() else None


def test_the_tiny_cpu_run_passes_and_reports_every_section(tiny_run):
    done, results = tiny_run
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    sections = results["sections"]
    assert list(sections) == list(gpu_check.SECTIONS) and results["tiny"] is True
    for name, result in sections.items():
        assert result["status"] in ("pass", "skip"), (name, result)
        assert (result.get("summary") if result["status"] == "pass" else result.get("reason")), (name, result)
        assert f"[{name}] " in done.stdout                              # a line of its own
    table = done.stdout[done.stdout.index("\nsection "):]
    assert all(f"\n{name} " in table for name in gpu_check.SECTIONS)
    assert "sync debug mode" in sections["sync"]["reason"] and "needs a GPU" in sections["sync"]["reason"]
    assert sections["ddp"]["reason"] == "CPU run without --ddp-on-cpu"
    for precision in ("fp32", "bf16"):
        timing = sections["phase"][precision]
        assert timing["steps_per_s"] > 0 and timing["images_per_s"] > 0 and timing["precision"] == precision
    bf16 = sections["bf16"]
    assert bf16["status"] == "pass" and bf16["same_batches"] and bf16["steps"] == 3
    for key in ("loss_rel_max", "classifier_rel_max", "classifier_rel_l2"):
        assert math.isfinite(bf16[key]) and bf16[key] >= 0
    assert bf16["loss_rel_max"] > 0                                     # bf16 did compute in bf16
    assert all(map(math.isfinite, bf16["loss_fp32"] + bf16["loss_bf16"]))
    packing = sections["packing"]
    assert packing["runs"] == 4 and packing["packed_images_per_s"] > 0 and packing["ratio"] > 0
    extrapolation = sections["extrapolate"]
    assert extrapolation["steps"] == 33280 and extrapolation["phases"] == 20   # configs/cifar100_lt_lt_lfs20.yaml
    assert set(extrapolation["hours"]) == {"fp32", "bf16"} and all(h > 0 for h in extrapolation["hours"].values())


class HostReads(TorchDispatchMode):
    """A CPU stand-in for CUDA's sync debug mode "error": raises on the calls that read a tensor's value on the
    host (``.item()``, ``float(t)``, ``bool(t)``, ``if t:``, ``.tolist()``) or size a result by its values
    (``nonzero``, boolean masks), which on CUDA wait for the device. It cannot see host-device copies."""

    READS = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default,
             torch.ops.aten.masked_select.default, torch.ops.aten.is_nonzero.default}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in self.READS:
            raise RuntimeError(f"called a synchronizing operation: {func}")
        return func(*args, **(kwargs or {}))


class ReadsTheLoss(Callback):
    """A callback that reads the loss on the host in every step (a sync per step on CUDA)."""

    def after_backward(self, ctx) -> None:
        self.value = float(ctx.loss.detach())


@pytest.fixture(scope="module")
def phase_one(tmp_path_factory):
    root = write_fake_cifar100(tmp_path_factory.mktemp("fake_cifar"), test_per_class=10)
    trainer = gpu_check.phase_one(argparse.Namespace(device="cpu", tiny=True), root)
    return trainer, trainer.ctx.train_indices


@pytest.fixture
def trainer(phase_one):
    """A tiny DGR trainer in phase 1 (the run's precision: bf16 where the CPU has it), its whole training set
    back (check_no_sync cuts it)."""
    trainer, indices = phase_one
    trainer.ctx.train_indices = indices
    return trainer


def test_sync_check_fails_a_step_that_reads_on_the_host_and_passes_the_real_step(trainer):
    clean = gpu_check.check_no_sync(trainer, 1, detector=HostReads)
    assert clean["status"] == "pass" and clean["steps"] == 1, clean.get("traceback")   # gradlab's step reads nothing
    trainer.callbacks.insert(0, ReadsTheLoss())
    try:
        caught = gpu_check.check_no_sync(trainer, 1, detector=HostReads)
    finally:
        trainer.callbacks.pop(0)
    assert caught["status"] == "fail" and "synchronizing" in caught["error"]
    assert "self.value = float(ctx.loss.detach())" in caught["traceback"]              # the offending line
    assert float(torch.ones(())) == 1.0                                               # the detector was closed
    assert not any(isinstance(c, gpu_check.SyncWindow) for c in trainer.callbacks)


def test_the_sync_window_covers_every_step_and_not_the_epoch_end(trainer):
    """Events seen while the detector is open: all of the epoch's steps, not its before_epoch nor its end."""
    timeline: list[str] = []

    class Watch(Callback):
        def before_epoch(self, ctx):
            timeline.append("before_epoch")

        def after_step(self, ctx):
            timeline.append("after_step")

        def after_epoch(self, ctx):
            timeline.append("after_epoch")

    class Detector:
        def __enter__(self):
            timeline.append("open")

        def __exit__(self, *exc):
            timeline.append("close")

    trainer.callbacks.append(Watch())
    assert gpu_check.check_no_sync(trainer, 2, detector=Detector)["status"] == "pass"
    opened = timeline.index("open")
    assert timeline[opened - 1] == "before_epoch"
    assert timeline[opened:] == ["open", "after_step", "after_step", "close", "after_epoch"]


def test_ratio_lines_read_vs_officials_report(capsys):
    spec = importlib.util.spec_from_file_location("vs_official", ROOT / "benchmarks" / "vs_official.py")
    vs_official = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vs_official)
    row = {"train 1": 100.0, "train 2": 80.0, "eval": 300.0, "wall": 50.0, "sys": 1.0, "val": 0.5}
    faster = {**row, "train 1": 150.0, "train 2": 120.0, "wall": 40.0}
    vs_official.report({"official": [row], "gradlab fp32": [faster]}, "official", 2)
    lines = gpu_check.ratio_lines(capsys.readouterr().out)
    assert lines[0].startswith("speed ratio against official")
    assert any(line.startswith("gradlab fp32") and "1.50 / 1.50 / 1.50" in line for line in lines)
    assert any("goal train 2 >= 1.3x at fp32: median 1.500x met" in line for line in lines)
    assert gpu_check.ratio_lines("no report\n") == []
