"""A long-tailed class-incremental scenario: source + count profile + class order + task split.

Labels inside gradlab are *positions* in the class order (position 0 is learned first), as in the
official DGR code; ``original_label[position]`` maps back to the dataset's label.
Counts follow the ORIGINAL label (as the official CIFAR-100-LT loader, IMBALANCECIFAR100, does),
so with the shuffled ``lt`` order every task mixes head and tail classes, and with ``ltio`` the
counts fall across tasks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gradlab.data.profiles import class_order, holdout_counts, long_tail_counts, task_sizes
from gradlab.data.sources import SOURCE_INFO, Source, load_source

SELECTION_SEED = 0  # the official IMBALANCECIFAR100 picks each class's images with seed 0, whatever --seed


def list_scenarios() -> dict[str, str]:
    """Scenario name -> one-line description."""
    return {name: info.description for name, info in SOURCE_INFO.items()}


@dataclass(frozen=True)
class Task:
    """One task (phase) of a scenario; indices point into ``Scenario.train`` / ``Scenario.test``."""

    index: int
    classes: np.ndarray         # class positions learned in this task
    train_indices: np.ndarray   # this task's training images (new data only; memory is added by the trainer)
    test_indices: np.ndarray


@dataclass(frozen=True)
class Split:
    """Images of one split held as arrays: uint8 (N, H, W, C) and int64 labels (class positions)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


class Scenario:
    """Long-tailed class-incremental scenario built from a :class:`~gradlab.data.sources.Source`.

    Parameters mirror :class:`gradlab.config.RunConfig`: ``order`` (lt, ltio, conv, seeded),
    ``imbalance`` rho, ``profile`` (exp, step), ``max_per_class`` (head count n_max; default all the
    source has), ``base``/``tasks`` (the split), ``val_fraction`` (per-class hold-out, 0.1 in the
    ``paper`` preset) and ``seed`` (the hold-out draw and the ``seeded`` order).
    The test set stays balanced: every test image of every class.
    """

    def __init__(self, source: Source, order: str = "lt", imbalance: float = 100.0, profile: str = "exp",
                 max_per_class: int | None = None, base: int | None = None, tasks: int = 5,
                 val_fraction: float = 0.0, seed: int = 0):
        self.source = source
        self.order, self.imbalance, self.profile, self.seed = order, float(imbalance), profile, seed
        num_classes = source.num_classes
        self.num_classes = num_classes
        self.original_label = class_order(order, num_classes, seed)
        position_of = np.empty(num_classes, dtype=np.int64)
        position_of[self.original_label] = np.arange(num_classes)

        available = np.bincount(source.train.labels, minlength=num_classes)
        n_max = int(available.min()) if max_per_class is None else int(max_per_class)
        if n_max > available.min():
            raise ValueError(f"max_per_class={n_max} exceeds the {int(available.min())} training images "
                             f"the smallest class of {source.name!r} has")
        counts_by_label = long_tail_counts(n_max, num_classes, self.imbalance, profile)
        if counts_by_label.min() < 1:
            raise ValueError(f"imbalance={imbalance} with max_per_class={n_max} leaves classes without images; "
                             f"lower the imbalance or raise max_per_class")

        # which images: per original class, a seed-0 shuffle of its indices, keep the first n_c
        picker = np.random.RandomState(SELECTION_SEED)
        kept = []
        for label in range(num_classes):
            idx = np.flatnonzero(source.train.labels == label)
            picker.shuffle(idx)
            kept.append(idx[: counts_by_label[label]])

        # optional per-class validation hold-out, drawn with the run seed (the official split uses 0.1)
        holdout = np.random.RandomState(seed)
        train_idx, val_idx = [], []
        for label, idx in enumerate(kept):
            k = int(holdout_counts([len(idx)], val_fraction)[0]) if val_fraction > 0 else 0
            chosen = np.zeros(len(idx), dtype=bool)
            if k:
                chosen[holdout.choice(len(idx), size=k, replace=False)] = True
            train_idx.append(idx[~chosen])
            val_idx.append(idx[chosen])
        train_idx = np.concatenate(train_idx)
        val_idx = np.concatenate(val_idx)

        self.train = self._split(source.train, train_idx, position_of)
        self.val = self._split(source.train, val_idx, position_of)
        self.test = self._split(source.test, np.arange(len(source.test.labels)), position_of)
        self.train_counts = np.bincount(self.train.labels, minlength=num_classes)  # by position
        self.test_counts = np.bincount(self.test.labels, minlength=num_classes)
        self.val_counts = np.bincount(self.val.labels, minlength=num_classes)

        self.task_sizes = task_sizes(num_classes, tasks, base)
        bounds = np.cumsum([0] + self.task_sizes)
        self.class_task = np.repeat(np.arange(len(self.task_sizes)), self.task_sizes)
        self.tasks = [
            Task(index=t,
                 classes=np.arange(bounds[t], bounds[t + 1]),
                 train_indices=np.flatnonzero(self.class_task[self.train.labels] == t),
                 test_indices=np.flatnonzero(self.class_task[self.test.labels] == t))
            for t in range(len(self.task_sizes))
        ]

    @staticmethod
    def _split(images, indices: np.ndarray, position_of: np.ndarray) -> Split:
        indices = np.sort(indices)
        return Split(images=images.images(indices), labels=position_of[images.labels[indices]])

    @classmethod
    def from_config(cls, cfg) -> "Scenario":
        """Build the scenario a :class:`~gradlab.config.RunConfig` describes (loads the source)."""
        source = load_source(cfg.scenario, cfg.data_root, cfg.download)
        base, tasks = cfg.split_base_tasks(source.num_classes)
        return cls(source, order=cfg.order, imbalance=cfg.rho, profile=cfg.profile,
                   max_per_class=cfg.max_per_class, base=base, tasks=tasks,
                   val_fraction=cfg.val_fraction, seed=cfg.seed)

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def classes_seen(self, task: int) -> int:
        """Number of classes seen after ``task`` (inclusive)."""
        return int(sum(self.task_sizes[: task + 1]))

    def class_table(self) -> pd.DataFrame:
        """One row per class position: original label, task, train/val/test counts."""
        return pd.DataFrame({
            "class": np.arange(self.num_classes),
            "original_label": self.original_label,
            "task": self.class_task,
            "train_count": self.train_counts,
            "val_count": self.val_counts,
            "test_count": self.test_counts,
        })

    def __repr__(self) -> str:
        return (f"Scenario({self.source.name}, order={self.order}, rho={self.imbalance:g}, "
                f"tasks={self.task_sizes}, train={len(self.train)}, test={len(self.test)})")
