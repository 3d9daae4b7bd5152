"""CIFAR-100, the python-pickle version (``cifar-100-python/{train,test,meta}``)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from gradlab.data.sources.base import ArrayImageSet, Source, SourceInfo, check_classes
from gradlab.errors import DataError

CIFAR_FOLDER = "cifar-100-python"
CIFAR_LAYOUT = (
    f"<root>/{CIFAR_FOLDER}/{{train,test,meta}}: the python-pickle version of CIFAR-100 "
    "(cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extracted into <root>); "
    "'train' and 'test' are pickled dicts with b'data' (uint8, shape (N, 3072): R, G, B planes of 32x32) "
    "and b'fine_labels' (N ints in 0..99)"
)
INFO = SourceInfo(
    "cifar100", 100, (32, 32, 3), True,
    "CIFAR-100: 50 000 train / 10 000 test 32x32 RGB images, 100 classes (500 / 100 per class).",
    CIFAR_LAYOUT, val_fraction=0.1, augment="resized_crop", train_per_class=500, test_per_class=100)


def check(root, download: bool) -> None:
    """Raise :class:`DataError` when the files are missing and no download was asked for."""
    if download:
        return
    folder = Path(root) / CIFAR_FOLDER
    missing = [f for f in ("train", "test") if not (folder / f).is_file()]
    if missing:
        what = "folder" if not folder.is_dir() else "file(s) " + ", ".join(missing) + " in"
        raise DataError(
            f"CIFAR-100 {what} {folder} not found. Expected layout: {CIFAR_LAYOUT}. "
            "Pass --download true (download=True) to fetch and extract it automatically.")


# ----------------------------------------------------------------------------------------------
# CIFAR-100
# ----------------------------------------------------------------------------------------------
def _download_cifar100(root: Path) -> None:
    try:
        import torchvision
    except ImportError as exc:  # pragma: no cover - torchvision is a dependency
        raise DataError(f"torchvision is needed to download CIFAR-100 ({exc}); place the files manually: "
                        f"{CIFAR_LAYOUT}") from exc
    try:
        root.mkdir(parents=True, exist_ok=True)
        torchvision.datasets.CIFAR100(root=str(root), train=True, download=True)
    except Exception as exc:  # network errors, md5 mismatch, disk errors
        raise DataError(
            f"could not download CIFAR-100 into {root} ({type(exc).__name__}: {exc}). "
            f"Download cifar-100-python.tar.gz manually and extract it so that {CIFAR_LAYOUT.replace('<root>', str(root))}"
        ) from exc


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a global that CIFAR files never hold."""


class _SafeUnpickler(pickle.Unpickler):
    """Builds only what the CIFAR files hold: containers, strings, bytes, numbers and NumPy arrays. Any other
    global (``os.system``, ``builtins.eval``, ...) is refused, so a crafted file cannot run code."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise _RefusedGlobal(f"global {module}.{name} is not allowed")


def _read_cifar_pickle(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-100 pickle -> (uint8 (N, 32, 32, 3), int64 (N,) fine labels)."""
    if not path.is_file():
        raise DataError(f"missing CIFAR-100 file {path}; expected layout: {CIFAR_LAYOUT}")
    try:
        with open(path, "rb") as f:
            obj = _SafeUnpickler(f, encoding="bytes").load()
    except _RefusedGlobal as exc:
        raise DataError(f"CIFAR-100 file {path}: {exc}; the real files hold only dicts, lists, strings, bytes "
                        "and NumPy arrays, so this one is not the CIFAR-100 file (refused without running it)") from None
    except pickle.UnpicklingError as exc:
        raise DataError(f"could not unpickle CIFAR-100 file {path} ({type(exc).__name__}: {exc}); "
                        f"expected a pickled dict as in {CIFAR_LAYOUT}") from None
    except Exception as exc:
        raise DataError(f"could not unpickle CIFAR-100 file {path} ({type(exc).__name__}: {exc}); "
                        f"expected a pickled dict as in {CIFAR_LAYOUT}") from exc
    if not isinstance(obj, dict):
        raise DataError(f"CIFAR-100 file {path} holds a {type(obj).__name__}, expected a dict with keys "
                        "b'data' and b'fine_labels'")
    entries = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    if "data" not in entries or "fine_labels" not in entries:
        raise DataError(f"CIFAR-100 file {path} lacks key b'data' or b'fine_labels' "
                        f"(found {sorted(map(str, entries))})")
    data = entries["data"]
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", type(data).__name__)
        raise DataError(f"CIFAR-100 file {path}: expected key b'data' of shape (N, 3072), got {shape}")
    if data.dtype != np.uint8:
        if not np.issubdtype(data.dtype, np.integer) or data.min() < 0 or data.max() > 255:
            raise DataError(f"CIFAR-100 file {path}: expected b'data' as uint8 values 0..255, got {data.dtype}")
        data = data.astype(np.uint8)
    try:
        raw = np.asarray(entries["fine_labels"])
        labels = raw.astype(np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"CIFAR-100 file {path}: b'fine_labels' is not a list of ints") from exc
    if raw.dtype.kind not in "iu" and not (raw.dtype.kind == "f" and np.array_equal(raw, labels)):
        raise DataError(f"CIFAR-100 file {path}: b'fine_labels' must be whole numbers 0..{num_classes - 1}, "
                        f"got {raw.dtype} values such as {raw.ravel()[:1].tolist()}")
    if labels.shape != (data.shape[0],):
        raise DataError(f"CIFAR-100 file {path}: expected b'fine_labels' of length {data.shape[0]} "
                        f"(one per row of b'data'), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"CIFAR-100 file {path}: b'fine_labels' must lie in 0..{num_classes - 1}, "
                        f"got range {labels.min()}..{labels.max()}")
    check_classes(path, labels, num_classes)
    return planes_to_hwc(data), labels


def planes_to_hwc(data: np.ndarray) -> np.ndarray:
    """CIFAR rows (N, 3072: the red, green, blue 32x32 planes) -> (N, 32, 32, 3). One strided copy per colour
    plane, much faster than a transposing ``np.ascontiguousarray`` (timings: benchmarks/README.md)."""
    images = np.empty((len(data), 32, 32, 3), np.uint8)
    pixels, planes = images.reshape(-1, 1024, 3), data.reshape(-1, 3, 1024)
    for channel in range(3):
        pixels[:, :, channel] = planes[:, channel]
    return images


def load(root, download: bool = False) -> Source:
    root = Path(root)
    folder = root / CIFAR_FOLDER
    if not (folder / "train").is_file() or not (folder / "test").is_file():
        if download:
            _download_cifar100(root)
        check(root, download=False)
    train = ArrayImageSet(*_read_cifar_pickle(folder / "train", 100))
    test = ArrayImageSet(*_read_cifar_pickle(folder / "test", 100))
    return Source("cifar100", 100, (32, 32, 3), train, test,
                  mean=(0.5071, 0.4866, 0.4409), std=(0.2009, 0.1984, 0.2023), flip=True, pad=4)


