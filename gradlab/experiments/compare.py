"""Compare methods on one scenario: a tidy table, a markdown/CSV comparison and an accuracy-curve figure.

``compare(["finetune", "icarl", "dgr"], scenario="synthetic", tasks=6, ...)`` (``["all"]``: every method)
trains (or reuses, from the run cache of :mod:`gradlab.experiments.paper_figures`) one run per method with the same settings
and seed, and writes into ``out``: ``comparison.csv`` / ``comparison.md`` (one row per method: average
incremental accuracy both ways, final accuracy both ways, average forgetting, final many / medium / few
accuracy) and ``accuracy_curves.{png,pdf,csv}``. All numbers are fractions in [0, 1] in the CSV and
percentages in the markdown. Metric definitions: README "Metrics" (class-weighted A_t vs the unweighted mean
over tasks that the official DGR / LT-CIL code prints).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from gradlab.analysis import tables as T
from gradlab.checks import check_folder, check_int
from gradlab.config import RunConfig
from gradlab.errors import ConfigError
from gradlab.experiments.paper_figures import check_figure_inputs, write_figure
from gradlab.files import write_text
from gradlab.methods import METHODS, build_method, list_methods
from gradlab.plots import curves as F
from gradlab.runs.executor import run_many
from gradlab.runs.logs import grouped_log_dirs

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
    every = [m for m in ALL_ORDER if m in METHODS] + sorted(set(METHODS) - set(ALL_ORDER))
    expanded = [m for item in methods for m in (every if item == "all" else [item])]
    return list(dict.fromkeys(expanded))


def comparison_configs(methods, method_args: dict | None = None, **settings) -> dict[str, RunConfig]:
    """One validated RunConfig per method, identical but for the method (and its ``method_args[name]``)."""
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
    """One row per method with the summary metrics (fractions; None where undefined). ``records``:
    {method: RunRecord}, or {method: {seed: RunRecord}} for mean, sample std (``<metric>_std``) and ``seeds``."""
    about = list_methods()
    rows = []
    for name, runs in records.items():
        runs = runs if isinstance(runs, dict) else {runs.config.seed: runs}
        first = next(iter(runs.values()))
        row = {"method": name, "description": about.get(first.config.method, ""), "seeds": len(runs)}
        for key in COLUMNS:
            values = pd.Series([r.summary.get(key) for r in runs.values()], dtype="float64")
            row[key] = None if values.isna().all() else float(values.mean())
            row[f"{key}_std"] = float(values.std(ddof=1)) if values.notna().sum() > 1 else None
        rows.append(row)
    return pd.DataFrame(rows, columns=["method", "description", "seeds", *COLUMNS, *(f"{k}_std" for k in COLUMNS)])


def markdown(table: pd.DataFrame, settings: str) -> str:
    """The comparison as a markdown table, in percent (mean ± sample std over seeds when there are several)."""
    header = ["method", "seeds", *COLUMNS.values()]
    lines = [f"Settings: {settings}", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for _, row in table.iterrows():
        cells = [f"`{row['method']}`", str(row["seeds"])]
        for key in COLUMNS:
            if pd.isna(row[key]):
                cells.append("–")
            elif pd.isna(row[f"{key}_std"]):
                cells.append(f"{100 * row[key]:.1f}")
            else:
                cells.append(f"{100 * row[key]:.1f} ± {100 * row[f'{key}_std']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Percent; with several seeds, mean ± sample standard deviation over them. Weighted: over all seen "
              "test images; task mean: the unweighted mean over tasks (official DGR / LT-CIL print). Forgetting: "
              "FACIL, last phase. many / medium / few: final accuracy by training count (> 100, 20–100, < 20)."]
    return "\n".join(lines) + "\n"


def compare(methods, out: str | Path = "runs/compare", cache_dir: str | Path = "runs/cache",
            method_args: dict | None = None, progress: bool = False, seeds=None, backend: str = "local",
            address: str | None = None, workers: int | None = None, confirm=None, **settings) -> pd.DataFrame:
    """Run (or reuse) every method on the same scenario, for every seed of ``seeds`` (default: the settings'
    seed), in parallel through :func:`gradlab.runs.executor.run_many` (``backend`` local or ray; ``workers`` runs at a
    time, default one per core; ``confirm``: see ``run_many``), and write the comparison files into ``out``."""

    configs = comparison_configs(methods, method_args, **settings)
    seeds = [next(iter(configs.values())).seed] if seeds is None else list(seeds)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    if backend not in ("local", "ray"):
        raise ConfigError(f"backend must be 'local' or 'ray', got {backend!r}")
    runs = {(name, seed): RunConfig.from_dict({**cfg.to_dict(), "seed": seed})
            for name, cfg in configs.items() for seed in seeds}
    check_folder("out", out)
    check_folder("cache_dir", cache_dir)
    runs = grouped_log_dirs(runs, Path(out) / "logs")          # runs that log: one TensorBoard folder
    if workers is not None:
        check_int("workers", workers, 1, 4096)
    out = Path(out)
    check_figure_inputs(runs.values(), out)
    out.mkdir(parents=True, exist_ok=True)
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if progress else (lambda line: None)
    named = run_many({f"{name} seed {seed}": cfg for (name, seed), cfg in runs.items()}, cache_dir, workers=workers,
                     log=log, backend=backend, address=address, confirm=confirm)
    records = {name: {seed: named[f"{name} seed {seed}"] for seed in seeds} for name in configs}
    table = comparison_table(records)
    first = next(iter(configs.values()))
    base = "even" if first.base is None else first.base
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(map(str, seeds))}"
    described = (f"scenario {first.scenario}, order {first.order}, rho {first.rho:g}, tasks {first.tasks}, "
                 f"base {base}, memory {first.memory}, {first.recipe_text()}, {seed_text}")
    write_text(out / "comparison.csv", table.to_csv(index=False))
    write_text(out / "comparison.md", markdown(table, described))
    curves = T.per_seed(T.accuracy_curves, {seed: {name: records[name][seed] for name in configs} for seed in seeds})
    write_figure(out / "accuracy_curves", F.accuracy_curves(curves), curves)
    return table
