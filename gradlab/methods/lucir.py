"""LUCIR: "Learning a Unified Classifier Incrementally via Rebalancing" (Hou et al., CVPR 2019).

As the official code (hshustc/CVPR19_Incremental_Learning) and the paper describe it.

- network (paper Sec. 4.1): the run's backbone with its last ReLU removed (features may be negative),
  from the base phase on, and a :class:`~gradlab.models.heads.CosineHead`: z_c = sigma cos(f, w_c), no
  bias, one learnable sigma (init 1). The head freezes every earlier task's rows when it grows, so in
  phase t the old-class weights get neither gradient steps nor weight decay (the code's lr 0 / wd 0);
  sigma and the new rows train.
- phase 0: CE on the cosine logits only.
- phase t > 0, each batch of D_t + memory (paper Eq. 9), three named terms:
  ``ce``  CE(sigma cos, y) over every seen class;
  ``lf``  less-forget constraint lambda * mean_b (1 - cos(f(x), f*(x))), f* the frozen previous model's
          feature, lambda = ``lambda_base`` sqrt(|C_old| / |C_new|) (5 for CIFAR, 10 for ImageNet);
  ``mr``  ``lambda_mr`` x margin ranking on the old-class samples of the batch only, on the scores BEFORE
          sigma: max(0, m - cos_y(x) + cos_k(x)) for the K new classes k with the highest cos (K = ``k`` = 2,
          m = ``margin`` = 0.5); zero when the batch holds no old-class sample. K is capped at |C_new|.
- imprinted new weights (the official code's "imprint weights", not in the paper; ``imprint``, on by
  default as in every official CIFAR run): before training phase t > 0, new class c's row =
  normalise(mean over its training images of normalise(f(x))) times the mean L2 norm of the old rows,
  f from the current (= previous-phase) model in eval mode, no augmentation.
- class-balanced fine-tuning (CBF, paper Sec. 4.4; ``cbf``, off by default: the official code uses it
  on ImageNet-full only): after the main training of phase t > 0, backbone frozen (BN in eval mode),
  sigma fixed, all class rows (old and new) trained with CE + MR for ``cbf_epochs`` (20) epochs, SGD lr
  ``cbf_lr`` (0.01) / 10 at half of them, the run's momentum, weight decay and batch size. Data: the
  old classes' exemplars and, per new class, a random subset of the per-class budget (the trainer herds
  the new classes' exemplars only after ``after_task``, so the official herded set is replaced by a
  random class-balanced one). The less-forget term is constant with the backbone frozen and is left out.
- classifier (the paper's CNN / NME, ``classifier``): ``cnn`` (argmax of sigma cos, default; FACIL /
  LT-CIL report only this) or ``nme``: class means = normalise(mean over the exemplars of
  normalise(f(x)) and, when the data use flip augmentation, of their flips), prediction
  argmin ||f(x) - mu_c||^2 on the raw feature, returned as the score -||f(x) - mu_c||^2. The means are
  computed at the first prediction after the memory update.

Reference-code differences that change numbers, behind switches:

- ``mr_reduction``: ``pairs`` (default, the official code: MarginRankingLoss averages over the
  n_old x K pairs) or ``samples`` (paper Eq. 9: summed over the K classes, averaged over the n_old
  old-class samples, i.e. K times the code's term).
- ``imprint``: true (official LUCIR) or false (FACIL / LT-CIL / DGR's LUCIR baseline: random
  new rows). LT-CIL's other changes are run-level: its LUCIR = ``imprint=false classifier=cnn`` with
  ``--augment resized_crop --val-fraction 0.1``; its one cosine head per task with a shared sigma is the
  same function as one head with per-task blocks.

Method args: ``lambda_base`` (5), ``k`` (2), ``margin`` (0.5), ``lambda_mr`` (1), ``imprint`` (true),
``cbf`` (false), ``cbf_epochs`` (20), ``cbf_lr`` (0.01), ``classifier`` (cnn | nme),
``mr_reduction`` (pairs | samples).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gradlab.errors import ConfigError
from gradlab.methods.args import Arg
from gradlab.methods.base import Method, register
from gradlab.methods.distillation import feature_distillation
from gradlab.methods.nme import current_means, exemplar_class_means
from gradlab.models.factory import IncrementalNet
from gradlab.models.heads import CosineHead
from gradlab.models.resnet_cifar import ResNetCifar, SmallConvNet
from gradlab.training.stages import Stage, class_balanced_indices, stage_generator

CLASSIFIERS = ("cnn", "nme")
MR_REDUCTIONS = ("pairs", "samples")


def less_forget_weight(lambda_base: float, num_old: int, num_new: int) -> float:
    """lambda = lambda_base sqrt(|C_old| / |C_new|) (paper Eq. 7; 0 in the base phase)."""
    return lambda_base * math.sqrt(num_old / num_new) if num_old else 0.0


def margin_ranking_loss(cos: torch.Tensor, targets: torch.Tensor, num_old: int, k: int = 2, margin: float = 0.5,
                        reduction: str = "pairs") -> torch.Tensor:
    """LUCIR's inter-class separation (paper Eq. 8) on cosine scores ``cos`` (B x C, before sigma).

    For every sample whose label is an old class (< ``num_old``): sum over the K new classes with the
    highest score of max(0, margin - cos_y + cos_k). ``pairs``: averaged over the n_old x K pairs (the
    official code); ``samples``: averaged over the n_old samples (the paper). Zero without old samples.
    No host synchronisation (masks instead of boolean indexing).
    """
    num_new = cos.shape[1] - num_old
    if num_old == 0 or num_new <= 0:
        return cos.new_zeros(())
    k = min(k, num_new)
    cos = cos.float()
    target = cos.gather(1, targets[:, None])                              # (B, 1)
    hardest = cos[:, num_old:].topk(k, dim=1).values                     # (B, K)
    old = (targets < num_old).float()
    hinge = F.relu(margin - target + hardest) * old[:, None]
    denominator = old.sum() * (k if reduction == "pairs" else 1)
    return hinge.sum() / denominator.clamp_min(1.0)


def remove_last_relu(backbone: nn.Module) -> nn.Module:
    """Drop the ReLU after the backbone's last block in place (as LUCIR does); the weights stay as they are."""
    if isinstance(backbone, ResNetCifar):
        backbone.layers[-1].relu_out = False
    elif isinstance(backbone, SmallConvNet):
        last = max(i for i, m in enumerate(backbone.body) if isinstance(m, nn.ReLU))
        backbone.body[last] = nn.Identity()
    else:
        raise ConfigError(f"lucir cannot remove the last ReLU of a {type(backbone).__name__} backbone; "
                          "allowed: resnet32, small")
    return backbone


@register
class LUCIR(Method):
    """LUCIR (Hou et al., CVPR 2019): cosine head, less-forget feature distillation, margin ranking."""

    name = "lucir"
    distributed = ("its margin-ranking loss is divided by the number of old-class images in each batch, which "
                   "differs between ranks")

    args = {"lambda_base": Arg.number(5.0, help="less-forget weight at one old / one new class"),
            "k": Arg.integer(2, low=1, help="hard negatives per image in the margin ranking loss"),
            "margin": Arg.number(0.5, help="margin of the ranking loss"),
            "lambda_mr": Arg.number(1.0, help="margin ranking loss weight"),
            "imprint": Arg.flag(True, help="initialise the new rows from normalised class means"),
            "cbf": Arg.flag(False, help="class-balanced fine-tuning after each phase"),
            "cbf_epochs": Arg.integer(20, help="epochs of the class-balanced fine-tuning"),
            "cbf_lr": Arg.number(0.01, above=True, help="lr of the class-balanced fine-tuning"),
            "classifier": Arg.choice("cnn", CLASSIFIERS, help="the cosine head's logits, or nearest mean"),
            "mr_reduction": Arg.choice("pairs", MR_REDUCTIONS, help="how the ranking loss is averaged")}

    def __init__(self, cfg, **method_args):
        super().__init__(cfg, **method_args)
        no_memory = cfg is not None and (cfg.memory_total == 0 or (cfg.memory_total is None and cfg.memory == 0))
        if no_memory and (self.classifier == "nme" or self.cbf):
            what = "classifier 'nme'" if self.classifier == "nme" else "cbf true"
            raise ConfigError(f"method_args: {what} needs exemplars (memory > 0 or memory_total > 0); "
                              "with memory 0 use classifier 'cnn' and cbf false")
        self.lambda_lf = 0.0
        self.means: torch.Tensor | None = None
        self._means_key = None
        self.cbf_losses: list[float] = []

    # ------------------------------------------------------------------ network
    def build_model(self, backbone: nn.Module) -> nn.Module:
        return IncrementalNet(remove_last_relu(backbone), CosineHead(backbone.out_dim, sigma=1.0))

    # ------------------------------------------------------------------ per phase (lambda, imprinting)
    def before_task(self, ctx) -> None:
        num_old, num_new = ctx.num_old, ctx.num_seen - ctx.num_old
        self.lambda_lf = less_forget_weight(self.lambda_base, num_old, num_new)
        if num_old and self.imprint:
            self.imprint_weights(ctx)
        ctx.phase_log["lucir"] = {"lambda": self.lambda_lf, "sigma": float(ctx.model.head.sigma.detach())}

    @torch.no_grad()
    def imprint_weights(self, ctx) -> torch.Tensor:
        """Set the new rows to the normalised mean normalised feature of each new class, scaled to the old
        rows' mean norm (as the official code); a new class without training images keeps its random row.
        Returns the rows."""
        head, num_old, num_seen = ctx.model.head, ctx.num_old, ctx.num_seen
        weight = head.weight
        old_norm = torch.linalg.vector_norm(weight[:num_old].float(), dim=1).mean()
        was_training = ctx.model.training
        ctx.model.eval()
        d = weight.shape[1]
        sums = torch.zeros(num_seen - num_old, d, device=ctx.device)
        counts = torch.zeros(num_seen - num_old, device=ctx.device)
        for batch in ctx.train_data.eval_batches(ctx.task.train_indices):
            f = F.normalize(ctx.model.backbone(batch.x).float(), dim=1)
            sums.index_add_(0, batch.y - num_old, f)
            counts.index_add_(0, batch.y - num_old, torch.ones_like(batch.y, dtype=torch.float32))
        ctx.model.train(was_training)
        rows = F.normalize(sums / counts.clamp_min(1.0)[:, None], dim=1) * old_norm
        rows = torch.where(counts[:, None] > 0, rows, weight[num_old:num_seen].to(rows))
        head.set_rows(num_old, rows)
        return rows

    # ------------------------------------------------------------------ the loss (paper Eq. 9)
    def _ce_mr(self, batch, out) -> dict[str, torch.Tensor]:
        ctx = self.ctx
        logits = out.logits.float()
        terms = {"ce": F.cross_entropy(logits, batch.y)}
        if ctx.num_old:
            cos = logits / ctx.model.head.sigma.float()      # the scores before sigma (no gradient to sigma)
            terms["mr"] = self.lambda_mr * margin_ranking_loss(cos, batch.y, ctx.num_old, self.k, self.margin,
                                                               self.mr_reduction)
        return terms

    def losses(self, batch, out):
        ctx = self.ctx
        terms = self._ce_mr(batch, out)
        if ctx.num_old:
            with torch.no_grad():
                teacher_features = ctx.teacher.backbone(batch.x)
            terms["lf"] = self.lambda_lf * feature_distillation(out.features, teacher_features)
        return terms

    # ------------------------------------------------------------------ class-balanced fine-tuning
    def cbf_indices(self, ctx) -> np.ndarray:
        budget = ctx.memory.budget_per_class(ctx.num_seen)
        counts = ctx.memory.counts()
        old = [ctx.memory.for_class(c)[:budget] for c in range(ctx.num_old) if counts.get(c, 0)]
        new = class_balanced_indices(ctx.scenario.train.labels, ctx.task.train_indices, budget,
                                     stage_generator(ctx, "lucir-cbf-data"))
        return np.concatenate([*old, new]).astype(np.int64)

    def after_task(self, ctx) -> None:
        self.means, self._means_key = None, None     # recomputed from the updated memory at the next prediction

    def stages(self, ctx):
        if not (self.cbf and ctx.phase > 0 and self.cbf_epochs > 0):
            return
        indices = self.cbf_indices(ctx)

        def finish(losses):
            self.cbf_losses = losses
            ctx.phase_log["lucir_cbf"] = {"images": int(len(indices)), "losses": losses}

        yield Stage("lucir-cbf", list(ctx.model.head.blocks), lambda batch, out: sum(self._ce_mr(batch, out).values()),
                    indices, epochs=self.cbf_epochs, lr=self.cbf_lr, milestones=[self.cbf_epochs // 2],
                    momentum=ctx.cfg.momentum, weight_decay=ctx.cfg.weight_decay, finish=finish)

    # ------------------------------------------------------------------ NME
    def class_means(self) -> torch.Tensor:
        """(num_seen, d) unit-length means of the normalised exemplar features (and their flips)."""
        return exemplar_class_means(self.ctx, bool(self.ctx.train_data.flip), "LUCIR")

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ctx.model(x)
        if self.classifier == "cnn":
            return out.logits
        means = current_means(self, bool(self.ctx.train_data.flip), "LUCIR")
        return -torch.cdist(out.features.float(), means).pow(2)
