"""The divergence guard: a callback that stops a run whose loss or weights stop being finite numbers.

Cheap by design: after every step it ORs "this loss term is not finite" into a small flag tensor on the
device (no host sync); it reads the flags on the host every ``every`` steps and at the end of every epoch,
and checks every parameter once per phase, before evaluation. A run whose weights are NaN would otherwise
"evaluate" to the accuracy of argmax over NaN logits and be recorded as a finished run.
"""
from __future__ import annotations

import torch

from gradlab.trainer import Callback


class RunDiverged(RuntimeError):
    """Training produced a non-finite loss or non-finite weights; the message names where."""


class DivergenceGuard(Callback):
    def __init__(self, every: int = 50):
        self.every = every
        self.flags: torch.Tensor | None = None
        self.terms: list[str] = []
        self.first_step = 0

    def before_epoch(self, ctx) -> None:
        self.flags, self.terms, self.first_step = None, [], max(ctx.step + 1, 0)

    def after_step(self, ctx) -> None:
        terms = list(ctx.losses)
        values = torch.stack([v.detach().float().reshape(()) for v in ctx.losses.values()]
                             + [ctx.loss.detach().float().reshape(())])
        bad = ~torch.isfinite(values)
        if self.flags is None or terms != self.terms:
            self.check(ctx)
            self.flags, self.terms, self.first_step = bad, terms, ctx.step
        else:
            self.flags |= bad
        if (ctx.step + 1) % self.every == 0:
            self.check(ctx)

    def after_epoch(self, ctx) -> None:
        self.check(ctx)

    def check(self, ctx) -> None:
        """Look at the flags gathered since the last look (one host sync)."""
        if self.flags is None:
            return
        flags = self.flags.tolist()
        if any(flags):
            names = [name for name, bad in zip(self.terms + ["total"], flags) if bad]
            raise RunDiverged(f"the run diverged in phase {ctx.phase}, epoch {ctx.epoch} (steps {self.first_step}.."
                              f"{ctx.step} of the phase): loss term(s) {', '.join(names)} became NaN or infinite; "
                              f"lower the learning rate (lr {ctx.cfg.lr:g}) or check the method's settings")
        self.flags, self.first_step = None, ctx.step + 1

    def after_task(self, ctx) -> None:
        """Before evaluation: every weight must be finite (extra training stages have no per-step check)."""
        self.check(ctx)
        params = [p for p in ctx.model.parameters()]
        finite = torch.stack([torch.isfinite(p.detach()).all() for p in params]).tolist()
        if not all(finite):
            names = [name for (name, _), ok in zip(ctx.model.named_parameters(), finite) if not ok]
            raise RunDiverged(f"the run diverged in phase {ctx.phase} (by the end of epoch {ctx.epoch}): {len(names)} weight tensor(s) "
                              f"hold NaN or infinite values (first: {names[0]}); lower the learning rate "
                              f"(lr {ctx.cfg.lr:g}) or check the method's settings")
