"""Extra training stages that run after a phase's main training (inside ``method.after_task``).

Several baselines train again, briefly, after the imbalanced main stage of a phase, on other data and
usually on a few parameters only:

- EEIL's balanced fine-tuning (Castro et al., ECCV 2018): the whole network, class-balanced subset,
  low lr;
- BiC's bias correction (Wu et al., CVPR 2019, stage 2): only (alpha_t, beta_t), held-out validation
  exemplars;
- LUCIR's class-balanced fine-tuning (Hou et al., CVPR 2019, Sec. 4.4): the classifier on a
  class-balanced subset;
- LT-CIL's LWS stage 2 (Liu et al., ECCV 2022): heads and scaling vectors with a class-aware sampler.

:func:`train_stage` is that loop, written once: its own SGD over the given parameters only, batches
from ``ctx.train_data.train_batches`` (the run's augmentation), ``loss_fn(batch, out)`` for the loss,
and nothing else of the model changes. The stage emits no trainer events, so probes do not see its
steps (they see its effect in the end-of-phase weight norms and accuracies).

When none of the backbone's parameters is trained, the backbone runs in eval mode (BatchNorm
statistics frozen) under ``no_grad`` and only the head is evaluated with a graph, as LT-CIL's LWS stage
and FACIL's BiC stage do; when the backbone trains, the model is in train mode (BN statistics update).
:func:`class_balanced_indices` draws the same number of images from each class.
All randomness comes from a CPU ``torch.Generator`` derived from the run seed, the phase and the stage
name (:func:`stage_generator`), so a stage is deterministic given the run seed.
"""
from __future__ import annotations

import zlib
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


def train_stage(ctx, parameters: Iterable[torch.nn.Parameter] | Iterable[dict],
                loss_fn: Callable[[object, ModelOutput], torch.Tensor],
                indices: np.ndarray | Callable[[int], np.ndarray], epochs: int, lr: float,
                batch_size: int | None = None, milestones: Iterable[int] | None = None, momentum: float = 0.9,
                weight_decay: float = 0.0, generator: torch.Generator | None = None,
                gamma: float = 0.1, name: str = "stage",
                lr_lambda: Callable[[int], float] | list[Callable[[int], float]] | None = None,
                shuffle: bool = True) -> list[float]:
    """Train ``parameters`` only, for ``epochs`` passes over ``indices``; return the mean loss of each epoch.

    - ``parameters``: what the stage's SGD updates (momentum, ``weight_decay``); parameters with
      ``requires_grad=False`` (e.g. BiC's frozen bias layers) are switched on for the stage and back off
      afterwards. Gradients are taken with ``torch.autograd.grad`` w.r.t. these parameters only, so no
      other parameter's ``.grad`` is touched and no other parameter changes. It may also be a list of
      torch parameter-group dicts (``{"params": [...], "lr": ...}``) for per-group learning rates.
    - ``loss_fn(batch, out) -> scalar``: ``out`` is the model's :class:`ModelOutput` on the augmented batch.
    - ``indices``: image indices into ``ctx.train_data``, or a function ``epoch -> indices`` (resampled
      per epoch, e.g. a class-aware sampler).
    - ``batch_size``: default the run's; ``milestones``: epochs after which the lr is multiplied by
      ``gamma`` (default: constant lr); ``generator``: default :func:`stage_generator` (ctx, ``name``).
    - ``lr_lambda``: instead of ``milestones``, epoch -> lr multiplier (one function, or one per
      parameter group; torch's ``LambdaLR``, applied after every epoch).
    - ``shuffle``: False keeps the order of ``indices`` in the batches (a sampler that builds its batches).
    Model modes are restored afterwards; the trainer's optimizer is not touched.
    """
    items = list(parameters)
    if items and isinstance(items[0], dict):          # parameter groups
        groups = [{**group, "params": list(group["params"])} for group in items]
        params = list(dict.fromkeys(p for group in groups for p in group["params"]))
    else:
        params = groups = list(dict.fromkeys(items))   # keep order, drop duplicates
    if not params:
        raise ValueError("train_stage needs at least one parameter to train")
    if isinstance(epochs, bool) or int(epochs) != epochs or epochs < 0:
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    model = ctx.model
    batch_size = int(batch_size or ctx.cfg.batch_size)
    generator = generator if generator is not None else stage_generator(ctx, name)
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if lr_lambda is not None and milestones:
        raise ValueError("train_stage takes milestones or lr_lambda, not both")
    schedule = (torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda) if lr_lambda is not None else
                torch.optim.lr_scheduler.MultiStepLR(optimizer, sorted(milestones or []), gamma=gamma))
    autocast = ctx.autocast()

    trainable = {id(p) for p in params}
    backbone = getattr(model, "backbone", None)
    backbone_trains = backbone is None or any(id(p) in trainable for p in backbone.parameters())
    modes = {m: m.training for m in model.modules()}
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(True)
    model.train()
    if not backbone_trains:
        backbone.eval()

    def forward(x):
        if backbone_trains:
            return model(x)
        with torch.no_grad():
            features = backbone(x)
        return ModelOutput(model.head(features), features)

    losses = []
    try:
        for epoch in range(int(epochs)):
            epoch_indices = indices(epoch) if callable(indices) else indices
            total, steps = torch.zeros((), device=ctx.device), 0
            for batch in ctx.train_data.train_batches(epoch_indices, batch_size, generator, shuffle=shuffle):
                with autocast:
                    loss = loss_fn(batch, forward(batch.x))
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                for p, g in zip(params, grads):
                    p.grad = torch.zeros_like(p) if g is None else g.to(p.dtype)
                optimizer.step()
                total += loss.detach().float()
                steps += 1
            schedule.step()
            losses.append(float(total) / max(steps, 1))
    finally:
        for p, flag in zip(params, flags):
            p.grad = None
            p.requires_grad_(flag)
        for m, mode in modes.items():
            m.train(mode)
    return losses
