"""ImageNet (ILSVRC-2012): the 100-class ImageNetSubset of LUCIR / LT-CIL / DGR, and ImageNet-1k.

Two ways in, looked for in this order:

1. **List files** as the official code reads them: ``<root>/ImageNetSubset/{train,test}.txt`` (ImageNet-1k:
   ``<root>/imagenet_1000/{train,test}.txt``), one ``<path> <label>`` per line, labels 0..99 (0..999).
2. **An ILSVRC-2012 folder**: ``<root>/ILSVRC2012``, ``<root>/imagenet`` or ``<root>/ILSVRC/Data/CLS-LOC``
   (Kaggle), holding ``train/<wnid>/*.JPEG`` (1 000 class folders) and the 50 000 validation images, either
   sorted into ``val/<wnid>/*.JPEG`` or flat in ``val/`` with ``LOC_val_solution.csv`` beside ``val/`` or
   in ``<root>`` (Kaggle: ``ImageId,PredictionString``, the wnid first in the string).

The subset is chosen as LUCIR and LT-CIL choose it: the 1 000 wnids sorted, ``numpy.random.seed(1993)``,
``numpy.random.choice(wnids, 100, replace=False)``; label i is the i-th wnid drawn (label 0 = n01729322,
1 = n01514668, ...). Within a class, training images are sorted by file name; the long-tailed protocols keep
the first n of them. The test set is the validation images of the chosen classes (50 each).
``gradlab data --write-lists DIR`` writes the lists, so other codebases can use the same subset.
"""
from __future__ import annotations

import csv
import functools
from pathlib import Path

import numpy as np

from gradlab.data.sources.base import IMAGENET_RECIPE, Source, SourceInfo, check_classes
from gradlab.data.sources.files import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FileImageSet,
    image_files,
    read_list,
)
from gradlab.errors import DataError

SUBSET_SEED = 1993
SUBSET_CLASSES = 100
ILSVRC_FOLDERS = ("ILSVRC2012", "imagenet", "ILSVRC/Data/CLS-LOC")
SUBSET_LISTS = "ImageNetSubset"
FULL_LISTS = "imagenet_1000"
ILSVRC_LAYOUT = ("an ILSVRC-2012 folder <root>/{" + ",".join(ILSVRC_FOLDERS) + "} with train/<wnid>/*.JPEG and "
                 "val/<wnid>/*.JPEG (or val/*.JPEG plus LOC_val_solution.csv)")
SUBSET_INFO = SourceInfo(
    "imagenet_subset", SUBSET_CLASSES, (224, 224, 3), True,
    "ImageNetSubset: 100 ILSVRC-2012 classes (the LUCIR / LT-CIL choice, seed 1993), ~1 300 train and 50 test "
    "JPEGs per class, 224x224 crops.",
    f"<root>/{SUBSET_LISTS}/{{train,test}}.txt ('<path> <label>' lines, labels 0..99), or {ILSVRC_LAYOUT}",
    val_fraction=0.1, augment="resized_crop", model="resnet18", image_files=True,
    recipe=IMAGENET_RECIPE, train_per_class=1300, test_per_class=50)
FULL_INFO = SourceInfo(
    "imagenet1k", 1000, (224, 224, 3), True,
    "ImageNet-1k (ILSVRC-2012): 1 000 classes, ~1.28 M train / 50 000 validation JPEGs, 224x224 crops.",
    f"<root>/{FULL_LISTS}/{{train,test}}.txt ('<path> <label>' lines, labels 0..999), or {ILSVRC_LAYOUT}",
    val_fraction=0.1, augment="resized_crop", model="resnet18", image_files=True,
    recipe=IMAGENET_RECIPE, train_per_class=1300, test_per_class=50)


def subset_wnids(wnids: list[str]) -> list[str]:
    """The 100 ImageNetSubset wnids in label order, drawn from the sorted 1 000 as LT-CIL does."""
    if len(wnids) < SUBSET_CLASSES:
        raise DataError(f"ImageNetSubset needs the {SUBSET_CLASSES} classes drawn from all 1 000 ILSVRC-2012 "
                        f"train folders; found only {len(wnids)} class folder(s)")
    rng = np.random.RandomState(SUBSET_SEED)
    return [str(w) for w in rng.choice(sorted(wnids), SUBSET_CLASSES, replace=False)]


# ---------------------------------------------------------------------------------------------- ILSVRC folder
def find_ilsvrc(root: Path) -> Path | None:
    for name in ILSVRC_FOLDERS:
        if (root / name / "train").is_dir():
            return root / name
    return root if (root / "train").is_dir() and (root / "val").is_dir() else None


def ilsvrc_wnids(folder: Path) -> list[str]:
    train = folder / "train"
    wnids = sorted(p.name for p in train.iterdir() if p.is_dir())
    bad = [w for w in wnids if not (len(w) == 9 and w[0] == "n" and w[1:].isdigit())]
    if bad or not wnids:
        raise DataError(f"{train}: expected one folder per class named by its wnid (n01440764, ...), "
                        f"found {bad[:3] or 'no folders'}; layout: {ILSVRC_LAYOUT}")
    return wnids


def ilsvrc_val(folder: Path, root: Path, wanted: dict[str, int]) -> tuple[list[str], list[int]]:
    """Validation images of the ``wanted`` wnids (-> label), sorted by file name."""
    val = folder / "val"
    if not val.is_dir():
        raise DataError(f"validation folder {val} not found; layout: {ILSVRC_LAYOUT}")
    sorted_folders = [p for p in val.iterdir() if p.is_dir()]
    pairs = []
    if sorted_folders:
        for wnid, label in wanted.items():
            if not (val / wnid).is_dir():
                raise DataError(f"{val}: no folder {wnid} for class {label}; layout: {ILSVRC_LAYOUT}")
            pairs += [(path, label) for path in image_files(val / wnid)]
    else:
        solution = next((p for p in (folder / "LOC_val_solution.csv", folder.parent / "LOC_val_solution.csv",
                                     root / "LOC_val_solution.csv") if p.is_file()), None)
        if solution is None:
            raise DataError(f"{val} holds no class folders and no LOC_val_solution.csv was found beside it or in "
                            f"{root}; layout: {ILSVRC_LAYOUT}")
        with open(solution, newline="") as f:
            for number, row in enumerate(csv.reader(f), start=1):
                if number == 1 and row and row[0] == "ImageId":
                    continue
                if len(row) != 2 or not row[1].split():
                    raise DataError(f"{solution}, line {number}: expected 'ImageId,PredictionString', got {row}")
                wnid = row[1].split()[0]
                if wnid in wanted:
                    path = val / f"{row[0]}.JPEG"
                    if not path.is_file():
                        raise DataError(f"{solution}, line {number}: image {path} not found")
                    pairs.append((str(path), wanted[wnid]))
        pairs.sort()
    return [p for p, _ in pairs], [label for _, label in pairs]


@functools.lru_cache(maxsize=4)
def ilsvrc_lists(root: str, subset: bool) -> tuple:
    """(train paths, train labels, test paths, test labels, wnids in label order) from an ILSVRC folder."""
    root_path = Path(root)
    folder = find_ilsvrc(root_path)
    if folder is None:
        raise DataError(f"no ImageNet data under {root_path}: expected {SUBSET_INFO.layout if subset else FULL_INFO.layout}")
    wnids = ilsvrc_wnids(folder)
    chosen = subset_wnids(wnids) if subset else wnids
    train_paths, train_labels = [], []
    for label, wnid in enumerate(chosen):
        files = image_files(folder / "train" / wnid)
        if not files:
            raise DataError(f"{folder / 'train' / wnid}: no .JPEG images for class {label}")
        train_paths += files
        train_labels += [label] * len(files)
    test_paths, test_labels = ilsvrc_val(folder, root_path, {w: i for i, w in enumerate(chosen)})
    check_classes(folder / "val", np.asarray(test_labels, dtype=np.int64), len(chosen))
    return (np.asarray(train_paths, dtype=object), np.asarray(train_labels, dtype=np.int64),
            np.asarray(test_paths, dtype=object), np.asarray(test_labels, dtype=np.int64), tuple(chosen))


def _lists(root: Path, folder_name: str, num_classes: int):
    for folder in (root / folder_name, root):
        if (folder / "train.txt").is_file() and (folder / "test.txt").is_file():
            train = read_list(folder / "train.txt", num_classes)
            test = read_list(folder / "test.txt", num_classes)
            check_classes(folder / "train.txt", train[1], num_classes)
            check_classes(folder / "test.txt", test[1], num_classes)
            return (*train, *test)
    return None


def _load(info: SourceInfo, lists_folder: str, subset: bool, root, download: bool) -> Source:
    root = Path(root)
    lists = _lists(root, lists_folder, info.num_classes)
    if lists is None:
        if find_ilsvrc(root) is None:
            hint = " (ImageNet cannot be downloaded automatically: it needs a login at image-net.org)" if download else ""
            raise DataError(f"{info.name}: found neither list files nor an ILSVRC-2012 folder under {root}{hint}. "
                            f"Expected {info.layout}")
        lists = ilsvrc_lists(str(root.resolve()), subset)[:4]
    train_paths, train_labels, test_paths, test_labels = lists
    return Source(info.name, info.num_classes, info.image_shape, FileImageSet(train_paths, train_labels),
                  FileImageSet(test_paths, test_labels), mean=IMAGENET_MEAN, std=IMAGENET_STD, flip=True, pad=0,
                  counts_by="position", class_order="icarl" if subset else "seeded", ltio_identity=False,
                  holdout_quirk=False)


def check(info: SourceInfo, lists_folder: str, root, download: bool) -> None:
    root = Path(root)
    if any((f / "train.txt").is_file() for f in (root / lists_folder, root)) or find_ilsvrc(root) is not None:
        return
    raise DataError(f"{info.name}: found neither list files nor an ILSVRC-2012 folder under {root}. "
                    f"Expected {info.layout}")


def load_subset(root, download: bool = False) -> Source:
    return _load(SUBSET_INFO, SUBSET_LISTS, True, root, download)


def load_imagenet1k(root, download: bool = False) -> Source:
    return _load(FULL_INFO, FULL_LISTS, False, root, download)


def check_subset(root, download: bool) -> None:
    check(SUBSET_INFO, SUBSET_LISTS, root, download)


def check_imagenet1k(root, download: bool) -> None:
    check(FULL_INFO, FULL_LISTS, root, download)
