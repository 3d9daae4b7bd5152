"""``image_folder``: your own photos in torchvision's ImageFolder layout, any number of classes.

    ROOT/train/<class name>/*.jpg|jpeg|png
    ROOT/test/<class name>/*.jpg|jpeg|png

``--data-root ROOT`` (``data_root`` in Python and YAML) points at the folder that holds ``train`` and ``test``.
A class's label is the position of its folder name in the sorted names (as ``torchvision.datasets.ImageFolder``
numbers them); within a class the images are sorted by file name. The images go through the same pipeline as
ImageNet: decoded batch by batch in DataLoader workers, a random resized 224x224 crop and a flip for training,
resize to 256 and a central 224x224 crop for testing, ImageNet's mean and std.

The long tail is cut by position in the class order, as for ImageNetSubset-LT: the class learned first keeps
``max_per_class`` (default: all its images), the others follow the profile, the first n images of a class in
file order are kept. Folders that are already long-tailed are taken as they are with ``--imbalance 1``. The
class order is shuffled with the run seed. Bad layouts are one-line errors: no ``train`` or ``test`` folder, a
class folder missing from ``test`` (or only in ``test``), a class folder without images.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gradlab.data.sources.base import IMAGENET_RECIPE, Source, SourceInfo
from gradlab.data.sources.files import IMAGE_SUFFIXES, IMAGENET_MEAN, IMAGENET_STD, FileImageSet, image_files
from gradlab.errors import DataError

NAME = "image_folder"
LAYOUT = "ROOT/train/<class>/*.jpg and ROOT/test/<class>/*.jpg (jpg, jpeg or png; one folder per class)"
INFO = SourceInfo(
    NAME, 0, (224, 224, 3), True,
    "your own images in ImageFolder layout (ROOT/train/<class>/, ROOT/test/<class>/), any number of classes, "
    "224x224 crops through the ImageNet pipeline; --data-root ROOT.",
    LAYOUT, augment="resized_crop", model="resnet18", image_files=True, recipe=IMAGENET_RECIPE,
    train_per_class=500, test_per_class=100)


def _class_folders(split: Path) -> list[str]:
    with os.scandir(split) as entries:
        return sorted(entry.name for entry in entries if entry.is_dir() and not entry.name.startswith("."))


def class_names(root) -> list[str]:
    """The sorted class folder names of ``ROOT/train``, checked against ``ROOT/test`` (one-line errors)."""
    root = Path(root)
    for split in ("train", "test"):
        if not (root / split).is_dir():
            raise DataError(f"image_folder: {root / split} is not a folder; expected {LAYOUT}")
    train, test = _class_folders(root / "train"), _class_folders(root / "test")
    if not train:
        raise DataError(f"image_folder: {root / 'train'} holds no class folders; expected {LAYOUT}")
    missing = sorted(set(train) - set(test))
    if missing:
        raise DataError(f"image_folder: class folder(s) {missing[:5]} of {root / 'train'} missing from "
                        f"{root / 'test'}; every class needs test images")
    extra = sorted(set(test) - set(train))
    if extra:
        raise DataError(f"image_folder: class folder(s) {extra[:5]} of {root / 'test'} missing from "
                        f"{root / 'train'}; every class needs training images")
    return train


def count_classes(root) -> int:
    return len(class_names(root))


def _read_split(folder: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    paths, labels = [], []
    for label, name in enumerate(names):
        files = image_files(folder / name)
        if not files:
            raise DataError(f"image_folder: class folder {folder / name} holds no images "
                            f"({', '.join(IMAGE_SUFFIXES)}); every class needs at least one")
        paths.extend(files)
        labels.extend([label] * len(files))
    return np.asarray(paths, dtype=object), np.asarray(labels, dtype=np.int64)


def check(root, download: bool) -> None:
    if download:
        raise DataError("download: image_folder reads your own files, there is nothing to download; drop --download")
    class_names(root)


def load(root, download: bool = False) -> Source:
    check(root, download)
    root = Path(root)
    names = class_names(root)
    train = _read_split(root / "train", names)
    test = _read_split(root / "test", names)
    return Source(NAME, len(names), (224, 224, 3), FileImageSet(*train), FileImageSet(*test),
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, flip=True, pad=0, counts_by="position",
                  class_order="seeded", ltio_identity=False, holdout_quirk=False, class_names=tuple(names))
