"""LT-CIL's two-stage baseline: "Long-Tailed Class Incremental Learning" (Liu et al., ECCV 2022).

As the official LT-CIL code (``src/approach/{lucir,podnet,eeil}_2stage.py``, ``LAS_utils.py``,
``datasets/data_loader.py``) does it. :class:`LWSTwoStage` in front of a method's class makes ``<base>-2stage``
(registered here for EEIL, LUCIR and PODNet):

- stage 1: the base method, unchanged (its losses, its extra stages such as EEIL's balanced fine-tuning
  or LUCIR's CBF, its teacher). The scales below are not used in stage 1 nor by the teacher.
- stage 2, classifier re-balancing, at the end of every phase (the base phase too, ``stage2_base_phase``),
  after the base method's own stages and before the memory update, as an extra stage the trainer runs
  (:class:`gradlab.training.stages.Stage`):
  * learnable weight scaling (LWS): one scale s_c per seen class, initialised to 1 when the class
    arrives (LT-CIL: one vector per task head); the logits become z'_c = s_c z_c (for a cosine head
    z_c = sigma cos, for PODNet's LSC z_c = eta y^_c). Prediction uses z' (the base method's prediction
    times the scales), so the base must predict with its CNN logits (``classifier`` cnn).
  * trained: every scale (all tasks') and the current task's head only: its rows (weight and bias) of a
    linear head; its block plus the shared sigma of a cosine head (if sigma learns); its proxies plus the
    shared eta of an LSC. Earlier tasks' rows, the backbone and its BatchNorm statistics stay fixed (the
    backbone runs in eval mode under no_grad).
  * data: the phase's training set (D_t + the old exemplars) through a class-aware sampler
    (:class:`ClassAwareSampler`): the classes in shuffled cycles, ``stage2_draw`` (4) consecutive images
    of one class per visit from that class's own shuffled cycle, ``len(D_t + M)`` images per epoch, batches
    in that order (a run's batch of 128 = 32 classes x 4 images).
  * loss: plain CE over every seen class on z'.
  * SGD with the run's momentum and weight decay (on the scales too), two groups: head at
    eta_e = ``stage2_lr`` x 0.5 (1 + cos(pi e / E)) in epoch e = 0..E-1, scales at ``stage2_lws_lr_factor``
    (1/10) x eta_e - except in the first epoch, where both groups run at ``stage2_lr`` as in LT-CIL (its
    optimizer is built with one lr and the groups split only after the first epoch).

Defaults: ``stage2_lr`` = the run's lr (0.1 in LT-CIL); ``stage2_epochs`` = 30 at the paper's 160 epochs,
scaled with the run's epochs (round(30 x epochs / 160), at least 1), as EEIL's fine-tuning length is.
LT-CIL quirks not reproduced: EEIL-2stage's stage 2 running a single epoch (pass ``stage2_epochs=1``
for it) and LUCIR-2stage skipping stage 1 on tasks with <= 10 images per class.
Method args: the base method's, plus ``stage2_epochs``, ``stage2_lr``, ``stage2_lws_lr_factor``,
``stage2_draw``, ``stage2_base_phase``.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gradlab.errors import ConfigError
from gradlab.methods.args import Arg
from gradlab.methods.base import register
from gradlab.methods.eeil import EEIL
from gradlab.methods.lucir import LUCIR
from gradlab.methods.podnet import PODNet
from gradlab.models.heads import CosineHead, IncrementalLinear
from gradlab.models.lsc import LocalSimilarityClassifier
from gradlab.training.stages import Stage, stage_generator

PAPER_EPOCHS, PAPER_STAGE2_EPOCHS = 160, 30


# ---------------------------------------------------------------------------- the scaling layer
class LearnableWeightScaling(nn.Module):
    """z'_c = s_c z_c, one scale per class seen so far; ``grow(n)`` appends n ones.

    The scale is a parameter with ``requires_grad=False`` outside stage 2, so the main training's
    optimizer (built from the parameters that require grad) never touches it; stage 2 switches it on for the
    stage and back off.
    """

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(0), requires_grad=False)

    def grow(self, n: int) -> None:
        new = torch.ones(n, device=self.scale.device, dtype=self.scale.dtype)
        self.scale = nn.Parameter(torch.cat([self.scale.data, new]), requires_grad=False)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return logits * self.scale[: logits.shape[1]].to(logits.dtype)


# ---------------------------------------------------------------------------- the class-aware sampler
class _Cycle:
    """0..n-1 in a random order, reshuffled every time it runs out."""

    def __init__(self, n: int, generator: torch.Generator):
        self.n, self.generator, self.order, self.pos = n, generator, [], 0

    def next(self) -> int:
        if self.pos >= len(self.order):
            self.order, self.pos = torch.randperm(self.n, generator=self.generator).tolist(), 0
        self.pos += 1
        return self.order[self.pos - 1]


class ClassAwareSampler:
    """LT-CIL's class-aware sampler (its ``datasets/data_loader.py``): call it (with the epoch, ignored)
    for one epoch's indices.

    Classes are visited in shuffled cycles (reshuffled after every pass over the classes); each visit
    yields the next ``draw`` images of that class from its own shuffled cycle (a class with fewer images
    repeats them). ``total`` images per epoch (default ``len(indices)``). The cycles carry over from one
    epoch to the next, as the reference sampler's iterators do.
    """

    def __init__(self, labels: np.ndarray, indices: np.ndarray, draw: int = 4, total: int | None = None,
                 generator: torch.Generator | None = None):
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size == 0:
            raise ValueError("ClassAwareSampler needs at least one image")
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        labels_here = np.asarray(labels)[indices]
        self.classes = np.unique(labels_here)
        self.members = [indices[labels_here == c] for c in self.classes]
        self.draw = int(draw)
        self.total = len(indices) if total is None else int(total)
        self._classes = _Cycle(len(self.classes), generator)
        self._members = [_Cycle(len(m), generator) for m in self.members]

    def state_dict(self) -> dict:
        """Where the cycles stand and the generator's state (a checkpoint inside the stage keeps it)."""
        cycles = [self._classes, *self._members]
        return {"generator": self._classes.generator.get_state(),
                "orders": [torch.tensor(c.order, dtype=torch.int64) for c in cycles], "pos": [c.pos for c in cycles]}

    def load_state_dict(self, state: dict) -> None:
        self._classes.generator.set_state(state["generator"])
        for cycle, order, pos in zip([self._classes, *self._members], state["orders"], state["pos"]):
            cycle.order, cycle.pos = order.tolist(), int(pos)

    def __call__(self, epoch: int = 0) -> np.ndarray:
        out: list[int] = []
        while len(out) < self.total:
            k = self._classes.next()
            out.extend(int(self.members[k][self._members[k].next()]) for _ in range(self.draw))
        return np.asarray(out[: self.total], dtype=np.int64)


# ---------------------------------------------------------------------------- the current head, per head type
class StageHead(NamedTuple):
    """What stage 2 trains of the head: ``parameters``; ``logits(features)`` over every seen class (unscaled);
    ``commit()`` writes trained copies back into the head (a no-op when the parameters are the head's own)."""

    parameters: list
    logits: Callable[[torch.Tensor], torch.Tensor]
    commit: Callable[[], None]


def supports_head(head: nn.Module) -> bool:
    return isinstance(head, (IncrementalLinear, CosineHead, LocalSimilarityClassifier))


def current_head(head: nn.Module, num_old: int) -> StageHead:
    """The current task's part of ``head`` (rows ``num_old:``), as LT-CIL's stage 2 trains it."""
    if isinstance(head, IncrementalLinear):
        # one weight matrix for every class: train copies of the new rows, write them back afterwards,
        # so neither gradient, momentum nor weight decay ever reaches the old rows
        old_w, old_b = head.weight.detach()[:num_old], head.bias.detach()[:num_old]
        new_w = nn.Parameter(head.weight.detach()[num_old:].clone())
        new_b = nn.Parameter(head.bias.detach()[num_old:].clone())

        def logits(features):
            return F.linear(features, torch.cat([old_w, new_w]), torch.cat([old_b, new_b]))

        @torch.no_grad()
        def commit():
            head.weight[num_old:] = new_w.to(head.weight.dtype)
            head.bias[num_old:] = new_b.to(head.bias.dtype)

        return StageHead([new_w, new_b], logits, commit)
    if isinstance(head, CosineHead):
        shared = [head.sigma] if head.sigma.requires_grad else []       # sigma is shared by all tasks
        return StageHead([head.blocks[-1], *shared], head, lambda: None)
    if isinstance(head, LocalSimilarityClassifier):
        return StageHead([head.proxies[-1], head.eta], head, lambda: None)
    raise TypeError(f"LWS stage 2 does not know the head {type(head).__name__}")


def stage2_lr_lambdas(epochs: int, lws_factor: float) -> list[Callable[[int], float]]:
    """Multipliers of the stage lr per epoch e: head 0.5 (1 + cos(pi e / E)); scales 1 in epoch 0 (LT-CIL),
    then ``lws_factor`` times the head's."""
    def head(e: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * e / epochs))

    def scales(e: int) -> float:
        return 1.0 if e == 0 else lws_factor * head(e)

    return [head, scales]


# ---------------------------------------------------------------------------- the wrapper
class LWSTwoStage:
    """LT-CIL's stage 2 on top of a base method: put it in front of the base class (``class X(LWSTwoStage, EEIL)``)."""

    base_name = "base"
    args = {"stage2_epochs": Arg.integer(None, none="30 at 160 epochs, scaled with the run's epochs",
                                         help="epochs of stage 2"),
            "stage2_lr": Arg.number(None, above=True, none="the run's lr", help="stage 2's lr"),
            "stage2_lws_lr_factor": Arg.number(0.1, above=True, help="the scales' lr = stage 2's lr x this"),
            "stage2_draw": Arg.integer(4, low=1, help="consecutive images per class visit of the sampler"),
            "stage2_base_phase": Arg.flag(True, help="stage 2 after the base phase too")}

    def __init__(self, cfg, **method_args):
        super().__init__(cfg, **method_args)
        if getattr(self, "classifier", "cnn") != "cnn":
            raise ConfigError(f"method_args.classifier must be 'cnn' for {self.name} (LWS rescales the CNN "
                              f"logits), got {self.classifier!r}; allowed: ['cnn']")
        if self.stage2_epochs is None:
            epochs = getattr(cfg, "epochs", PAPER_EPOCHS)
            self.stage2_epochs = max(1, round(PAPER_STAGE2_EPOCHS * epochs / PAPER_EPOCHS))
        self.stage2_losses: list[float] = []

    def build_model(self, backbone: nn.Module) -> nn.Module:
        model = super().build_model(backbone)
        if not supports_head(model.head):
            raise ConfigError(f"method: {self.name} needs a linear, cosine or local-similarity head; "
                              f"{self.base_name} builds a {type(model.head).__name__}")
        model.lws = LearnableWeightScaling()
        return model

    def before_task(self, ctx) -> None:
        super().before_task(ctx)
        lws = ctx.model.lws
        lws.grow(ctx.num_seen - lws.scale.numel())

    def stages(self, ctx):
        yield from super().stages(ctx)                # the base method's own stages first (EEIL's fine-tuning)
        if self.stage2_epochs > 0 and (ctx.phase > 0 or self.stage2_base_phase):
            yield self.lws_stage(ctx)

    def lws_stage(self, ctx) -> Stage:
        """LT-CIL's stage 2: the scales and the current head on class-aware batches of D_t + memory."""
        model, lr = ctx.model, self.stage2_lr or ctx.cfg.lr
        head = current_head(model.head, ctx.num_old)
        sampler = ClassAwareSampler(ctx.scenario.train.labels, ctx.train_indices, self.stage2_draw,
                                    generator=stage_generator(ctx, "lws-sampler"))

        def loss_fn(batch, out):                      # out.logits: the current head's working copy (head.logits)
            return F.cross_entropy(model.lws(out.logits.float()), batch.y)

        def finish(losses):
            self.stage2_losses = losses
            ctx.phase_log["lws"] = {"losses": losses, "scale": model.lws.scale.detach().cpu().tolist(),
                                 "images_per_epoch": sampler.total}

        return Stage("lws-stage2", [{"params": head.parameters}, {"params": [model.lws.scale]}], loss_fn, sampler,
                     epochs=self.stage2_epochs, lr=lr, momentum=ctx.cfg.momentum, weight_decay=ctx.cfg.weight_decay,
                     lr_lambda=stage2_lr_lambdas(self.stage2_epochs, self.stage2_lws_lr_factor), shuffle=False,
                     logits=head.logits, keep=(sampler,), commit=head.commit, finish=finish)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.ctx.model.lws(super().predict(x))


@register
class EEILTwoStage(LWSTwoStage, EEIL):
    """EEIL + LT-CIL's LWS stage 2 (Liu et al., ECCV 2022): class-aware re-training of logit scales and head.

    After each phase, learnable per-class logit scales and the current task's head are re-trained on
    class-aware batches (see the module docstring)."""

    name, base_name = "eeil-2stage", "eeil"


@register
class LUCIRTwoStage(LWSTwoStage, LUCIR):
    """LUCIR + LT-CIL's LWS stage 2 (Liu et al., ECCV 2022): class-aware re-training of logit scales and head.

    After each phase, learnable per-class logit scales and the current task's head are re-trained on
    class-aware batches (see the module docstring)."""

    name, base_name = "lucir-2stage", "lucir"


@register
class PODNetTwoStage(LWSTwoStage, PODNet):
    """PODNet + LT-CIL's LWS stage 2 (Liu et al., ECCV 2022): class-aware re-training of logit scales and head.

    After each phase, learnable per-class logit scales and the current task's head are re-trained on
    class-aware batches (see the module docstring)."""

    name, base_name = "podnet-2stage", "podnet"
