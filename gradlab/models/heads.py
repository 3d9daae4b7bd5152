"""Classifier heads that grow with each task.

:class:`IncrementalLinear` is the official DGR head (specs/dgr.md §2): one ``nn.Linear(d, n_t)`` with
bias per task, concatenated into one logit vector (one softmax over all seen classes). Here the rows
live in ONE weight matrix (C x d) and one bias (C,), grown per task, so per-class operations (gradient
norms, reweighting, weight norms) are single tensor ops; ``task_sizes`` remembers the blocks.
"""
from __future__ import annotations

import math

import torch
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
