"""Shared pytest fixtures."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

FAKE_CIFAR_TRAIN_PER_CLASS = 500
FAKE_CIFAR_TEST_PER_CLASS = 100


def _fake_cifar_split(per_class: int, seed: int) -> dict:
    """One fake CIFAR-100 split in the real pickle format, labels in shuffled order.

    Pixel code (in the real row layout: R plane, then G, then B, each 32x32 row-major):
    the first pixel's R = label, G = per-class sample number & 255, B = sample number >> 8.
    The sample number counts the class's images in file order (0, 1, ...).
    """
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


@pytest.fixture(scope="session")
def fake_cifar_root(tmp_path_factory):
    """Root folder holding a fake ``cifar-100-python/{train,test,meta}`` in the real pickle format.

    train: 50 000 rows (500 per class), test: 10 000 rows (100 per class). Decode an image
    (H, W, C) as: label = img[0, 0, 0], per-class sample number = img[0, 0, 1] + 256 * img[0, 0, 2].
    """
    root = tmp_path_factory.mktemp("fake_cifar")
    folder = root / "cifar-100-python"
    folder.mkdir()
    splits = {"train": _fake_cifar_split(FAKE_CIFAR_TRAIN_PER_CLASS, seed=1),
              "test": _fake_cifar_split(FAKE_CIFAR_TEST_PER_CLASS, seed=2)}
    for name, content in splits.items():
        with open(folder / name, "wb") as f:
            pickle.dump(content, f, protocol=4)
    meta = {b"fine_label_names": [b"class_%02d" % c for c in range(100)],
            b"coarse_label_names": [b"super_%02d" % c for c in range(20)]}
    with open(folder / "meta", "wb") as f:
        pickle.dump(meta, f, protocol=4)
    return root
