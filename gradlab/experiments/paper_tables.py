"""The paper's central claims on real data: the main results table, the ablation and imbalanced forgetting.

``make_tables`` (CLI: ``gradlab figures --tables``; ``make tables``) trains (or reuses from the run cache) and
writes into ``out``:

- ``table1``: the main results table's analogue, every method gradlab has that the DGR paper or LT-CIL
  compares, in the shuffled (``lt``) and ordered (``ltio``) long-tailed orders, learning from scratch (LFS) and
  from half (LFH);
- ``ablation``: CE, then one part of DGR added at a time: intra-phase gradient reweighting (GR), decoupled
  inter-phase reweighting (DGR), logit KD, DAKD in its place;
- ``imbalanced_forgetting``: each old class's forgetting after the last phase against its training count,
  under CE, KD, DGR + KD and DGR + DAKD;
- ``fig5_settled``: Figure 5 over five seeds, at the protocol's epochs and at twice as many;

each as PNG, PDF and the CSV behind it (one row per seed), and ``README.md`` with the tables (mean ± std over
seeds), the verdicts, every setting and the measured time. Settings (:data:`SETTINGS`) are those of ``make
figures`` and were fixed before any run of these tables was looked at.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

from gradlab.analysis import tables as T
from gradlab.config import RunConfig
from gradlab.data.sources import SOURCE_INFO
from gradlab.errors import ConfigError
from gradlab.experiments.paper_figures import (
    SEEDS,
    checked_request,
    figure_plan,
    prepare_plans,
    protocol_settings,
    run_plans,
    write_figure,
)
from gradlab.experiments.tables_readme import tables_readme
from gradlab.files import write_text
from gradlab.plots import results as R
from gradlab.runs.executor import run_key

# learning from scratch: five tasks of two classes on ten classes (as `make figures`; on CIFAR-100 the paper's
# 5 + 19 x 5); learning from half: the paper's rule (half the classes in the base task, the rest over five
# tasks), which on ten classes means 5 + 5 x 1
SETTINGS = {"lt · LFS": {"order": "lt", "base": None, "tasks": 5},
            "ltio · LFS": {"order": "ltio", "base": None, "tasks": 5},
            "lt · LFH": {"order": "lt", "split": "lfh"},
            "ltio · LFH": {"order": "ltio", "split": "lfh"}}
DGR_DAKD = ("dgr", {"distillation": "dakd"})
TABLE1_METHODS = {"CE (finetune + memory)": ("ce", {}), "iCaRL": ("icarl", {}), "EEIL": ("eeil", {}),
                  "EEIL 2-stage": ("eeil-2stage", {}), "BiC": ("bic", {}), "WA": ("wa", {}),
                  "LUCIR": ("lucir", {}), "LUCIR 2-stage": ("lucir-2stage", {}), "PODNet": ("podnet", {}),
                  "PODNet 2-stage": ("podnet-2stage", {}), "SIR (reconstruction)": ("sir", {}), "DGR": DGR_DAKD}
ABLATION_STEPS = {"CE": ("ce", {}),
                  "+ GR (intra-phase reweighting, prior)": ("dgr", {"reweighting": "unified", "distillation": "none"}),
                  "+ DGR (decoupled inter-phase)": ("dgr", {"distillation": "none"}),
                  "+ logit KD": ("dgr", {"distillation": "kd"}),
                  "DAKD instead of KD": DGR_DAKD}
FORGETTING_METHODS = {"CE": ("ce", {}), "KD": ("kd", {}), "DGR + KD": ("dgr", {"distillation": "kd"}),
                      "DGR + DAKD": DGR_DAKD}
TABLES = ("table1", "ablation", "imbalanced_forgetting", "fig5_settled")
FIG5_SEEDS = (0, 1, 2, 3, 4)
METRICS = ("average_incremental_accuracy", "average_incremental_accuracy_task_mean", "final_accuracy",
           "final_accuracy_task_mean", "average_forgetting", "final_accuracy_many", "final_accuracy_medium",
           "final_accuracy_few")


def table_plan(name: str, quick: bool = True, scenario: str = "fashion_mnist", device: str = "auto", seeds=SEEDS,
               methods=None, settings=None, **overrides) -> dict:
    """The runs one table needs: {(setting, label): {seed: RunConfig}} (``fig5_settled``: {(label, epochs):
    ...}). ``methods`` / ``settings`` keep a subset of the labels (a quick look, the tests)."""
    if name not in TABLES:
        raise ConfigError(f"table must be one of {list(TABLES)}, got {name!r}")
    if name == "fig5_settled":
        base = figure_plan("fig5", quick, scenario, device, FIG5_SEEDS, **overrides)
        epochs = next(iter(next(iter(base.values())).values())).epochs
        doubled = figure_plan("fig5", quick, scenario, device, FIG5_SEEDS, **{**overrides, "epochs": 2 * epochs})
        return {**{(label, epochs): runs for label, runs in base.items()},
                **{(label, 2 * epochs): runs for label, runs in doubled.items()}}
    catalogue = {"table1": TABLE1_METHODS, "ablation": ABLATION_STEPS, "imbalanced_forgetting": FORGETTING_METHODS}[name]
    chosen = _subset("methods", methods, catalogue)
    where = _subset("settings", settings, SETTINGS)
    common = protocol_settings(quick, scenario, device, overrides)
    if SOURCE_INFO[scenario].num_classes > 10:        # CIFAR-100 and the like: the paper's LFS (C/20 + 19 tasks)
        where = {name: ({"order": s["order"], "split": "lfs"} if name.endswith("LFS") else s) for name, s in where.items()}
    seeds = list(seeds)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    return {(setting, label): {seed: RunConfig.from_dict({**common, **where[setting], "method": method,
                                                          "method_args": args, "seed": seed})
                               for seed in seeds}
            for setting in where for label, (method, args) in chosen.items()}


def _subset(name: str, keep, catalogue: dict) -> dict:
    if keep is None:
        return dict(catalogue)
    unknown = [k for k in keep if k not in catalogue]
    if unknown or not keep:
        raise ConfigError(f"{name}: {unknown or 'none'} not allowed; choose from {list(catalogue)}")
    return {k: catalogue[k] for k in keep}


def summary_table(plan: dict, records: dict, name: str) -> pd.DataFrame:
    """One row per (setting, label, seed) with the run's summary metrics (fractions)."""
    rows = []
    for (setting, label), runs in plan.items():
        for seed, cfg in runs.items():
            summary = records[(name, (setting, label), seed)].summary
            rows.append({"setting": setting, "label": label, "method": cfg.method, "seed": seed,
                         **{m: summary.get(m) for m in METRICS}})
    return pd.DataFrame(rows)


def forgetting_table(plan: dict, records: dict) -> pd.DataFrame:
    """One row per (setting, label, seed, old class): its forgetting after the last phase and training count."""
    frames = []
    for (setting, label), runs in plan.items():
        for seed in runs:
            frame = T.class_forgetting(records[("imbalanced_forgetting", (setting, label), seed)])
            frame.insert(0, "setting", setting)
            frame.insert(1, "label", label)
            frame.insert(2, "seed", seed)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def fig5_table(plan: dict, records: dict) -> pd.DataFrame:
    """Figure 5's per-seed forgetting curves, with the epochs per phase they were trained for."""
    frames = []
    for epochs in sorted({e for _, e in plan}):
        by_seed = {}
        for (label, e), runs in plan.items():
            if e == epochs:
                for seed in runs:
                    by_seed.setdefault(seed, {})[label] = records[("fig5_settled", (label, e), seed)]
        frames.append(T.per_seed(T.forgetting_curves, by_seed).assign(epochs=epochs))
    return pd.concat(frames, ignore_index=True)


def make_tables(out: str | Path = "runs/tables", quick: bool = True, scenario: str = "fashion_mnist",
                device: str = "auto", cache_dir: str | Path = "runs/cache", only=None, seeds=SEEDS,
                methods=None, settings=None, workers: int | None = None, progress: bool = False,
                backend: str = "local", address: str | None = None, confirm=None, **overrides) -> dict:
    """Run (or reuse) what the tables need and write them with their CSVs, figures and README; returns the files."""
    names = checked_request("tables", only, TABLES, out, cache_dir, workers)
    out = Path(out)
    plans = {name: table_plan(name, quick, scenario, device, seeds,
                              methods=methods if name == "table1" else None, settings=settings, **overrides)
             for name in names}
    configs, before = prepare_plans(plans, out, cache_dir)
    distinct = {run_key(c) for c in configs.values()}        # prepare_plans counted the cached ones among them
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if progress else (lambda line: None)
    log(f"tables {', '.join(names)}: {len(distinct)} distinct runs, {before} in the cache")
    start = time.perf_counter()
    records = run_plans(plans, cache_dir, workers, log, backend, address, confirm)
    timing = {"seconds": time.perf_counter() - start, "distinct": len(distinct), "cached": before}
    data = {}
    for name in names:
        if name in ("table1", "ablation"):
            data[name] = summary_table(plans[name], records, name)
        elif name == "imbalanced_forgetting":
            data[name] = forgetting_table(plans[name], records)
        else:
            data[name] = fig5_table(plans[name], records)
    draw = {"table1": R.method_bars, "ablation": R.method_bars, "imbalanced_forgetting": R.forgetting_vs_count,
            "fig5_settled": R.fig5_settled}
    written = {name: write_figure(out / name, draw[name](data[name]), data[name]) for name in names}
    readme = out / "README.md"
    write_text(readme, tables_readme(plans, records, data, timing))
    written["README"] = [readme]
    return written
