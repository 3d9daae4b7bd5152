"""Nearest-mean-of-exemplars (NME) pieces shared by iCaRL (Rebuffi et al., CVPR 2017) and
LUCIR (Hou et al., CVPR 2019).

mu_y = normalise(mean over y's exemplars of normalise(phi(x)), plus their horizontal flips when asked),
features in eval mode without augmentation. Since every mu_y has unit length, argmin_y ||phi(x) - mu_y||
is the same class whether or not phi(x) is normalised first.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def normalise(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x.float(), p=2, dim=1)


@torch.no_grad()
def exemplar_class_means(ctx, flips: bool, who: str) -> torch.Tensor:
    """(num_seen, d) unit-length class means of the normalised exemplar features (and their flips)."""
    num_seen = ctx.num_seen
    counts = ctx.memory.counts()
    missing = [c for c in range(num_seen) if counts.get(c, 0) == 0]
    if missing:
        raise RuntimeError(f"{who}'s NME classifier has no exemplars for classes {missing}; use a larger "
                           "memory or method_args.classifier=cnn")
    indices = np.concatenate([ctx.memory.for_class(c) for c in range(num_seen)])
    was_training = ctx.model.training
    ctx.model.eval()
    sums = torch.zeros(num_seen, ctx.model.backbone.out_dim, device=ctx.device)
    for batch in ctx.train_data.eval_batches(indices):
        for flipped in ((False, True) if flips else (False,)):
            sums.index_add_(0, batch.y, normalise(ctx.model.backbone(batch.x.flip(-1) if flipped else batch.x)))
    ctx.model.train(was_training)
    return normalise(sums)          # the count per class only rescales the sum


def current_means(method, flips: bool, who: str) -> torch.Tensor:
    """The method's class means, recomputed when the phase or the memory changed since the last call."""
    key = (method.ctx.phase, tuple(sorted(method.ctx.memory.counts().items())))
    if getattr(method, "means", None) is None or getattr(method, "_means_key", None) != key:
        method.means, method._means_key = exemplar_class_means(method.ctx, flips, who), key
    return method.means
