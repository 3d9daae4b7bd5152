"""EEIL: "End-to-End Incremental Learning" (Castro et al., ECCV 2018).

By default as the LT-CIL tables (Liu et al., ECCV 2022) ran it: FACIL's ``src/approach/eeil.py``, which
LT-CIL reuses, with its command-line defaults. Phase 0 is plain CE. In phase t > 0:

- stage a, the trainer's main training on D_t + memory:
  L = CE(z_all, y) + lambda sum_{distilled old task heads i} BCE(softmax(z_i / T), softmax(z^_i / T)),
  lambda = 1, T = 2; z_i is head i's block of logits (its task's classes) and the BCE is element-wise
  between the two probability vectors, averaged over the batch and the head's classes (torch's mean, as
  FACIL). The teacher is the frozen model of the previous phase.
- stage b, balanced fine-tuning (an extra stage the trainer runs, :class:`gradlab.training.stages.Stage`):
  the same loss distilling every old head, all parameters, SGD at lr = run lr x ``finetune_lr_factor``
  with the run's momentum and weight decay, constant lr, ``finetune_epochs`` epochs (default a quarter of
  the run's epochs: 40 of 160, FACIL's default; its [80, 120] steps are never reached, hence constant), on
  the set that ``balanced`` picks.

The three switches, reference default first; where the default departs from the paper:

- ``skip_last_old_head`` true (reference): stage a distils old heads 0..t-2 only, so the latest old head
  is not distilled and phase 1 has no distillation at all (an off-by-one in the reference code; stage b
  distils every old head either way). false (the paper): stage a distils every old head.
- ``balanced``: ``facil`` (reference): the old exemplars plus a random subset of D_t of |M_old| images in
  total, not balanced per class. ``per_class`` (the paper: as many images of every class): the old
  classes' exemplars (herding prefix up to the per-class budget) plus a random ``budget``-sized subset of
  each new class (a class with fewer images gives all it has).
- ``finetune_lr_factor`` 0.01 (reference: FACIL's ``--lr-finetuning-factor`` default, lr 0.001 for a run
  at 0.1). 0.1 gives the paper's fine-tuning lr (it starts at 0.01 when training starts at 0.1).

So ``{skip_last_old_head: false, balanced: per_class, finetune_lr_factor: 0.1}`` (``PAPER_ARGS``) is the
paper's recipe.
Not reproduced: the optional gradient noise (off by default in FACIL) and the original's temporary
distillation on new classes (not confirmed against the paper).
Method args: ``lambda_kd`` (1), ``temperature`` (2), ``balanced`` (facil | per_class), ``finetune_epochs``
(null: a quarter of the run's epochs), ``finetune_lr_factor`` (0.01), ``skip_last_old_head`` (true).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from gradlab.methods.args import Arg
from gradlab.methods.base import Method, register
from gradlab.training.stages import Stage, class_balanced_indices, stage_generator

BALANCED = ("facil", "per_class")
#: The method args that switch the three reference-code defaults back to the paper's recipe.
PAPER_ARGS = {"skip_last_old_head": False, "balanced": "per_class", "finetune_lr_factor": 0.1}


def clamped_log(x: torch.Tensor) -> torch.Tensor:
    """log(x) clamped at -100, as torch's ``binary_cross_entropy`` does, with a zero gradient (not NaN) where x is 0:
    a task head of one class has p = softmax(z) = 1 exactly, so 1 - p = 0."""
    positive = x > 0
    logs = torch.where(positive, x, torch.ones_like(x)).log()
    return torch.where(positive, logs, torch.full_like(x, -100.0)).clamp_min(-100)


def softmax_bce(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean element-wise BCE(p, q) between p = softmax(student/T) and q = softmax(teacher/T); logs clamped
    at -100 as torch's ``binary_cross_entropy`` (written out so that it is safe under autocast)."""
    p = F.softmax(student.float() / temperature, dim=1)
    q = F.softmax(teacher.float() / temperature, dim=1)
    return -(q * clamped_log(p) + (1 - q) * clamped_log(1 - p)).mean()


@register
class EEIL(Method):
    """EEIL (Castro et al., ECCV 2018): CE + per-head softmax-BCE KD, balanced fine-tuning; LT-CIL's defaults."""

    name = "eeil"
    distributed = True      # every loss term is a mean over the batch's images (several ranks: exact)

    args = {"lambda_kd": Arg.number(1.0, help="KD weight"),
            "temperature": Arg.number(2.0, above=True, help="KD temperature T"),
            "balanced": Arg.choice("facil", BALANCED, help="the fine-tuning data: FACIL's draw or per class"),
            "finetune_epochs": Arg.integer(None, none="a quarter of the run's epochs", help="balanced fine-tuning"),
            "finetune_lr_factor": Arg.number(0.01, above=True, help="fine-tuning lr = run lr x this"),
            "skip_last_old_head": Arg.flag(True, help="LT-CIL: do not distil the newest old head in stage a")}

    def __init__(self, cfg, **method_args):
        super().__init__(cfg, **method_args)
        if self.finetune_epochs is None:
            self.finetune_epochs = max(1, round(cfg.epochs / 4))
        self.finetune_losses: list[float] = []

    # ------------------------------------------------------------------ the loss
    def _terms(self, batch, out, heads: int) -> dict[str, torch.Tensor]:
        """CE over every seen class + distillation of the first ``heads`` task heads."""
        ctx = self.ctx
        logits = out.logits.float()
        terms = {"ce": F.cross_entropy(logits, batch.y)}
        if heads > 0:
            with torch.no_grad():
                teacher = ctx.teacher(batch.x).logits.float()
            sizes = ctx.model.head.task_sizes[:heads]
            bounds = np.concatenate([[0], np.cumsum(sizes)])
            terms["kd"] = self.lambda_kd * sum(
                softmax_bce(logits[:, a:b], teacher[:, a:b], self.temperature) for a, b in zip(bounds[:-1], bounds[1:]))
        return terms

    def losses(self, batch, out):
        heads = self.ctx.phase - 1 if self.skip_last_old_head else self.ctx.phase
        return self._terms(batch, out, max(heads, 0))

    # ------------------------------------------------------------------ stage b
    def balanced_indices(self, ctx) -> np.ndarray:
        """Stage b's training set: old exemplars + a (class-)balanced subset of the new data."""
        labels = ctx.scenario.train.labels
        generator = stage_generator(ctx, "eeil-balanced")
        new = ctx.task.train_indices
        if self.balanced == "facil":
            old = ctx.memory.indices()
            order = torch.randperm(len(new), generator=generator).numpy()
            return np.concatenate([old, new[order[:len(old)]]]).astype(np.int64)
        budget = ctx.memory.budget_per_class(ctx.num_seen)
        old = [ctx.memory.for_class(c)[:budget] for c in range(ctx.num_old) if c in ctx.memory.counts()]
        return np.concatenate([*old, class_balanced_indices(labels, new, budget, generator)]).astype(np.int64)

    def stages(self, ctx):
        if ctx.phase == 0 or self.finetune_epochs == 0:
            return
        indices = self.balanced_indices(ctx)
        params = [p for p in ctx.model.parameters() if p.requires_grad]

        def finish(losses):
            self.finetune_losses = losses
            ctx.phase_log["eeil_finetune"] = {"images": int(len(indices)), "losses": losses}

        yield Stage("eeil-balanced", params, lambda batch, out: sum(self._terms(batch, out, ctx.phase).values()),
                    indices, epochs=self.finetune_epochs, lr=ctx.cfg.lr * self.finetune_lr_factor,
                    momentum=ctx.cfg.momentum, weight_decay=ctx.cfg.weight_decay, finish=finish)
