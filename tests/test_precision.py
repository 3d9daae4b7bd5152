"""bf16 that keeps the answer: DGR's statistics stay in fp32 under autocast, and bf16 and fp32 runs of DGR on
real Fashion-MNIST-LT agree within seed noise (small settings; benchmarks/cpu_precision.py at real ones).
Hence ``precision: auto`` (the default) trains in bf16 where the chip has it in hardware, fp32 elsewhere."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import gradlab
from gradlab.cli import build_parser
from gradlab.config import RunConfig
from gradlab.errors import ConfigError, RunFolderError
from gradlab.runs import runner
from gradlab.runs.executor import run_many
from gradlab.runs.runner import build_trainer, has_native_bf16, run_precision

DIGITS = dict(scenario="digits", tasks=2, imbalance=10, epochs=1, batch_size=32, memory=5, progress=False,
              method="ce")


def test_dgr_statistics_and_losses_stay_fp32_under_bf16_autocast():
    seen = []

    class Look:
        def after_backward(self, ctx):
            if ctx.phase == 1:
                seen.append(({name: term.dtype for name, term in ctx.losses.items()},
                             {name: torch.as_tensor(v).dtype for name, v in ctx.extras["row_scales"].items()}))

    cfg = RunConfig(scenario="digits", tasks=2, epochs=1, method="dgr", precision="bf16", progress=False,
                    checkpoints=False, probes=[]).validate()
    trainer = build_trainer(cfg, callbacks=[Look()])
    trainer.fit()
    assert seen, "phase 1 took no step"
    losses, scales = seen[0]
    assert set(losses) == {"ce", "kd"} and set(losses.values()) == {torch.float32}        # the loss reductions
    assert set(scales.values()) == {torch.float32}                                        # alpha-type row scales, beta
    assert trainer.method.phi.dtype == torch.float32 and trainer.method.log_prior.dtype == torch.float32
    assert trainer.method.lost.dtype == torch.float32
    assert next(trainer.ctx.model.parameters()).dtype == torch.float32                    # master weights


def test_bf16_and_fp32_dgr_agree_within_seed_noise_on_fashion_mnist_lt(tmp_path):
    base = dict(scenario="fashion_mnist", order="lt", imbalance=100, max_per_class=200, tasks=5, memory=20,
                method="dgr", model="small", epochs=4, batch_size=32, checkpoints=False, probes=[], progress=False)
    seeds = (0, 1, 2)
    configs = {f"{mode} {seed}": RunConfig.from_dict({**base, "precision": mode, "seed": seed})
               for mode in ("fp32", "bf16") for seed in seeds}
    records = run_many(configs, tmp_path, workers=2, log=lambda line: None)
    aia = {mode: np.array([records[f"{mode} {s}"].summary["average_incremental_accuracy"] for s in seeds])
           for mode in ("fp32", "bf16")}
    assert aia["fp32"].min() > 0.28                                  # the runs learn (chance over the steps: 0.23)
    noise = max(aia["fp32"].std(ddof=1), aia["bf16"].std(ddof=1))    # how much a seed moves the answer
    difference = abs(aia["bf16"].mean() - aia["fp32"].mean())
    assert difference <= 2 * noise + 0.01, (aia, noise)


def test_cpu_bf16_detection_matches_the_cpu_flags():
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        pytest.fail("this test reads /proc/cpuinfo (Linux)")
    flags = set(next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")).split())
    assert has_native_bf16(torch.device("cpu")) == bool({"avx512_bf16", "amx_bf16"} & flags)
    assert has_native_bf16(torch.device("meta")) is False


def test_precision_auto_is_the_default_and_resolves_by_hardware(monkeypatch):
    auto = RunConfig.from_dict(DIGITS)
    assert auto.precision == "auto"
    assert build_parser().parse_args(["run", "--precision", "auto"]).precision == "auto"
    monkeypatch.setattr(runner, "has_native_bf16", lambda device: True)
    assert run_precision(auto, torch.device("cpu")) == "bf16"
    assert run_precision(RunConfig.from_dict({**DIGITS, "precision": "fp32"}), torch.device("cpu")) == "fp32"
    monkeypatch.setattr(runner, "has_native_bf16", lambda device: False)
    assert run_precision(auto, torch.device("cpu")) == "fp32"
    assert run_precision(RunConfig.from_dict({**DIGITS, "precision": "bf16"}), torch.device("cpu")) == "bf16"
    with pytest.raises(ConfigError, match="precision must be one of"):
        RunConfig.from_dict({**DIGITS, "precision": "fp16"})


def test_summary_records_the_precision_the_run_computed_in(tmp_path, monkeypatch):
    native = gradlab.run(out=str(tmp_path / "native"), checkpoints=False, **DIGITS)
    assert native.summary["precision"] == ("bf16" if has_native_bf16(torch.device("cpu")) else "fp32")
    monkeypatch.setattr(runner, "has_native_bf16", lambda device: False)
    plain = gradlab.run(out=str(tmp_path / "plain"), checkpoints=False, **DIGITS)
    fp32 = gradlab.run(out=str(tmp_path / "fp32"), checkpoints=False, precision="fp32", **DIGITS)
    assert plain.summary["precision"] == fp32.summary["precision"] == "fp32"
    assert plain.summary["average_incremental_accuracy"] == fp32.summary["average_incremental_accuracy"]


def test_resume_refuses_a_machine_where_auto_means_another_precision(tmp_path, monkeypatch):
    class Interrupt:
        def before_epoch(self, ctx):
            if ctx.phase == 1:
                raise KeyboardInterrupt

    monkeypatch.setattr(runner, "has_native_bf16", lambda device: True)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        gradlab.run(out=str(out), callbacks=[Interrupt()], **DIGITS)
    assert (out / "checkpoints" / "phase_0.pt").is_file()
    monkeypatch.setattr(runner, "has_native_bf16", lambda device: False)
    with pytest.raises(RunFolderError, match="trained on cpu in bf16, but here its settings mean cpu in fp32"):
        gradlab.run(out=str(out), resume=True, **DIGITS)
    monkeypatch.setattr(runner, "has_native_bf16", lambda device: True)
    assert gradlab.run(out=str(out), resume=True, **DIGITS).summary["precision"] == "bf16"
