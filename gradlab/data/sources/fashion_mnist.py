"""Fashion-MNIST (Xiao et al., 2017): 60 000 training / 10 000 test 28x28 grey images of 10 clothing
classes (6 000 / 1 000 per class), read from the four IDX files the dataset is published as.

Where the files are looked for, in this order (the first folder holding all four wins):

1. ``<data_root>`` itself (``--data-root``);
2. ``<data_root>/FashionMNIST/raw``, torchvision's layout (what ``--download true`` writes);
3. the folder Debian's package ``dataset-fashion-mnist`` installs them into
   (``apt-get install dataset-fashion-mnist``; ``dpkg -L dataset-fashion-mnist`` lists it).

Each file may be gzip-compressed (``.gz``, as published) or not (as torchvision also extracts them).
"""
from __future__ import annotations

import gzip
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np

from gradlab.data.sources.base import SMALL_GREY_RECIPE, ArrayImageSet, Source, SourceInfo, check_classes
from gradlab.errors import DataError

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")
TORCHVISION_SUBFOLDER = Path("FashionMNIST") / "raw"
# magic numbers: two zero bytes, the data type (0x08 = unsigned byte), the number of dimensions
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")
# pixel mean / std of the 60 000 training images (scaled to [0, 1]), measured on the Debian files
MEAN, STD = (0.2860,), (0.3530,)
HOW_TO_GET = (f"get it with `apt-get install {DEBIAN_PACKAGE}` (Debian/Ubuntu, as root), or pass "
              "--download true (torchvision's downloader, needs internet), or place "
              + ", ".join(f"{name}.gz" for name in FILES.values()) + " in --data-root")

INFO = SourceInfo(
    "fashion_mnist", 10, (28, 28, 1), True,
    "Fashion-MNIST: 60 000 train / 10 000 test 28x28 grey images of clothing, 10 classes "
    "(6 000 / 1 000 per class); real data, offline through Debian's dataset-fashion-mnist package.",
    "four IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
    "t10k-labels-idx1-ubyte; .gz or not) in <root>, <root>/FashionMNIST/raw or " + str(DEBIAN_FOLDER),
    model="small", recipe=SMALL_GREY_RECIPE, train_per_class=6000, test_per_class=1000)


# ---------------------------------------------------------------------------------------------- IDX
def read_idx(path: str | Path, expected_magic: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes (gzip or plain) into a uint8 array of the header's shape.

    Raises :class:`DataError` naming the file on a wrong magic number, a short file or trailing bytes.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DataError(f"could not read IDX file {path} ({type(err).__name__}: {err}); the file is "
                        f"corrupt or not gzip: delete it and {HOW_TO_GET}") from None
    if len(raw) < 4:
        raise DataError(f"IDX file {path} is truncated: {len(raw)} bytes, shorter than its header")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise DataError(f"IDX file {path} has magic number {magic:#010x}, expected {expected_magic:#010x} "
                        f"({'images' if expected_magic == IMAGE_MAGIC else 'labels'}, unsigned bytes); "
                        "is it the right file?")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"IDX file {path} is truncated inside its header ({len(raw)} of {header} bytes)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape)) if shape else 0
    if len(raw) - header != size:
        raise DataError(f"IDX file {path} is truncated or padded: its header announces shape {shape} "
                        f"({size} bytes of data), the file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _file_in(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _debian_folders() -> list[Path]:
    """Where the Debian package put its files: the known folder, or what ``dpkg -L`` lists."""
    folders = [DEBIAN_FOLDER]
    if not DEBIAN_FOLDER.is_dir() and shutil.which("dpkg"):
        try:
            listing = subprocess.run(["dpkg", "-L", DEBIAN_PACKAGE], capture_output=True, text=True,
                                     timeout=10, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            listing = ""
        folders += sorted({Path(line).parent for line in listing.splitlines()
                           if line.endswith(FILES["train_images"] + ".gz")})
    return folders


def search_folders(root: str | Path) -> list[Path]:
    """The folders looked in, in order: ``root``, ``root/FashionMNIST/raw``, Debian's folder."""
    root = Path(root)
    return [root, root / TORCHVISION_SUBFOLDER, *_debian_folders()]


def locate(root: str | Path) -> dict[str, Path]:
    """The four files from the first folder of :func:`search_folders` that holds all of them."""
    looked = []
    for folder in search_folders(root):
        found = {key: _file_in(folder, name) for key, name in FILES.items()}
        if all(found.values()):
            return found
        present = [name for key, name in FILES.items() if found[key]]
        looked.append(f"{folder}" + (f" (only {', '.join(present)})" if present else ""))
    raise DataError("Fashion-MNIST not found; looked in " + "; ".join(looked) + ". " + HOW_TO_GET[0].upper()
                    + HOW_TO_GET[1:])


def check(root, download: bool) -> None:
    """Cheap pre-flight check: the files exist somewhere (or a download was asked for)."""
    if download:
        return
    locate(root)


def _download(root: Path) -> None:
    try:
        import torchvision

        root.mkdir(parents=True, exist_ok=True)
        for train in (True, False):
            torchvision.datasets.FashionMNIST(root=str(root), train=train, download=True)
    except Exception as err:  # network errors, checksum mismatch, disk errors
        raise DataError(f"could not download Fashion-MNIST into {root} ({type(err).__name__}: {err}); "
                        + HOW_TO_GET.replace("or pass --download true (torchvision's downloader, needs "
                                             "internet), ", "")) from None


def load(root="data", download: bool = False) -> Source:
    """Load the four IDX files (see the module docstring for where they are looked for)."""
    root = Path(root)
    try:
        files = locate(root)
    except DataError:
        if not download:
            raise
        _download(root)
        files = locate(root)
    stamp = tuple((str(path), path.stat().st_mtime_ns, path.stat().st_size) for path in files.values())
    return _load_files(stamp)


@lru_cache(maxsize=2)
def _load_files(stamp: tuple) -> Source:
    """The Source of four located files; cached per process by path, mtime and size (a worker process
    of ``gradlab figures`` decompresses the files once, not once per run). The arrays are read-only."""
    files = dict(zip(FILES, (Path(path) for path, _, _ in stamp)))
    sets = []
    for split in ("train", "test"):
        images = read_idx(files[f"{split}_images"], IMAGE_MAGIC)
        labels = read_idx(files[f"{split}_labels"], LABEL_MAGIC)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(f"{files[f'{split}_images']}: expected images of shape (N, 28, 28), got {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{files[f'{split}_labels']}: expected {len(images)} labels (one per image), "
                            f"got shape {labels.shape}")
        if labels.size and labels.max() > 9:
            raise DataError(f"{files[f'{split}_labels']}: labels must lie in 0..9, got a {int(labels.max())}")
        labels = labels.astype(np.int64)
        check_classes(files[f"{split}_labels"], labels, 10)
        labels.setflags(write=False)
        sets.append(ArrayImageSet(images[..., None], labels))      # frombuffer: the images are read-only
    return Source("fashion_mnist", 10, (28, 28, 1), *sets, mean=MEAN, std=STD, flip=True, pad=2)
