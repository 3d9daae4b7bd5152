"""Findings: Markdown sentences *generated from the numbers a notebook computed*, never copied from the
paper (He & Zhu, "Gradient Reweighting: Towards Imbalanced Class-Incremental Learning", CVPR 2024):
which run forgot least and by how much, whether the newest task's rows grew, and whether that agrees
with the paper's claim (:mod:`gradlab.analysis.verdicts`). Each returns a :class:`Finding` that renders as
Markdown and keeps its numbers in ``numbers``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gradlab.analysis import verdicts as V
from gradlab.analysis.seeds import spearman


@dataclass
class Finding:
    """Markdown generated from computed numbers (``numbers``); renders as Markdown in a notebook."""

    text: str
    numbers: dict = field(default_factory=dict)

    def _repr_markdown_(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


def _fmt(stat: V.Stat, scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
    if stat.n <= 1:
        return f"{stat.mean * scale:.{digits}f}{unit}"
    return f"{stat.mean * scale:.{digits}f} ± {stat.std * scale:.{digits}f}{unit}"


def _seeds(n: int) -> str:
    if n <= 1:
        return "one seed, so no spread: treat every comparison as anecdotal"
    return f"mean ± std over {n} seeds"


def _apart(a: V.Stat, b: V.Stat | float) -> str:
    if min(a.n, b.n if isinstance(b, V.Stat) else 2) <= 1:
        return "one seed, no spread to judge it by"
    return ("the ± 1 std spreads do not overlap" if V.above(a, b) != V.UNSURE
            else "the ± 1 std spreads overlap, so within seed noise")


VERDICT_NOTE = ("reproduced = every comparison holds with the ± 1 std spreads apart; not reproduced = some "
                "comparison goes the other way with the spreads apart; inconclusive = otherwise")


def _verdict_lines(rows, n: int = 2) -> list[str]:
    lines = [""]
    for row in rows:
        note = VERDICT_NOTE if n > 1 else ("with one seed there is no spread, so the verdict only reads which way "
                                           "the means go: rerun with more seeds before trusting it")
        lines.append(f"**The paper reports:** {row.claim} **Verdict on these runs: {row.verdict}** ({note}).")
        lines.append("")
    return lines


#: With a single seed there is no spread to judge a correlation by: |ρ| below this reads "no clear relation".
SINGLE_RUN_RHO = 0.2


def _correlation(rho: V.Stat, positive: str, negative: str, neither: str) -> str:
    if rho.n <= 1 and not abs(rho.mean) >= SINGLE_RUN_RHO:
        return f"{neither} (|ρ| < {SINGLE_RUN_RHO} in a single run)"
    return _direction(rho, 0.0, positive, negative, neither)


def _direction(stat: V.Stat, threshold: float, above_word: str, below_word: str, neither: str) -> str:
    return {V.YES: above_word, V.NO: below_word, V.UNSURE: neither}[V.above(stat, threshold)]


def fig2_finding(table: pd.DataFrame) -> Finding:
    """What the per-seed Figure 2 table shows: Spearman's ρ(training count, gradient) over the new
    classes and the old / new ratio of mean gradients (:func:`verdicts.fig2_stats`), and the verdict."""
    table = table if "seed" in table.columns else table.assign(seed=0)
    s = V.fig2_stats(table)
    rho, ratio = s["spearman"], s["old_new_ratio"]
    n = rho.n
    lines = [f"**What these runs show** ({_seeds(n)}):", ""]
    lines.append(f"- Spearman's ρ between a new class's training count and its mean CE row gradient: "
                 f"**{_fmt(rho)}**: " + _correlation(rho, "classes with more images get larger gradients",
                                                   "classes with more images get smaller gradients",
                                                   "no clear ordering by training count") + ".")
    if np.isfinite(ratio.mean):
        lines.append(f"- Old classes' mean gradient / new classes', averaged over the incremental phases: "
                     f"**{_fmt(ratio)}**: " + _direction(ratio, 1.0, "old classes get larger gradients than new ones",
                                                         "old classes get smaller gradients than new ones",
                                                         "not clearly different from the new ones") + ".")
    lines += _verdict_lines([V.fig2_verdict(table)], n)
    return Finding("\n".join(lines), {"spearman": rho, "old_new_ratio": ratio})


def fig5_finding(table: pd.DataFrame, ours: str = "DAKD", baseline: str = "KD", verdict: bool = True) -> Finding:
    """What a (per-seed) forgetting table shows: the run that forgot least and most (forgetting averaged
    over the incremental steps, :func:`verdicts.fig5_stats`), ``ours`` against ``baseline`` and by how
    much, the best average incremental accuracy; with ``verdict`` the paper's Figure 5 claim and its
    verdict (:func:`verdicts.fig5_verdict`)."""
    table = table if "seed" in table.columns else table.assign(seed=0)
    s = V.fig5_stats(table)
    forgetting = {label: v["forgetting"] for label, v in s.items()}
    aia = {label: v["aia"] for label, v in s.items()}
    n = max(stat.n for stat in forgetting.values())
    steps = int(table["phase"].nunique())
    lowest = min(forgetting, key=lambda label: forgetting[label].mean)
    highest = max(forgetting, key=lambda label: forgetting[label].mean)
    best = max(aia, key=lambda label: aia[label].mean)
    lines = [f"**What these runs show** (forgetting averaged over the {steps} incremental steps; {_seeds(n)}):", ""]
    ranked = sorted(forgetting, key=lambda label: forgetting[label].mean)
    runner_up = ranked[1] if len(ranked) > 1 else None
    ahead = (f" ({100 * (forgetting[runner_up].mean - forgetting[lowest].mean):.1f} points below the next lowest, "
             f"{runner_up}; {_apart(forgetting[lowest], forgetting[runner_up])})" if runner_up else "")
    lines.append(f"- lowest forgetting: **{lowest}**, {_fmt(forgetting[lowest], 100, 1, ' %')}{ahead}; "
                 f"highest: **{highest}**, {_fmt(forgetting[highest], 100, 1, ' %')}.")
    numbers = {"forgetting": forgetting, "aia": aia, "lowest": lowest, "highest": highest, "best_accuracy": best}
    if ours in forgetting and baseline in forgetting:
        a, b = forgetting[ours], forgetting[baseline]
        gap = round(100 * (a.mean - b.mean), 1)
        detail = (f"({ours} {_fmt(a, 100, 1, ' %')}, {baseline} {_fmt(b, 100, 1, ' %')}; {_apart(a, b)})")
        if gap == 0:
            lines.append(f"- {ours} forgot the same as {baseline} on average {detail}.")
        else:
            lines.append(f"- {ours} forgot {abs(gap):.1f} percentage points {'more' if gap > 0 else 'less'} "
                         f"than {baseline} {detail}.")
        numbers["gap_points"] = gap
    lines.append(f"- highest average incremental accuracy: **{best}**, {_fmt(aia[best], 100, 1, ' %')}.")
    if verdict:
        lines += _verdict_lines([V.fig5_verdict(table, ours)], n)
    return Finding("\n".join(lines), numbers)


def weight_norm_finding(table: pd.DataFrame) -> Finding:
    """What the (per-seed) weight-norm table shows, per run: the newest task's mean row norm over the
    earlier tasks', Spearman's ρ(training count, norm) and the spread (CV) of the norms
    (:func:`verdicts.weight_norm_stats`); the paper's claims and verdicts."""
    table = table if "seed" in table.columns else table.assign(seed=0)
    s = V.weight_norm_stats(table)
    n = max(v["new_old_ratio"].n for v in s.values())
    lines = [f"**What these runs show** (after the last phase; {_seeds(n)}):", ""]
    for label, v in s.items():
        ratio, rho = v["new_old_ratio"], v["spearman"]
        lines.append(f"- Under **{label}** the newest task's rows average **{_fmt(ratio)} ×** the rows of the "
                     f"earlier tasks: " + _direction(ratio, 1.0, "larger", "smaller",
                                                     "neither clearly larger nor smaller") +
                     f"; ρ(training count, row norm) {_fmt(rho)}: " +
                     _correlation(rho, "head classes have larger rows", "head classes have smaller rows",
                                "no clear ordering by training count") + ".")
    cv = {label: v["cv"] for label, v in s.items()}
    level = min(cv, key=lambda label: cv[label].mean)
    lines.append("- Spread of the row norms (CV = std / mean, lower = more level): "
                 + ", ".join(f"{label} {_fmt(stat)}" for label, stat in cv.items())
                 + f"; the most level rows: **{level}**.")
    rows = V.weight_norm_verdicts(table) if {"CE", "DGR"} <= set(s) else []
    lines += _verdict_lines(rows, n)
    return Finding("\n".join(lines), {"stats": s, "most_level": level})


def forgetting_count_finding(table: pd.DataFrame) -> Finding:
    """Do head classes forget more? From :func:`tables.class_forgetting` rows (with ``label`` and
    optionally ``seed`` columns): per label Spearman's ρ(training count, forgetting) and the mean
    forgetting per shot group (many / medium / few)."""
    table = table if "label" in table.columns else table.assign(label="run")
    table = table if "seed" in table.columns else table.assign(seed=0)
    lines, numbers = [], {}
    n = int(table.groupby("label")["seed"].nunique().max())
    lines.append(f"**What these runs show** (each old class after the last phase; {_seeds(n)}):")
    lines.append("")
    for label, part in table.groupby("label", sort=False):
        rho = V.Stat.of([spearman(run["train_count"], run["forgetting"]) for _, run in part.groupby("seed")])
        groups = part.groupby("shot_group")["forgetting"].mean()
        groups = groups.reindex([g for g in ("many", "medium", "few") if g in groups.index])
        worst = str(groups.idxmax()) if len(groups) and groups.notna().any() else "n/a"
        numbers[str(label)] = {"spearman": rho, "by_group": groups.to_dict(), "most_forgetting_group": worst}
        by_group = ", ".join(f"{g} {100 * v:.1f} %" for g, v in groups.items())
        lines.append(f"- **{label}**: ρ(training count, forgetting) {_fmt(rho)}: " +
                     _correlation(rho, "classes that had more images forgot more",
                                "classes that had more images forgot less", "no clear relation") +
                     f"; mean forgetting by shot group: {by_group}; most forgetting: **{worst}**.")
    return Finding("\n".join(lines), numbers)


def reweighting_finding(before: pd.DataFrame, after: pd.DataFrame) -> Finding:
    """DGR's rewrite, from :func:`tables.gradient_magnitudes` of one DGR run before (``grad_ce``) and after
    (``grad_ce_reweighted``): the spread (CV) of the row gradients within the old and within the new
    classes, and the old / new ratio of their means, averaged over the phases."""
    def spreads(table):
        out = {}
        for group in ("new", "old"):
            cvs = [part["value"].std(ddof=0) / part["value"].mean()
                   for _, part in table[table["group"] == group].groupby("phase") if len(part) > 1]
            out[group] = float(np.mean(cvs)) if cvs else float("nan")
        ratios = [part[part["group"] == "old"]["value"].mean() / part[part["group"] == "new"]["value"].mean()
                  for phase, part in table.groupby("phase") if phase > 0]
        out["old_new_ratio"] = float(np.mean(ratios)) if ratios else float("nan")
        return out

    b, a = spreads(before), spreads(after)
    lines = ["**What this run shows** (one seed; averaged over the phases):", ""]
    for group, name in (("new", "new classes"), ("old", "old classes")):
        if np.isfinite(b[group]) and np.isfinite(a[group]):
            verb = "falls" if a[group] < b[group] else ("rises" if a[group] > b[group] else "stays")
            lines.append(f"- spread (CV) of the row gradients within the {name}: {b[group]:.2f} before the rewrite, "
                         f"{a[group]:.2f} after: it {verb}.")
    if np.isfinite(b["old_new_ratio"]) and np.isfinite(a["old_new_ratio"]):
        lines.append(f"- old / new mean row gradient: {b['old_new_ratio']:.2f} before, {a['old_new_ratio']:.2f} after.")
    return Finding("\n".join(lines), {"before": b, "after": a})



#: The summary metrics a method comparison reads, with their names and whether higher is better.
COMPARED = {"average_incremental_accuracy": ("average incremental accuracy", True),
            "final_accuracy": ("final accuracy", True), "final_accuracy_many": ("final accuracy, many-shot", True),
            "final_accuracy_medium": ("final accuracy, medium-shot", True),
            "final_accuracy_few": ("final accuracy, few-shot", True),
            "average_forgetting": ("average forgetting", False)}


def comparison_finding(table: pd.DataFrame, ours: str) -> Finding:
    """How method ``ours`` compares with every other row of a comparison table (one row per method: ``method``,
    ``seeds``, each metric of :data:`COMPARED` as the mean over seeds and ``<metric>_std``), metric by metric:
    better, worse or within the spread over seeds (the ± 1 std rule of :mod:`gradlab.analysis.verdicts`)."""
    rows = {str(row["method"]): row for _, row in table.iterrows()}
    if ours not in rows:
        raise ValueError(f"comparison table has no {ours!r} row; methods: {sorted(rows)}")

    def stat(row, key):
        std = row.get(f"{key}_std")
        return V.Stat(float(row[key]), 0.0 if pd.isna(std) else float(std), int(row["seeds"]))

    n = int(rows[ours]["seeds"])
    lines, numbers = [f"**What these runs show** ({_seeds(n)}), **{ours}** against each other method:", ""], {}
    for key, (name, higher_is_better) in COMPARED.items():
        if key not in table.columns or pd.isna(rows[ours][key]):
            continue
        mine, parts = stat(rows[ours], key), []
        for other, row in rows.items():
            if other == ours or pd.isna(row[key]):
                continue
            theirs = stat(row, key)
            side = V.above(mine, theirs) if higher_is_better else V.below(mine, theirs)
            word = {V.YES: f"{ours} better", V.NO: f"{ours} worse", V.UNSURE: "within the spread"}[side]
            if n <= 1:
                word = f"{ours} " + ("better" if (mine.mean > theirs.mean) == higher_is_better else "worse")
                word += " (one seed: anecdotal)"
            parts.append(f"{other} {_fmt(theirs, 100, 1, ' %')} ({word})")
            numbers[(key, other)] = side
        lines.append(f"- {name}: {ours} **{_fmt(mine, 100, 1, ' %')}**; " + "; ".join(parts) + ".")
    lines += ["", "better / worse = the ± 1 std spreads over seeds lie apart; within the spread = they overlap."]
    return Finding("\n".join(lines), numbers)


def probe_finding(gradients: pd.DataFrame, norms: pd.DataFrame) -> Finding:
    """What the probes show per method (``label``): over the new classes, Spearman's ρ between training count
    and CE row gradient and the old / new gradient ratio (:func:`verdicts.fig2_stats`); after the last phase,
    ρ(training count, row norm) and the spread (CV) of the row norms (:func:`verdicts.weight_norm_stats`).
    ``gradients``: per-seed :func:`tables.gradient_magnitudes` rows with a ``label``; ``norms``: per-seed
    :func:`tables.weight_norms` rows."""
    norm_stats = V.weight_norm_stats(norms if "seed" in norms.columns else norms.assign(seed=0))
    gradients = gradients if "seed" in gradients.columns else gradients.assign(seed=0)
    n = int(gradients.groupby("label")["seed"].nunique().max())
    lines, numbers = [f"**What the probes show** ({_seeds(n)}):", ""], {}
    for label, part in gradients.groupby("label", sort=False):
        g, w = V.fig2_stats(part), norm_stats.get(str(label))
        numbers[str(label)] = {**g, **({} if w is None else {"norm_spearman": w["spearman"], "cv": w["cv"]})}
        text = (f"- **{label}**: ρ(training count, CE row gradient) over new classes {_fmt(g['spearman'])}, "
                f"old / new mean gradient {_fmt(g['old_new_ratio'])}")
        if w is not None:
            text += (f"; after the last phase ρ(training count, row norm) {_fmt(w['spearman'])}, "
                     f"spread of the row norms (CV) {_fmt(w['cv'])}")
        lines.append(text + ".")
    return Finding("\n".join(lines), numbers)
