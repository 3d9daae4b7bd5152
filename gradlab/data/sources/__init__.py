"""Image sources behind a small registry, one module per dataset family.

``load_source(name, root, download)`` returns a :class:`Source`: train/test :class:`ImageSet` s holding
uint8 (H, W, C) images and int64 ORIGINAL labels, plus normalisation and augmentation facts. A source
knows its files and formats only; long-tail counts, class orders and splits live in
:mod:`gradlab.data.profiles` and :mod:`gradlab.scenario`.

| name | module | data |
|---|---|---|
| ``fashion_mnist`` | :mod:`~gradlab.data.sources.fashion_mnist` | real, 28x28 grey, 10 classes (IDX files) |
| ``cifar100`` | :mod:`~gradlab.data.sources.cifar` | real, 32x32 RGB, 100 classes (python pickles) |
| ``imagenet_subset`` | :mod:`~gradlab.data.sources.imagenet` | real, JPEG files, 100 ILSVRC-2012 classes |
| ``food101`` | :mod:`~gradlab.data.sources.food101` | real, JPEG files, 101 classes |
| ``imagenet1k`` | :mod:`~gradlab.data.sources.imagenet` | real, JPEG files, 1 000 classes |
| ``digits`` | :mod:`~gradlab.data.sources.generated` | real, scikit-learn's 8x8 digits, 10 classes |
| ``synthetic`` | :mod:`~gradlab.data.sources.generated` | generated 32x32 RGB, 100 classes (not real data) |
| ``image_folder`` | :mod:`~gradlab.data.sources.image_folder` | your JPEG/PNG files, ``ROOT/{train,test}/<class>/`` |
| ``arrays`` | :mod:`~gradlab.data.sources.arrays` | your arrays (:class:`ArrayData`, or an ``.npz`` file) |

The last two read their number of classes from the data (``SourceInfo.num_classes`` 0; :func:`source_classes`).
"""
from __future__ import annotations

import os
from typing import Callable, NamedTuple

from gradlab.checks import check_registration
from gradlab.data.sources import arrays, cifar, fashion_mnist, food101, generated, image_folder, imagenet
from gradlab.data.sources.arrays import ArrayData
from gradlab.data.sources.base import ArrayImageSet, ImageSet, Source, SourceInfo
from gradlab.data.sources.cifar import CIFAR_FOLDER, CIFAR_LAYOUT
from gradlab.data.sources.generated import (
    DIGITS_TEST_PER_CLASS,
    SYNTH_CLASSES,
    SYNTH_SEED,
    SYNTHETIC_MEAN,
    SYNTHETIC_STD,
    SyntheticImageSet,
    render_synthetic,
)
from gradlab.errors import ConfigError, DataError

__all__ = ["ArrayData", "ArrayImageSet", "DataError", "ImageSet", "Source", "SourceInfo", "SOURCE_INFO", "check_source",
           "load_source", "register_scenario", "source_classes", "CIFAR_FOLDER", "CIFAR_LAYOUT", "DIGITS_TEST_PER_CLASS", "SYNTH_CLASSES", "SYNTH_SEED",
           "SYNTHETIC_MEAN", "SYNTHETIC_STD", "SyntheticImageSet", "render_synthetic"]


class _Entry(NamedTuple):
    info: SourceInfo
    load: Callable[..., Source]                  # load(root, download) -> Source
    check: Callable[..., None] | None = None     # check(root, download): DataError when bound to fail
    classes: Callable[..., int] | None = None    # classes(root): the number of classes, where the data decide it


REGISTRY: dict[str, _Entry] = {
    "fashion_mnist": _Entry(fashion_mnist.INFO, fashion_mnist.load, fashion_mnist.check),
    "cifar100": _Entry(cifar.INFO, cifar.load, cifar.check),
    "imagenet_subset": _Entry(imagenet.SUBSET_INFO, imagenet.load_subset, imagenet.check_subset),
    "food101": _Entry(food101.INFO, food101.load, food101.check),
    "imagenet1k": _Entry(imagenet.FULL_INFO, imagenet.load_imagenet1k, imagenet.check_imagenet1k),
    "digits": _Entry(generated.DIGITS_INFO, generated.load_digits),
    "synthetic": _Entry(generated.SYNTHETIC_INFO, generated.load_synthetic),
    "image_folder": _Entry(image_folder.INFO, image_folder.load, image_folder.check, image_folder.count_classes),
    "arrays": _Entry(arrays.INFO, arrays.load, arrays.check, arrays.count_classes),
}
SOURCE_INFO: dict[str, SourceInfo] = {name: entry.info for name, entry in REGISTRY.items()}


def register_scenario(info: SourceInfo, load: Callable[..., Source], check: Callable[..., None] | None = None) -> None:
    """Make a data source available as a scenario named ``info.name`` (``gradlab.register_scenario``):
    ``load(root, download) -> Source`` returns its train and test :class:`ImageSet` s with ORIGINAL labels
    0..C-1; ``check(root, download)`` (optional) raises :class:`DataError` early when loading is bound to fail.
    The long-tailed counts, class orders, splits, hold-out and memory apply to it like to a built-in one.
    One-line errors: not a SourceInfo, a bad or taken name, load not callable."""
    if not isinstance(info, SourceInfo):
        raise ConfigError(f"register_scenario: info must be a gradlab SourceInfo, got {type(info).__name__}")
    if not callable(load) or (check is not None and not callable(check)):
        raise ConfigError(f"register_scenario: {info.name!r} needs load(root, download) -> Source (and check, "
                          "if given, callable)")
    check_registration("register_scenario", info.name, load, {name: e.load for name, e in REGISTRY.items()})
    if isinstance(info.num_classes, bool) or not isinstance(info.num_classes, int) or info.num_classes < 1:
        raise ConfigError(f"register_scenario: {info.name!r} needs num_classes >= 1, got {info.num_classes!r}")
    REGISTRY[info.name] = _Entry(info, load, check)
    SOURCE_INFO[info.name] = info


def _entry(name: str) -> _Entry:
    if name not in REGISTRY:
        raise DataError(f"unknown source {name!r}; allowed names: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def check_source(name: str, root: str | os.PathLike, download: bool) -> None:
    """Cheap pre-flight check: raise :class:`DataError` if ``load_source`` is bound to fail on missing data."""
    entry = _entry(name)
    if entry.check is not None:
        entry.check(root, download)


def source_classes(name: str, root: str | os.PathLike) -> int:
    """The number of classes of source ``name``: its static count, or (``image_folder``, ``arrays``) the
    data's, read cheaply from ``root``; :class:`DataError` when those data cannot be read."""
    entry = _entry(name)
    if entry.info.num_classes or entry.classes is None:
        return entry.info.num_classes
    return entry.classes(root)


def load_source(name: str, root: str | os.PathLike = "data", download: bool = False) -> Source:
    """Load source ``name`` (see the table in this module's docstring)."""
    return _entry(name).load(root, download)
