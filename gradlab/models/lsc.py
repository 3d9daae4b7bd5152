"""PODNet's local similarity classifier (LSC): K proxies per class (Douillard et al., ECCV 2020),
as in LT-CIL's ``src/approach/podnet.py``.

Every class c has K proxies theta_{c,1..K} (K = 10). For a feature h (hats: L2-normalised):

    s_{c,k} = <theta^_{c,k}, h^>                                  cosine similarity to each proxy
    y^_c    = sum_k softmax_k(s_{c,.})_k * s_{c,k}                 softmax-weighted proxy aggregation
    logit_c = eta * y^_c                                           eta: one learnable scale, init 1

The head grows per task like :class:`~gradlab.models.heads.IncrementalLinear`: ``grow(n)`` appends one
parameter holding the n new classes' n*K proxies, drawn from U(-1/sqrt(d), 1/sqrt(d)) as LT-CIL's
``CosineLinear`` does. With ``freeze_old`` (as LT-CIL: old heads are frozen) the proxies of earlier
tasks stop training (``requires_grad=False``, so the trainer's optimizer leaves them out: no update, no
weight decay); eta is shared by all tasks and keeps training. eta multiplies the scores at evaluation
too (LT-CIL applies it in training only); the argmax is the same whenever eta > 0.

Probes. The gradient and weight probes read ``head.weight`` (one row per class) and ``head.bias``:

- ``weight`` is a read-only per-class view, row c = class c's K proxies concatenated (C x K*d), and
  its ``.grad`` the same view of the proxies' gradients (zeros for frozen classes). So ``weight_norm``
  is sqrt(sum_k ||theta_{c,k}||^2) and ``grad_applied`` the norm of the gradient the optimizer applies
  to class c's proxies.
- ``bias`` is None (the LSC has none): the weight probe skips ``bias_abs``.
- the per-term ``grad_<term>`` rows of a linear head, (dL/dz)^T F, mean nothing here, so the head has
  :meth:`~LocalSimilarityClassifier.logit_row_gradients` (the hook of
  :func:`gradlab.training.row_gradients.row_gradients`): each term's exact gradient on every class's
  proxies (frozen ones included: the pull the term exerts, whether or not it is applied).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def proxy_similarities(features: torch.Tensor, proxies: torch.Tensor, per_class: int) -> torch.Tensor:
    """s_{b,c,k}: cosine of feature b and proxy k of class c; ``proxies`` is (C*K, d), class-major."""
    s = F.normalize(features, dim=1) @ F.normalize(proxies, dim=1).T
    return s.reshape(features.shape[0], -1, per_class)


def local_similarity(features: torch.Tensor, proxies: torch.Tensor, per_class: int) -> torch.Tensor:
    """y^_c = sum_k softmax_k(s_c)_k s_{c,k}: the class scores (B, C) before the scale eta."""
    s = proxy_similarities(features, proxies, per_class)
    return (F.softmax(s, dim=2) * s).sum(2)


class LocalSimilarityClassifier(nn.Module):
    """logit_c = eta * sum_k softmax_k(s_c)_k s_{c,k}; ``grow(n)`` adds n classes of ``proxies_per_class``."""

    def __init__(self, in_features: int, proxies_per_class: int = 10, freeze_old: bool = True):
        super().__init__()
        self.in_features = int(in_features)
        self.proxies_per_class = int(proxies_per_class)
        self.freeze_old = bool(freeze_old)
        self.task_sizes: list[int] = []
        self.proxies = nn.ParameterList()            # one (n_t * K, d) block per task
        self.eta = nn.Parameter(torch.ones(()))
        self.register_parameter("bias", None)

    @property
    def num_classes(self) -> int:
        return sum(self.task_sizes)

    def grow(self, n: int) -> None:
        """Append n classes' proxies (U(-1/sqrt(d), 1/sqrt(d))); with ``freeze_old`` the earlier ones freeze."""
        if self.freeze_old:
            for block in self.proxies:
                block.requires_grad_(False)
                block.grad = None         # the optimizer no longer clears it: no stale gradient on frozen rows
        bound = 1.0 / math.sqrt(self.in_features)
        new = torch.empty(n * self.proxies_per_class, self.in_features, device=self.eta.device, dtype=self.eta.dtype)
        self.proxies.append(nn.Parameter(new.uniform_(-bound, bound)))
        self.task_sizes.append(n)

    def all_proxies(self) -> torch.Tensor:
        """Every proxy, (C*K, d), class-major (rows c*K .. c*K+K-1 belong to class c)."""
        if not len(self.proxies):
            return self.eta.new_zeros(0, self.in_features)
        return torch.cat(list(self.proxies))

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """y^ (B, C), the class scores without eta."""
        return local_similarity(features, self.all_proxies(), self.proxies_per_class)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.eta * self.scores(features)

    @property
    def weight(self) -> torch.Tensor:
        """Read-only per-class view for the probes: row c = class c's proxies, (C, K*d); ``.grad`` likewise."""
        rows = (self.num_classes, self.proxies_per_class * self.in_features)
        view = self.all_proxies().detach().reshape(rows)
        if any(block.grad is not None for block in self.proxies):
            view.grad = torch.cat([block.grad if block.grad is not None else torch.zeros_like(block)
                                   for block in self.proxies]).detach().reshape(rows)
        return view

    def logit_row_gradients(self, dz: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient on every class's proxies of a loss whose gradient on the logits is ``dz`` (B x C).

        The hook :func:`gradlab.training.row_gradients.row_gradients` calls for non-linear heads: the
        vector-Jacobian product of the head, recomputed on the detached features with a copy of the proxies
        that requires grad (frozen classes get their gradient too: the pull of the term, applied or not).
        No pass through the backbone. Returns rows as in :attr:`weight`, (C x K*d) float32, and a zero bias (C,).
        """
        rows = (self.num_classes, self.proxies_per_class * self.in_features)
        with torch.enable_grad():
            proxies = self.all_proxies().detach().float().requires_grad_(True)
            z = self.eta.detach().float() * local_similarity(features.detach().float(), proxies, self.proxies_per_class)
            (grad,) = torch.autograd.grad(z, proxies, grad_outputs=dz.float())
        return grad.reshape(rows), dz.new_zeros(dz.shape[1], dtype=torch.float32)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, proxies_per_class={self.proxies_per_class}, "
                f"task_sizes={self.task_sizes}, freeze_old={self.freeze_old}")
