"""Fine-tuning: cross-entropy on the new data plus the exemplar memory, nothing else.

The lower bound of class-incremental learning (with ``memory 0``) and, with memory, the "CE"
baseline of the DGR paper's Figure 2 (specs/dgr.md §7).
"""
from __future__ import annotations

import torch.nn.functional as F

from gradlab.methods.base import Method, register


@register
class Finetune(Method):
    """Cross-entropy on new data + memory (no distillation, no reweighting)."""

    name = "finetune"

    def losses(self, batch, out):
        return {"ce": F.cross_entropy(out.logits, batch.y)}
