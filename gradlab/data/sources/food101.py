"""Food-101 (Bossard et al., ECCV 2014) and its long-tailed version Food101-LT.

Two ways in, looked for in this order:

1. **List files** as the official DGR code reads them: ``<root>/Food101/{train,test}.txt``, one
   ``<path> <label>`` per line, labels 0..100.
2. **torchvision's layout** (``torchvision.datasets.Food101``, ``--download true`` fetches it, 5 GB):
   ``<root>/food-101/images/<class>/<id>.jpg`` with ``meta/train.json`` and ``meta/test.json`` (class ->
   list of ``"<class>/<id>"``); label = position of the class in the sorted class names, as torchvision.

Food101-LT is built by the scenario's profile code, counts by position in the class order (as for
ImageNetSubset-LT), with n_max = 750 (every training image of a Food-101 class) and ρ = 100 by default.
The authors made their Food101-LT by editing the list files and did not publish them or their count
profile; ρ = 100 is the ratio their Food101-LT results are listed with. The class order is shuffled with the
run seed, as the official code does for Food-101. ``lt`` shuffles the counts over the classes, ``ltio`` keeps
them falling (head first). The official code runs both names the same way (its lists are already
long-tailed, the class order shuffled with the seed); gradlab's ``--order seeded --imbalance 1`` on such lists
is that behaviour.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gradlab.data.sources.base import IMAGENET_RECIPE, Source, SourceInfo, check_classes
from gradlab.data.sources.files import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FileImageSet,
    read_list,
)
from gradlab.errors import DataError

NUM_CLASSES = 101
LISTS_FOLDER = "Food101"
FOLDER = "food-101"
LAYOUT = (f"<root>/{LISTS_FOLDER}/{{train,test}}.txt ('<path> <label>' lines, labels 0..100), or torchvision's "
          f"<root>/{FOLDER}/images/<class>/<id>.jpg with {FOLDER}/meta/{{train,test}}.json")
INFO = SourceInfo(
    "food101", NUM_CLASSES, (224, 224, 3), True,
    "Food-101: 101 dishes, 750 train / 250 test photos per class, 224x224 crops; Food101-LT by the profile code "
    "(n_max 750, rho 100).",
    LAYOUT, val_fraction=0.1, augment="resized_crop", model="resnet18", image_files=True,
    recipe=IMAGENET_RECIPE, train_per_class=750, test_per_class=250)


def _read_meta(path: Path, classes: list[str] | None) -> tuple[list[str], list[str], list[int]]:
    """(classes, image paths, labels) from one torchvision ``meta/*.json``."""
    if not path.is_file():
        raise DataError(f"Food-101 file {path} not found; expected {LAYOUT}")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"Food-101 file {path} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or not all(isinstance(v, list) for v in meta.values()):
        raise DataError(f"Food-101 file {path}: expected an object mapping each class to a list of '<class>/<id>'")
    names = sorted(meta)
    if classes is not None and names != classes:
        raise DataError(f"Food-101 file {path}: its classes differ from train.json's ({len(names)} vs {len(classes)})")
    if len(names) != NUM_CLASSES:
        raise DataError(f"Food-101 file {path}: expected {NUM_CLASSES} classes, found {len(names)}")
    images = path.parent.parent / "images"
    paths, labels = [], []
    for label, name in enumerate(names):
        for entry in meta[name]:
            file = images / f"{entry}.jpg"
            if not file.is_file():
                raise DataError(f"Food-101 file {path}: image {file} (class {name!r}) not found")
            paths.append(str(file))
            labels.append(label)
    return names, paths, labels


def _download(root: Path) -> None:
    try:
        import torchvision
        torchvision.datasets.Food101(root=str(root), split="train", download=True)
    except Exception as exc:  # network errors, disk errors
        raise DataError(f"could not download Food-101 into {root} ({type(exc).__name__}: {exc}); "
                        f"place the files manually: {LAYOUT}") from exc


def check(root, download: bool) -> None:
    root = Path(root)
    if download or (root / LISTS_FOLDER / "train.txt").is_file() or (root / FOLDER / "meta" / "train.json").is_file():
        return
    raise DataError(f"food101: found neither list files nor the Food-101 folder under {root}. Expected {LAYOUT}; "
                    "pass --download true to fetch it (5 GB)")


def load(root, download: bool = False) -> Source:
    root = Path(root)
    lists = root / LISTS_FOLDER
    if (lists / "train.txt").is_file() and (lists / "test.txt").is_file():
        train = read_list(lists / "train.txt", NUM_CLASSES)
        test = read_list(lists / "test.txt", NUM_CLASSES)
        check_classes(lists / "train.txt", train[1], NUM_CLASSES)
    else:
        if not (root / FOLDER / "meta" / "train.json").is_file():
            if not download:
                check(root, download=False)
            _download(root)
        classes, train_paths, train_labels = _read_meta(root / FOLDER / "meta" / "train.json", None)
        _, test_paths, test_labels = _read_meta(root / FOLDER / "meta" / "test.json", classes)
        train = (np.asarray(train_paths, dtype=object), np.asarray(train_labels, dtype=np.int64))
        test = (np.asarray(test_paths, dtype=object), np.asarray(test_labels, dtype=np.int64))
    return Source("food101", NUM_CLASSES, (224, 224, 3), FileImageSet(*train), FileImageSet(*test),
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, flip=True, pad=0, counts_by="position",
                  class_order="seeded", ltio_identity=False, holdout_quirk=False)
