"""Helpers that keep the notebooks thin and honest.

- :func:`figure_runs` - the runs behind one of the paper's figures, exactly as ``gradlab figures``
  (``make figures``) plans them, loaded from its cache or trained there, with the per-seed table;
- :func:`show` (from :mod:`gradlab.plots.static`) - a plotly figure *and* a static PNG of the same data;
- the findings of :mod:`gradlab.findings` (:func:`fig2_finding`, :func:`fig5_finding`, ...) - Markdown
  generated from the numbers a notebook computed, with the verdict on the paper's claim.

All three are importable from here, so a notebook needs one import.

Paper = He & Zhu, "Gradient Reweighting: Towards Imbalanced Class-Incremental Learning", CVPR 2024.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gradlab.findings import (Finding, fig2_finding, fig5_finding, forgetting_count_finding,  # noqa: F401
                              reweighting_finding, weight_norm_finding)
from gradlab.plots import tables
from gradlab.plots.static import PLOTLY_MIME, plotly_bundle, png_bytes, show, to_matplotlib  # noqa: F401
SETTING_ROWS = ["scenario", "order", "imbalance", "max_per_class", "tasks", "memory", "method", "method_args",
                "model", "epochs", "batch_size", "precision", "device"]


# ---------------------------------------------------------------------- runs
@dataclass
class FigureRuns:
    """The runs of one figure: ``plan`` {key: {seed: RunConfig}}, ``records`` {key: {seed: RunRecord}},
    ``table`` (the per-seed table behind the figure, as in ``figures/*.csv``)."""

    name: str
    plan: dict
    records: dict
    table: pd.DataFrame
    cache_dir: str = "runs/cache"
    trained: list = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return sorted({seed for runs in self.plan.values() for seed in runs})

    def settings(self) -> pd.DataFrame:
        """The settings of every run (one column per legend label; seeds in the last row)."""
        columns = {}
        for key, runs in self.plan.items():
            cfg = runs[min(runs)].to_dict()
            label = key if isinstance(key, str) else " · ".join(f"{k:g}" if isinstance(k, float) else str(k)
                                                               for k in key)
            columns[label] = {**{row: cfg[row] for row in SETTING_ROWS}, "seeds": sorted(runs)}
        return pd.DataFrame(columns)

    def by_seed(self) -> dict:
        """{seed: {key: RunRecord}}, what :func:`tables.per_seed` takes."""
        return {seed: {key: runs[seed] for key, runs in self.records.items()} for seed in self.seeds}


def figure_runs(name: str, quick: bool = True, scenario: str = "fashion_mnist", device: str = "auto",
                seeds=(0, 1, 2), cache_dir: str | Path = "runs/cache", workers: int | None = None,
                **overrides) -> FigureRuns:
    """The runs ``gradlab figures`` makes for figure ``name`` (same settings, same cache keys): finished
    ones load from ``cache_dir`` at once, the others train there (in parallel worker processes, one
    progress line per finished run). ``overrides`` (e.g. ``epochs=1``) change every run."""
    from gradlab.executor import cached_record
    from gradlab.figures import figure_plan, figure_tables, plan_configs, run_plans

    plan = figure_plan(name, quick, scenario, device, seeds=list(seeds), **overrides)
    configs = plan_configs({name: plan})
    missing = sorted({f"{key if isinstance(key, str) else ' '.join(map(str, key))} seed {seed}"
                      for (_, key, seed), cfg in configs.items() if cached_record(cfg, cache_dir) is None})
    if missing:
        print(f"{len(configs) - len(missing)} of {len(configs)} runs are in {str(cache_dir)!r}; "
              f"training {len(missing)} (they are cached for next time): {', '.join(missing)}", flush=True)
    flat = run_plans({name: plan}, cache_dir, workers, log=lambda line: print(line, flush=True))
    records = {key: {seed: flat[(name, key, seed)] for seed in runs} for key, runs in plan.items()}
    table = figure_tables({name: plan}, flat)[name]
    return FigureRuns(name, plan, records, table, str(cache_dir), missing)


def run_cached(configs: dict, cache_dir: str | Path = "runs/cache", workers: int | None = None) -> dict:
    """{label: RunRecord} for {label: RunConfig}: from ``cache_dir`` where finished, else trained there."""
    from gradlab.executor import run_many

    return run_many(configs, cache_dir, workers=workers, log=lambda line: print(line, flush=True))


def seed_mean(table: pd.DataFrame, by, values) -> pd.DataFrame:
    """Mean over seeds of ``values`` grouped by ``by``, with the original column names (a single-seed table)."""
    if "seed" not in table.columns:
        return table
    agg = tables.aggregate(table, by, values)
    return agg.rename(columns={f"{v}_mean": v for v in values})[list(by) + list(values)]


def mean_matrix(records_by_seed: dict, kind: str = "accuracy") -> pd.DataFrame:
    """The mean over seeds of :func:`tables.phase_task_matrix` ({seed: RunRecord} -> phase x task)."""
    import warnings

    frames = [tables.phase_task_matrix(record, kind) for record in records_by_seed.values()]
    stacked = np.stack([f.to_numpy(float) for f in frames])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)    # undefined cells (u > t) stay NaN
        mean = np.nanmean(stacked, axis=0)
    return pd.DataFrame(mean, index=frames[0].index, columns=frames[0].columns)


def stats_frame(stats: dict, percent=(), digits: int = 3) -> pd.DataFrame:
    """A {label: {quantity: Stat}} dict from :mod:`gradlab.verdicts` as a table: ``<quantity> mean``,
    ``<quantity> std`` per label (quantities in ``percent`` scaled to %), and the number of seeds."""
    rows = {}
    for label, quantities in stats.items():
        row = {}
        for name, stat in quantities.items():
            scale, unit = (100.0, " (%)") if name in percent else (1.0, "")
            row[f"{name} mean{unit}"] = round(stat.mean * scale, digits)
            row[f"{name} std{unit}"] = round(stat.std * scale, digits)
        row["seeds"] = int(max(stat.n for stat in quantities.values()))
        rows[str(label)] = row
    return pd.DataFrame.from_dict(rows, orient="index")


__all__ = ["Finding", "FigureRuns", "fig2_finding", "fig5_finding", "figure_runs", "forgetting_count_finding",
           "mean_matrix", "plotly_bundle", "png_bytes", "reweighting_finding", "run_cached", "seed_mean", "show",
           "stats_frame", "to_matplotlib", "weight_norm_finding"]
