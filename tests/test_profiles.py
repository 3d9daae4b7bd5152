"""Long-tail counts, class orders and task splits against the numbers of the official protocol (docs/protocols/cifar100_lt.md)."""
import numpy as np
import pytest

from gradlab.data.holdout import holdout_counts
from gradlab.data.profiles import class_order, long_tail_counts, task_sizes

# docs/protocols/cifar100_lt.md: CIFAR-100-LT (rho = 100) counts by ORIGINAL label
CIFAR100_LT = [int(v) for v in """500 477 455 434 415 396 378 361 344 328 314 299 286 273 260 248 237 226 216 206
197 188 179 171 163 156 149 142 135 129 123 118 112 107 102 98 93 89 85 81 77 74 70 67 64 61 58 56 53 51 48 46
44 42 40 38 36 35 33 32 30 29 27 26 25 24 23 22 21 20 19 18 17 16 15 15 14 13 13 12 12 11 11 10 10 9 9 8 8 7 7 7
6 6 6 6 5 5 5 5""".split()]
# after the 10 % validation hold-out (same section)
CIFAR100_LT_AFTER_VAL = [int(v) for v in """450 429 409 391 373 356 340 325 310 295 283 269 257 246 234 223 213 203 194
185 177 169 161 154 147 140 134 128 121 116 111 106 101 96 92 88 84 80 77 73 69 67 63 60 58 55 52 50 48 46 43 41
40 38 36 34 32 31 30 29 27 26 24 23 23 22 21 20 19 18 17 16 15 14 13 13 13 12 12 11 11 10 10 9 9 8 8 7 7 6 6 6 5
5 5 5 5 5 5 5""".split()]
ICARL_ORDER = [int(v) for v in """68 56 78 8 23 84 90 65 74 76 40 89 3 92 55 9 26 80 43 38 58 70 77 1 85 19 17 50 28
53 13 81 45 82 6 59 83 16 15 44 91 41 72 60 79 52 20 10 31 54 37 95 14 71 96 98 97 2 64 66 42 22 35 86 24 34 87 21
99 0 88 27 18 94 11 12 47 25 30 46 62 69 36 61 7 63 75 5 32 4 51 48 73 93 39 67 29 49 57 33""".split()]


def test_cifar100_lt_counts_match_official_list():
    counts = long_tail_counts(500, 100, 100)
    assert counts.tolist() == CIFAR100_LT
    assert counts.sum() == 10847


def test_validation_holdout_gives_official_post_split_counts():
    counts = np.array(CIFAR100_LT)
    after = counts - holdout_counts(counts, 0.1)
    assert after.tolist() == CIFAR100_LT_AFTER_VAL
    assert after.sum() == 9758
    assert holdout_counts([5, 15, 25], 0.1).tolist() == [0, 2, 2]  # numpy rounds half to even


def test_balanced_and_step_profiles():
    assert long_tail_counts(500, 100, 1).tolist() == [500] * 100
    step = long_tail_counts(500, 10, 10, "step")
    assert step.tolist() == [500] * 5 + [50] * 5
    with pytest.raises(ValueError, match="imbalance"):
        long_tail_counts(500, 100, 0.5)
    with pytest.raises(ValueError, match="profile"):
        long_tail_counts(500, 100, 10, "linear")


def test_orders():
    assert class_order("lt", 100).tolist() == ICARL_ORDER
    assert class_order("conv", 100).tolist() == ICARL_ORDER
    assert class_order("ltio", 100).tolist() == list(range(100))
    seeded = class_order("seeded", 100, seed=3)
    assert sorted(seeded.tolist()) == list(range(100))
    assert seeded.tolist() != class_order("seeded", 100, seed=4).tolist()
    assert class_order("seeded", 100, seed=3).tolist() == seeded.tolist()


def test_task_splits_spread_the_remainder():
    assert task_sizes(100, 20, 5) == [5] + [5] * 19          # LFS
    assert task_sizes(100, 6, 50) == [50] + [10] * 5          # LFH
    assert task_sizes(101, 6, 50) == [50, 11, 10, 10, 10, 10]  # Food101 with 50 base (specs §1.1)
    assert task_sizes(100, 3, 10) == [10, 45, 45]
    assert task_sizes(10, 3) == [4, 3, 3]
    assert task_sizes(100, 1, 100) == [100]
    for bad in [(100, 101, None), (100, 3, 100), (100, 3, 0), (100, 60, 50)]:
        with pytest.raises(ValueError):
            task_sizes(*bad)
