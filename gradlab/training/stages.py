"""Extra training stages: what a method trains after a phase's main training, run by the trainer's loop.

Several baselines train again, briefly, after the imbalanced main stage of a phase, on other data and usually
on a few parameters only:

- EEIL's balanced fine-tuning (Castro et al., ECCV 2018): the whole network, class-balanced subset, low lr;
- BiC's bias correction (Wu et al., CVPR 2019, stage 2): only (alpha_t, beta_t), held-out validation exemplars;
- LUCIR's class-balanced fine-tuning (Hou et al., CVPR 2019, Sec. 4.4): the classifier on a balanced subset;
- LT-CIL's LWS stage 2 (Liu et al., ECCV 2022): heads and scaling vectors with a class-aware sampler.

A method declares them: ``Method.stages(ctx)`` yields :class:`Stage` s (what to train, on which images, for how
many epochs, with which loss), one after the other, each built only once the previous one has run. The trainer
runs each with the same events as the main loop (``before_epoch`` ... ``after_epoch``, so probes, the divergence
guard, the progress bar and checkpoints see them; ``ctx.stage`` names the stage, ``ctx.epoch`` counts on after
the main epochs) and the stage's own SGD over its parameters only: gradients are taken with
``torch.autograd.grad`` w.r.t. those parameters, so nothing else of the model changes.

When none of the backbone's parameters is trained, the backbone runs in eval mode (BatchNorm statistics frozen)
under ``no_grad`` and only the head is evaluated with a graph, as LT-CIL's LWS stage and FACIL's BiC stage do;
when the backbone trains, the model is in train mode. All randomness comes from CPU generators derived from the
run seed, the phase and the stage's name (:func:`stage_generator`), so a stage is deterministic given the seed.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch

from gradlab.models.factory import ModelOutput


def stage_generator(ctx, name: str) -> torch.Generator:
    """A CPU generator seeded from (run seed, phase, stage name): the same run gives the same stage draws."""
    seed = np.random.SeedSequence([int(ctx.cfg.seed), max(int(ctx.phase), 0), zlib.crc32(name.encode())])
    return torch.Generator().manual_seed(int(seed.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)))


def class_balanced_indices(labels: np.ndarray, indices: np.ndarray, per_class: int | None,
                           generator: torch.Generator | None = None) -> np.ndarray:
    """The same number of images from every class present in ``indices``.

    ``labels`` is the label array of the whole image set (indexed by ``indices``). Each class gives
    ``min(per_class, n_c)`` of its indices, drawn without replacement in a random order (``generator``);
    ``per_class=None`` means the smallest class count, so every class gives exactly as many.
    Returns int64 indices, grouped by class (ascending), in draw order within each class.
    """
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if per_class is not None and (isinstance(per_class, bool) or int(per_class) != per_class or per_class < 0):
        raise ValueError(f"per_class must be a non-negative integer or None, got {per_class!r}")
    if indices.size == 0:
        return indices
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    labels_here = np.asarray(labels)[indices]
    classes, counts = np.unique(labels_here, return_counts=True)
    take = int(counts.min()) if per_class is None else int(per_class)
    chosen = []
    for c in classes:
        members = indices[labels_here == c]
        order = torch.randperm(members.size, generator=generator).numpy()
        chosen.append(members[order[:take]])
    return np.concatenate(chosen).astype(np.int64)


@dataclass
class Stage:
    """One extra stage of a phase, as a method declares it.

    - ``name``: names the stage in ``ctx.stage``, its loss term in the probes and its random draws;
    - ``parameters``: what the stage's SGD updates, or torch parameter-group dicts (``{"params": [...], "lr": x}``);
      parameters with ``requires_grad=False`` (BiC's frozen bias layers) train for the stage and are frozen again;
    - ``loss(batch, out) -> scalar``: ``out`` is the :class:`ModelOutput` of the stage's forward pass;
    - ``indices``: image indices into ``ctx.train_data``, or a function ``epoch -> indices`` (a sampler);
    - ``epochs``, ``lr``, ``momentum``, ``weight_decay``, ``batch_size`` (default: the run's);
    - ``milestones`` + ``gamma`` (lr multiplied by gamma after each) or ``lr_lambda`` (epoch -> multiplier, one per
      group); ``shuffle=False`` keeps the order of ``indices`` (a sampler that builds its batches);
    - ``logits(features)``: the stage's own logits instead of the model's head (e.g. a head's working copy);
    - ``generator``: the batch order (default :func:`stage_generator` (ctx, name)); ``keep``: other objects whose
      state a checkpoint inside the stage keeps (``state_dict()`` / ``load_state_dict()``: a sampler);
    - ``commit()``: writes working copies back into the model (before every checkpoint and at the end);
    - ``finish(losses)``: called after the last epoch with the mean loss of every epoch (logs, bookkeeping).
    """

    name: str
    parameters: list
    loss: Callable[[object, ModelOutput], torch.Tensor]
    indices: np.ndarray | Callable[[int], np.ndarray]
    epochs: int
    lr: float
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int | None = None
    milestones: Iterable[int] | None = None
    gamma: float = 0.1
    lr_lambda: Callable[[int], float] | list[Callable[[int], float]] | None = None
    shuffle: bool = True
    logits: Callable[[torch.Tensor], torch.Tensor] | None = None
    generator: torch.Generator | None = None
    keep: tuple = ()
    commit: Callable[[], None] | None = None
    finish: Callable[[list[float]], None] | None = None


@dataclass
class StageRun:
    """A stage being trained: its optimizer, schedule, generator and losses so far; :meth:`open` switches the
    stage's parameters on (and the backbone to eval mode when it does not train), :meth:`close` undoes it."""

    ctx: object
    stage: Stage
    index: int = 0
    offset: int = 0                         # main epochs + earlier stages' epochs of this phase
    start: int = 0                          # the first epoch to run (after a resume)
    losses: list = field(default_factory=list)

    def __post_init__(self):
        stage, ctx = self.stage, self.ctx
        items = list(stage.parameters)
        if items and isinstance(items[0], dict):          # parameter groups
            self.groups = [{**group, "params": list(group["params"])} for group in items]
            self.params = list(dict.fromkeys(p for group in self.groups for p in group["params"]))
        else:
            self.params = self.groups = list(dict.fromkeys(items))   # keep order, drop duplicates
        if not self.params:
            raise ValueError(f"stage {stage.name!r} needs at least one parameter to train")
        if isinstance(stage.epochs, bool) or int(stage.epochs) != stage.epochs or stage.epochs < 0:
            raise ValueError(f"stage {stage.name!r}: epochs must be a non-negative integer, got {stage.epochs!r}")
        if stage.lr_lambda is not None and stage.milestones:
            raise ValueError(f"stage {stage.name!r} takes milestones or lr_lambda, not both")
        self.batch_size = int(stage.batch_size or ctx.cfg.batch_size)
        self.generator = stage.generator if stage.generator is not None else stage_generator(ctx, stage.name)
        self.optimizer = torch.optim.SGD(self.groups, lr=stage.lr, momentum=stage.momentum,
                                         weight_decay=stage.weight_decay)
        self.schedule = (torch.optim.lr_scheduler.LambdaLR(self.optimizer, stage.lr_lambda)
                         if stage.lr_lambda is not None else
                         torch.optim.lr_scheduler.MultiStepLR(self.optimizer, sorted(stage.milestones or []),
                                                              gamma=stage.gamma))
        trainable = {id(p) for p in self.params}
        backbone = getattr(ctx.model, "backbone", None)
        self.backbone = backbone
        self.backbone_trains = backbone is None or any(id(p) in trainable for p in backbone.parameters())
        self.flags = [p.requires_grad for p in self.params]

    # ------------------------------------------------------------------ switching the stage on and off
    def open(self) -> None:
        model = self.ctx.model
        self.modes = {m: m.training for m in model.modules()}
        for p in model.parameters():
            p.grad = None                    # no gradient of the main training is left to read
        for p in self.params:
            p.requires_grad_(True)
        model.train()
        if not self.backbone_trains:
            self.backbone.eval()

    def close(self) -> None:
        for p, flag in zip(self.params, self.flags):
            p.grad = None
            p.requires_grad_(flag)
        for m, mode in self.modes.items():
            m.train(mode)

    # ------------------------------------------------------------------ one step
    def forward(self, x: torch.Tensor) -> ModelOutput:
        model, logits = self.ctx.model, self.stage.logits
        if self.backbone_trains:
            out = model(x)
            return out if logits is None else ModelOutput(logits(out.features), out.features)
        with torch.no_grad():
            features = self.backbone(x)
        return ModelOutput((logits or model.head)(features), features)

    def backward(self, loss: torch.Tensor) -> None:
        """Gradients w.r.t. the stage's parameters only (an unused one gets zeros); nothing else gets one."""
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        for p, g in zip(self.params, grads):
            p.grad = torch.zeros_like(p) if g is None else g.to(p.dtype)

    def batches(self, epoch: int):
        indices = self.stage.indices(epoch) if callable(self.stage.indices) else self.stage.indices
        return self.ctx.train_data.train_batches(indices, self.batch_size, self.generator, shuffle=self.stage.shuffle)

    # ------------------------------------------------------------------ checkpoints
    def state(self, next_epoch: int) -> dict:
        """What a checkpoint keeps to go on with this stage at ``next_epoch``."""
        return {"index": self.index, "name": self.stage.name, "epoch": next_epoch, "offset": self.offset,
                "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                "generator": self.generator.get_state(), "keep": [k.state_dict() for k in self.stage.keep],
                "losses": list(self.losses)}

    def load(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        for kept, kept_state in zip(self.stage.keep, state["keep"]):
            kept.load_state_dict(kept_state)
        self.losses, self.start = list(state["losses"]), int(state["epoch"])
