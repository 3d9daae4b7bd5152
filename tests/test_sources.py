"""Tests for gradlab.data.sources: CIFAR-100 pickles, digits, lazy synthetic images."""
from __future__ import annotations

import pickle
import shutil
import sys
import types

import numpy as np
import pytest

from gradlab.data import sources
from gradlab.data.sources import SOURCE_INFO, ArrayImageSet, Source, check_source, load_source
from gradlab.errors import DataError


# ---------------------------------------------------------------------------------------------
# CIFAR-100
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cifar(fake_cifar_root) -> Source:
    return load_source("cifar100", fake_cifar_root)


def _decode(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label, per-class sample number) encoded by the fake_cifar_root fixture."""
    px = images[:, 0, 0, :].astype(np.int64)
    return px[:, 0], px[:, 1] + 256 * px[:, 2]


def test_cifar100_shapes_and_labels(cifar):
    assert cifar.name == "cifar100" and cifar.num_classes == 100 and cifar.image_shape == (32, 32, 3)
    assert cifar.flip is True and cifar.pad == 4
    assert cifar.mean == (0.5071, 0.4866, 0.4409) and cifar.std == (0.2009, 0.1984, 0.2023)
    for split, n_per in ((cifar.train, 500), (cifar.test, 100)):
        assert isinstance(split, ArrayImageSet)
        assert split.labels.dtype == np.int64 and split.labels.shape == (100 * n_per,)
        assert np.array_equal(np.bincount(split.labels, minlength=100), np.full(100, n_per))
        assert not np.array_equal(split.labels[:100], np.sort(split.labels[:100]))  # file order kept


def test_cifar100_pixel_layout(cifar):
    for split, n_per in ((cifar.train, 500), (cifar.test, 100)):
        imgs = split.images(np.arange(len(split)))
        assert imgs.dtype == np.uint8 and imgs.shape == (len(split), 32, 32, 3)
        label, number = _decode(imgs)
        assert np.array_equal(label, split.labels)  # R plane comes first
        for c in (0, 17, 99):
            assert np.array_equal(number[split.labels == c], np.arange(n_per))
        # rest of each plane is row-major: pixel (r, col) of plane p holds (p*1024 + r*32 + col + 37*label) % 256
        lab = split.labels[:5, None]
        assert np.array_equal(imgs[:5, 0, 1, 0], (1 + 37 * lab[:, 0]) % 256)
        assert np.array_equal(imgs[:5, 1, 0, 1], (1024 + 32 + 37 * lab[:, 0]) % 256)


def test_cifar_planes_to_hwc_equals_the_transposing_copy():
    from gradlab.data.sources.cifar import planes_to_hwc

    rows = np.random.default_rng(0).integers(0, 256, (7, 3072), dtype=np.uint8)
    assert np.array_equal(planes_to_hwc(rows), rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    assert planes_to_hwc(rows[:0]).shape == (0, 32, 32, 3)


def test_cifar100_images_in_given_order(cifar):
    idx = np.array([7, 3, 49999, 3, 0])
    imgs = cifar.train.images(idx)
    assert np.array_equal(_decode(imgs)[0], cifar.train.labels[idx])
    assert np.array_equal(imgs[1], imgs[3])
    assert cifar.train.images(np.array([], dtype=np.int64)).shape == (0, 32, 32, 3)
    with pytest.raises(IndexError):
        cifar.train.images(np.array([50000]))


def test_cifar100_missing_folder(tmp_path):
    with pytest.raises(DataError, match="cifar-100-python") as err:
        check_source("cifar100", tmp_path, download=False)
    assert "--download" in str(err.value)
    with pytest.raises(DataError, match="cifar-100-python"):
        load_source("cifar100", tmp_path, download=False)


def test_check_source_passes(fake_cifar_root, tmp_path):
    check_source("cifar100", fake_cifar_root, download=False)
    check_source("cifar100", tmp_path, download=True)
    check_source("digits", tmp_path / "nope", download=False)
    check_source("synthetic", tmp_path / "nope", download=False)


def test_unknown_source_lists_allowed_names(tmp_path):
    for call in (lambda: check_source("cifar10", tmp_path, False), lambda: load_source("cifar10", tmp_path)):
        with pytest.raises(DataError) as err:
            call()
        assert all(name in str(err.value) for name in ("cifar100", "digits", "synthetic"))
    assert set(SOURCE_INFO) == {"fashion_mnist", "cifar100", "imagenet_subset", "food101", "imagenet1k", "digits",
                                "synthetic", "image_folder", "arrays"}


def _root_with(tmp_path, fake_cifar_root, train_bytes: bytes):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    shutil.copy(fake_cifar_root / "cifar-100-python" / "test", folder / "test")
    (folder / "train").write_bytes(train_bytes)
    return tmp_path


def test_cifar100_corrupt_pickle(tmp_path, fake_cifar_root):
    root = _root_with(tmp_path, fake_cifar_root, b"\x00garbage, not a pickle" * 10)
    with pytest.raises(DataError) as err:
        load_source("cifar100", root)
    assert str(root / "cifar-100-python" / "train") in str(err.value)


@pytest.mark.parametrize("content, message", [
    ({b"data": np.zeros((10, 100), np.uint8), b"fine_labels": [0] * 10}, r"\(N, 3072\)"),
    ({b"data": np.zeros((10, 3072), np.uint8), b"fine_labels": [0] * 9 + [100]}, "0..99"),
    ({b"data": np.zeros((10, 3072), np.uint8), b"fine_labels": [0] * 8}, "length 10"),
    ({b"images": np.zeros((10, 3072), np.uint8)}, "b'data'"),
    ([1, 2, 3], "dict"),
])
def test_cifar100_malformed_pickle(tmp_path, fake_cifar_root, content, message):
    root = _root_with(tmp_path, fake_cifar_root, pickle.dumps(content))
    with pytest.raises(DataError, match=message) as err:
        load_source("cifar100", root)
    assert "train" in str(err.value)


def test_cifar100_str_keys_accepted(tmp_path, fake_cifar_root):
    content = {"data": np.full((100, 3072), 9, np.uint8), "fine_labels": list(range(100))}
    src = load_source("cifar100", _root_with(tmp_path, fake_cifar_root, pickle.dumps(content)))
    assert np.array_equal(src.train.labels, np.arange(100))
    assert src.train.images(np.arange(4)).shape == (4, 32, 32, 3)


def test_cifar100_download_failure_is_data_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    fake_torchvision = types.SimpleNamespace(datasets=types.SimpleNamespace(CIFAR100=offline))
    monkeypatch.setitem(sys.modules, "torchvision", fake_torchvision)  # no network, fast
    with pytest.raises(DataError, match="manually") as err:
        load_source("cifar100", tmp_path / "data", download=True)
    assert "cifar-100-python" in str(err.value)


# ---------------------------------------------------------------------------------------------
# digits
# ---------------------------------------------------------------------------------------------
def test_digits():
    src = load_source("digits")
    assert src.num_classes == 10 and src.image_shape == (8, 8, 1) and src.flip is False and src.pad == 1
    assert len(src.train) + len(src.test) == 1797
    assert np.array_equal(np.bincount(src.test.labels, minlength=10), np.full(10, 50))
    assert set(np.unique(src.train.labels)) == set(range(10))
    x = src.train.images(np.arange(len(src.train)))
    assert x.dtype == np.uint8 and x.shape == (len(src.train), 8, 8, 1) and x.max() == 255
    assert len(src.mean) == 1 and len(src.std) == 1 and 0 < src.mean[0] < 1 and 0 < src.std[0] < 1
    assert np.isclose(src.mean[0], x.mean() / 255)
    again = load_source("digits")
    assert np.array_equal(again.test.labels, src.test.labels)
    assert np.array_equal(again.test.images(np.arange(500)), src.test.images(np.arange(500)))
    # train and test are disjoint: no test image equals a train image of the same flat content and label
    train_keys = {(lab, img.tobytes()) for lab, img in zip(src.train.labels, x)}
    test_x = src.test.images(np.arange(len(src.test)))
    overlap = sum((lab, img.tobytes()) in train_keys for lab, img in zip(src.test.labels, test_x))
    assert overlap <= 2  # sklearn digits contains very few exact duplicates


# ---------------------------------------------------------------------------------------------
# synthetic
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def synthetic() -> Source:
    return load_source("synthetic")


def test_synthetic_shapes(synthetic):
    assert synthetic.num_classes == 100 and synthetic.image_shape == (32, 32, 3)
    assert synthetic.flip is True and synthetic.pad == 4
    assert np.array_equal(synthetic.train.labels, np.repeat(np.arange(100), 500))
    assert np.array_equal(synthetic.test.labels, np.repeat(np.arange(100), 100))
    x = synthetic.train.images(np.array([0, 499, 500, 49999]))
    assert x.dtype == np.uint8 and x.shape == (4, 32, 32, 3)
    with pytest.raises(IndexError):
        synthetic.test.images(np.array([10000]))


def test_synthetic_lazy_and_deterministic(synthetic):
    sup = np.random.default_rng(1).choice(50000, 3000, replace=False)
    big = synthetic.train.images(sup)
    pick = np.array([2999, 5, 5, 1000, 0, 2500])
    assert np.array_equal(synthetic.train.images(sup[pick]), big[pick])
    assert np.array_equal(synthetic.train.images(sup[::-1]), big[::-1])
    assert np.array_equal(synthetic.train.images(sup[:7]), load_source("synthetic").train.images(sup[:7]))
    # distinct samples, distinct splits
    assert not np.array_equal(big[0], big[1])
    assert not np.array_equal(synthetic.train.images(np.arange(5)), synthetic.test.images(np.arange(5)))
    assert big.std() > 20 and 40 < big.mean() < 215


def test_synthetic_normalisation_constants(synthetic):
    idx = np.random.default_rng(2).choice(50000, 5000, replace=False)
    x = synthetic.train.images(idx).astype(np.float64) / 255
    assert np.allclose(x.mean((0, 1, 2)), synthetic.mean, atol=0.01)
    assert np.allclose(x.std((0, 1, 2)), synthetic.std, atol=0.01)


def test_synthetic_images_do_not_depend_on_how_they_are_asked_for(synthetic):
    idx = np.arange(0, 50000, 5)  # 10 000 images, rendered from the cached tables in one call or in pieces
    whole = synthetic.train.images(idx)
    pieces = np.concatenate([synthetic.train.images(part) for part in np.array_split(idx[::-1], 7)])[::-1]
    assert whole.shape == (len(idx), 32, 32, 3) and whole.dtype == np.uint8
    assert np.array_equal(whole, pieces)


def test_synthetic_hardness(synthetic):
    """Linear probe on 20 classes, 100 train images each: clearly above chance, clearly below perfect."""
    from sklearn.linear_model import LogisticRegression

    classes = np.arange(0, 100, 5)
    tr = np.concatenate([c * 500 + np.arange(100) for c in classes])
    te = np.concatenate([c * 100 + np.arange(100) for c in classes])

    def features(x):  # 4x4 average pooling -> 8x8x3
        return (x.astype(np.float32) / 255).reshape(len(x), 8, 4, 8, 4, 3).mean((2, 4)).reshape(len(x), -1)

    probe = LogisticRegression(max_iter=300).fit(features(synthetic.train.images(tr)), synthetic.train.labels[tr])
    acc = probe.score(features(synthetic.test.images(te)), synthetic.test.labels[te])
    assert 0.2 < acc < 0.85, acc  # chance is 0.05


def test_synthetic_module_constants():
    assert len(sources.SYNTHETIC_MEAN) == 3 and len(sources.SYNTHETIC_STD) == 3
