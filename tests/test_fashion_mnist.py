"""Fashion-MNIST: the IDX reader, where the files are looked for, downloads, LT counts, the real files."""
from __future__ import annotations

import gzip
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from gradlab.config import RunConfig
from gradlab.data.profiles import long_tail_counts
from gradlab.data.sources import check_source, fashion_mnist, load_source
from gradlab.data.sources.fashion_mnist import FILES, IMAGE_MAGIC, LABEL_MAGIC, read_idx
from gradlab.errors import DataError
from gradlab.scenario import Scenario

TRAIN_PER_CLASS, TEST_PER_CLASS = 40, 6


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes exactly as published: 0x00 0x00 0x08 ndim, big-endian sizes, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def fake_split(per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels in shuffled order; pixel (0, 0) = label, (0, 1) = index in the file (mod 256), the rest a ramp."""
    labels = np.random.RandomState(seed).permutation(np.repeat(np.arange(10), per_class)).astype(np.uint8)
    images = ((np.arange(28 * 28).reshape(28, 28)[None] + 3 * labels[:, None, None]) % 256).astype(np.uint8)
    images[:, 0, 0] = labels
    images[:, 0, 1] = np.arange(len(labels)) % 256
    return images, labels


def write_fashion(folder: Path, gz: bool = True, train_per_class: int = TRAIN_PER_CLASS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (x_tr, y_tr), (x_te, y_te) = fake_split(train_per_class, 1), fake_split(TEST_PER_CLASS, 2)
    for key, array in (("train_images", x_tr), ("train_labels", y_tr), ("test_images", x_te), ("test_labels", y_te)):
        data = idx_bytes(array)
        if gz:
            (folder / f"{FILES[key]}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / FILES[key]).write_bytes(data)
    return folder


@pytest.fixture
def no_debian(monkeypatch, tmp_path):
    """Point the Debian location at an empty folder (the machine may have the real package)."""
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", tmp_path / "debian-empty")
    monkeypatch.setattr(fashion_mnist.shutil, "which", lambda name: None)


# ---------------------------------------------------------------------- the IDX reader
def test_read_idx_gz_and_plain_give_the_written_arrays(tmp_path):
    images, labels = fake_split(3, 0)
    (tmp_path / "im.gz").write_bytes(gzip.compress(idx_bytes(images)))
    (tmp_path / "lb").write_bytes(idx_bytes(labels))
    got = read_idx(tmp_path / "im.gz", IMAGE_MAGIC)
    assert got.dtype == np.uint8 and got.shape == (30, 28, 28)
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(read_idx(tmp_path / "lb", LABEL_MAGIC), labels)


def test_truncated_idx_file_names_the_file(tmp_path):
    images, _ = fake_split(3, 0)
    data = idx_bytes(images)
    (tmp_path / "short.gz").write_bytes(gzip.compress(data[:-100]))
    with pytest.raises(DataError, match=r"short\.gz.*truncated"):
        read_idx(tmp_path / "short.gz", IMAGE_MAGIC)
    (tmp_path / "header").write_bytes(data[:10])
    with pytest.raises(DataError, match=r"header.*truncated inside its header"):
        read_idx(tmp_path / "header", IMAGE_MAGIC)
    (tmp_path / "cut.gz").write_bytes(gzip.compress(data)[:-30])          # a gzip stream cut short
    with pytest.raises(DataError, match=r"cut\.gz.*corrupt"):
        read_idx(tmp_path / "cut.gz", IMAGE_MAGIC)


def test_wrong_magic_is_rejected(tmp_path):
    _, labels = fake_split(3, 0)
    (tmp_path / "labels.gz").write_bytes(gzip.compress(idx_bytes(labels)))
    with pytest.raises(DataError, match=r"labels\.gz.*magic number 0x00000801, expected 0x00000803"):
        read_idx(tmp_path / "labels.gz", IMAGE_MAGIC)                     # a label file where images belong
    (tmp_path / "junk").write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(DataError, match="magic number"):
        read_idx(tmp_path / "junk", LABEL_MAGIC)


# ---------------------------------------------------------------------- where the files are found
def test_search_order_root_then_torchvision_then_debian(tmp_path, monkeypatch):
    root, debian = tmp_path / "root", tmp_path / "debian"
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", debian)
    assert fashion_mnist.search_folders(root)[:3] == [root, root / "FashionMNIST" / "raw", debian]
    write_fashion(debian)
    assert fashion_mnist.locate(root)["train_images"].parent == debian
    write_fashion(root / "FashionMNIST" / "raw", gz=False)                # torchvision's extracted files
    assert fashion_mnist.locate(root)["train_images"] == root / "FashionMNIST" / "raw" / FILES["train_images"]
    write_fashion(root)
    assert fashion_mnist.locate(root)["train_images"] == root / f"{FILES['train_images']}.gz"
    # an incomplete folder is passed over
    (root / f"{FILES['test_labels']}.gz").unlink()
    assert fashion_mnist.locate(root)["train_images"].parent == root / "FashionMNIST" / "raw"


def test_missing_files_error_says_where_it_looked_and_how_to_get_them(tmp_path, no_debian):
    root = tmp_path / "data"
    write_fashion(root)
    (root / f"{FILES['test_images']}.gz").unlink()
    for call in (lambda: check_source("fashion_mnist", root, download=False),
                 lambda: load_source("fashion_mnist", root)):
        with pytest.raises(DataError) as err:
            call()
        text = str(err.value)
        assert "\n" not in text
        assert str(root) in text and str(root / "FashionMNIST" / "raw") in text and "debian-empty" in text
        assert "only train-images-idx3-ubyte" in text
        assert "apt-get install dataset-fashion-mnist" in text and "--download true" in text
    check_source("fashion_mnist", root, download=True)                   # a download may still bring them


def test_corrupt_file_in_the_chosen_folder_is_an_error_not_a_fallback(tmp_path, no_debian):
    root = write_fashion(tmp_path / "data")
    write_fashion(root / "FashionMNIST" / "raw")
    (root / f"{FILES['train_labels']}.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz.*corrupt"):
        load_source("fashion_mnist", root)


def test_mismatched_label_count_is_reported(tmp_path, no_debian):
    root = write_fashion(tmp_path / "data")
    _, labels = fake_split(TEST_PER_CLASS, 2)
    (root / f"{FILES['test_labels']}.gz").write_bytes(gzip.compress(idx_bytes(labels[:-1])))
    with pytest.raises(DataError, match=r"t10k-labels.*expected 60 labels"):
        load_source("fashion_mnist", root)


def test_download_uses_torchvision_layout(tmp_path, monkeypatch, no_debian):
    calls = []

    class FakeFashionMNIST:                     # what torchvision.datasets.FashionMNIST(download=True) leaves
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            write_fashion(Path(root) / "FashionMNIST" / "raw")

    fake = types.SimpleNamespace(datasets=types.SimpleNamespace(FashionMNIST=FakeFashionMNIST))
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    source = load_source("fashion_mnist", tmp_path / "dl", download=True)
    assert len(source.train) == 10 * TRAIN_PER_CLASS and calls and all(c[2] for c in calls)

    class Offline:
        def __init__(self, root, train, download):
            raise OSError("no network")

    monkeypatch.setitem(sys.modules, "torchvision", types.SimpleNamespace(datasets=types.SimpleNamespace(FashionMNIST=Offline)))
    with pytest.raises(DataError, match=r"could not download Fashion-MNIST.*no network.*apt-get install"):
        load_source("fashion_mnist", tmp_path / "offline", download=True)


# ---------------------------------------------------------------------- the source and its LT scenario
def test_source_and_long_tailed_scenario(tmp_path, no_debian):
    root = write_fashion(tmp_path / "data")
    source = load_source("fashion_mnist", root)
    assert (source.name, source.num_classes, source.image_shape, source.flip, source.pad) == \
        ("fashion_mnist", 10, (28, 28, 1), True, 2)
    images = source.train.images(np.arange(len(source.train)))
    assert images.shape == (400, 28, 28, 1)
    np.testing.assert_array_equal(images[:, 0, 0, 0], source.train.labels)          # pixels follow labels
    np.testing.assert_array_equal(images[:, 0, 1, 0], np.arange(400) % 256)         # in file order
    cfg = RunConfig(scenario="fashion_mnist", data_root=str(root), order="lt", imbalance=10, tasks=5).validate()
    scenario = Scenario.from_config(cfg)
    assert scenario.original_label.tolist() == [4, 2, 7, 6, 0, 3, 5, 8, 9, 1]          # the documented lt order
    expected = long_tail_counts(TRAIN_PER_CLASS, 10, 10.0)                           # by original label
    assert expected.tolist() == [int(40 * 0.1 ** (c / 9)) for c in range(10)] == [40, 30, 23, 18, 14, 11, 8, 6, 5, 4]
    np.testing.assert_array_equal(scenario.train_counts, expected[scenario.original_label])
    np.testing.assert_array_equal(scenario.test_counts, np.full(10, TEST_PER_CLASS))  # balanced test set
    assert scenario.task_sizes == [2] * 5
    ltio = Scenario.from_config(RunConfig(scenario="fashion_mnist", data_root=str(root), order="ltio", imbalance=10,
                                          tasks=5, max_per_class=20).validate())
    assert ltio.train_counts.tolist() == long_tail_counts(20, 10, 10.0).tolist()     # counts fall across tasks


def test_the_real_fashion_mnist_files(monkeypatch, tmp_path):
    """The real data set, found through the search order (CI installs Debian's dataset-fashion-mnist)."""
    source = load_source("fashion_mnist", tmp_path / "empty")
    assert len(source.train) == 60000 and len(source.test) == 10000
    assert np.bincount(source.train.labels).tolist() == [6000] * 10
    assert np.bincount(source.test.labels).tolist() == [1000] * 10
    pixels = source.train.images(np.arange(0, 60000, 7)).astype(np.float64) / 255.0
    assert pixels.mean() == pytest.approx(fashion_mnist.MEAN[0], abs=0.005)
    assert pixels.std() == pytest.approx(fashion_mnist.STD[0], abs=0.005)
    scenario = Scenario(source, order="lt", imbalance=100, max_per_class=1000, tasks=5)
    assert scenario.train_counts[np.argsort(scenario.original_label)].tolist() == \
        [1000, 599, 359, 215, 129, 77, 46, 27, 16, 10]
