"""Image-file sources: list files (``path label`` per line, as the official DGR / FACIL / LT-CIL code reads
them) and :class:`FileImageSet`, a labelled set of image files read on demand.

A list file holds one image per line, ``<path> <label>``, separated by white space; a relative path is
relative to the folder of the list file (as the official loader joins it with its data folder). Labels are
integers 0..C-1. Every problem names the file and the line.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from gradlab.data.sources.base import ImageSet
from gradlab.errors import ConfigError, DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
# torchvision 0.29 marks its decoders deprecated in favour of TorchCodec; the pinned version has them, and they
# are what the GPU path (decode_jpeg on CUDA) needs, so the warning is not repeated for every image
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of TorchVision",
                        category=DeprecationWarning)


# image path -> "LIST FILE, line N" for the images read from list files (named in decoding errors)
LIST_LINES: dict[str, str] = {}


def decode_image(path: str) -> torch.Tensor:
    """uint8 (3, H, W) RGB of a JPEG or PNG file (torchvision.io; grey and CMYK are converted to RGB)."""
    from torchvision.io import ImageReadMode, read_file
    from torchvision.io import decode_image as _decode

    try:
        return _decode(read_file(path), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError, OSError) as exc:
        where = f" ({LIST_LINES[path]})" if path in LIST_LINES else ""
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"cannot decode image {path}{where}: {reason}; replace or remove the file") from None


def resize_center_crop(image: torch.Tensor, resize: int, size: int) -> torch.Tensor:
    """The test transform: shorter side to ``resize`` (bilinear, antialiased), then the central size x size."""
    from torchvision.transforms.v2 import functional as TF

    return TF.center_crop(TF.resize(image, [resize], antialias=True), [size, size])


class FileImageSet(ImageSet):
    """Labelled image files; ``images(indices)`` decodes them with the test transform (resize + center crop)
    into one uint8 (N, size, size, 3) array. Training reads them through :mod:`gradlab.data.file_data`."""

    def __init__(self, paths, labels, size: int = 224, resize: int = 256):
        self.paths = np.asarray(paths, dtype=object)
        self.labels = np.asarray(labels, dtype=np.int64)
        if self.labels.shape != (len(self.paths),):
            raise ValueError(f"labels must have shape ({len(self.paths)},), got {self.labels.shape}")
        self.size, self.resize = size, resize

    def images(self, indices) -> np.ndarray:
        idx = self._check_indices(indices)
        out = np.empty((len(idx), self.size, self.size, 3), dtype=np.uint8)
        for row, i in enumerate(idx):
            image = resize_center_crop(decode_image(self.paths[i]), self.resize, self.size)
            out[row] = image.permute(1, 2, 0).numpy()
        return out


# ---------------------------------------------------------------------------------------------- list files
def read_list(path: Path, num_classes: int | None = None, check_files: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Read a ``path label`` list file -> (absolute paths, int64 labels); errors name the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"list file {path} not found; expected one '<image path> <label>' per line")
    folder = path.parent
    paths, labels = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise DataError(f"{path}, line {number}: expected '<image path> <label>', got {line.strip()!r}")
            image, label = fields
            try:
                value = int(label)
            except ValueError:
                raise DataError(f"{path}, line {number}: label {label!r} is not an integer") from None
            if value < 0 or (num_classes is not None and value >= num_classes):
                allowed = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
                raise DataError(f"{path}, line {number}: label {value} out of range (allowed: {allowed})")
            full = image if os.path.isabs(image) else str(folder / image)
            if check_files and not os.path.isfile(full):
                raise DataError(f"{path}, line {number}: image {full} not found")
            paths.append(full)
            labels.append(value)
            LIST_LINES[full] = f"{path}, line {number}"
    if not paths:
        raise DataError(f"list file {path} holds no '<image path> <label>' lines")
    return np.asarray(paths, dtype=object), np.asarray(labels, dtype=np.int64)


def write_list(path: Path, paths, labels) -> None:
    """Write a ``path label`` list, paths relative to the list's folder where possible (atomic)."""
    path = Path(path)
    folder = path.parent.resolve()
    lines = []
    for image, label in zip(paths, labels):
        image = os.path.abspath(image)
        try:
            image = os.path.relpath(image, folder)
        except ValueError:           # another drive (Windows): keep it absolute
            pass
        if any(ch.isspace() for ch in image):
            raise DataError(f"cannot write {path}: image path {image!r} contains white space, which the "
                            "'<path> <label>' format cannot hold")
        lines.append(f"{image} {int(label)}\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(lines))
    os.replace(tmp, path)


def image_files(folder: Path) -> list[str]:
    """The image files of one class folder, sorted by name (the order the first-n rule keeps)."""
    with os.scandir(folder) as entries:
        return sorted(entry.path for entry in entries
                      if entry.is_file() and entry.name.lower().endswith(IMAGE_SUFFIXES))


def write_scenario_lists(scenario, folder: Path) -> list[Path]:
    """train.txt / test.txt of the whole source and train_<order>.txt of the long-tailed training set."""
    source = scenario.source
    if not isinstance(source.train, FileImageSet):
        raise ConfigError(f"--write-lists: {source.name!r} is not a source of image files; allowed for "
                          "imagenet_subset, food101, imagenet1k, image_folder")
    kept = np.sort(np.concatenate([scenario.train.ids, scenario.val.ids]))
    lists = {"train.txt": (source.train, np.arange(len(source.train))),
             "test.txt": (source.test, np.arange(len(source.test))),
             f"train_{scenario.order}.txt": (source.train, kept)}
    written = []
    for name, (image_set, ids) in lists.items():
        write_list(folder / name, image_set.paths[ids], image_set.labels[ids])
        written.append(folder / name)
    return written
