"""Format-exact fake data trees: the real file formats and layouts with tiny, decodable content.

They let tests (and users without the data) check a protocol end to end: ``gradlab data`` on a fake tree
prints the same counts, class orders and lists as on the real one. Every image encodes where it came
from, so a test can tell exactly which images a split kept.
"""
from __future__ import annotations

import io
import json
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


# ---------------------------------------------------------------------------------------------- CIFAR-100
class _Python2Pickler(pickle._Pickler):
    """Protocol 2 with ``bytes`` written as Python 2 ``str`` (SHORT_BINSTRING / BINSTRING), as in the real
    CIFAR files: ``pickle.load(encoding="latin1")`` (torchvision) gives ``str`` keys, ``encoding="bytes"``
    gives ``bytes`` keys, exactly as with the files from the CIFAR website."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def _dump_python2(obj, path: Path) -> None:
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    path.write_bytes(buffer.getvalue())


def _fake_cifar_split(per_class: int, seed: int) -> dict:
    labels = np.random.RandomState(seed).permutation(np.repeat(np.arange(100), per_class))
    order = np.argsort(labels, kind="stable")
    sample_no = np.empty(len(labels), dtype=np.int64)
    sample_no[order] = np.arange(len(labels)) - np.repeat(np.arange(100) * per_class, per_class)
    # filler: (plane * 1024 + row * 32 + col + 37 * label) % 256, via wrapping uint8 addition
    data = np.arange(3072).astype(np.uint8)[None, :] + ((37 * labels) % 256).astype(np.uint8)[:, None]
    data[:, 0] = labels
    data[:, 1024] = sample_no & 255
    data[:, 2048] = sample_no >> 8
    return {
        b"filenames": [b"fake_%05d.png" % i for i in range(len(labels))],
        b"batch_label": b"fake batch",
        b"fine_labels": labels.tolist(),
        b"coarse_labels": (labels // 5).tolist(),
        b"data": data,
    }


def write_fake_cifar100(root, train_per_class: int = 500, test_per_class: int = 100) -> Path:
    """``<root>/cifar-100-python/{train,test,meta}`` in the real pickle format; returns ``root``.

    Labels come in shuffled file order. The first pixel of every image (R, G, B) holds the label and the
    image's number among its class's images in file order (G + 256 * B): see :func:`decode_fake_cifar`.
    """
    root = Path(root)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    splits = {"train": _fake_cifar_split(train_per_class, seed=1), "test": _fake_cifar_split(test_per_class, seed=2)}
    for name, content in splits.items():
        _dump_python2(content, folder / name)
    _dump_python2({b"fine_label_names": [b"class_%02d" % c for c in range(100)],
                   b"coarse_label_names": [b"super_%02d" % c for c in range(20)]}, folder / "meta")
    return root


def decode_fake_cifar(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(original labels, per-class sample numbers) of fake CIFAR images, uint8 (N, H, W, C)."""
    px = np.asarray(images)[:, 0, 0].astype(np.int64)
    return px[:, 0], px[:, 1] + 256 * px[:, 2]


# ---------------------------------------------------------------------------------------------- JPEG trees
def _write_jpeg(path: Path, label: int, number: int, size: tuple[int, int] = (12, 16)) -> None:
    """A tiny JPEG whose colour encodes (label, number); JPEG is lossy, so identify images by path."""
    h, w = size
    pixels = np.empty((h, w, 3), dtype=np.uint8)
    pixels[...] = (label % 251, number % 251, (label * 7 + number) % 251)
    pixels[:, : w // 2, 2] = 255 - pixels[:, : w // 2, 2]          # a vertical edge, so flips change the image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG", quality=90)


def fake_wnids(count: int = 1000) -> list[str]:
    """Sorted wnid-shaped folder names n00000000, n00000001, ... (not real ImageNet wnids)."""
    return [f"n{i:08d}" for i in range(count)]


def write_fake_ilsvrc(root, train_counts=None, val_per_class: int = 1, flat_val: bool = False,
                      wnids: list[str] | None = None, folder: str = "ILSVRC2012") -> Path:
    """``<root>/<folder>/train/<wnid>/<wnid>_<k>.JPEG`` and the validation images, as ILSVRC-2012 ships them.

    ``train_counts``: images per class, a list aligned with the sorted ``wnids`` (default 2 each).
    ``flat_val``: validation images flat in ``val/`` with a Kaggle ``LOC_val_solution.csv`` beside ``val/``,
    else sorted into ``val/<wnid>/``. Returns ``root``.
    """
    root = Path(root)
    base = root / folder
    wnids = sorted(wnids or fake_wnids())
    counts = [2] * len(wnids) if train_counts is None else list(train_counts)
    rows = ["ImageId,PredictionString"]
    number = 0
    for label, (wnid, count) in enumerate(zip(wnids, counts)):
        for k in range(count):
            _write_jpeg(base / "train" / wnid / f"{wnid}_{k}.JPEG", label, k)
        for _ in range(val_per_class):
            number += 1
            image_id = f"ILSVRC2012_val_{number:08d}"
            target = base / "val" / (image_id + ".JPEG") if flat_val else base / "val" / wnid / (image_id + ".JPEG")
            _write_jpeg(target, label, number)
            rows.append(f"{image_id},{wnid} 1 2 3 4")
    if flat_val:
        (base / "LOC_val_solution.csv").write_text("\n".join(rows) + "\n")
    return root


def food101_class_names(count: int = 101) -> list[str]:
    return [f"dish_{i:03d}" for i in range(count)]


def write_fake_food101(root, train_counts=None, test_per_class: int = 1) -> Path:
    """torchvision's Food-101 layout: ``<root>/food-101/images/<class>/<id>.jpg``, ``meta/{train,test}.json``
    and ``meta/classes.txt``. ``train_counts``: images per class in sorted class order (default 2)."""
    root = Path(root)
    base = root / "food-101"
    names = food101_class_names()
    counts = [2] * len(names) if train_counts is None else list(train_counts)
    train, test = {}, {}
    image_id = 0
    for label, (name, count) in enumerate(zip(names, counts)):
        train[name], test[name] = [], []
        for k in range(count + test_per_class):
            image_id += 1
            _write_jpeg(base / "images" / name / f"{image_id}.jpg", label, k)
            (train if k < count else test)[name].append(f"{name}/{image_id}")
    (base / "meta").mkdir(parents=True, exist_ok=True)
    (base / "meta" / "train.json").write_text(json.dumps(train))
    (base / "meta" / "test.json").write_text(json.dumps(test))
    (base / "meta" / "classes.txt").write_text("\n".join(names) + "\n")
    return root
