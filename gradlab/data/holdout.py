"""The per-class validation hold-out: the official draw, replayed draw for draw, or a plain stratified one.

**official** (the default) replays the data loaders of the DGR code (inherited from FACIL / LT-CIL):
after the long-tailed training set is built, each task keeps its training images in one list, in the
order the loader read them (CIFAR: by original label, then the seed-0 selection order; list files: file
order). For every task, and inside it for every task-local class in learning order, the loader takes
``k = round(fraction * n)`` (numpy rounding, half to even) of that class's current list positions with
Python's ``random.sample`` (the ``random`` module seeded with the run seed just before), and moves them,
highest position first, from the training list to the validation list.

Quirk of the in-memory loaders (CIFAR, MNIST-style arrays): when ``k`` rounds to 0 the loader removes
position 0 of the task's list instead, an image of the task's class read first (for CIFAR, the smallest
original label), not of the class being split. With ρ = 100 on CIFAR-100 this hits the four 5-image classes
(original labels 96-99): ``lt`` LFS keeps 9 755 training images instead of 9 758, ``ltio`` LFS 9 754, and in
``ltio`` LFS class 95 keeps 1 image. The list-file loaders (ImageNet, Food-101) take nothing when ``k`` is 0.

**stratified** (a deviation, documented as such): ``round(fraction * n)`` images of every class drawn with
``numpy.random.RandomState(seed)``, class by class in original-label order, never from another class.
"""
from __future__ import annotations

import random

import numpy as np

HOLDOUTS = ("official", "stratified")


def holdout_counts(counts, fraction: float) -> np.ndarray:
    """Validation images taken out of each class: ``round(fraction * n)``, half to even like numpy.

    With 0.1 this gives the official post-split counts when no quirk applies (n=5 keeps 5, n=15 gives 2).
    """
    return np.round(fraction * np.asarray(counts, dtype=np.float64)).astype(np.int64)


def official_holdout(ordered: np.ndarray, position: np.ndarray, task_of: np.ndarray, fraction: float,
                     seed: int, index0_quirk: bool) -> tuple[np.ndarray, np.ndarray]:
    """Replay the official split. ``ordered``: training image ids in the loader's reading order;
    ``position``: each id's class position (same length); ``task_of``: task of every class position.

    Returns (train ids, validation ids). The whole replay draws from one ``random.Random(seed)``.
    """
    rng = random.Random(seed)
    ordered, position = np.asarray(ordered), np.asarray(position)
    train, val = [], []
    tasks = task_of[position]
    for task in range(int(task_of.max()) + 1 if len(task_of) else 0):
        in_task = tasks == task
        ids = ordered[in_task].tolist()
        labels = position[in_task].tolist()
        for cls in np.flatnonzero(task_of == task):            # task-local classes, in learning order
            where = [i for i, label in enumerate(labels) if label == cls]
            k = int(np.round(len(where) * fraction))
            if k == 0:
                chosen = [0] if index0_quirk and ids else []
            else:
                chosen = rng.sample(where, k)
            for i in sorted(chosen, reverse=True):
                val.append(ids.pop(i))
                labels.pop(i)
        train.extend(ids)
    return np.asarray(train, dtype=np.int64), np.asarray(val, dtype=np.int64)


def stratified_holdout(kept_by_label: list[np.ndarray], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``round(fraction * n)`` ids of every class, drawn by numpy with ``seed`` in original-label order."""
    rng = np.random.RandomState(seed)
    train, val = [], []
    for ids in kept_by_label:
        k = int(holdout_counts([len(ids)], fraction)[0])
        chosen = np.zeros(len(ids), dtype=bool)
        if k:
            chosen[rng.choice(len(ids), size=k, replace=False)] = True
        train.append(ids[~chosen])
        val.append(ids[chosen])
    empty = np.zeros(0, dtype=np.int64)
    return (np.concatenate(train) if train else empty), (np.concatenate(val) if val else empty)
