"""CIFAR-100-LT scenarios on the fake pickle: counts, which images, orders, task splits, hold-out."""
import numpy as np
import pytest
from test_profiles import CIFAR100_LT, CIFAR100_LT_AFTER_VAL, ICARL_ORDER

from gradlab.config import RunConfig
from gradlab.data.fake_trees import decode_fake_cifar
from gradlab.data.sources import load_source
from gradlab.scenario import Scenario, list_scenarios

ICARL_ORDER_ARRAY = np.array(ICARL_ORDER)


def decode(images):
    """label and per-class sample number written into the first pixel by the fake CIFAR fixture"""
    return decode_fake_cifar(images)


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


def test_official_holdout_replays_the_official_loader(cifar):
    """The official draw (random.sample per task and class) with its index-0 quirk: 9 755 images for lt LFS.
    benchmarks/official_split.py checks image for image against the official loader itself."""
    s = Scenario(cifar, order="lt", imbalance=100, base=5, tasks=20, val_fraction=0.1, seed=0)
    assert len(s.train) == 9755 and len(s.train) + len(s.val) == 10847
    assert s.train_counts[:5].tolist() == [19, 32, 12, 310, 154]      # the lt LFS base task
    plain = np.array([CIFAR100_LT_AFTER_VAL[label] for label in ICARL_ORDER])
    # the 5-image classes 96, 98, 97, 99 hold none out (round(0.5) = 0) and take image 0 of their task's list
    # instead, which belongs to the task's smallest original label: 14 (task 10, split before 96, so
    # 260 - 26 - 1), 2 (task 11, loses 2 before its own split: 453 - 45) and 0 (task 13: 499 - 50)
    changed = np.flatnonzero(s.train_counts != plain)
    assert [(int(s.original_label[p]), int(s.train_counts[p]), int(s.val_counts[p])) for p in changed] == \
        [(14, 233, 27), (2, 408, 47), (0, 449, 51)]
    train_ids = set(zip(*decode(s.train.images)))
    val_ids = set(zip(*decode(s.val.images)))
    assert not train_ids & val_ids                                      # disjoint
    other = Scenario(cifar, order="lt", imbalance=100, base=5, tasks=20, val_fraction=0.1, seed=1)
    assert set(zip(*decode(other.val.images))) != val_ids              # the hold-out follows the seed
    assert len(other.train) == 9755                                   # the counts do not


def test_official_holdout_ltio_lfs_leaves_class_95_one_image(cifar):
    s = Scenario(cifar, order="ltio", imbalance=100, base=5, tasks=20, val_fraction=0.1, seed=0)
    assert len(s.train) == 9754
    assert s.train_counts[95:].tolist() == [1, 5, 5, 5, 5]            # 6 - 1 held out - 4 taken by the quirk
    assert s.val_counts[95:].tolist() == [5, 0, 0, 0, 0]
    labels, _ = decode(s.val.images[s.val.labels == 95])
    assert (labels == 95).all()


def test_stratified_holdout_is_per_class_without_the_quirk(cifar):
    s = Scenario(cifar, order="lt", imbalance=100, base=5, tasks=20, val_fraction=0.1, holdout="stratified", seed=0)
    assert s.train_counts.tolist() == [CIFAR100_LT_AFTER_VAL[label] for label in ICARL_ORDER]
    assert len(s.train) == 9758 and len(s.train) + len(s.val) == 10847
    assert [len(t.train_indices) for t in s.tasks][:3] == [527, 63, 505]
    labels, _ = decode(s.val.images)
    assert (ICARL_ORDER_ARRAY[s.val.labels] == labels).all()           # every held-out image is of its own class


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
    assert table.task.tolist()[:51] == [0] * 50 + [1]
    # a plain cifar100 configuration is the official protocol: the 10 % hold-out drawn as the DGR loader does
    assert (cfg.holdout_fraction, cfg.holdout, cfg.augmentation) == (0.1, "official", "resized_crop")
    assert table.train_count.sum() == 9755 and table.train_count.sum() + table.val_count.sum() == 10847
    no_holdout = Scenario.from_config(RunConfig(scenario="cifar100", data_root=str(fake_cifar_root), split="lfh",
                                                val_fraction=0.0).validate())
    assert no_holdout.train_counts.sum() == 10847


def test_offline_scenarios_build(tmp_path):
    assert set(list_scenarios()) == {"fashion_mnist", "cifar100", "imagenet_subset", "food101", "imagenet1k", "digits",
                                     "synthetic", "image_folder", "arrays"}
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


def test_official_holdout_that_empties_a_class_fails_before_training(cifar):
    """With 20 -> 5 images per class, the quirk can take every image of a task's first class."""
    with pytest.raises(ValueError, match=r"leaves class position\(s\) \[\d+.*without training images.*'stratified'"):
        Scenario(cifar, order="ltio", imbalance=4, max_per_class=20, base=50, tasks=11, val_fraction=0.1)
    ok = Scenario(cifar, order="ltio", imbalance=4, max_per_class=20, base=50, tasks=11, val_fraction=0.1,
                  holdout="stratified")
    assert ok.train_counts.min() >= 1
