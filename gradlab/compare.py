"""Compare methods on one scenario: a tidy table, a markdown/CSV comparison and an accuracy-curve figure.

``compare(["finetune", "icarl", "dgr"], scenario="synthetic", tasks=6, ...)`` (``["all"]``: every method)
trains (or reuses, from the run cache of :mod:`gradlab.figures`) one run per method with the same settings
and seed, and writes into ``out``: ``comparison.csv`` / ``comparison.md`` (one row per method: average
incremental accuracy both ways, final accuracy both ways, average forgetting, final many / medium / few
accuracy) and ``accuracy_curves.{png,pdf,csv}``. All numbers are fractions in [0, 1] in the CSV and
percentages in the markdown. Metric definitions: README "Metrics" (class-weighted A_t vs the unweighted mean
over tasks that the official DGR / LT-CIL code prints).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from gradlab.config import ConfigError, RunConfig
from gradlab.records import write_text

COLUMNS = {
    "average_incremental_accuracy": "avg. inc. acc. (weighted)",
    "average_incremental_accuracy_task_mean": "avg. inc. acc. (task mean)",
    "final_accuracy": "final acc. (weighted)",
    "final_accuracy_task_mean": "final acc. (task mean)",
    "average_forgetting": "avg. forgetting",
    "final_accuracy_many": "many",
    "final_accuracy_medium": "medium",
    "final_accuracy_few": "few",
}
# the order of ``--methods all``: lower bounds, the classic rebalancing baselines, the seed systems, DGR last
# (methods registered later and missing here follow, alphabetically)
ALL_ORDER = ["finetune", "icarl", "eeil", "eeil-2stage", "bic", "wa", "lucir", "lucir-2stage", "podnet",
             "podnet-2stage", "sir", "ce", "kd", "gr", "dgr-no-dakd", "dgr"]


def expand_methods(methods) -> list[str]:
    """The method list with ``"all"`` replaced by every registered method (in ``ALL_ORDER``), duplicates dropped."""
    from gradlab.methods import METHODS

    every = [m for m in ALL_ORDER if m in METHODS] + sorted(set(METHODS) - set(ALL_ORDER))
    expanded = [m for item in methods for m in (every if item == "all" else [item])]
    return list(dict.fromkeys(expanded))


def comparison_configs(methods, method_args: dict | None = None, **settings) -> dict[str, RunConfig]:
    """One validated RunConfig per method, identical but for the method (and its ``method_args[name]``)."""
    from gradlab.methods import METHODS, build_method

    methods = expand_methods(methods or [])
    if not methods:
        raise ConfigError("methods: give at least one method; allowed: " + ", ".join(sorted(METHODS)))
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"methods: {unknown} are not registered; allowed: {sorted(METHODS)}")
    method_args = method_args or {}
    stray = sorted(set(method_args) - set(methods))
    if stray:
        raise ConfigError(f"method_args: {stray} are not among the compared methods {methods}")
    configs = {}
    for name in methods:
        cfg = RunConfig.from_dict({"progress": False, **settings, "method": name,
                                   "method_args": method_args.get(name, {})})
        build_method(name, cfg, **cfg.method_args)          # bad switches fail before any run
        configs[name] = cfg
    return configs


def comparison_table(records: dict) -> pd.DataFrame:
    """One row per method with the summary metrics (fractions; None where undefined)."""
    from gradlab.methods import list_methods

    about = list_methods()
    rows = []
    for name, record in records.items():
        row = {"method": name, "description": about.get(record.config.method, "")}
        row.update({key: record.summary.get(key) for key in COLUMNS})
        rows.append(row)
    return pd.DataFrame(rows, columns=["method", "description", *COLUMNS])


def markdown(table: pd.DataFrame, settings: str) -> str:
    """The comparison as a markdown table, in percent."""
    header = ["method", *COLUMNS.values()]
    lines = [f"Settings: {settings}", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for _, row in table.iterrows():
        cells = [f"`{row['method']}`"] + ["–" if pd.isna(row[k]) else f"{100 * row[k]:.1f}" for k in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Percent. Weighted: over all seen test images; task mean: the unweighted mean over tasks "
              "(official DGR / LT-CIL print). Forgetting: FACIL, last phase. many / medium / few: final accuracy "
              "by training count (> 100, 20–100, < 20)."]
    return "\n".join(lines) + "\n"


def compare(methods, out: str | Path = "runs/compare", cache_dir: str | Path = "runs/cache",
            method_args: dict | None = None, progress: bool = False, **settings) -> pd.DataFrame:
    """Run (or reuse) every method on the same scenario and write the comparison files into ``out``."""
    from gradlab.figures import cached_run, check_figure_inputs, write_figure
    from gradlab.plots import figures as F
    from gradlab.plots import tables as T

    configs = comparison_configs(methods, method_args, **settings)
    out = Path(out)
    check_figure_inputs(configs.values(), out)
    out.mkdir(parents=True, exist_ok=True)
    records = {name: cached_run(cfg, cache_dir, progress) for name, cfg in configs.items()}
    table = comparison_table(records)
    first = next(iter(configs.values()))
    base = "even" if first.base is None else first.base
    described = (f"scenario {first.scenario}, order {first.order}, rho {first.rho:g}, tasks {first.tasks}, "
                 f"base {base}, memory {first.memory}, model {first.model}, epochs {first.epochs}, seed {first.seed}")
    write_text(out / "comparison.csv", table.to_csv(index=False))
    write_text(out / "comparison.md", markdown(table, described))
    curves = T.accuracy_curves(records)
    write_figure(out / "accuracy_curves", F.accuracy_curves(curves), curves)
    return table
