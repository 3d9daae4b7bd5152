"""The results tables (main table, ablation, imbalanced forgetting, Fig. 5 settled): the verdict rules on the new
claims, one tiny regeneration end to end (files, seed columns, README numbers equal to the CSVs), the command
line, and the committed results: every method learns, and the committed README says what the committed CSVs say."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gradlab.analysis import claims as C
from gradlab.analysis.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Stat
from gradlab.errors import ConfigError
from gradlab.experiments import paper_tables as PT
from gradlab.experiments.tables_readme import stat_table, table_verdicts

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "figures" / "tables"


def summary(values: dict, setting: str = "lt · LFS") -> pd.DataFrame:
    """A per-seed summary table from {label: [aia per seed]}."""
    return pd.DataFrame([{"setting": setting, "label": label, "seed": seed, "average_incremental_accuracy": v}
                         for label, vs in values.items() for seed, v in enumerate(vs)])


# ---------------------------------------------------------------------------------------------- verdict rules
@pytest.mark.parametrize("values, expected", [
    ({"DGR": [0.70, 0.71, 0.72], "CE": [0.50, 0.51, 0.52], "WA": [0.60, 0.61, 0.62]}, REPRODUCED),
    ({"DGR": [0.70, 0.71, 0.72], "CE": [0.50, 0.51, 0.52], "WA": [0.69, 0.72, 0.75]}, INCONCLUSIVE),
    ({"DGR": [0.70, 0.71, 0.72], "CE": [0.80, 0.81, 0.82], "WA": [0.60, 0.61, 0.62]}, NOT_REPRODUCED),
])
def test_dgr_best_verdict_follows_the_interval_rule(values, expected):
    (row,) = C.best_method_verdicts(summary(values))
    assert row.verdict == expected and row.figure == "Table 1, lt · LFS"
    assert "DGR 71.0 ± 1.0 %" in row.ours


def test_ablation_verdicts_compare_each_step_with_the_one_before():
    table = pd.concat([summary({"CE": [0.5, 0.51], "+ GR": [0.6, 0.61], "+ DGR": [0.55, 0.56]}),
                       summary({"CE": [0.5, 0.6], "+ GR": [0.55, 0.62], "+ DGR": [0.7, 0.71]}, "ltio · LFS")])
    rows = C.ablation_verdicts(table, ["CE", "+ GR", "+ DGR"])
    assert [(r.figure, r.verdict) for r in rows] == [
        ("Ablation, lt · LFS", REPRODUCED), ("Ablation, lt · LFS", NOT_REPRODUCED),
        ("Ablation, ltio · LFS", INCONCLUSIVE), ("Ablation, ltio · LFS", REPRODUCED)]
    assert "(+10.0 points)" in rows[0].ours and "(-5.0 points)" in rows[1].ours


def forgetting_rows(label: str, slope: float, many: float, seeds=(0, 1, 2)) -> list[dict]:
    counts = [1000, 599, 359, 215, 129, 77, 46, 27]
    groups = ["many"] * 5 + ["medium"] * 3
    rows = []
    for seed in seeds:
        for c, (n, g) in enumerate(zip(counts, groups)):
            base = many if g == "many" else 0.1
            rows.append({"setting": "lt · LFS", "label": label, "seed": seed, "class": c, "train_count": n,
                         "shot_group": g, "forgetting": base + slope * np.log(n) + 0.001 * seed})
    return rows


def test_forgetting_verdicts_read_the_rank_correlation_and_the_head_classes():
    table = pd.DataFrame(forgetting_rows("CE", 0.05, 0.6) + forgetting_rows("KD", 0.02, 0.5)
                         + forgetting_rows("DGR + KD", 0.0, 0.4) + forgetting_rows("DGR + DAKD", 0.0, 0.2))
    rich, dakd = C.forgetting_verdicts(table)
    assert rich.verdict == REPRODUCED and "CE: ρ(count, forgetting) 1.00 ± 0.00" in rich.ours
    assert dakd.verdict == REPRODUCED and "DGR + DAKD" in dakd.ours
    flipped = table.assign(forgetting=np.where(table["label"] == "CE", -table["forgetting"], table["forgetting"]))
    assert C.forgetting_verdicts(flipped)[0].verdict == NOT_REPRODUCED


def test_stat_table_marks_the_best_and_the_overlapping():
    stats = {"s": {"A": Stat(0.70, 0.01, 3), "B": Stat(0.69, 0.02, 3), "C": Stat(0.50, 0.01, 3)}}
    lines = stat_table(stats, ["s"], ["A", "B", "C"])
    assert lines[2:] == ["| A | **70.0 ± 1.0** |", "| B | 69.0 ± 2.0 ≈ |", "| C | 50.0 ± 1.0 |"]
    lower = stat_table(stats, ["s"], ["A", "B", "C"], lower_is_better=True)      # forgetting: the least is best
    assert lower[2:] == ["| A | 70.0 ± 1.0 |", "| B | 69.0 ± 2.0 |", "| C | **50.0 ± 1.0** |"]


def test_bad_table_requests_are_one_line():
    with pytest.raises(ConfigError, match=r"methods: \['XYZ'\] not allowed"):
        PT.table_plan("table1", methods=["XYZ"])
    with pytest.raises(ConfigError, match="table must be one of"):
        PT.table_plan("table9")
    with pytest.raises(ConfigError, match=r"only: \['fig2'\] are not tables"):
        PT.make_tables(only=["fig2"])


def test_learning_from_half_is_five_plus_five_single_classes():
    plan = PT.table_plan("table1", methods=["DGR"], settings=["ltio · LFH"], seeds=[0])
    cfg = plan[("ltio · LFH", "DGR")][0]
    assert (cfg.base, cfg.tasks, cfg.order, cfg.max_per_class, cfg.epochs) == (5, 6, "ltio", 1000, 20)


def test_tables_share_the_runs_of_make_figures():
    from gradlab.experiments.paper_figures import figure_plan
    from gradlab.runs.executor import run_key

    figures = {run_key(cfg) for name in ("fig2", "fig5") for runs in figure_plan(name).values() for cfg in runs.values()}
    ablation = PT.table_plan("ablation", settings=["lt · LFS"])
    shared = [label for (_, label), runs in ablation.items() if run_key(runs[0]) in figures]
    assert shared == ["CE", "+ DGR (decoupled inter-phase)", "+ logit KD", "DAKD instead of KD"]


# ---------------------------------------------------------------------------------------------- end to end
def readme_cells(text: str, title: str) -> dict:
    """{(label, column): "mean ± std"} of the first Markdown table after ``title``."""
    block = text[text.index(title):]
    table = next(part for part in block.split("\n\n") if part.startswith("|"))
    lines = table.splitlines()
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    cells = {}
    for line in lines[2:]:
        parts = [c.strip() for c in line.strip("|").split("|")]
        for col, cell in zip(head[1:], parts[1:]):
            cells[(parts[0], col)] = cell.replace("*", "").replace(" ≈", "")
    return cells


def check_readme_against_csvs(folder: Path) -> None:
    text = (folder / "README.md").read_text()
    for name in ("table1", "ablation"):
        table = pd.read_csv(folder / f"{name}.csv")
        assert "seed" in table.columns
        cells = readme_cells(text, f"(`{name}`)")
        stats = C.method_stats(table)
        assert len(cells) == sum(len(v) for v in stats.values())
        for setting, by_label in stats.items():
            for label, stat in by_label.items():
                assert cells[(label, setting)] == stat.text(100, 1), (name, label, setting)
    rows = table_verdicts({name: pd.read_csv(folder / f"{name}.csv") for name in PT.TABLES})
    for row in rows:
        assert f"| {row.figure} | {row.claim} | {row.ours} | **{row.verdict}** |" in text


def test_tiny_tables_regenerate_with_readme_numbers_from_the_csvs(tmp_path):
    written = PT.make_tables(out=tmp_path / "out", scenario="digits", cache_dir=tmp_path / "cache", seeds=[0, 1],
                             methods=["CE (finetune + memory)", "WA", "DGR"], settings=["lt · LFS", "ltio · LFH"],
                             workers=1, epochs=1)
    assert set(written) == {*PT.TABLES, "README"}
    for name in PT.TABLES:
        assert [p.suffix for p in written[name]] == [".png", ".pdf", ".csv"] and all(p.stat().st_size for p in written[name])
    table1 = pd.read_csv(tmp_path / "out" / "table1.csv")
    assert sorted(table1["seed"].unique()) == [0, 1] and set(table1["setting"]) == {"lt · LFS", "ltio · LFH"}
    assert len(table1) == 3 * 2 * 2
    fig5 = pd.read_csv(tmp_path / "out" / "fig5_settled.csv")
    assert sorted(fig5["epochs"].unique()) == [1, 2] and sorted(fig5["seed"].unique()) == list(PT.FIG5_SEEDS)
    forgetting = pd.read_csv(tmp_path / "out" / "imbalanced_forgetting.csv")
    assert set(forgetting["label"]) == set(PT.FORGETTING_METHODS) and {"train_count", "forgetting"} <= set(forgetting)
    check_readme_against_csvs(tmp_path / "out")
    again = PT.make_tables(out=tmp_path / "again", scenario="digits", cache_dir=tmp_path / "cache", seeds=[0, 1],
                           methods=["CE (finetune + memory)", "WA", "DGR"], settings=["lt · LFS", "ltio · LFH"],
                           workers=1, epochs=1)
    for name in PT.TABLES:                      # from the cache: the same bytes
        assert again[name][2].read_bytes() == written[name][2].read_bytes()
    assert "0 trained here and" in (tmp_path / "again" / "README.md").read_text()


def test_the_command_line_writes_one_table(tmp_path):
    done = subprocess.run([sys.executable, "-m", "gradlab", "figures", "--tables", "--quick", "--only", "ablation", "--scenario",
                           "digits", "--seeds", "0", "--epochs", "1", "--workers", "1", "--out", str(tmp_path / "f"),
                           "--cache", str(tmp_path / "cache"), "--quiet"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    table = pd.read_csv(tmp_path / "f" / "tables" / "ablation.csv")
    assert set(table["label"]) == set(PT.ABLATION_STEPS) and len(table) == 5 * 4
    assert re.search(r"ablation: .*ablation\.png", done.stdout)


# ---------------------------------------------------------------------------------------------- committed results
def test_committed_tables_learn_and_their_readme_says_what_the_csvs_say():
    table1 = pd.read_csv(COMMITTED / "table1.csv")
    assert set(table1["label"]) == set(PT.TABLE1_METHODS) and set(table1["setting"]) == set(PT.SETTINGS)
    assert sorted(table1["seed"].unique()) == [0, 1, 2]
    means = table1.groupby(["setting", "label"])["average_incremental_accuracy"].mean()
    assert (means > 0.30).all(), means[means <= 0.30]
    check_readme_against_csvs(COMMITTED)


def test_project_readme_shows_the_committed_tables():
    """The README's results-table block is the one the committed CSVs give."""
    from gradlab.experiments.tables_readme import results_block

    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- tables:begin -->\n")[1].split("\n<!-- tables:end -->")[0].strip()
    data = {name: pd.read_csv(COMMITTED / f"{name}.csv") for name in PT.TABLES}
    assert block == results_block(data)
