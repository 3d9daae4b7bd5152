"""Helpers that keep the notebooks thin and honest.

- :func:`figure_runs` - the runs behind one of the paper's figures, exactly as ``gradlab figures``
  (``make figures``) plans them, loaded from its cache or trained there, with the per-seed table;
- :func:`run_cached` - any runs, from the same cache or trained there; both show a :class:`Progress` bar
  while runs train;
- :func:`show` (from :mod:`gradlab.plots.static`) - ONE output per figure, holding the plotly figure and
  a PNG of it (JupyterLab draws the plotly form, static viewers the PNG);
- the findings of :mod:`gradlab.analysis.findings` (:func:`fig2_finding`, :func:`fig5_finding`, ...) - Markdown
  generated from the numbers a notebook computed, with the verdict on the paper's claim.

All are importable from here, so a notebook needs one import.

Paper = He & Zhu, "Gradient Reweighting: Towards Imbalanced Class-Incremental Learning", CVPR 2024.
"""
from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gradlab.analysis import claims, tables
from gradlab.analysis.findings import (  # noqa: F401
    Finding,
    comparison_finding,
    fig2_finding,
    fig5_finding,
    forgetting_count_finding,
    probe_finding,
    reweighting_finding,
    weight_norm_finding,
)
from gradlab.analysis.verdicts import markdown as verdict_markdown
from gradlab.config import RunConfig
from gradlab.data.sources import source_classes
from gradlab.experiments.paper_figures import (
    figure_plan,
    figure_tables,
    plan_configs,
    run_plans,
)
from gradlab.plots.static import (  # noqa: F401
    PLOTLY_MIME,
    figure_bundle,
    png_bytes,
    show,
    to_matplotlib,
)
from gradlab.runs.executor import cached_record, run_key, run_many

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
    ones load from ``cache_dir`` at once, the others train there (in parallel worker processes, under a
    :class:`Progress` bar). ``overrides`` (e.g. ``epochs=1``) change every run."""
    plan = figure_plan(name, quick, scenario, device, seeds=list(seeds), **overrides)
    configs = plan_configs({name: plan})
    labels = {f"{key if isinstance(key, str) else ' '.join(map(str, key))} seed {seed}": cfg
              for (_, key, seed), cfg in configs.items()}
    with Progress(labels, cache_dir) as bar:
        flat = run_plans({name: plan}, cache_dir, workers, log=bar.log)
    records = {key: {seed: flat[(name, key, seed)] for seed in runs} for key, runs in plan.items()}
    table = figure_tables({name: plan}, flat)[name]
    return FigureRuns(name, plan, records, table, str(cache_dir), sorted(bar.todo))


def run_cached(configs: dict, cache_dir: str | Path = "runs/cache", workers: int | None = None) -> dict:
    """{label: RunRecord} for {label: RunConfig}: from ``cache_dir`` where finished, else trained there (in
    parallel worker processes, under a :class:`Progress` bar)."""
    with Progress(configs, cache_dir) as bar:
        return run_many(configs, cache_dir, workers=workers, log=bar.log)


def runs_over_seeds(configs: dict, seeds, cache_dir: str | Path = "runs/cache", workers: int | None = None) -> dict:
    """{label: {seed: RunRecord}}: every {label: RunConfig} repeated over ``seeds`` (only the seed changes), from
    ``cache_dir`` where finished, else trained there in parallel under one progress bar."""
    if not isinstance(seeds, (list, tuple)) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    flat = {f"{label} · seed {seed}": RunConfig.from_dict({**cfg.to_dict(), "seed": seed})
            for label, cfg in configs.items() for seed in seeds}
    records = run_cached(flat, cache_dir, workers)
    return {label: {seed: records[f"{label} · seed {seed}"] for seed in seeds} for label in configs}


def forgetting_across_settings(tables_dir: str | Path = "../figures/tables") -> Finding:
    """Imbalanced forgetting in the results tables (``make tables``: CE, KD, DGR + KD and DGR + DAKD in the four
    settings over three seeds), read from ``imbalanced_forgetting.csv``: per setting and method, Spearman's
    ρ(training count, forgetting) and the many- / few-shot classes' forgetting, then the verdicts."""
    path = Path(tables_dir) / "imbalanced_forgetting.csv"
    if not path.is_file():
        return Finding(f"No `{path}` yet: `make tables` writes it (about an hour on two cores).")
    table = pd.read_csv(path)
    lines = [f"**The results tables** (`{path.name}`, mean ± std over {table['seed'].nunique()} seeds):", "",
             "| setting | method | ρ(count, forgetting) | many-shot (%) | few-shot (%) |", "|---|---|---|---|---|"]
    for setting, by_label in claims.forgetting_stats(table).items():
        for label, s in by_label.items():
            lines.append(f"| {setting} | {label} | {s['spearman'].text()} | {s['many'].text(100, 1)} | "
                         f"{s['few'].text(100, 1)} |")
    lines += ["", verdict_markdown(claims.forgetting_verdicts(table))]
    return Finding("\n".join(lines), {"table": table})


class Progress:
    """A text progress bar over the phases of the runs that are not in ``cache_dir`` yet, in ONE cell
    output redrawn in place (a display handle: it is saved with the notebook and readable without
    JavaScript), with the executor's lines under it; a worker's progress is read from the run folder it
    writes (``metrics.parquet`` after every phase). Outside a kernel it prints the lines. Use as a context."""

    WIDTH = 30

    def __init__(self, configs: dict, cache_dir: str | Path):
        self.cache_dir, self.start, self.lines = Path(cache_dir), time.perf_counter(), []
        self.todo, self.folders, self.phases = [], {}, {}
        for name, cfg in configs.items():
            key = run_key(cfg)
            if key in self.folders or cached_record(cfg, cache_dir) is not None:
                continue
            self.todo.append(name)
            self.folders[key] = self.cache_dir / key
            self.phases[key] = _num_phases(cfg)
        self.total = sum(self.phases.values())
        self.cached = len({run_key(cfg) for cfg in configs.values()}) - len(self.folders)
        self.handle, self._stop, self._thread = None, threading.Event(), None

    def done(self) -> int:
        """Phases finished so far by the runs that train."""
        count = 0
        for key, folder in self.folders.items():
            if (folder / "summary.json").is_file():
                count += self.phases[key]
            elif (folder / "metrics.parquet").is_file():
                try:
                    count += int(pd.read_parquet(folder / "metrics.parquet", columns=["phase"])["phase"].max()) + 1
                except Exception:  # noqa: BLE001  (being replaced right now: counted at the next look)
                    pass
        return min(count, self.total)

    def text(self) -> str:
        elapsed = time.perf_counter() - self.start
        head = f"{self.cached} of {self.cached + len(self.folders)} run(s) loaded from {str(self.cache_dir)!r}"
        if not self.total:
            return head
        done = self.done()
        filled = round(self.WIDTH * done / self.total)
        left = f", ~{elapsed / done * (self.total - done):.0f} s left" if 0 < done < self.total else ""
        bar = f"training {len(self.folders)} run(s) |{'█' * filled}{'·' * (self.WIDTH - filled)}| " \
              f"{done}/{self.total} phases, {elapsed:.0f} s{left}"
        return "\n".join([head, bar, *self.lines[-6:]])

    def refresh(self) -> None:
        if self.handle is not None:
            self.handle.update({"text/plain": self.text()}, raw=True)

    def log(self, line: str) -> None:
        """One line of the executor (a run finished), under the bar."""
        self.lines.append(line)
        if self.handle is None:
            print(line, flush=True)
        self.refresh()

    def __enter__(self) -> "Progress":
        from IPython.display import display

        if _in_kernel():
            self.handle = display({"text/plain": self.text()}, raw=True, display_id=True)
        elif self.total:
            print(self.text(), flush=True)
        if self.total and self.handle is not None:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(2.0):
            self.refresh()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.refresh()


def _num_phases(cfg) -> int:
    return int(cfg.split_base_tasks(source_classes(cfg.scenario, cfg.data_root))[1])


def _in_kernel() -> bool:
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def mean_matrix(records_by_seed: dict, kind: str = "accuracy") -> pd.DataFrame:
    """The mean over seeds of :func:`tables.phase_task_matrix` ({seed: RunRecord} -> phase x task)."""
    frames = [tables.phase_task_matrix(record, kind) for record in records_by_seed.values()]
    stacked = np.stack([f.to_numpy(float) for f in frames])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)    # undefined cells (u > t) stay NaN
        mean = np.nanmean(stacked, axis=0)
    return pd.DataFrame(mean, index=frames[0].index, columns=frames[0].columns)


def stats_frame(stats: dict, percent=(), digits: int = 3) -> pd.DataFrame:
    """A {label: {quantity: Stat}} dict from :mod:`gradlab.analysis.verdicts` as a table: ``<quantity> mean``,
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


__all__ = ["Finding", "FigureRuns", "Progress", "comparison_finding", "fig2_finding", "fig5_finding", "figure_bundle", "figure_runs",
           "forgetting_across_settings", "forgetting_count_finding", "mean_matrix", "png_bytes", "probe_finding",
           "reweighting_finding", "run_cached",
           "runs_over_seeds",
           "show", "stats_frame", "to_matplotlib", "weight_norm_finding"]
