"""Per-class classifier gradients of each loss term, cheaply (one backward to the logits, one matmul).

For a linear head z = F W^T + b, the gradient of a loss term L on class row j is
grad_{W_j} L = sum_b (dL/dz_bj) F_b, i.e. G = (dL/dz)^T F, and grad_{b_j} L = sum_b dL/dz_bj.
``torch.autograd.grad(L, z, retain_graph=True)`` is one tiny backward through the loss only, and one
(C x B)(B x d) product gives every row: no extra pass through the network, no loop over classes.

DGR's gradient rewrite and the gradient probe both read these; the result of a step is cached on the
context so that the two share one computation.

A head whose logits are not linear in its rows (LUCIR's :class:`~gradlab.models.heads.CosineHead`) provides
``logit_row_gradients(dz, features) -> (weight_grad, bias_grad)``; it is used instead of dz^T F.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class RowGradients(NamedTuple):
    """Gradient of one loss term on the classifier rows (float32)."""

    weight: torch.Tensor   # (C, d): grad of W, row j = class j
    bias: torch.Tensor     # (C,)

    def norms(self) -> torch.Tensor:
        """L2 norm of each weight row, ||grad_{W_j} L||_2 (the bias is not part of the norm, as in the official DGR code)."""
        return torch.linalg.vector_norm(self.weight, dim=1)


def row_gradients(loss: torch.Tensor, logits: torch.Tensor, features: torch.Tensor, head=None) -> RowGradients:
    """Classifier-row gradients of ``loss`` through ``logits = features W^T + b`` (graph kept), or through
    ``head.logit_row_gradients`` when the head has one (e.g. a cosine head)."""
    if not loss.requires_grad:   # a term that does not depend on the logits (e.g. feature distillation)
        zeros = logits.new_zeros(logits.shape[1], dtype=torch.float32)
        return RowGradients(zeros[:, None].expand(-1, features.shape[1]).clone(), zeros)
    (dz,) = torch.autograd.grad(loss, logits, retain_graph=True, allow_unused=True)
    if dz is None:
        dz = torch.zeros_like(logits)
    dz = dz.float()
    custom = getattr(head, "logit_row_gradients", None)
    if custom is not None:
        return RowGradients(*custom(dz, features))
    return RowGradients(dz.T @ features.detach().float(), dz.sum(0))


def step_row_gradients(ctx, losses: dict[str, torch.Tensor], out) -> dict[str, RowGradients]:
    """Row gradients of every named term for the current step, computed once per step and cached on
    ``ctx.extras['row_gradients']`` (keyed by phase and step) so a method and a probe share them. On several ranks
    they are summed over ranks weighted by each rank's share of the batch: the global batch's row gradients."""
    key = (ctx.phase, ctx.step)
    cached_key, cache = ctx.extras.get("row_gradients", (None, {}))
    if cached_key != key:
        cache = {}
    missing = [name for name in losses if name not in cache]
    head = getattr(ctx.model, "head", None)
    fresh = [row_gradients(losses[name], out.logits, out.features, head) for name in missing]
    ranks = getattr(ctx, "ranks", None)
    if fresh and ranks is not None and ranks.active and torch.is_grad_enabled():
        flat = ranks.reduce_weighted([t for g in fresh for t in g])      # the global batch's rows, one all-reduce
        fresh = [RowGradients(*flat[2 * i:2 * i + 2]) for i in range(len(fresh))]
    cache.update(zip(missing, fresh))
    ctx.extras["row_gradients"] = (key, cache)
    return {name: cache[name] for name in losses}
