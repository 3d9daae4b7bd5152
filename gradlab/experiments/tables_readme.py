"""The results tables' ``README.md``: every table as mean ± std over seeds, the verdicts, the settings, the time."""
from __future__ import annotations

import json
import platform

import torch

from gradlab.analysis import claims as C
from gradlab.analysis.verdicts import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, above, below, markdown
from gradlab.experiments.figures_readme import DATA_NOTES, SETTING_COLUMNS

TABLE_METRICS = {"average_incremental_accuracy": "Average incremental accuracy (class-weighted A_t, base phase "
                                                 "included), %",
                 "average_incremental_accuracy_task_mean": "Average incremental accuracy (mean over tasks, as the "
                                                           "official code prints), %",
                 "final_accuracy": "Final accuracy (class-weighted), %",
                 "average_forgetting": "Average forgetting after the last phase (FACIL; lower is better), %",
                 "final_accuracy_many": "Final accuracy of the many-shot classes (> 100 training images), %",
                 "final_accuracy_medium": "Final accuracy of the medium-shot classes (20-100), %",
                 "final_accuracy_few": "Final accuracy of the few-shot classes (< 20), %"}
LFH_NOTE = ("Learning from half applies the paper's rule (half of the classes in the base task, the rest over five "
            "incremental tasks) to ten classes: 5 + 5 x 1. Learning from scratch is `make figures`' split, five tasks of "
            "two classes.")


def stat_table(stats: dict, settings: list, labels: list, lower_is_better: bool = False) -> list[str]:
    """Markdown rows: one per label, one column per setting, "mean ± std"; the best mean per column in bold,
    the others whose ± 1 std interval reaches the best one's marked ≈."""
    lines = ["| method | " + " | ".join(settings) + " |", "|---" * (len(settings) + 1) + "|"]
    pick = min if lower_is_better else max
    best = {s: pick(stats[s].values(), key=lambda st: st.mean) for s in settings if s in stats}
    for label in labels:
        cells = []
        for s in settings:
            st = stats.get(s, {}).get(label)
            if st is None:
                cells.append("–")
                continue
            text = st.text(100, 1)
            apart = (below if lower_is_better else above)(best[s], st) == "yes"
            cells.append(f"**{text}**" if st is best[s] else text if apart else f"{text} ≈")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _summary_section(title: str, about: str, table, plan_labels: list) -> list[str]:
    settings = list(dict.fromkeys(table["setting"]))
    lines = [f"## {title}", "", about, ""]
    for metric, name in TABLE_METRICS.items():
        lines += [f"**{name}** (bold: best mean; ≈: interval overlaps the best)", ""]
        lines += stat_table(C.method_stats(table, metric), settings, plan_labels,
                            lower_is_better=metric == "average_forgetting") + [""]
    return lines


def _forgetting_section(table) -> list[str]:
    lines = ["## Imbalanced forgetting (`imbalanced_forgetting`)", "",
             "Forgetting of each old class after the last phase (its best earlier accuracy minus its final "
             "accuracy) against its training count: Spearman's ρ per seed, then mean ± std; the mean forgetting "
             "of the many- (> 100 training images), medium- and few-shot (< 20) classes, %; n/a: no old class in that group (in `ltio` learning from "
             "scratch the few-shot classes come last and are never old).", "",
             "| setting | method | ρ(count, forgetting) | many | medium | few |", "|---|---|---|---|---|---|"]
    for setting, by_label in C.forgetting_stats(table).items():
        for label, s in by_label.items():
            lines.append(f"| {setting} | {label} | {s['spearman'].text()} | {s['many'].text(100, 1)} | "
                         f"{s['medium'].text(100, 1)} | {s['few'].text(100, 1)} |")
    return lines + [""]


def _settings_section(plans: dict, records: dict) -> list[str]:
    lines = ["## Every run's settings", "",
             "| table | key | method | method_args | " + " | ".join(SETTING_COLUMNS) + " | seeds |",
             "|---" * (len(SETTING_COLUMNS) + 5) + "|"]
    for name, plan in plans.items():
        for key, runs in plan.items():
            cfg = next(iter(runs.values()))
            values = dict(cfg.to_dict(), val_fraction=cfg.holdout_fraction, augment=cfg.augmentation)
            cells = [name, " · ".join(map(str, key)), cfg.method, json.dumps(cfg.method_args) if cfg.method_args else "",
                     *("" if values[c] is None else str(values[c]) for c in SETTING_COLUMNS), ", ".join(map(str, runs))]
            lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def table_verdicts(data: dict) -> list:
    """Every verdict row the tables support, in README order."""
    rows = []
    if "table1" in data:
        rows += C.best_method_verdicts(data["table1"])
    if "ablation" in data:
        rows += C.ablation_verdicts(data["ablation"], list(dict.fromkeys(data["ablation"]["label"])))  # plan order
    if "imbalanced_forgetting" in data:
        rows += C.forgetting_verdicts(data["imbalanced_forgetting"])
    if "fig5_settled" in data:
        rows += C.fig5_settled_verdicts(data["fig5_settled"])
    return rows


def tables_readme(plans: dict, records: dict, data: dict, timing: dict) -> str:
    any_cfg = next(iter(next(iter(next(iter(plans.values())).values())).values()))
    rows = table_verdicts(data)
    run_time = sum(r.summary.get("wall_time_s", 0.0) for r in {id(r): r for r in records.values()}.values())
    trained = timing["distinct"] - timing["cached"]
    lines = ["# The paper's central claims on real data", "",
             "Regenerated by `make tables` (`gradlab figures --tables --quick`): "
             f"{timing['seconds']:.0f} s wall clock for {timing['distinct']} distinct runs, {trained} trained here "
             f"and {timing['cached']} reused from the cache; the runs' own training times add up to {run_time:.0f} s "
             f"(parallel worker processes, one thread each: from an empty cache about {run_time / 120:.0f} min on two "
             "cores).", "",
             DATA_NOTES.get(any_cfg.scenario, ""), "",
             f"Every run: {any_cfg.recipe_text()}; memory 20 exemplars per class (herding), ρ = 100"
             + (f", head classes cut to {any_cfg.max_per_class} images. " if any_cfg.max_per_class else ". ")
             + f"{LFH_NOTE} The settings and the list of methods were fixed "
             "before any of these runs was looked at.", "",
             "## Verdicts", "",
             "Reproduced: every check holds with the mean ± std intervals apart; not reproduced: a check fails with "
             "the intervals apart; inconclusive: the intervals overlap. Std over seeds (ddof = 1); recomputed from "
             "the CSVs by `gradlab.analysis.claims` and `gradlab.analysis.verdicts`.", "", markdown(rows), ""]
    against = [r for r in rows if r.verdict == NOT_REPRODUCED]
    lines += ["**Where our data disagree with the paper:** " + ("; ".join(f"{r.figure}: {r.claim.rstrip('.')}"
                                                                        for r in against) + "." if against else
                                                               "nowhere with the intervals apart."), ""]
    if "table1" in data:
        lines += _summary_section("Main results (`table1`)", "Every method gradlab has that the DGR paper or "
                                  "LT-CIL compares, in each order and protocol.", data["table1"],
                                  list(dict.fromkeys(label for _, label in plans["table1"])))
    if "ablation" in data:
        lines += _summary_section("Ablation (`ablation`)", "CE, then one part of DGR added at a time (each row adds "
                                  "to the one above; the last replaces logit KD by DAKD).", data["ablation"],
                                  list(dict.fromkeys(label for _, label in plans["ablation"])))
    if "imbalanced_forgetting" in data:
        lines += _forgetting_section(data["imbalanced_forgetting"])
    lines += _settings_section(plans, records)
    lines += [f"Software: gradlab, torch {torch.__version__}, Python {platform.python_version()}; device: "
              f"{next(iter(records.values())).summary.get('device', '?')}.", ""]
    return "\n".join(lines)



def results_block(data: dict) -> str:
    """What the project README shows of the tables (between ``<!-- tables:begin -->`` and ``<!-- tables:end -->``):
    the main table's average incremental accuracy and every verdict, from the per-seed tables (the CSVs)."""
    table1 = data["table1"]
    settings, labels = list(dict.fromkeys(table1["setting"])), list(dict.fromkeys(table1["label"]))
    lines = [f"Average incremental accuracy (class-weighted, %), mean ± std over {table1['seed'].nunique()} seeds; "
             "bold: the best mean, ≈: its interval overlaps the best:", ""]
    lines += stat_table(C.method_stats(table1), settings, labels)
    lines += ["", "Each claim's verdict per setting (every number: figures/tables/README.md):", ""]
    lines += verdict_summary(table_verdicts(data))
    return "\n".join(lines)


def verdict_summary(rows) -> list[str]:
    """One Markdown row per claim: the settings where it is reproduced, inconclusive, not reproduced."""
    claims: dict = {}
    for row in rows:
        where = row.figure.split(", ", 1)[1] if ", " in row.figure else row.figure
        claims.setdefault(row.claim, {}).setdefault(row.verdict, []).append(where)
    lines = ["| the paper's claim | reproduced | inconclusive | not reproduced |", "|---|---|---|---|"]
    for claim, by_verdict in claims.items():
        cells = ["; ".join(by_verdict.get(v, [])) or "–" for v in (REPRODUCED, INCONCLUSIVE, NOT_REPRODUCED)]
        lines.append(f"| {claim} | " + " | ".join(cells) + " |")
    return lines
