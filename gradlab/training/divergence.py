"""The divergence guard: a callback that stops a run whose loss explodes or whose weights stop being finite.

A loss term (or the total) is "diverged" when it is NaN, infinite, or above ``loss_limit`` (1e4) in absolute
value. Why 1e4: a sane classification loss term stays within a small multiple of ln(C) (2.3 for 10
classes, 6.9 for 1000) times its weight; iCaRL's BCE sums over C columns start at C ln 2 (69 for 100
classes, 693 for 1000). Healthy runs of every built-in method stay orders of magnitude below it, and
exploding runs, which used to finish "complete" at chance accuracy, pass it within an epoch or two (the
values measured are in benchmarks/README.md). Likewise a weight above ``weight_limit`` (1e6) in absolute
value, checked once per phase, marks the run diverged.

Cheap by design: after every step it folds the terms' absolute values into a running maximum on the device
(no host sync); it reads it on the host every ``every`` steps and at the end of every epoch, and checks
every parameter once per phase, before evaluation (extra training stages have no per-step check). A run
whose weights are NaN would otherwise "evaluate" to the accuracy of argmax over NaN logits.
"""
from __future__ import annotations

import math

import torch

from gradlab.errors import RunDiverged
from gradlab.training.trainer import Callback


class DivergenceGuard(Callback):
    def __init__(self, every: int = 50, loss_limit: float = 1e4, weight_limit: float = 1e6):
        self.every, self.loss_limit, self.weight_limit = every, loss_limit, weight_limit
        self.peak: torch.Tensor | None = None     # largest |value| per term (and the total) since the last look
        self.terms: list[str] = []
        self.first_step = 0

    def before_epoch(self, ctx) -> None:
        self.peak, self.terms, self.first_step = None, [], max(ctx.step + 1, 0)

    def after_step(self, ctx) -> None:
        terms = list(ctx.losses)
        values = torch.stack([v.detach().float().reshape(()) for v in ctx.losses.values()]
                             + [ctx.loss.detach().float().reshape(())]).abs()
        if self.peak is None or terms != self.terms:
            self.check(ctx)
            self.peak, self.terms, self.first_step = values, terms, ctx.step
        else:
            torch.maximum(self.peak, values, out=self.peak)      # NaN propagates
        if (ctx.step + 1) % self.every == 0:
            self.check(ctx)

    def after_epoch(self, ctx) -> None:
        self.check(ctx)

    def check(self, ctx) -> None:
        """Look at the values gathered since the last look (one host sync)."""
        if self.peak is None:
            return
        peaks = dict(zip(self.terms + ["total"], self.peak.tolist()))
        bad = {name: value for name, value in peaks.items() if not value <= self.loss_limit}   # NaN too
        if bad:
            where = (f"the run diverged in phase {ctx.phase}, epoch {ctx.epoch} (steps {self.first_step}.."
                     f"{ctx.step} of the phase): loss term(s) ")
            nonfinite = [name for name, value in bad.items() if not math.isfinite(value)]
            what = (f"{', '.join(nonfinite)} became NaN or infinite" if nonfinite else
                    ", ".join(f"{name} reached {value:.3g}" for name, value in bad.items())
                    + f" (|loss| above {self.loss_limit:g}: exploding)")
            raise RunDiverged(f"{where}{what}; lower the learning rate (lr {ctx.cfg.lr:g}) or check the method's "
                              f"settings")
        self.peak, self.first_step = None, ctx.step + 1

    def after_task(self, ctx) -> None:
        """Before evaluation: every weight must be finite and below ``weight_limit``."""
        self.check(ctx)
        named = [(name, p) for name, p in ctx.model.named_parameters() if p.numel()]
        largest = torch.stack([p.detach().abs().amax().float() for _, p in named]).tolist()
        bad = [(name, value) for (name, _), value in zip(named, largest) if not value <= self.weight_limit]
        if bad:
            name, value = bad[0]
            what = "hold NaN or infinite values" if not math.isfinite(value) else f"exceed {self.weight_limit:g}"
            raise RunDiverged(f"the run diverged in phase {ctx.phase} (by the end of epoch {ctx.epoch}): "
                              f"{len(bad)} weight tensor(s) {what} (first: {name}, |w| up to {value:.3g}); "
                              f"lower the learning rate (lr {ctx.cfg.lr:g}) or check the method's settings")
