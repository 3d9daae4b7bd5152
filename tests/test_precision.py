"""bf16 that keeps the answer: DGR's statistics stay in fp32 under autocast, and bf16 and fp32 runs of DGR on
real Fashion-MNIST-LT agree within seed noise (small settings; benchmarks/cpu_precision.py at real ones)."""
from __future__ import annotations

import numpy as np
import torch

from gradlab.config import RunConfig
from gradlab.executor import run_many
from gradlab.runner import build_trainer


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
