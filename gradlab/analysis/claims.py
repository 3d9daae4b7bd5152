"""Verdicts on the claims the DGR paper is built on (He & Zhu, CVPR 2024), from the per-seed tables of the
results tables (:mod:`gradlab.experiments.paper_tables`), by the rules of :mod:`gradlab.analysis.verdicts`
(reproduced / not reproduced / inconclusive from mean ± std intervals over seeds):

- the main results table: DGR has the highest average incremental accuracy, per setting;
- the ablation: each added part raises the average incremental accuracy, per step and setting;
- imbalanced forgetting: classes with more training images forget more under CE and under KD, and DAKD lowers
  the head (many-shot) classes' forgetting against plain KD, per setting.

Pure functions of the CSV tables: the README's verdicts can be recomputed from them alone.
"""
from __future__ import annotations

from itertools import pairwise

import pandas as pd

from gradlab.analysis.seeds import spearman
from gradlab.analysis.verdicts import Stat, Verdict, above, below, fig5_verdict, verdict

AIA = "average_incremental_accuracy"


def method_stats(table: pd.DataFrame, metric: str = AIA) -> dict[str, dict[str, Stat]]:
    """{setting: {label: Stat of ``metric`` over seeds}} from a per-seed summary table."""
    out: dict = {}
    for (setting, label), part in table.groupby(["setting", "label"], sort=False):
        out.setdefault(str(setting), {})[str(label)] = Stat.of(part[metric])
    return out


def best_method_verdicts(table: pd.DataFrame, ours: str = "DGR", metric: str = AIA) -> list[Verdict]:
    """Per setting: ``ours`` has the highest mean ``metric``, its interval above every other method's."""
    rows = []
    for setting, stats in method_stats(table, metric).items():
        if ours not in stats:
            continue
        best = max(stats, key=lambda label: stats[label].mean)
        rivals = [label for label in stats if label != ours]
        close = [label for label in rivals if above(stats[ours], stats[label]) != "yes"]
        text = (f"{ours} {stats[ours].text(100, 1, ' %')}; best mean: {best} {stats[best].text(100, 1, ' %')}; "
                + (f"within the spread of {ours} or above it: {', '.join(close)}" if close
                   else f"every other method's interval lies below {ours}'s"))
        rows.append(Verdict(f"Table 1, {setting}", f"{ours} has the highest average incremental accuracy of all "
                            "compared methods.", text, verdict(above(stats[ours], stats[r]) for r in rivals)))
    return rows


def ablation_verdicts(table: pd.DataFrame, steps, metric: str = AIA) -> list[Verdict]:
    """Per setting and step: the step's mean ``metric`` lies above the previous step's (intervals apart)."""
    steps = list(steps)
    rows = []
    for setting, stats in method_stats(table, metric).items():
        present = [s for s in steps if s in stats]
        for previous, step in pairwise(present):
            gap = 100 * (stats[step].mean - stats[previous].mean)
            rows.append(Verdict(f"Ablation, {setting}", f"{step} adds accuracy to {previous}.",
                                f"{previous} {stats[previous].text(100, 1, ' %')} → {step} {stats[step].text(100, 1, ' %')} "
                                f"({gap:+.1f} points)", verdict([above(stats[step], stats[previous])])))
    return rows


def forgetting_stats(table: pd.DataFrame) -> dict[str, dict[str, dict]]:
    """{setting: {label: {"spearman": Stat of ρ(training count, forgetting) over seeds, "many" / "medium" /
    "few": Stat of the group's mean forgetting over seeds}}} from per-seed, per-class forgetting rows."""
    out: dict = {}
    for (setting, label), part in table.groupby(["setting", "label"], sort=False):
        runs = list(part.groupby("seed"))
        stats = {"spearman": Stat.of(spearman(run["train_count"], run["forgetting"]) for _, run in runs)}
        for group in ("many", "medium", "few"):
            stats[group] = Stat.of(run[run["shot_group"] == group]["forgetting"].mean() for _, run in runs)
        out.setdefault(str(setting), {})[str(label)] = stats
    return out


def forgetting_verdicts(table: pd.DataFrame, rich=("CE", "KD"), ours: str = "DGR + DAKD",
                        baseline: str = "DGR + KD") -> list[Verdict]:
    """Per setting: ρ(training count, forgetting) > 0 under each of ``rich``; and ``ours`` forgets less of the
    many-shot classes than ``baseline``."""
    rows = []
    for setting, by_label in forgetting_stats(table).items():
        present = [label for label in rich if label in by_label]
        if present:
            text = "; ".join(f"{label}: ρ(count, forgetting) {by_label[label]['spearman'].text()}, many-shot "
                             f"{by_label[label]['many'].text(100, 1, ' %')}, few-shot {by_label[label]['few'].text(100, 1, ' %')}"
                             for label in present)
            rows.append(Verdict(f"Forgetting, {setting}", f"Instance-rich classes forget more under "
                                f"{' and '.join(present)}.", text,
                                verdict(above(by_label[label]["spearman"], 0.0) for label in present)))
        if ours in by_label and baseline in by_label:
            a, b = by_label[ours]["many"], by_label[baseline]["many"]
            rows.append(Verdict(f"Forgetting, {setting}", f"DAKD lowers the head (many-shot) classes' forgetting "
                                f"against plain KD ({ours} vs {baseline}).",
                                f"many-shot forgetting: {ours} {a.text(100, 1, ' %')}, {baseline} {b.text(100, 1, ' %')}",
                                verdict([below(a, b)])))
    return rows


def fig5_settled_verdicts(table: pd.DataFrame) -> list[Verdict]:
    """Figure 5's verdict once per training length (``epochs`` column of the ``fig5_settled`` table)."""
    rows = []
    for epochs, part in table.groupby("epochs"):
        row = fig5_verdict(part.drop(columns="epochs"))
        rows.append(Verdict(f"Fig. 5, {epochs} epochs ({part['seed'].nunique()} seeds)", row.claim, row.ours,
                            row.verdict))
    return rows
