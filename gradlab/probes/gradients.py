"""Per-class classifier-row gradient magnitudes per loss term: the DGR paper's Figure 2 quantity
||grad L_ce(W_j)|| (He & Zhu, CVPR 2024), measured for every named loss term of any method."""
from __future__ import annotations

import torch

from gradlab.probes.base import Probe
from gradlab.training.row_gradients import step_row_gradients


class ClassifierGradientProbe(Probe):
    """``grad_<term>``: ||grad_{W_j} term|| before any rewrite, averaged over the steps of an epoch
    (``every='step'`` logs each step instead). When the method publishes row scales in
    ``ctx.extras['row_scales']`` (DGR does), also ``grad_<term>_reweighted`` = scale_j ||grad_{W_j} term||.
    ``grad_applied``: ||W_j.grad|| as the optimizer receives it (after any rewrite, before weight decay).
    Sums stay on the device; the host reads them once per epoch."""

    def __init__(self, log, every: str = "epoch"):
        super().__init__(log, every)
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.raw: dict[str, torch.Tensor] = {}

    def before_task(self, ctx) -> None:
        self.sums, self.steps = {}, 0

    def before_backward(self, ctx) -> None:
        ctx.extras.pop("row_scales", None)
        grads = step_row_gradients(ctx, ctx.losses, ctx.out)
        self.raw = {name: g.norms() for name, g in grads.items()}

    def after_backward(self, ctx) -> None:
        values = {f"grad_{name}": norms for name, norms in self.raw.items()}
        scales = ctx.extras.get("row_scales")
        if scales is not None:
            for name, scale in scales.items():
                if name in self.raw:
                    values[f"grad_{name}_reweighted"] = scale * self.raw[name]
        head = ctx.model.head
        if head.weight.grad is not None:
            values["grad_applied"] = torch.linalg.vector_norm(head.weight.grad.detach().float(), dim=1)
        if self.every == "step":
            for term, value in values.items():
                self.log.add(ctx.phase, ctx.epoch, ctx.step, term, value)
            return
        for term, value in values.items():
            self.sums[term] = self.sums[term] + value if term in self.sums else value.clone()
        self.steps += 1

    def after_epoch(self, ctx) -> None:
        for term, total in self.sums.items():
            self.log.add(ctx.phase, ctx.epoch, -1, term, total / max(self.steps, 1))
        self.sums, self.steps = {}, 0
