"""Classifier heads that grow with each task.

:class:`IncrementalLinear` is the official DGR (FACIL) head: one ``nn.Linear(d, n_t)`` with
bias per task, concatenated into one logit vector (one softmax over all seen classes). Here the rows
live in ONE weight matrix (C x d) and one bias (C,), grown per task, so per-class operations (gradient
norms, reweighting, weight norms) are single tensor ops; ``task_sizes`` remembers the blocks.

:class:`CosineHead` is LUCIR's cosine-normalised classifier (Hou et al., CVPR 2019):
z_c = sigma * cos(f, w_c), no bias, one learnable sigma shared by all classes. Its rows live in one
parameter block per task so that earlier tasks' rows can be frozen (excluded from the optimizer, hence
from weight decay and momentum too); ``weight`` reads all rows as one (C x d) matrix.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class IncrementalLinear(nn.Module):
    """z = F W^T + b over every class seen so far; ``grow(n)`` appends n rows with nn.Linear's init."""

    def __init__(self, in_features: int):
        super().__init__()
        self.in_features = in_features
        self.task_sizes: list[int] = []
        self.weight = nn.Parameter(torch.empty(0, in_features))
        self.bias = nn.Parameter(torch.empty(0))

    @property
    def num_classes(self) -> int:
        return self.weight.shape[0]

    def grow(self, n: int) -> None:
        """Add ``n`` class rows initialised like a fresh ``nn.Linear`` (U(-1/sqrt(d), 1/sqrt(d)))."""
        bound = 1.0 / math.sqrt(self.in_features)
        device, dtype = self.weight.device, self.weight.dtype
        new_w = torch.empty(n, self.in_features, device=device, dtype=dtype)
        nn.init.kaiming_uniform_(new_w, a=math.sqrt(5))  # what nn.Linear does; same bound as the bias
        new_b = torch.empty(n, device=device, dtype=dtype).uniform_(-bound, bound)
        self.weight = nn.Parameter(torch.cat([self.weight.data, new_w]))
        self.bias = nn.Parameter(torch.cat([self.bias.data, new_b]))
        self.task_sizes.append(n)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(features, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, task_sizes={self.task_sizes}"


class CosineHead(nn.Module):
    """z_c = sigma * <w_c / ||w_c||, f / ||f||> over every class seen so far (LUCIR, Hou et al., CVPR 2019).

    - ``grow(n)`` appends one block of n rows drawn from U(-1/sqrt(d), 1/sqrt(d)) (the official LUCIR
      init); with ``freeze_old`` (default) every earlier block is frozen first (``requires_grad=False``),
      so the trainer's optimizer - built from the parameters that require grad - never touches old rows:
      LUCIR's "lr 0, weight decay 0" for the old-class weights. Nothing else freezes or unfreezes them.
    - ``sigma``: one scalar parameter, initialised to ``sigma`` (1), learnable unless ``learn_sigma=False``.
    - ``weight``: a detached (C x d) copy of all rows, for reading (probes, imprinting, norms); its
      ``.grad`` holds the rows' current gradients (zeros for frozen rows) when any block has one.
      Write rows through ``blocks[i]`` (``set_rows`` does it for a row range). ``bias`` is None.
    - ``logit_row_gradients(dz, features)``: the exact gradient on each row given dL/dz, the hook
      :mod:`gradlab.training.row_gradients` uses (the linear formula dz^T F does not hold here).
    """

    bias = None

    def __init__(self, in_features: int, sigma: float = 1.0, learn_sigma: bool = True, freeze_old: bool = True):
        super().__init__()
        self.in_features = in_features
        self.freeze_old = freeze_old
        self.task_sizes: list[int] = []
        self.blocks = nn.ParameterList()
        self.sigma = nn.Parameter(torch.tensor(float(sigma)), requires_grad=learn_sigma)

    @property
    def num_classes(self) -> int:
        return sum(self.task_sizes)

    def grow(self, n: int) -> None:
        """Freeze the existing blocks (``freeze_old``), then add ``n`` rows from U(-1/sqrt(d), 1/sqrt(d))."""
        if self.freeze_old:
            for block in self.blocks:
                block.requires_grad_(False)
                block.grad = None      # no stale gradient: the next optimizer never clears frozen blocks
        bound = 1.0 / math.sqrt(self.in_features)
        new = torch.empty(n, self.in_features, device=self.sigma.device, dtype=self.sigma.dtype)
        self.blocks.append(nn.Parameter(new.uniform_(-bound, bound)))
        self.task_sizes.append(n)

    def full_weight(self) -> torch.Tensor:
        """All rows as one differentiable (C x d) tensor."""
        if not len(self.blocks):
            return self.sigma.new_empty(0, self.in_features)
        return torch.cat(list(self.blocks)) if len(self.blocks) > 1 else self.blocks[0]

    @property
    def weight(self) -> torch.Tensor:
        weight = self.full_weight().detach().clone()
        if any(block.grad is not None for block in self.blocks):
            weight.grad = torch.cat([block.grad if block.grad is not None else torch.zeros_like(block)
                                     for block in self.blocks])
        return weight

    @torch.no_grad()
    def set_rows(self, start: int, rows: torch.Tensor) -> None:
        """Overwrite rows ``start : start + len(rows)`` (they may span blocks)."""
        offset = 0
        for block in self.blocks:
            lo, hi = max(start, offset), min(start + len(rows), offset + len(block))
            if lo < hi:
                block[lo - offset: hi - offset] = rows[lo - start: hi - start].to(block.dtype)
            offset += len(block)

    def cosine(self, features: torch.Tensor) -> torch.Tensor:
        """cos(f_b, w_c), the scores before sigma (B x C)."""
        return F.linear(F.normalize(features, dim=1), F.normalize(self.full_weight(), dim=1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.sigma * self.cosine(features)

    @torch.no_grad()
    def logit_row_gradients(self, dz: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient on every row w_j of a loss whose gradient on the logits is ``dz`` (B x C).

        dz_bj / dw_j = sigma / ||w_j|| (f^_b - cos_bj w^_j), so
        grad_{w_j} = sigma / ||w_j|| [ (dz^T F^)_j - (sum_b dz_bj cos_bj) w^_j ]: one (C x B)(B x d)
        product, as for a linear head. Returns (C x d) float32 and a zero bias gradient (C,).
        """
        w = self.full_weight().detach().float()
        norms = torch.linalg.vector_norm(w, dim=1).clamp_min(1e-12)
        w_hat = w / norms[:, None]
        f_hat = F.normalize(features.detach().float(), dim=1)
        dz = dz.float()
        cos = f_hat @ w_hat.T
        grad = dz.T @ f_hat - (dz * cos).sum(0)[:, None] * w_hat
        return self.sigma.detach().float() * grad / norms[:, None], dz.new_zeros(dz.shape[1])

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, task_sizes={self.task_sizes}, freeze_old={self.freeze_old}"
