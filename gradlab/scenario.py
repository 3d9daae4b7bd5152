"""A long-tailed class-incremental scenario: source + count profile + class order + task split.

Labels inside gradlab are *positions* in the class order (position 0 is learned first), as in the
official DGR code; ``original_label[position]`` maps back to the dataset's label. Two ways to cut the long
tail, as the official loaders do (the source says which):

- ``counts_by="label"`` (CIFAR-100-LT, ``IMBALANCECIFAR100``): n_c follows the ORIGINAL label c, and a
  seed-0 shuffle of each class picks its images, whatever the run seed. With the shuffled ``lt`` order
  every task mixes head and tail classes; with ``ltio`` the counts fall across tasks.
- ``counts_by="position"`` (ImageNetSubset-LT, Food-101-LT): n_i follows the position i in the class
  order, with n_max = the images of the class at position 0; ``ltio`` keeps the counts in order (head
  first), ``lt`` shuffles them with the run seed; the first n_i images of each class in file order are kept.

The validation hold-out (``val_fraction``, ``holdout``) is described in :mod:`gradlab.data.holdout`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gradlab.config import RunConfig
from gradlab.data.holdout import HOLDOUTS, official_holdout, stratified_holdout
from gradlab.data.profiles import class_order, long_tail_counts, task_sizes
from gradlab.data.sources import SOURCE_INFO, ImageSet, Source, load_source
from gradlab.errors import DataError

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


class Split:
    """One split: ``ids`` into the source's image set (sorted) and int64 ``labels`` (class positions).

    ``images`` gives the uint8 (N, H, W, C) array of an in-memory source (read once, on first use); sources of
    image files are read batch by batch by the file pipeline instead.
    """

    def __init__(self, image_set: ImageSet, ids: np.ndarray, labels: np.ndarray):
        self.image_set, self.ids, self.labels = image_set, ids, labels
        self._images = None

    @property
    def images(self) -> np.ndarray:
        if self._images is None:
            self._images = self.image_set.images(self.ids)
        return self._images

    def __len__(self) -> int:
        return len(self.labels)


class Scenario:
    """Long-tailed class-incremental scenario built from a :class:`~gradlab.data.sources.Source`.

    Parameters mirror :class:`gradlab.config.RunConfig`: ``order`` (lt, ltio, conv, seeded),
    ``imbalance`` rho, ``profile`` (exp, step), ``max_per_class`` (head count n_max; default all the
    source has), ``base``/``tasks`` (the split), ``val_fraction`` (per-class hold-out; the official CIFAR,
    ImageNet and Food-101 protocols use 0.1), ``holdout`` (``official`` replay or ``stratified``) and ``seed``
    (the hold-out draw, the ``seeded`` order, and the ``lt`` count shuffle of position-based sources).
    The test set stays balanced: every test image of every class.
    """

    def __init__(self, source: Source, order: str = "lt", imbalance: float = 100.0, profile: str = "exp",
                 max_per_class: int | None = None, base: int | None = None, tasks: int = 5,
                 val_fraction: float = 0.0, holdout: str = "official", seed: int = 0):
        if not isinstance(source, Source):
            raise DataError(f"source must be a loaded Source (gradlab.data.sources.load_source('digits')), got "
                            f"{type(source).__name__}; to build from settings use Scenario.from_config(RunConfig)")
        if holdout not in HOLDOUTS:
            raise ValueError(f"holdout must be one of {HOLDOUTS}, got {holdout!r}")
        self.source = source
        self.order, self.imbalance, self.profile, self.seed = order, float(imbalance), profile, seed
        self.holdout = holdout
        num_classes = source.num_classes
        self.num_classes = num_classes
        rng = np.random.RandomState(seed)   # the official loaders' numpy stream, seeded just before
        self.original_label = self._class_order(order, seed, rng)
        position_of = np.empty(num_classes, dtype=np.int64)
        position_of[self.original_label] = np.arange(num_classes)

        if source.counts_by == "position":
            kept, ordered = self._keep_by_position(max_per_class, rng)
        else:
            kept, ordered = self._keep_by_label(max_per_class)

        self.task_sizes = task_sizes(num_classes, tasks, base)
        self.class_task = np.repeat(np.arange(len(self.task_sizes)), self.task_sizes)
        if val_fraction > 0 and holdout == "official":
            train_idx, val_idx = official_holdout(ordered, position_of[source.train.labels[ordered]],
                                                  self.class_task, val_fraction, seed, source.holdout_quirk)
        elif val_fraction > 0:
            train_idx, val_idx = stratified_holdout(kept, val_fraction, seed)
        else:
            train_idx, val_idx = ordered, np.zeros(0, dtype=np.int64)

        self.train = self._split(source.train, train_idx, position_of)
        self.val = self._split(source.train, val_idx, position_of)
        self.test = self._split(source.test, np.arange(len(source.test.labels)), position_of)
        self.train_counts = np.bincount(self.train.labels, minlength=num_classes)  # by position
        self.test_counts = np.bincount(self.test.labels, minlength=num_classes)
        self.val_counts = np.bincount(self.val.labels, minlength=num_classes)
        empty = np.flatnonzero(self.train_counts == 0)
        if len(empty):
            raise ValueError(
                f"val_fraction={val_fraction:g} with holdout {holdout!r} leaves class position(s) {empty.tolist()} "
                f"(original labels {self.original_label[empty].tolist()}) without training images (the official draw "
                "takes image 0 of a task for every class whose share rounds to 0); use holdout 'stratified', a "
                "smaller val_fraction or more images per class")

        bounds = np.cumsum([0] + self.task_sizes)
        self.tasks = [
            Task(index=t,
                 classes=np.arange(bounds[t], bounds[t + 1]),
                 train_indices=np.flatnonzero(self.class_task[self.train.labels] == t),
                 test_indices=np.flatnonzero(self.class_task[self.test.labels] == t))
            for t in range(len(self.task_sizes))
        ]

    # ------------------------------------------------------------------ class order and long tail
    def _class_order(self, order: str, seed: int, rng: np.random.RandomState) -> np.ndarray:
        num_classes = self.num_classes
        if order == "seeded" or (order == "ltio" and self.source.ltio_identity):
            return class_order(order, num_classes, seed)
        if self.source.class_order == "seeded":    # official: np.random.shuffle(list(range(C))) after seeding
            labels = list(range(num_classes))
            rng.shuffle(labels)
            return np.asarray(labels, dtype=np.int64)
        return class_order("lt", num_classes, seed)  # the icarl permutation

    def _profile(self, n_max: int, limit: int, which: str) -> np.ndarray:
        """The count profile for head count ``n_max``; ``limit``: the images of the source's ``which`` class."""
        if n_max > limit:
            raise ValueError(f"max_per_class={n_max} exceeds the {limit} training images the {which} class of "
                             f"{self.source.name!r} has")
        counts = long_tail_counts(n_max, self.num_classes, self.imbalance, self.profile)
        if counts.min() < 1:
            raise ValueError(f"imbalance={self.imbalance:g} with max_per_class={n_max} leaves classes without "
                             f"images; lower the imbalance or raise max_per_class")
        return counts

    def _keep_by_label(self, max_per_class):
        """CIFAR-100-LT: counts by original label, a seed-0 shuffle per class picks the images.
        Returns (kept ids per original label, all kept ids in the loader's reading order)."""
        source, num_classes = self.source, self.num_classes
        available = np.bincount(source.train.labels, minlength=num_classes)
        n_max = int(available.min()) if max_per_class is None else int(max_per_class)
        counts_by_label = self._profile(n_max, int(available.min()), "smallest")
        picker = np.random.RandomState(SELECTION_SEED)
        kept = []
        for label in range(num_classes):
            idx = np.flatnonzero(source.train.labels == label)
            picker.shuffle(idx)
            kept.append(idx[: counts_by_label[label]])
        return kept, np.concatenate(kept)

    def _keep_by_position(self, max_per_class, rng: np.random.RandomState):
        """ImageNetSubset-LT: counts by position (shuffled with the seed for ``lt``), first n in file order."""
        source, num_classes = self.source, self.num_classes
        labels = source.train.labels
        available = np.bincount(labels, minlength=num_classes)[self.original_label]   # by position
        if self.imbalance == 1 and max_per_class is None:
            counts = available                                   # balanced / lists taken as given
        else:
            n_max = int(available[0]) if max_per_class is None else int(max_per_class)
            counts = self._profile(n_max, int(available.max()), "largest")
            if self.order == "lt":
                counts = list(counts)
                rng.shuffle(counts)                              # official: np.random.shuffle(img_num_per_cls)
                counts = np.asarray(counts, dtype=np.int64)
        kept_pos = [np.flatnonzero(labels == label)[: counts[pos]] for pos, label in enumerate(self.original_label)]
        kept = [kept_pos[pos] for pos in np.argsort(self.original_label)]     # by original label
        return kept, np.sort(np.concatenate(kept))

    @staticmethod
    def _split(image_set: ImageSet, ids: np.ndarray, position_of: np.ndarray) -> Split:
        ids = np.sort(np.asarray(ids, dtype=np.int64))
        return Split(image_set, ids, position_of[image_set.labels[ids]])

    @classmethod
    def from_config(cls, cfg) -> "Scenario":
        """Build the scenario a :class:`~gradlab.config.RunConfig` (or a mapping of its settings) describes
        (loads the source)."""
        if isinstance(cfg, dict):
            cfg = RunConfig.from_dict(cfg, source="Scenario.from_config")
        elif isinstance(cfg, RunConfig):
            cfg.validate()
        else:
            raise DataError(f"cfg must be a RunConfig or a mapping of its settings, got {type(cfg).__name__}")
        source = load_source(cfg.scenario, cfg.data_root, cfg.download)
        base, tasks = cfg.split_base_tasks(source.num_classes)
        return cls(source, order=cfg.order, imbalance=cfg.rho, profile=cfg.profile,
                   max_per_class=cfg.max_per_class, base=base, tasks=tasks,
                   val_fraction=cfg.holdout_fraction, holdout=cfg.holdout, seed=cfg.seed)

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def classes_seen(self, task: int) -> int:
        """Number of classes seen after ``task`` (inclusive)."""
        return int(sum(self.task_sizes[: task + 1]))

    def class_table(self) -> pd.DataFrame:
        """One row per class position: original label (and its name, where the source has names: image_folder,
        arrays with class_names), task, train/val/test counts."""
        table = pd.DataFrame({"class": np.arange(self.num_classes), "original_label": self.original_label})
        if self.source.class_names:
            table["name"] = [self.source.class_names[label] for label in self.original_label]
        table["task"] = self.class_task
        table["train_count"] = self.train_counts
        table["val_count"] = self.val_counts
        table["test_count"] = self.test_counts
        return table

    def __repr__(self) -> str:
        return (f"Scenario({self.source.name}, order={self.order}, rho={self.imbalance:g}, "
                f"tasks={self.task_sizes}, train={len(self.train)}, test={len(self.test)})")
