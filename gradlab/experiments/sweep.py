"""Sweeps: many runs from one YAML file, trained in parallel (Ray by default), summarised as mean ± std over seeds.

The file has up to three keys::

    base: {scenario: digits, tasks: 3}          # a run configuration, as `gradlab run` reads it
    grid: {method: [ce, dgr], seed: [0, 1, 2]}  # field -> values; every combination is run
    list:                                       # partial configurations, each combined with the grid
      - {memory: 10}
      - {memory: 20, method_args: {eta: 0.5}}

Runs = base + one ``list`` entry (or none) + one grid combination. Each run trains in
``OUT/runs/<method>-<settings hash>`` (the hash of the figures cache, so a finished run is never trained twice);
a run left unfinished by a crash resumes; a failed run is recorded with its error and the others go on.
``OUT/sweep.csv`` has one row per run; ``OUT/sweep.md`` the mean ± std over seeds of every summary metric
for each setting, with the number of seeds.
"""
from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pandas as pd

from gradlab.analysis import tables as T
from gradlab.checks import check_folder, check_int, read_yaml_file
from gradlab.config import RunConfig
from gradlab.errors import ConfigError
from gradlab.files import atomic_write, write_text
from gradlab.runs.executor import run_key, run_many
from gradlab.runs.logs import grouped_log_dirs
from gradlab.runs.placement import check_gpus_per_run
from gradlab.runs.records import RunRecord

SWEEP_KEYS = ("base", "grid", "list")
NOT_METRICS = ("seed", "complete", "phase_log", "accuracy_per_phase", "task_sizes")


def load_sweep(path, plugins=()) -> tuple[dict[str, RunConfig], list[str]]:
    """({run name: RunConfig}, the swept fields) from a sweep file; every run validated before any trains."""
    spec = read_yaml_file(path, "sweep file")
    if plugins and isinstance(spec, dict) and isinstance(spec.get("base") or {}, dict):   # --plugin: every run's
        spec = {**spec, "base": {**(spec.get("base") or {}),
                                 "plugins": [*(spec.get("base") or {}).get("plugins", []), *plugins]}}
    return expand_sweep(spec, source=str(path))


def expand_sweep(spec: dict, source: str = "sweep") -> tuple[dict[str, RunConfig], list[str]]:
    if spec is None or spec == {}:
        raise ConfigError(f"{source}: the sweep is empty; give a base (run settings, at least a scenario) and a grid "
                          "and/or a list, e.g. base: {scenario: fashion_mnist, method: dgr}, grid: {seed: [0, 1, 2]}")
    if not isinstance(spec, dict):
        raise ConfigError(f"{source}: expected a mapping with keys {list(SWEEP_KEYS)}")
    unknown = sorted(set(spec) - set(SWEEP_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; allowed: {list(SWEEP_KEYS)}")
    base, grid, items = spec.get("base") or {}, spec.get("grid") or {}, spec.get("list") or [{}]
    if not isinstance(base, dict):
        raise ConfigError(f"{source}: base must be a mapping of run settings, got {type(base).__name__}")
    if not isinstance(grid, dict) or any(not isinstance(v, list) or not v for v in grid.values()):
        raise ConfigError(f"{source}: grid must map each field to a non-empty list of values, e.g. {{seed: [0, 1, 2]}}")
    if not isinstance(items, list) or any(not isinstance(item, dict) for item in items):
        raise ConfigError(f"{source}: list must be a list of mappings (partial run settings)")
    if "out" in base or "out" in grid or any("out" in item for item in items):
        raise ConfigError(f"{source}: 'out' is set by the sweep (OUT/runs/<run>); remove it")
    swept = list(dict.fromkeys([*grid, *(k for item in items for k in item)]))
    configs: dict[str, RunConfig] = {}
    for i, item in enumerate(items):
        for combo in itertools.product(*grid.values()):
            values = {**base, **item, **dict(zip(grid, combo))}
            label = ", ".join(f"{k}={_text(values.get(k))}" for k in swept) or "base"
            try:
                cfg = RunConfig.from_dict(values, source=f"{source}: run ({label})")
            except ConfigError as err:
                where = f"{source}: run ({label})"
                raise ConfigError(str(err) if str(err).startswith(where) else f"{where}: {err}") from None
            configs[label] = cfg
    return configs, swept


def _text(value) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def default_sweep_out(path) -> Path:
    """Where a sweep writes when no folder is given: ``runs/sweeps/<the sweep file's name>``."""
    return Path("runs") / "sweeps" / Path(path).stem


def run_sweep(path, out=None, backend: str = "ray", address: str | None = None, cpus_per_run: int = 1,
              gpus_per_run: float = 0.0, workers: int | None = None, log=None, confirm=None,
              plugins=(), placements: dict | None = None) -> pd.DataFrame:
    """Train (or reuse, or resume) every run of the sweep file; write sweep.csv and sweep.md into ``out``
    (default :func:`default_sweep_out`); return the table. ``confirm``, ``placements``: see
    :func:`gradlab.runs.executor.run_many`; ``plugins`` join every run's (``--plugin``). ``gpus_per_run`` (Ray
    only): 0, a fraction below 1 (runs share a GPU) or a whole number (2 or more: DDP on that many GPUs per run;
    :mod:`gradlab.runs.placement`)."""
    configs, swept = load_sweep(path, plugins)
    out = default_sweep_out(path) if out is None else out
    if backend not in ("ray", "local"):
        raise ConfigError(f"backend must be 'ray' or 'local', got {backend!r}")
    if not isinstance(cpus_per_run, int) or cpus_per_run < 1:
        raise ConfigError(f"cpus_per_run must be an integer >= 1, got {cpus_per_run!r}")
    if workers is not None:
        check_int("workers", workers, 1, 4096)
    check_folder("out", out)
    gpus_per_run = check_gpus_per_run(gpus_per_run, backend)
    out = Path(out)
    first = next(iter(configs.values()))
    (log or (lambda line: print(line, file=sys.stderr, flush=True)))(
        f"sweep {path}: {len(configs)} runs on {first.scenario} (swept: {', '.join(swept) or 'nothing'}); the first "
        f"run's recipe: {first.recipe_text()}")
    out.mkdir(parents=True, exist_ok=True)
    configs = grouped_log_dirs(configs, out / "logs")          # runs that log: one TensorBoard folder
    errors: dict[str, str] = {}
    records = run_many(configs, out / "runs", workers=workers, threads=cpus_per_run, log=log, backend=backend,
                       address=address, gpus_per_run=gpus_per_run, errors=errors, confirm=confirm,
                       placements=placements)
    table = sweep_table(configs, swept, records, errors, out)
    atomic_write(out / "sweep.csv", lambda tmp: table.to_csv(tmp, index=False))
    write_text(out / "sweep.md", sweep_markdown(table, swept, source=str(path)))
    return table


def stopped_status(folder: Path) -> str:
    """What a run that did not finish left in its folder: "diverged" (its summary.json says so), else "failed"."""
    try:
        status = json.loads((folder / "summary.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return "failed"
    return status if status == "diverged" else "failed"


def sweep_table(configs, swept, records, errors, out: Path) -> pd.DataFrame:
    """One row per run: its swept settings, folder, status, error, and every scalar of its summary.json."""
    rows = []
    for name, cfg in configs.items():
        record = records.get(name)
        row = {field: _text(getattr(cfg, field)) if isinstance(getattr(cfg, field), (dict, list))
               else getattr(cfg, field) for field in swept}
        row.update(seed=cfg.seed, method=cfg.method, folder=str(out / "runs" / run_key(cfg)))
        if record is not None:
            row["status"] = record.status
            row.update({k: v for k, v in record.summary.items()
                        if k not in NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)})
        else:
            row["status"] = stopped_status(Path(row["folder"]))
            row["error"] = errors.get(name)
        rows.append(row)
    return pd.DataFrame(rows)


def _is_fraction(metric: str) -> bool:
    """Summary metrics that are fractions (accuracies, forgetting, BWT); the others (threads, wall_time_s,
    images per second) are counts or settings in their own units."""
    return "accuracy" in metric or "forgetting" in metric or metric == "bwt"


def sweep_markdown(table: pd.DataFrame, swept, source: str) -> str:
    """Mean ± std (ddof 1) over seeds of every metric, one row per setting; fractions shown as percentages, other
    numbers in their own units."""
    setting = [c for c in dict.fromkeys([*swept, "method"]) if c != "seed"]
    done = table[table.status == "complete"]
    metrics = [c for c in table.columns if c not in {*setting, "seed", "folder", "status", "error", "method"}
               and pd.api.types.is_numeric_dtype(table[c])]
    lines = [f"# Sweep: {source}", "",
             f"{len(done)} of {len(table)} runs complete; mean ± std over seeds (sample std, ddof 1; — for one "
             "seed). Accuracies, forgetting and bwt in %; the other numbers in their own units (wall time in s).",
             ""]
    header = [*setting, "seeds", *metrics]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    groups = done.groupby(setting, sort=False, dropna=False) if len(done) else []
    for key, group in groups:
        key = key if isinstance(key, tuple) else (key,)
        cells = [str(k) for k in key] + [str(group.seed.nunique())]
        for metric in metrics:
            values = group[metric].dropna()
            scale = 100 if _is_fraction(metric) else 1
            if values.empty:
                cells.append("—")
            elif len(values) == 1:
                cells.append(f"{scale * values.iloc[0]:.2f} ± —")
            else:
                cells.append(f"{scale * values.mean():.2f} ± {scale * values.std(ddof=1):.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    failed = table[table.status != "complete"]
    if len(failed):
        lines += ["", "Runs that did not finish:", ""]
        lines += [f"- {row.folder}: {row.status}: {row.get('error')}" for _, row in failed.iterrows()]
    return "\n".join(lines) + "\n"


def sweep_records(out) -> dict:
    """The finished runs of a sweep folder as {setting: {seed: RunRecord}} (setting: the swept values but the
    seed, e.g. "method=dgr"), read from ``OUT/sweep.csv``."""
    path = Path(out) / "sweep.csv"
    if not path.is_file():
        raise ConfigError(f"{str(path)!r} does not exist: is {str(out)!r} a folder written by gradlab sweep?")
    table = pd.read_csv(path)
    setting = [c for c in table.columns[: list(table.columns).index("folder")] if c != "seed"]
    grouped: dict[str, dict[int, RunRecord]] = {}
    for _, row in table[table.status == "complete"].iterrows():
        label = ", ".join(f"{c}={row[c]}" for c in setting) or "base"
        grouped.setdefault(label, {})[int(row.seed)] = RunRecord(row.folder)
    return grouped


def seed_curves(records: dict) -> pd.DataFrame:
    """Accuracy after every phase for {label: {seed: RunRecord}}: label, seed, phase, acc_all_seen, acc_task_mean
    (what :func:`gradlab.plots.curves.accuracy_curves` draws as mean lines with ± 1 std bands)."""
    frames = [T.accuracy_curves({label: record}).assign(seed=seed)
              for label, runs in records.items() for seed, record in runs.items()]
    return pd.concat(frames, ignore_index=True)[["label", "seed", "phase", "acc_all_seen", "acc_task_mean"]]
