"""Does a paper finding hold in our runs? Each claim of He & Zhu (CVPR 2024) that ``gradlab figures``
tests becomes numbers from the per-seed tables behind the figures and one verdict:

- **reproduced**: every check holds with the spreads apart (mean ± std interval on the right side);
- **not reproduced**: some check fails with the spreads apart (the data say the opposite);
- **inconclusive**: otherwise (the spreads overlap).

The std is over seeds (ddof = 1). Everything here is a pure function of the CSV tables, so the
verdicts can be recomputed from ``figures/*.csv`` alone.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gradlab.analysis.seeds import spearman

YES, NO, UNSURE = "yes", "no", "?"
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"


@dataclass(frozen=True)
class Stat:
    """Mean ± std (ddof = 1) of one quantity over seeds."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values) -> "Stat":
        values = np.asarray(list(values), dtype=float)
        values = values[~np.isnan(values)]
        if not len(values):
            return cls(float("nan"), float("nan"), 0)
        return cls(float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0, len(values))

    @property
    def low(self) -> float:
        return self.mean - self.std

    @property
    def high(self) -> float:
        return self.mean + self.std

    def text(self, scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
        if self.n == 0:
            return "n/a"          # nothing to average (e.g. a shot group without an old class)
        return f"{self.mean * scale:.{digits}f} ± {self.std * scale:.{digits}f}{unit}"


def above(a: Stat, b: Stat | float) -> str:
    """YES when a's interval lies entirely above b's (or above the number b), NO when entirely below."""
    b = b if isinstance(b, Stat) else Stat(float(b), 0.0, 1)
    if a.low > b.high:
        return YES
    if a.high < b.low:
        return NO
    return UNSURE


def below(a: Stat, b: Stat | float) -> str:
    return {YES: NO, NO: YES, UNSURE: UNSURE}[above(a, b)]


def verdict(checks) -> str:
    checks = list(checks)
    if checks and all(c == YES for c in checks):
        return REPRODUCED
    if any(c == NO for c in checks):
        return NOT_REPRODUCED
    return INCONCLUSIVE


@dataclass(frozen=True)
class Verdict:
    figure: str
    claim: str
    ours: str
    verdict: str


# ---------------------------------------------------------------------- Figure 2
def fig2_stats(table: pd.DataFrame) -> dict[str, Stat]:
    """Per seed: Spearman's ρ between training count and gradient over the new classes of every phase
    (each class once, in the phase it arrives), and the old / new ratio of mean gradients, averaged
    over the incremental phases. ``table``: per-seed :func:`tables.gradient_magnitudes`."""
    rho, ratio = [], []
    for _, run in table.groupby("seed"):
        new = run[run["group"] == "new"]
        rho.append(spearman(new["train_count"], new["value"]))
        per_phase = [part[part["group"] == "old"]["value"].mean() / part[part["group"] == "new"]["value"].mean()
                     for phase, part in run.groupby("phase") if phase > 0]
        ratio.append(float(np.mean(per_phase)) if per_phase else float("nan"))
    return {"spearman": Stat.of(rho), "old_new_ratio": Stat.of(ratio)}


def fig2_verdict(table: pd.DataFrame) -> Verdict:
    s = fig2_stats(table)
    ours = (f"Spearman ρ(training count, gradient) over new classes {s['spearman'].text()}; "
            f"old / new mean gradient {s['old_new_ratio'].text()} (n = {s['spearman'].n} seeds)")
    return Verdict("Fig. 2", "Under CE a class's classifier gradient grows with its training count, and old "
                   "classes (memory only) get far smaller gradients than new ones.", ours,
                   verdict([above(s["spearman"], 0.0), below(s["old_new_ratio"], 1.0)]))


# ---------------------------------------------------------------------- Figure 5
def fig5_stats(table: pd.DataFrame) -> dict[str, dict[str, Stat]]:
    """Per label: forgetting averaged over the incremental steps, and average incremental accuracy."""
    out = {}
    for label, part in table.groupby("label", sort=False):
        per_seed = part.groupby("seed").agg(forgetting=("forgetting", "mean"),
                                            aia=("average_incremental_accuracy", "first"))
        out[str(label)] = {"forgetting": Stat.of(per_seed["forgetting"]), "aia": Stat.of(per_seed["aia"])}
    return out


def fig5_verdict(table: pd.DataFrame, ours_label: str = "DAKD") -> Verdict:
    s = fig5_stats(table)
    if ours_label not in s:
        raise ValueError(f"fig5 table has no {ours_label!r} rows; labels: {sorted(s)}")
    others = [label for label in s if label != ours_label]
    mean_step = table.groupby(["label", "phase"], sort=False)["forgetting"].mean().unstack("phase")
    lowest = int((mean_step.idxmin(axis=0) == ours_label).sum())
    ours = "; ".join(f"{label}: forgetting {v['forgetting'].text(100, 1)} %, avg. inc. acc. {v['aia'].text(100, 1)} %"
                     for label, v in s.items())
    ours += f"; {ours_label} has the lowest mean forgetting at {lowest} of {mean_step.shape[1]} steps"
    checks = [below(s[ours_label]["forgetting"], s[o]["forgetting"]) for o in others]
    checks += [above(s[ours_label]["aia"], s[o]["aia"]) for o in others]
    return Verdict("Fig. 5", "DAKD forgets less at each incremental step than plain logit KD, feature KD and no "
                   "distillation, and reaches a higher average incremental accuracy.", ours, verdict(checks))


# ---------------------------------------------------------------------- weight norms
def weight_norm_stats(table: pd.DataFrame) -> dict[str, dict[str, Stat]]:
    """Per label, after the last phase: newest task's mean row norm / earlier tasks' mean, Spearman's ρ
    between training count and row norm, and the coefficient of variation (std / mean) of the norms."""
    out = {}
    for label, part in table.groupby("label", sort=False):
        ratio, rho, cv = [], [], []
        for _, run in part.groupby("seed"):
            last = run["task"].max()
            ratio.append(run[run["task"] == last]["weight_norm"].mean() / run[run["task"] < last]["weight_norm"].mean())
            rho.append(spearman(run["train_count"], run["weight_norm"]))
            cv.append(run["weight_norm"].std(ddof=0) / run["weight_norm"].mean())
        out[str(label)] = {"new_old_ratio": Stat.of(ratio), "spearman": Stat.of(rho), "cv": Stat.of(cv)}
    return out


def weight_norm_verdicts(table: pd.DataFrame) -> list[Verdict]:
    s = weight_norm_stats(table)
    for needed in ("CE", "DGR"):
        if needed not in s:
            raise ValueError(f"weight-norm table has no {needed!r} rows; labels: {sorted(s)}")
    ours = "; ".join(f"{label}: newest / older tasks {v['new_old_ratio'].text()}, ρ(count, norm) "
                     f"{v['spearman'].text()}, CV {v['cv'].text()}" for label, v in s.items())
    ce, dgr = s["CE"], s["DGR"]
    rows = [Verdict("Weight norms", "Under CE the classifier rows of new and head classes grow larger; under DGR "
                    "they stay level.", ours,
                    verdict([above(ce["new_old_ratio"], 1.0), above(ce["spearman"], 0.0), below(dgr["cv"], ce["cv"])]))]
    between = [label for label in s if label not in ("CE", "DGR")]
    if between:
        checks = [c for label in between for c in (above(s[label]["cv"], dgr["cv"]), below(s[label]["cv"], ce["cv"]))]
        rows.append(Verdict("Weight norms", f"{' and '.join(between)} lie between CE and DGR (spread of the row "
                            "norms, CV).", "CV: " + ", ".join(f"{label} {s[label]['cv'].text()}" for label in s),
                            verdict(checks)))
    return rows


# ---------------------------------------------------------------------- Figure 4
def fig4_stats(table: pd.DataFrame) -> dict[tuple[str, float], dict[str, Stat]]:
    """Per (factor, setting) and label: the average incremental accuracy over seeds."""
    out: dict = {}
    per_run = table.groupby(["factor", "setting", "label", "seed"], sort=False)["average_incremental_accuracy"].first()
    for (factor, setting, label), part in per_run.groupby(level=[0, 1, 2], sort=False):
        out.setdefault((str(factor), float(setting)), {})[str(label)] = Stat.of(part.to_numpy())
    return out


def fig4_verdict(table: pd.DataFrame, ours_label: str = "DGR", baseline: str = "CE") -> Verdict:
    s = fig4_stats(table)
    checks, parts = [], []
    for (factor, setting), by_label in s.items():
        if ours_label in by_label and baseline in by_label:
            checks.append(above(by_label[ours_label], by_label[baseline]))
            name = f"memory {setting:g}" if factor == "memory" else f"ρ {setting:g}"
            parts.append(f"{name}: {ours_label} {by_label[ours_label].text(100, 1)} vs {baseline} "
                         f"{by_label[baseline].text(100, 1)}")
    return Verdict("Fig. 4", f"{ours_label} stays ahead as the memory budget and the imbalance ratio change "
                   f"(here against {baseline}; average incremental accuracy, %).", "; ".join(parts), verdict(checks))


def markdown(rows: list[Verdict]) -> str:
    """The verdict table as Markdown: figure | paper's claim | our runs | verdict."""
    lines = ["| figure | the paper's claim | what our runs show (mean ± std over seeds) | verdict |",
             "|---|---|---|---|"]
    lines += [f"| {r.figure} | {r.claim} | {r.ours} | **{r.verdict}** |" for r in rows]
    return "\n".join(lines)
