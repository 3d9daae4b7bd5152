"""Per-class classifier weight and bias norms: the classifier-bias picture of the DGR paper's
Fig. 6 (He & Zhu, CVPR 2024: FC weight norms per class)."""
from __future__ import annotations

import torch

from gradlab.probes.base import Probe


class WeightNormProbe(Probe):
    """``weight_norm`` ||W_j||_2 and ``bias_abs`` abs(b_j) after every epoch, and at the end of every phase
    (``epoch = -1``, after any extra stage such as weight aligning)."""


    @torch.no_grad()
    def _record(self, ctx, epoch: int) -> None:
        head = ctx.model.head
        self.log.add(ctx.phase, epoch, -1, "weight_norm", torch.linalg.vector_norm(head.weight.float(), dim=1))
        if getattr(head, "bias", None) is not None:
            self.log.add(ctx.phase, epoch, -1, "bias_abs", head.bias.float().abs())

    def after_epoch(self, ctx) -> None:
        self._record(ctx, ctx.epoch)

    def after_eval(self, ctx) -> None:
        self._record(ctx, -1)
