"""Seed aggregation of the figure tables and the verdict rules, on tables built by hand."""
import numpy as np
import pandas as pd
import pytest

from gradlab.analysis import tables
from gradlab.analysis import verdicts as V
from gradlab.analysis.seeds import mean_std, spearman


def test_aggregate_mean_std_and_count_over_seeds():
    table = pd.DataFrame({"label": ["a", "a", "a", "b", "b"], "phase": [1, 1, 1, 1, 1], "seed": [0, 1, 2, 0, 1],
                          "x": [1.0, 2.0, 6.0, 4.0, 4.0], "y": [0.0, 0.0, 3.0, 1.0, 3.0]})
    agg = mean_std(table, ["label", "phase"], ["x", "y"])
    assert list(agg.columns) == ["label", "phase", "x_mean", "x_std", "y_mean", "y_std", "n"]
    a, b = agg.iloc[0], agg.iloc[1]
    assert (a.label, a.x_mean, a.y_mean, a.n) == ("a", 3.0, 1.0, 3)
    assert a.x_std == pytest.approx(np.std([1, 2, 6], ddof=1)) and b.y_std == pytest.approx(np.sqrt(2))
    single = mean_std(table[table.seed == 0], ["label"], ["x"])
    assert single.n.tolist() == [1, 1] and single.x_std.isna().all()         # one seed: no spread
    with pytest.raises(ValueError, match="lacks columns"):
        mean_std(table, ["label"], ["z"])


def test_a_table_without_seeds_is_one_seed_and_keeps_its_other_columns():
    table = pd.DataFrame({"label": ["a", "b"], "phase": [0, 0], "note": ["x", "y"], "x": [1, 2]})
    one = mean_std(table, ["label"], ["x"])
    assert one.x_mean.tolist() == [1.0, 2.0] and one.x_std.isna().all() and one.n.tolist() == [1, 1]
    assert one.note.tolist() == ["x", "y"] and "x" not in one.columns


def test_spearman_ranks_and_is_nan_when_undefined():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3, 4], [1, 1, 2, 2]) == pytest.approx(np.corrcoef([1, 2, 3, 4], [1.5, 1.5, 3.5, 3.5])[0, 1])
    assert np.isnan(spearman([1, 2], [1, 2])) and np.isnan(spearman([1, 2, 3], [5, 5, 5]))
    assert spearman([1, 2, np.nan, 3, 4], [1, 2, 9, 3, 4]) == pytest.approx(1.0)       # NaN pairs left out


def test_per_seed_stacks_single_seed_tables():
    def builder(records):
        return pd.DataFrame({"label": list(records), "value": [float(v) for v in records.values()]})

    stacked = tables.per_seed(builder, {0: {"a": 1, "b": 2}, 5: {"a": 3, "b": 4}})
    assert list(stacked.columns) == ["label", "seed", "value"]
    assert stacked.seed.tolist() == [0, 0, 5, 5] and stacked.value.tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="non-empty"):
        tables.per_seed(builder, {})


def test_stat_and_interval_rules():
    s = V.Stat.of([1.0, 2.0, 3.0])
    assert (s.mean, s.std, s.n) == (2.0, 1.0, 3) and (s.low, s.high) == (1.0, 3.0)
    assert V.Stat.of([4.0]).std == 0.0 and V.Stat.of([np.nan, 1.0]).n == 1
    assert V.above(s, 0.5) == V.YES and V.above(s, 3.5) == V.NO and V.above(s, 2.5) == V.UNSURE
    assert V.below(V.Stat.of([0.1, 0.2]), V.Stat.of([0.5, 0.6])) == V.YES
    assert V.verdict([V.YES, V.YES]) == V.REPRODUCED
    assert V.verdict([V.YES, V.UNSURE]) == V.INCONCLUSIVE
    assert V.verdict([V.UNSURE, V.NO]) == V.NOT_REPRODUCED and V.verdict([]) == V.INCONCLUSIVE
    assert s.text(100, 1, " %") == "200.0 ± 100.0 %"


def _fig2_table(new_values, old_scale):
    """Two seeds, two phases; phase 1 has old classes 0, 1 and new classes 2, 3."""
    rows = []
    counts = {0: 100, 1: 10, 2: 200, 3: 20}
    for seed in (0, 1):
        for phase in (0, 1):
            for cls in range(2 * phase + 2):
                group = "new" if cls // 2 == phase else "old"
                value = new_values[cls] * (old_scale if group == "old" else 1.0) * (1 + 0.01 * seed)
                rows.append({"seed": seed, "phase": phase, "class": cls, "task": cls // 2, "train_count": counts[cls],
                             "group": group, "rank": cls % 2, "value": value})
    return pd.DataFrame(rows)


def test_fig2_verdict_follows_the_numbers():
    grows = {0: 0.9, 1: 0.2, 2: 1.0, 3: 0.3}             # more images -> larger gradient
    stats = V.fig2_stats(_fig2_table(grows, old_scale=0.1))
    assert stats["spearman"].mean == pytest.approx(1.0)              # counts 10 < 20 < 100 < 200 -> 0.2 < 0.3 < 0.9 < 1.0
    # phase 1: old (0.09, 0.02) mean 0.055 / new (1.0, 0.3) mean 0.65
    assert stats["old_new_ratio"].mean == pytest.approx(0.055 / 0.65)
    assert V.fig2_verdict(_fig2_table(grows, old_scale=0.1)).verdict == V.REPRODUCED
    shrinks = {0: 0.2, 1: 0.9, 2: 0.3, 3: 1.0}
    assert V.fig2_verdict(_fig2_table(shrinks, old_scale=0.1)).verdict == V.NOT_REPRODUCED
    assert V.fig2_verdict(_fig2_table(grows, old_scale=3.0)).verdict == V.NOT_REPRODUCED


def _fig5_table(forgetting: dict, aia: dict) -> pd.DataFrame:
    rows = []
    for label, per_seed in forgetting.items():
        for seed, value in enumerate(per_seed):
            for phase in (1, 2):
                rows.append({"label": label, "seed": seed, "phase": phase, "forgetting": value,
                             "accuracy": 0.5, "average_incremental_accuracy": aia[label][seed]})
    return pd.DataFrame(rows)


def test_fig5_verdict_reproduced_not_reproduced_inconclusive():
    good = _fig5_table({"KD": [0.30, 0.32], "DAKD": [0.10, 0.12]}, {"KD": [0.4, 0.42], "DAKD": [0.6, 0.62]})
    row = V.fig5_verdict(good)
    assert row.verdict == V.REPRODUCED and "lowest mean forgetting at 2 of 2 steps" in row.ours
    bad = _fig5_table({"KD": [0.10, 0.12], "DAKD": [0.30, 0.32]}, {"KD": [0.6, 0.62], "DAKD": [0.4, 0.42]})
    assert V.fig5_verdict(bad).verdict == V.NOT_REPRODUCED
    overlap = _fig5_table({"KD": [0.10, 0.30], "DAKD": [0.15, 0.25]}, {"KD": [0.4, 0.6], "DAKD": [0.45, 0.55]})
    assert V.fig5_verdict(overlap).verdict == V.INCONCLUSIVE
    with pytest.raises(ValueError, match="DAKD"):
        V.fig5_verdict(good[good.label == "KD"])


def test_weight_norm_verdicts():
    rows = []
    for seed in (0, 1):
        for label, norms in (("CE", [1.0, 1.1, 2.0, 2.2]), ("DGR", [1.0, 1.02, 1.01, 1.03]), ("WA", [1.0, 1.1, 1.3, 1.4])):
            for cls, norm in enumerate(norms):
                rows.append({"label": label, "seed": seed, "class": cls, "task": cls // 2, "train_count": 10 * (cls + 1),
                             "weight_norm": norm + 0.001 * seed, "bias_abs": np.nan})
    table = pd.DataFrame(rows)
    stats = V.weight_norm_stats(table)
    assert stats["CE"]["new_old_ratio"].mean == pytest.approx((2.1 + 0.001) / (1.05 + 0.001), rel=1e-3)
    assert stats["CE"]["spearman"].mean == pytest.approx(1.0)
    main, between = V.weight_norm_verdicts(table)
    assert main.verdict == V.REPRODUCED and between.verdict == V.REPRODUCED and "WA lie between" in between.claim
    flipped = table.assign(label=table.label.map({"CE": "DGR", "DGR": "CE", "WA": "WA"}))
    assert V.weight_norm_verdicts(flipped)[0].verdict == V.NOT_REPRODUCED


def test_fig4_verdict_per_setting():
    rows = []
    for factor, setting, gap in (("memory", 10, 0.1), ("imbalance", 10, 0.1)):
        for label, base in (("CE", 0.4), ("DGR", 0.4 + gap)):
            for seed in (0, 1):
                for phase in (0, 1):
                    rows.append({"label": label, "method": label.lower(), "factor": factor, "setting": setting,
                                 "seed": seed, "phase": phase, "acc_all_seen": base, "acc_task_mean": base,
                                 "average_incremental_accuracy": base + 0.01 * seed})
    table = pd.DataFrame(rows)
    row = V.fig4_verdict(table)
    assert row.verdict == V.REPRODUCED and "memory 10: DGR 50.5 ± 0.7 vs CE 40.5 ± 0.7" in row.ours
    table.loc[(table.factor == "imbalance") & (table.label == "DGR"), "average_incremental_accuracy"] = 0.3
    assert V.fig4_verdict(table).verdict == V.NOT_REPRODUCED
    assert "| Fig. 4 |" in V.markdown([row]) and "**reproduced**" in V.markdown([row])
