"""iCaRL: "iCaRL: Incremental Classifier and Representation Learning" (Rebuffi et al., CVPR 2017).

By default as FACIL / LT-CIL (Liu et al., ECCV 2022) ``src/approach/icarl.py`` implement it; the paper's
formulation is an option.

Training loss (``loss``):

- ``ce_kd`` (default; FACIL / LT-CIL, what the DGR paper's iCaRL baseline ran):
  L = CE(z_all, y) + lambda sum_{j old} BCE(sigmoid(z_j), sigmoid(z^_j)), each BCE the batch mean of
  one old class's column, summed over the old classes, lambda = 1 (z^: the frozen previous model).
- ``sigmoid`` (the paper's formulation): sigmoid BCE on every seen class, one-hot targets on the new
  classes' columns and the previous model's sigmoid outputs on the old ones; summed over the classes and
  averaged over the batch (the same scale as ``ce_kd``). Reported as terms ``ce`` (new columns) and
  ``kd`` (old columns).

Classifier (``classifier``): ``nme`` (default, the paper's nearest-mean-of-exemplars) or ``cnn`` (argmax
of the logits; both are reported in the literature, e.g. PODNet's CNN / NME columns).
NME: mu_y = normalise(mean over y's exemplars of normalise(phi(x))), features in eval mode without
augmentation; with ``flip_means`` the horizontally flipped exemplars join the mean (the paper and LUCIR's
code; FACIL does not); by default flips are used exactly when the data use flip augmentation (CIFAR yes,
digits no). Prediction: argmin_y ||normalise(phi(x)) - mu_y||^2, returned as the score -||.||^2.
The means need the exemplars chosen after this phase, and the trainer updates the memory after
``after_task``: they are computed at the first prediction after the memory changed (``after_task`` marks
them stale), i.e. before the phase's evaluation, as FACIL computes them right after herding.

Schedule: the run's (step by default). LT-CIL's iCaRL runs FACIL's patience scheme (lr / 10 when the
validation loss has not improved for 5 epochs, stop below 1e-4; a FACIL-heritage quirk): a run setting, not a
method arg, since any method can use it: ``lr_schedule: patience`` with ``val_fraction: 0.1``
(``--lr-schedule patience --val-fraction 0.1``; :mod:`gradlab.training.schedules`).
Method args: ``loss`` (ce_kd | sigmoid), ``classifier`` (nme | cnn), ``flip_means`` (true | false | null),
``lambda_kd`` (1).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from gradlab.errors import ConfigError
from gradlab.methods.args import Arg
from gradlab.methods.base import Method, register
from gradlab.methods.nme import current_means, exemplar_class_means, normalise

LOSSES = ("ce_kd", "sigmoid")
CLASSIFIERS = ("nme", "cnn")


def nme_scores(features: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """-||normalise(f) - mu_y||^2 for every class y (argmax = nearest mean); ``means`` already unit length."""
    f = normalise(features)
    return -((f * f).sum(1, keepdim=True) - 2 * f @ means.T + (means * means).sum(1)[None, :])


@register
class ICaRL(Method):
    """iCaRL (Rebuffi et al., CVPR 2017): CE + sigmoid-BCE distillation, nearest-mean-of-exemplars classifier."""

    name = "icarl"
    distributed = True      # every loss term is a mean over the batch's images (several ranks: exact)

    args = {"loss": Arg.choice("ce_kd", LOSSES, help="ce_kd (LT-CIL) or the paper's per-class sigmoid BCE"),
            "classifier": Arg.choice("nme", CLASSIFIERS, help="nearest mean of exemplars, or the CNN's logits"),
            "flip_means": Arg.flag(None, none="follow the data's flip augmentation",
                                   help="class means over flipped images too"),
            "lambda_kd": Arg.number(1.0, help="distillation weight")}

    def __init__(self, cfg, **method_args):
        super().__init__(cfg, **method_args)
        no_memory = cfg is not None and (cfg.memory_total == 0 or (cfg.memory_total is None and cfg.memory == 0))
        if self.classifier == "nme" and no_memory:
            raise ConfigError("method_args.classifier 'nme' needs exemplars (memory > 0 or memory_total > 0); "
                              "allowed with memory 0: 'cnn'")
        self.means: torch.Tensor | None = None
        self._means_key = None

    # ------------------------------------------------------------------ training
    def losses(self, batch, out):
        ctx = self.ctx
        logits = out.logits.float()
        num_old = ctx.num_old
        teacher = None
        if num_old:
            with torch.no_grad():
                teacher = torch.sigmoid(ctx.teacher(batch.x).logits.float())
        if self.loss == "ce_kd":
            terms = {"ce": F.cross_entropy(logits, batch.y)}
            if teacher is not None:
                bce = F.binary_cross_entropy_with_logits(logits[:, :num_old], teacher, reduction="none")
                terms["kd"] = self.lambda_kd * bce.mean(0).sum()
            return terms
        # the paper's loss: one sigmoid BCE per class column
        onehot = F.one_hot(batch.y, logits.shape[1]).float()
        bce_new = F.binary_cross_entropy_with_logits(logits[:, num_old:], onehot[:, num_old:], reduction="none")
        terms = {"ce": bce_new.sum(1).mean()}
        if teacher is not None:
            bce_old = F.binary_cross_entropy_with_logits(logits[:, :num_old], teacher, reduction="none")
            terms["kd"] = self.lambda_kd * bce_old.sum(1).mean()
        return terms

    def after_task(self, ctx) -> None:
        self.means, self._means_key = None, None   # recomputed from the updated memory at the next prediction

    # ------------------------------------------------------------------ NME
    def uses_flips(self) -> bool:
        return bool(self.ctx.train_data.flip) if self.flip_means is None else self.flip_means

    def class_means(self) -> torch.Tensor:
        """(num_seen, d) unit-length means of the normalised exemplar features (and their flips)."""
        return exemplar_class_means(self.ctx, self.uses_flips(), "iCaRL")

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ctx.model(x)
        if self.classifier == "cnn":
            return out.logits
        return nme_scores(out.features, current_means(self, self.uses_flips(), "iCaRL"))
