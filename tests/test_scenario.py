"""CIFAR-100-LT scenarios on the fake pickle: counts, which images, orders, task splits, hold-out."""
import numpy as np
import pytest

from gradlab.config import RunConfig
from gradlab.data.scenario import Scenario, list_scenarios
from gradlab.data.sources import load_source
from test_profiles import CIFAR100_LT, CIFAR100_LT_AFTER_VAL, ICARL_ORDER


def decode(images):
    """label and per-class sample number written into the first pixel by the fake CIFAR fixture"""
    px = images[:, 0, 0].astype(np.int64)
    return px[:, 0], px[:, 1] + 256 * px[:, 2]


@pytest.fixture(scope="module")
def cifar(fake_cifar_root):
    return load_source("cifar100", fake_cifar_root)


def test_lt_counts_follow_the_original_label(cifar):
    s = Scenario(cifar, order="lt", imbalance=100, base=5, tasks=20)
    assert len(s.train) == 10847
    assert s.original_label.tolist() == ICARL_ORDER
    assert s.train_counts.tolist() == [CIFAR100_LT[label] for label in ICARL_ORDER]
    labels, _ = decode(s.train.images)
    assert np.array_equal(labels, s.original_label[s.train.labels])   # positions map back to labels
    assert s.test_counts.tolist() == [100] * 100                      # the test set stays balanced
    assert s.task_sizes == [5] * 20
    assert s.tasks[0].classes.tolist() == [0, 1, 2, 3, 4]
    assert s.original_label[s.tasks[0].classes].tolist() == [68, 56, 78, 8, 23]


def test_kept_images_are_the_official_seed0_shuffle(cifar):
    """Independent replay of IMBALANCECIFAR100: np.random.seed(0), per class shuffle, keep first n_c."""
    s = Scenario(cifar, order="ltio", imbalance=100, base=50, tasks=6)
    targets = cifar.train.labels
    np.random.seed(0)
    expected = {}
    for label, n in enumerate(CIFAR100_LT):
        idx = np.where(targets == label)[0]
        np.random.shuffle(idx)
        expected[label] = sorted(idx[:n].tolist())
    labels, numbers = decode(s.train.images)
    _, all_numbers = decode(cifar.train.images(np.arange(len(targets))))
    for label in (0, 37, 99):
        rows = np.array(expected[label])
        assert sorted(numbers[labels == label].tolist()) == sorted(all_numbers[rows].tolist())
    assert s.train_counts.tolist() == CIFAR100_LT                      # ltio: position = label


def test_ltio_counts_fall_across_tasks(cifar):
    s = Scenario(cifar, order="ltio", imbalance=100, base=5, tasks=20)
    per_task = [int(s.train_counts[t.classes].sum()) for t in s.tasks]
    assert per_task == sorted(per_task, reverse=True)
    assert [len(t.train_indices) for t in s.tasks] == per_task


def test_paper_holdout_matches_official_post_split_counts(cifar):
    s = Scenario(cifar, order="lt", imbalance=100, base=5, tasks=20, val_fraction=0.1, seed=0)
    assert s.train_counts.tolist() == [CIFAR100_LT_AFTER_VAL[label] for label in ICARL_ORDER]
    assert len(s.train) == 9758 and len(s.train) + len(s.val) == 10847
    # specs/dgr.md §1.3: the lt LFS base task has training counts [19, 32, 12, 310, 154]
    assert s.train_counts[:5].tolist() == [19, 32, 12, 310, 154]
    assert [len(t.train_indices) for t in s.tasks][:3] == [527, 63, 505]
    train_ids = set(zip(*decode(s.train.images)))
    val_ids = set(zip(*decode(s.val.images)))
    assert not train_ids & val_ids                                      # disjoint
    other = Scenario(cifar, order="lt", imbalance=100, base=5, tasks=20, val_fraction=0.1, seed=1)
    assert set(zip(*decode(other.val.images))) != val_ids              # the hold-out follows the seed


def test_conv_is_balanced_with_icarl_order(cifar):
    s = Scenario(cifar, order="conv", imbalance=1, base=50, tasks=6)
    assert s.train_counts.tolist() == [500] * 100 and s.task_sizes == [50] + [10] * 5
    assert s.original_label.tolist() == ICARL_ORDER


def test_from_config_and_class_table(fake_cifar_root):
    cfg = RunConfig(scenario="cifar100", data_root=str(fake_cifar_root), split="lfh").validate()
    s = Scenario.from_config(cfg)
    assert s.task_sizes == [50] + [10] * 5
    table = s.class_table()
    assert list(table.columns) == ["class", "original_label", "task", "train_count", "val_count", "test_count"]
    assert table.train_count.sum() == 10847 and table.task.tolist()[:51] == [0] * 50 + [1]


def test_offline_scenarios_build(tmp_path):
    assert set(list_scenarios()) == {"fashion_mnist", "cifar100", "digits", "synthetic"}
    digits = Scenario.from_config(RunConfig(scenario="digits", tasks=3, imbalance=10).validate())
    assert digits.task_sizes == [4, 3, 3] and digits.train.images.shape[1:] == (8, 8, 1)
    assert digits.train_counts[digits.original_label == 0] > digits.train_counts[digits.original_label == 9]
    synth = Scenario.from_config(RunConfig(scenario="synthetic", base=10, tasks=3, max_per_class=100).validate())
    assert synth.task_sizes == [10, 45, 45] and synth.train_counts.max() == 100
    assert synth.train.images.shape[1:] == (32, 32, 3) and len(synth.test) == 10000


def test_impossible_max_per_class(cifar):
    with pytest.raises(ValueError, match="max_per_class"):
        Scenario(cifar, max_per_class=600)
    with pytest.raises(ValueError, match="without images"):
        Scenario(cifar, imbalance=1000, max_per_class=100)
