"""Fine-tuning: cross-entropy on the new data plus the exemplar memory, nothing else.

The lower bound of class-incremental learning (with ``memory 0``) and, with memory, the "CE"
baseline of the DGR paper's Figure 2 (He & Zhu, CVPR 2024: per-class classifier gradient magnitudes
under plain CE with 20 exemplars per class).
"""
from __future__ import annotations

import torch.nn.functional as F

from gradlab.methods.base import Method, register


@register
class Finetune(Method):
    """Cross-entropy on new data + memory (no distillation, no reweighting)."""

    name = "finetune"
    distributed = True      # every loss term is a mean over the batch's images (several ranks: exact)

    def losses(self, batch, out):
        return {"ce": F.cross_entropy(out.logits, batch.y)}
