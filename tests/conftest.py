"""Shared pytest fixtures."""
from __future__ import annotations

import pytest

from gradlab.data.fake_trees import write_fake_cifar100


@pytest.fixture(scope="session")
def fake_cifar_root(tmp_path_factory):
    """Root folder holding a fake ``cifar-100-python/{train,test,meta}`` in the real pickle format.

    train: 50 000 rows (500 per class), test: 10 000 rows (100 per class). Decode an image
    (H, W, C) as: label = img[0, 0, 0], per-class sample number = img[0, 0, 1] + 256 * img[0, 0, 2].
    """
    return write_fake_cifar100(tmp_path_factory.mktemp("fake_cifar"))
