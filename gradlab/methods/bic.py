"""BiC: "Large Scale Incremental Learning" (Wu et al., CVPR 2019), bias correction.

As FACIL / LT-CIL (Liu et al., ECCV 2022) ``src/approach/bic.py`` implement it, with the paper's
settings:

- exemplar split: the per-class budget m (``memory``; with ``memory_total`` K: K // seen classes, per
  phase) is split into val = ceil(``bias_val_fraction`` x m) validation images and m - val training
  exemplars ("train/validation split on the exemplars is 9:1"; m = 20 gives 2 + 18). When a class is new,
  its first ``val`` training images become its validation images for good and are taken out of training
  and out of herding (:meth:`BiC.memory_candidates`); the memory keeps m - val herded exemplars per class.
  Guard for long-tailed data (a very rare class could otherwise lose every training image): a new
  class keeps at least one training image, so it gives min(val, n_c - 1).
- stage 1 (the trainer's main training on the remaining D_t + memory):
  L = (1 - lambda) CE(z_all, y) + lambda KD_T(z_old, z^_old), lambda = n / (n + m) (n old, m new classes),
  T = 2, KD_T the soft cross-entropy (:func:`gradlab.methods.wa.soft_cross_entropy`). Student and teacher
  logits both pass through the stored bias layers of earlier tasks; the current task's is (1, 0).
- stage 2 (phase t > 0, an extra stage the trainer runs, :class:`gradlab.training.stages.Stage`): the network
  frozen (eval mode, no gradients), only this task's (alpha_t, beta_t) trained, shared by all its classes:
  z_new <- alpha_t z_new + beta_t; old tasks' (alpha, beta) stay fixed. Loss: CE on the validation images
  of every seen class (augmented, as FACIL's loader) + 0.1 beta_t^2 / 2 (the original code's penalty);
  SGD at the run's lr (0.1), momentum 0.9, no weight decay, 200 epochs, the run's batch size.
- prediction: the bias-corrected logits.

The bias layers live on the model (``model.bias_layers``), so checkpoints and the teacher carry them;
``model(x).logits`` stays the raw head output (what the probes measure), corrected by the method.
FACIL's 1e-5 smoothing inside its soft cross-entropy is not reproduced (it does not change the numbers).
Method args: ``temperature``, ``lambda_kd`` (null: n / (n + m)), ``bias_val_fraction``, ``bias_epochs``,
``bias_lr`` (null: the run's lr), ``beta_l2``.
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
from gradlab.methods.wa import soft_cross_entropy
from gradlab.models.factory import IncrementalNet
from gradlab.training.stages import Stage


class BiasLayers(nn.Module):
    """One (alpha, beta) pair per task, applied to that task's block of logits: z <- alpha z + beta.

    Parameters are created frozen (``requires_grad=False``); BiC's stage 2 trains the last pair only.
    Applied to logits of the first k tasks, where k is given by the number of logit columns.
    """

    def __init__(self):
        super().__init__()
        self.alpha = nn.ParameterList()
        self.beta = nn.ParameterList()
        self.task_sizes: list[int] = []

    def grow(self, n: int, device=None) -> None:
        self.alpha.append(nn.Parameter(torch.ones(1, device=device), requires_grad=False))
        self.beta.append(nn.Parameter(torch.zeros(1, device=device), requires_grad=False))
        self.task_sizes.append(int(n))

    def per_class(self, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """alpha and beta expanded to one value per class for the first ``num_classes`` classes."""
        sizes, total = [], 0
        for n in self.task_sizes:
            if total >= num_classes:
                break
            sizes.append(n)
            total += n
        if total != num_classes:
            raise ValueError(f"{num_classes} logit columns do not match the task blocks {self.task_sizes}")
        alpha = torch.cat([a.expand(n) for a, n in zip(self.alpha, sizes)])
        beta = torch.cat([b.expand(n) for b, n in zip(self.beta, sizes)])
        return alpha, beta

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] == 0:
            return logits
        alpha, beta = self.per_class(logits.shape[1])
        return logits * alpha.to(logits.dtype) + beta.to(logits.dtype)


class BiCNet(IncrementalNet):
    """The incremental network plus BiC's bias layers (``forward`` is unchanged: raw logits)."""

    def __init__(self, backbone: nn.Module, head: nn.Module | None = None):
        super().__init__(backbone, head)
        self.bias_layers = BiasLayers()


@register
class BiC(Method):
    """BiC (Wu et al., CVPR 2019): KD + a bias-correction layer (alpha, beta) trained on held-out exemplars."""

    name = "bic"
    distributed = True      # means over the batch's images, + an L2 term of beta alone (several ranks: exact)
    args = {"temperature": Arg.number(2.0, above=True, help="KD temperature T"),
            "lambda_kd": Arg.number(None, 0, 1, none="n / (n + m), old over seen classes", help="KD weight"),
            "bias_val_fraction": Arg.number(0.1, 0, 1, above=True, below=True,
                                            help="exemplars held out for the bias stage"),
            "bias_epochs": Arg.integer(200, help="epochs of the bias-correction stage"),
            "bias_lr": Arg.number(None, above=True, none="the run's lr", help="lr of the bias stage"),
            "beta_l2": Arg.number(0.1, help="L2 penalty on beta")}

    def __init__(self, cfg, **method_args):
        super().__init__(cfg, **method_args)
        if cfg is not None and (cfg.memory_total == 0 or (cfg.memory_total is None and cfg.memory == 0)):
            raise ConfigError("method 'bic' needs exemplars for its validation split: memory (or memory_total) "
                              "must be > 0")
        self.val: dict[int, np.ndarray] = {}      # class -> its held-out validation images
        self.held_out = np.empty(0, dtype=np.int64)
        self.bias_losses: list[float] = []

    def build_model(self, backbone: nn.Module) -> nn.Module:
        return BiCNet(backbone)

    # ------------------------------------------------------------------ stage 0: the exemplar split
    def split_sizes(self, ctx) -> tuple[int, int]:
        """(validation, training) exemplars per class in this phase."""
        cfg = ctx.cfg
        per_class = cfg.memory if cfg.memory_total is None else cfg.memory_total // ctx.num_seen
        val = math.ceil(self.bias_val_fraction * per_class)
        return val, per_class - val

    def before_task(self, ctx) -> None:
        ctx.model.bias_layers.grow(len(ctx.task.classes), device=ctx.device)
        val, train = self.split_sizes(ctx)
        if ctx.cfg.memory_total is None:
            ctx.memory.per_class = train
        else:
            ctx.memory.total = train * ctx.num_seen
            self.val = {c: v[:val] for c, v in self.val.items()}
        labels = ctx.scenario.train.labels
        new = ctx.task.train_indices
        for c in ctx.task.classes:
            members = new[labels[new] == c]
            self.val[int(c)] = members[:max(0, min(val, len(members) - 1))].astype(np.int64)
        self.held_out = np.concatenate([self.val[int(c)] for c in ctx.task.classes]).astype(np.int64)
        ctx.train_indices = ctx.train_indices[~np.isin(ctx.train_indices, self.held_out)]
        self.lam = (ctx.num_old / ctx.num_seen) if self.lambda_kd is None else self.lambda_kd
        ctx.phase_log["bic"] = {"val_per_class": val, "train_exemplars_per_class": train, "lambda": self.lam}

    def memory_candidates(self, task) -> np.ndarray:
        """Herding picks from the new classes' training images without the validation ones."""
        return task.train_indices[~np.isin(task.train_indices, self.held_out)]

    # ------------------------------------------------------------------ stage 1
    def losses(self, batch, out):
        ctx = self.ctx
        logits = ctx.model.bias_layers(out.logits.float())
        ce = F.cross_entropy(logits, batch.y)
        if ctx.phase == 0:
            return {"ce": ce}
        with torch.no_grad():
            teacher = ctx.teacher.bias_layers(ctx.teacher(batch.x).logits.float())
        kd = soft_cross_entropy(logits[:, :ctx.num_old], teacher, self.temperature)
        return {"ce": (1 - self.lam) * ce, "kd": self.lam * kd}

    # ------------------------------------------------------------------ stage 2
    def validation_indices(self, ctx) -> np.ndarray:
        return np.concatenate([self.val[c] for c in range(ctx.num_seen)]).astype(np.int64)

    def stages(self, ctx):
        if ctx.phase == 0 or self.bias_epochs == 0:
            return
        layers = ctx.model.bias_layers
        alpha, beta = layers.alpha[-1], layers.beta[-1]

        def loss_fn(batch, out):
            return F.cross_entropy(layers(out.logits.float()), batch.y) + self.beta_l2 * beta.float().pow(2).sum() / 2

        def finish(losses):
            self.bias_losses = losses
            ctx.phase_log["bic"].update(alpha=float(alpha), beta=float(beta), bias_losses=losses)

        yield Stage("bic-bias", [alpha, beta], loss_fn, self.validation_indices(ctx), epochs=self.bias_epochs,
                    lr=self.bias_lr or ctx.cfg.lr, momentum=0.9, weight_decay=0.0, finish=finish)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.ctx.model.bias_layers(self.ctx.model(x).logits)
