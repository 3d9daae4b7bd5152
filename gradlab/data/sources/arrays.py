"""``arrays``: your own image arrays as a scenario, from Python or from an ``.npz`` file.

From Python, ``gradlab.run(method="dgr", data=gradlab.ArrayData(x_train, y_train, x_test, y_test))``; the
arrays are saved once as ``<data_root>/arrays/arrays-<fingerprint>.npz`` (content-addressed, so worker
processes, resume and ``gradlab compare`` read the very same data) and the run's config records that file.
From the command line, ``gradlab run --scenario arrays --data-root my_data.npz``, the file holding
``x_train``, ``y_train``, ``x_test``, ``y_test`` and optionally ``class_names`` (``ArrayData.save`` writes one).

Images: numpy arrays or torch tensors, N x H x W (grey), N x C x H x W or N x H x W x C with C = 1 or 3;
uint8 0..255, other integers within 0..255, or floats within [0, 1]. Labels: integers 0..C-1, every class
with at least one training and one test image; C is ``len(class_names)`` when names are given, else the
largest training label + 1. Every problem is a one-line :class:`~gradlab.errors.DataError` naming the array
(or the file) and what is allowed.

The scenario holds the images in memory like Fashion-MNIST: per-channel mean and std of the training images,
crop (padding 4 for images of 32 pixels or more, else 2 or 1) and horizontal flip for training (``augment:
none`` turns them off). The long tail is cut by position in the class order, as for ``image_folder``: the
class learned first keeps ``max_per_class`` (default: all its images), the class order is shuffled with the
run seed, and data that are already long-tailed are taken as they are with ``imbalance: 1``.
"""
from __future__ import annotations

import hashlib
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from gradlab.data.sources.base import ArrayImageSet, Source, SourceInfo
from gradlab.errors import DataError
from gradlab.files import atomic_write

NAME = "arrays"
KEYS = ("x_train", "y_train", "x_test", "y_test")
LAYOUT = "an .npz file holding x_train, y_train, x_test, y_test (and optionally class_names), e.g. from ArrayData.save"
INFO = SourceInfo(
    NAME, 0, (32, 32, 3), True,
    "your own image arrays: gradlab.run(data=gradlab.ArrayData(x_train, y_train, x_test, y_test)) in Python, "
    "--data-root FILE.npz on the command line; any number of classes, held in memory.",
    LAYOUT, train_per_class=500, test_per_class=100)


def _as_numpy(value, field: str) -> np.ndarray:
    if type(value).__module__.startswith("torch"):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise DataError(f"{field} must be a numpy array or a torch tensor, got {type(value).__name__}")


def as_images(value, field: str) -> np.ndarray:
    """uint8 (N, H, W, C) from N x H x W, N x C x H x W or N x H x W x C (C = 1 or 3)."""
    x = _as_numpy(value, field)
    if x.ndim == 3:
        x = x[..., None]
    elif x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[3] not in (1, 3):
        x = x.transpose(0, 2, 3, 1)
    elif not (x.ndim == 4 and x.shape[3] in (1, 3)):
        raise DataError(f"{field} must be N x H x W, N x C x H x W or N x H x W x C with C = 1 or 3 channels, "
                        f"got shape {tuple(x.shape)}")
    if len(x) == 0 or min(x.shape[1:3]) < 1:
        raise DataError(f"{field} holds no images (shape {tuple(x.shape)})")
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    if np.issubdtype(x.dtype, np.integer) and not x.dtype == np.bool_:
        if x.min() < 0 or x.max() > 255:
            raise DataError(f"{field}: integer pixels must lie in 0..255, got {x.min()}..{x.max()}")
        return np.ascontiguousarray(x.astype(np.uint8))
    if np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise DataError(f"{field}: float pixels must lie in [0, 1] (or pass uint8 0..255), "
                            f"got {np.nanmin(x):g}..{np.nanmax(x):g}")
        return np.ascontiguousarray(np.round(x * 255).astype(np.uint8))
    raise DataError(f"{field}: pixels must be uint8, integers in 0..255 or floats in [0, 1], got dtype {x.dtype}")


def as_labels(value, field: str, count: int, images_field: str) -> np.ndarray:
    y = _as_numpy(value, field)
    if y.ndim != 1 or len(y) != count:
        raise DataError(f"{field} must hold one label per image of {images_field} ({count}), got shape {tuple(y.shape)}")
    if not np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        raise DataError(f"{field} must hold integer labels 0..C-1, got dtype {y.dtype}")
    if y.min() < 0:
        raise DataError(f"{field}: labels must be >= 0, got {int(y.min())}")
    return y.astype(np.int64)


class ArrayData:
    """Your own labelled image arrays, checked and stored as uint8 (N, H, W, C) (see this module's docstring).

    ``gradlab.run(..., data=ArrayData(x_train, y_train, x_test, y_test, class_names=None))`` trains on them;
    ``save(path)`` / ``ArrayData.load(path)`` write and read the ``.npz`` form the command line takes.
    """

    def __init__(self, x_train, y_train, x_test, y_test, class_names=None, where: str = "ArrayData"):
        self.x_train = as_images(x_train, f"{where}: x_train")
        self.x_test = as_images(x_test, f"{where}: x_test")
        if self.x_test.shape[1:] != self.x_train.shape[1:]:
            raise DataError(f"{where}: x_test images are {self.x_test.shape[1:]} (H, W, C), x_train's "
                            f"{self.x_train.shape[1:]}; both must have the same size and channels")
        self.y_train = as_labels(y_train, f"{where}: y_train", len(self.x_train), "x_train")
        self.y_test = as_labels(y_test, f"{where}: y_test", len(self.x_test), "x_test")
        self.class_names = self._names(class_names, where)
        self.num_classes = len(self.class_names) if self.class_names else int(self.y_train.max()) + 1
        for split, y in (("y_train", self.y_train), ("y_test", self.y_test)):
            if y.max() >= self.num_classes:
                raise DataError(f"{where}: {split} has label {int(y.max())}, out of range 0..{self.num_classes - 1} "
                                + ("(one per class name)" if self.class_names else "(the largest training label)"))
            empty = np.flatnonzero(np.bincount(y, minlength=self.num_classes) == 0)
            if len(empty):
                raise DataError(f"{where}: {split} has no image of class(es) {empty[:10].tolist()}; every class "
                                f"0..{self.num_classes - 1} needs at least one training and one test image")

    @staticmethod
    def _names(names, where: str) -> tuple[str, ...] | None:
        if names is None:
            return None
        names = [str(n) for n in (names.tolist() if isinstance(names, np.ndarray) else names)]
        if not names or len(set(names)) != len(names):
            raise DataError(f"{where}: class_names must be distinct names, one per class, got {names[:10]}")
        return tuple(names)

    def __repr__(self) -> str:
        h, w, c = self.x_train.shape[1:]
        return (f"ArrayData({self.num_classes} classes, {len(self.x_train)} train / {len(self.x_test)} test "
                f"images of {h}x{w}x{c})")

    def fingerprint(self) -> str:
        """16 hex digits of a SHA-256 over the arrays and the class names (names the saved file)."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            digest.update(str(array.shape).encode())
            digest.update(np.ascontiguousarray(array).data)
        digest.update(repr(self.class_names).encode())
        return digest.hexdigest()[:16]

    def save(self, path) -> Path:
        """Write the ``.npz`` the ``arrays`` scenario reads (atomic: no half-written file is left)."""
        path = Path(path)
        arrays = {"x_train": self.x_train, "y_train": self.y_train, "x_test": self.x_test, "y_test": self.y_test}
        if self.class_names:
            arrays["class_names"] = np.asarray(self.class_names, dtype=str)

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, write)
        return path

    def saved_under(self, data_root) -> Path:
        """``<data_root>/arrays/arrays-<fingerprint>.npz``, written unless it is there already."""
        path = Path(data_root) / "arrays" / f"arrays-{self.fingerprint()}.npz"
        if not path.is_file():
            self.save(path)
        return path

    @classmethod
    def load(cls, path) -> "ArrayData":
        """Read and check an ``.npz`` file (errors name the file)."""
        path = Path(path)
        check(path, False)
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = [key for key in KEYS if key not in npz.files]
                if missing:
                    raise DataError(f"{path}: missing array(s) {', '.join(missing)}; expected {LAYOUT}")
                arrays = {key: npz[key] for key in KEYS}
                names = npz["class_names"] if "class_names" in npz.files else None
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
            reason = " ".join(str(err).split()) or type(err).__name__
            raise DataError(f"{path}: not a readable .npz file ({reason}); expected {LAYOUT}") from None
        return cls(**arrays, class_names=names, where=str(path))


def check(root, download: bool) -> None:
    if download:
        raise DataError("download: the arrays scenario reads your own .npz file, there is nothing to download; "
                        "drop --download")
    path = Path(root)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise DataError(f"data_root: {path} {what}; the arrays scenario reads one file, {LAYOUT}")


@lru_cache(maxsize=2)
def _load_file(path: str, mtime_ns: int, size: int) -> ArrayData:
    return ArrayData.load(path)


def read(root) -> ArrayData:
    """The checked :class:`ArrayData` of an ``.npz`` (cached per process by path, mtime and size)."""
    check(root, False)
    stat = Path(root).stat()
    return _load_file(str(Path(root).resolve()), stat.st_mtime_ns, stat.st_size)


def count_classes(root) -> int:
    return read(root).num_classes


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 images scaled to [0, 1] (float64, in chunks)."""
    total = np.zeros(images.shape[-1])
    squares = np.zeros(images.shape[-1])
    for start in range(0, len(images), 4096):
        chunk = images[start:start + 4096].astype(np.float64) / 255.0
        total += chunk.sum(axis=(0, 1, 2))
        squares += (chunk ** 2).sum(axis=(0, 1, 2))
    n = images.shape[0] * images.shape[1] * images.shape[2]
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean ** 2, 0.0))
    return tuple(float(m) for m in mean), tuple(float(max(s, 1e-3)) for s in std)


def load(root, download: bool = False) -> Source:
    check(root, download)
    data = read(root)
    side = min(data.x_train.shape[1:3])
    mean, std = channel_stats(data.x_train)
    return Source(NAME, data.num_classes, tuple(data.x_train.shape[1:]), ArrayImageSet(data.x_train, data.y_train),
                  ArrayImageSet(data.x_test, data.y_test), mean=mean, std=std, flip=True,
                  pad=4 if side >= 32 else 2 if side >= 16 else 1, counts_by="position", class_order="seeded",
                  ltio_identity=False, holdout_quirk=False, class_names=data.class_names)
