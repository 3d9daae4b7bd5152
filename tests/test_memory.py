"""Checks of gradlab.training.exemplars: herding by hand, budgets, reproducibility, state round trip."""

import numpy as np
import pytest
import torch

from gradlab.training.exemplars import ExemplarMemory, herding_order

# Five 2-D features; after L2 normalisation they are
#   f0 = (1, 0), f1 = (0, 1), f2 = (0.6, 0.8), f3 = (0.8, 0.6), f4 = (-1, 0)
# (f1, f3 and f4 are given unnormalised to check the normalisation).
HAND_FEATURES = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.6, 0.8], [8.0, 6.0], [-3.0, 0.0]])


def test_herding_hand_worked_example():
    # mu = ((1 + 0 + 0.6 + 0.8 - 1) / 5, (0 + 1 + 0.8 + 0.6 + 0) / 5) = (0.28, 0.48)
    # step 0, ||mu - f_i||^2:  f0 0.7488, f1 0.3488, f2 0.2048, f3 0.2848, f4 1.8688 -> pick 2; S = (0.6, 0.8)
    # step 1, candidate mean (S + f_i) / 2:
    #   f0 (0.8, 0.4) -> 0.2768;  f1 (0.3, 0.9) -> 0.1768;  f3 (0.7, 0.7) -> 0.2248;  f4 (-0.2, 0.4) -> 0.2368
    #   -> pick 1; S = (0.6, 1.8)
    # step 2, (S + f_i) / 3:
    #   f0 (0.5333, 0.6) -> 0.0786;  f3 (0.4667, 0.8) -> 0.1372;  f4 (-0.1333, 0.6) -> 0.1852  -> pick 0
    #   S = (1.6, 1.8)
    # step 3, (S + f_i) / 4:
    #   f3 (0.6, 0.6) -> 0.1168;  f4 (0.15, 0.45) -> 0.0178  -> pick 4 (the far point balances the mean)
    # step 4: only 3 is left.
    # Note: "closest to the mean" alone would give [2, 3, 1, 0, 4].
    order = herding_order(HAND_FEATURES, 5)
    assert order.dtype == torch.long
    assert order.tolist() == [2, 1, 0, 4, 3]
    assert herding_order(HAND_FEATURES, 3).tolist() == [2, 1, 0]


def test_herding_m_larger_than_n_and_zero():
    order = herding_order(HAND_FEATURES, 50)
    assert sorted(order.tolist()) == [0, 1, 2, 3, 4]
    assert herding_order(HAND_FEATURES, 0).numel() == 0
    with pytest.raises(ValueError, match="m must"):
        herding_order(HAND_FEATURES, -1)
    with pytest.raises(ValueError, match="features"):
        herding_order(torch.zeros(5), 2)


def test_herding_ties_go_to_lowest_index():
    # rows 0 and 1 are identical; mu = (2/3, 1/3). step 0: rows 0 and 1 tie -> 0.
    # step 1: row 1 gives mean (1, 0), distance^2 = 2/9; row 2 gives (0.5, 0.5), distance^2 = 2/36 -> 2.
    feats = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    assert herding_order(feats, 3).tolist() == [0, 2, 1]


def test_herding_first_pick_is_closest_to_mean():
    feats = torch.randn(200, 16, generator=torch.Generator().manual_seed(0))
    f = torch.nn.functional.normalize(feats.double(), dim=1)
    closest = torch.argmin(torch.linalg.vector_norm(f - f.mean(0), dim=1)).item()
    assert herding_order(feats, 10)[0].item() == closest


def _features_from_table(table):
    calls = []

    def features_fn(idx):
        calls.append(np.asarray(idx).copy())
        return table[torch.as_tensor(idx)]

    return features_fn, calls


def test_memory_herding_per_class_budget():
    table = torch.randn(100, 8, generator=torch.Generator().manual_seed(1))
    features_fn, calls = _features_from_table(table)
    cands = {0: np.arange(0, 50), 1: np.arange(50, 57)}  # 50 and 7 candidates
    mem = ExemplarMemory(per_class=20)
    mem.update(cands, features_fn, phase=0)
    # min(20, 50) = 20 and min(20, 7) = 7
    assert mem.counts() == {0: 20, 1: 7}
    assert len(mem) == 27 and mem.classes == [0, 1]
    expected0 = cands[0][herding_order(table[:50], 20).numpy()]
    np.testing.assert_array_equal(mem.for_class(0), expected0)
    assert sorted(mem.for_class(1).tolist()) == list(range(50, 57))
    # indices(): class 0 first, then class 1, priority order kept
    idx = mem.indices()
    assert idx.dtype == np.int64
    np.testing.assert_array_equal(idx, np.concatenate([mem.for_class(0), mem.for_class(1)]))
    assert len(calls) == 2
    # the per-class memory grows; old classes are untouched
    mem.update({2: np.arange(57, 100)}, features_fn, phase=1)
    assert mem.counts() == {0: 20, 1: 7, 2: 20}
    np.testing.assert_array_equal(mem.for_class(0), expected0)


def test_memory_random_reproducible():
    cands = {3: np.arange(100), 5: np.arange(100, 200)}
    a = ExemplarMemory(per_class=20, selection="random", seed=0)
    b = ExemplarMemory(per_class=20, selection="random", seed=0)
    c = ExemplarMemory(per_class=20, selection="random", seed=1)
    for m in (a, b, c):
        m.update(cands, phase=2)
    np.testing.assert_array_equal(a.indices(), b.indices())
    assert not np.array_equal(a.indices(), c.indices())
    assert set(a.for_class(3).tolist()) <= set(range(100))
    assert len(set(a.for_class(5).tolist())) == 20  # no repeats


def test_total_budget_shrinks_old_classes_to_prefix():
    mem = ExemplarMemory(total=60, selection="random", seed=0)
    mem.update({0: np.arange(0, 50), 1: np.arange(50, 100)}, phase=0)
    # 60 // 2 = 30 each
    assert mem.counts() == {0: 30, 1: 30}
    before = {c: mem.for_class(c) for c in mem.classes}
    mem.update({2: np.arange(100, 150), 3: np.arange(150, 160)}, phase=1)
    # 60 // 4 = 15 each; class 3 has only 10 candidates
    assert mem.counts() == {0: 15, 1: 15, 2: 15, 3: 10}
    for c in (0, 1):
        np.testing.assert_array_equal(mem.for_class(c), before[c][:15])
    assert mem.budget_per_class() == 15


def test_zero_budget_means_no_memory():
    def never(idx):
        raise AssertionError("features_fn must not be called with budget 0")

    mem = ExemplarMemory(per_class=0)
    mem.update({0: np.arange(10), 1: np.arange(10, 20)}, never)
    assert len(mem) == 0
    assert mem.indices().dtype == np.int64 and mem.indices().size == 0
    assert mem.counts() == {0: 0, 1: 0}


def test_state_dict_round_trip(tmp_path):
    table = torch.randn(60, 4, generator=torch.Generator().manual_seed(2))
    features_fn, _ = _features_from_table(table)
    mem = ExemplarMemory(total=30, selection="herding", seed=7)
    mem.update({0: np.arange(30), 1: np.arange(30, 60)}, features_fn)
    path = tmp_path / "memory.pt"
    torch.save(mem.state_dict(), path)
    state = torch.load(path, weights_only=True)
    other = ExemplarMemory()
    other.load_state_dict(state)
    assert (other.total, other.selection, other.seed) == (30, "herding", 7)
    assert other.counts() == mem.counts()
    np.testing.assert_array_equal(other.indices(), mem.indices())
    for c in mem.classes:
        np.testing.assert_array_equal(other.for_class(c), mem.for_class(c))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"per_class": -1}, "per_class"),
        ({"per_class": 2.5}, "per_class"),
        ({"total": -5}, "total"),
        ({"selection": "kmeans"}, "selection"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ExemplarMemory(**kwargs)


def test_invalid_update_arguments():
    with pytest.raises(ValueError, match="herding.*random"):
        ExemplarMemory(selection="nme")
    mem = ExemplarMemory(per_class=5)
    with pytest.raises(ValueError, match="features_fn"):
        mem.update({0: np.arange(10)})
    mem = ExemplarMemory(per_class=5, selection="random")
    mem.update({0: np.arange(10)})
    with pytest.raises(ValueError, match="already in memory"):
        mem.update({0: np.arange(10, 20)}, phase=1)
    with pytest.raises(ValueError, match="phase"):
        mem.update({1: np.arange(10)}, phase=-1)
    with pytest.raises(ValueError, match="1-D integer"):
        mem.update({1: np.zeros((2, 2), dtype=np.int64)})
    with pytest.raises(KeyError):
        mem.for_class(9)
