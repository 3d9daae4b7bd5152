"""The paper's figures, regenerated over several seeds, with a verdict on each finding.

``make_figures`` (CLI: ``gradlab figures``) writes, into ``out``:

- ``fig2_gradient_magnitudes``: Figure 2, per-class average ||grad L_ce(W_j)|| in every phase under plain CE;
- ``fig5_forgetting``: Figure 5, forgetting (FACIL) at every incremental step for DGR with the distillation
  none / KD / feature / DAKD;
- ``weight_norms``: classifier row norms after the last phase, CE vs DGR vs BiC vs WA;
- ``fig4_memory_imbalance``: Figure 4 analogue, accuracy at every step for CE and DGR as the memory
  budget (10, 20, 50 per class) and the imbalance ratio (ρ = 10, 50, 100) change;

each as PNG, PDF and the CSV behind it (one row per seed), and ``README.md``: the verdict table, the
settings of every run and the measured time. Every run repeats over ``seeds`` (default 0, 1, 2); runs
with the same settings are shared between figures; finished runs are reused from ``cache_dir``; the rest
train in parallel worker processes (:mod:`gradlab.runs.executor`).

``quick=True`` (``make figures``) is the short CPU protocol on Fashion-MNIST-LT; ``quick=False`` the
paper's recipe (160 epochs, batch 128, 10 % hold-out, RandomResizedCrop; ``scenario="cifar100"`` for
CIFAR-100-LT with ResNet-32 and learning from half).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pandas as pd

from gradlab.analysis import claims
from gradlab.analysis import tables as T
from gradlab.analysis import verdicts as V
from gradlab.checks import check_folder, check_int
from gradlab.config import PRESETS, RunConfig
from gradlab.data.sources import SOURCE_INFO, check_source
from gradlab.errors import ConfigError
from gradlab.experiments.figures_readme import FILE_NAMES, figures_readme
from gradlab.files import atomic_write, write_text
from gradlab.methods import build_method
from gradlab.plots import paper as P
from gradlab.runs.executor import cached_run, run_key, run_many  # noqa: F401  (cached_run, run_key: public here too)
from gradlab.runs.runner import check_out_dir
from gradlab.training.trainer import pick_device

FIGURES = ("fig2", "fig5", "weight_norms", "fig4")
SEEDS = (0, 1, 2)
# The short protocol, fixed before any comparison of methods was looked at: the paper's memory (20 per
# class), ρ = 100 and shuffled order; head classes cut to 1 000 images (50x the memory); five tasks of
# two classes; a small CNN; 20 epochs of batch 32 (lr 0.1, /10 after epochs 10 and 15); bf16 + NHWC on CPU.
QUICK_MAX_PER_CLASS = {"fashion_mnist": 1000}      # other sources: every image they have
PAPER = {key: value for key, value in PRESETS["paper"].items() if key != "memory"}
DISTILLATIONS = {"none": "none", "KD": "kd", "feature": "feature", "DAKD": "dakd"}
WEIGHT_NORM_METHODS = {"CE": ("ce", {}), "DGR": ("dgr", {"distillation": "dakd"}), "BiC": ("bic", {}),
                       "WA": ("wa", {})}
FIG4_METHODS = {"CE": ("ce", {}), "DGR": ("dgr", {"distillation": "dakd"})}
FIG4_SETTINGS = {"memory": (10, 20, 50), "imbalance": (10, 50, 100)}


def protocol_settings(quick: bool, scenario: str, device: str, overrides: dict) -> dict:
    """What every run of every figure shares: the long-tailed scenario (ρ = 100, shuffled order), memory 20."""
    if scenario not in SOURCE_INFO:
        raise ConfigError(f"scenario must be one of {list(SOURCE_INFO)}, got {scenario!r}")
    settings = {"scenario": scenario, "order": "lt", "imbalance": 100, "memory": 20, "device": device,
                "checkpoints": False, "progress": False, "probes": ["gradients", "weights", "accuracy"]}
    if quick:
        settings.update(PRESETS["quick"], max_per_class=QUICK_MAX_PER_CLASS.get(scenario))
    else:
        settings.update(PAPER)
    return {**settings, **overrides}


def _split(name: str, quick: bool, scenario: str) -> dict:
    """Five tasks of two classes on 10-class sources; on 100 classes five even tasks (quick), or the
    paper's learning from half (50 + 5 x 10) with Figure 2's three tasks."""
    if SOURCE_INFO[scenario].num_classes <= 10 or quick:
        return {"base": None, "tasks": 5}
    return {"base": None, "tasks": 3} if name == "fig2" else {"split": "lfh"}


def figure_plan(name: str, quick: bool = True, scenario: str = "fashion_mnist", device: str = "auto",
                seeds=SEEDS, **overrides) -> dict:
    """The runs one figure needs: {key: {seed: RunConfig}}; key = legend label, or for ``fig4``
    (label, factor, setting). ``overrides`` (e.g. ``epochs=1``) apply to every run."""
    if name not in FIGURES:
        raise ConfigError(f"figure must be one of {list(FIGURES)}, got {name!r}")
    seeds = list(seeds)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    common = protocol_settings(quick, scenario, device, overrides)
    steps = _split(name, quick, scenario)
    steps = {**steps, **{k: v for k, v in overrides.items() if k in ("base", "tasks", "split")}}
    if name == "fig2":
        plan = {"CE": ("ce", {}, {})}
    elif name == "fig5":
        plan = {label: ("dgr", {"distillation": kind}, {}) for label, kind in DISTILLATIONS.items()}
    elif name == "weight_norms":
        plan = {label: (method, args, {}) for label, (method, args) in WEIGHT_NORM_METHODS.items()}
    else:
        plan = {(label, factor, value): (method, args, {factor: value})
                for factor, values in FIG4_SETTINGS.items() for value in values
                for label, (method, args) in FIG4_METHODS.items()}
    return {key: {seed: RunConfig.from_dict({**common, **steps, **changes, "method": method,
                                             "method_args": args, "seed": seed})
                  for seed in seeds}
            for key, (method, args, changes) in plan.items()}


def figure_configs(name: str, quick: bool = True, scenario: str = "fashion_mnist", device: str = "auto",
                   seed: int = 0, **overrides) -> dict[str, RunConfig]:
    """One seed's runs of a figure, by legend label (``fig4``: "CE · memory 10", ...)."""
    plan = figure_plan(name, quick, scenario, device, seeds=[seed], **overrides)
    return {(key if isinstance(key, str) else f"{key[0]} · {key[1]} {key[2]:g}"): runs[seed]
            for key, runs in plan.items()}


def check_figure_inputs(configs, out: Path) -> None:
    """Everything that can be checked before the first run of ``configs`` (RunConfigs): settings, data
    files, the output folder."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out: {str(out)!r} exists and is not a folder")
    check_out_dir(out / ".gradlab-probe", overwrite=True)
    checked = set()
    for cfg in configs:
        cfg.validate()
        pick_device(cfg.device)
        build_method(cfg.method, cfg, **cfg.method_args)
        if (cfg.scenario, cfg.data_root, cfg.download) not in checked:
            check_source(cfg.scenario, cfg.data_root, cfg.download)
            checked.add((cfg.scenario, cfg.data_root, cfg.download))


def plan_configs(plans: dict) -> dict:
    """{(figure, key, seed): RunConfig} for {figure: figure_plan(...)}."""
    return {(name, key, seed): cfg for name, plan in plans.items() for key, runs in plan.items()
            for seed, cfg in runs.items()}


def run_plans(plans: dict, cache_dir: str | Path = "runs/cache", workers: int | None = None, log=None,
              backend: str = "local", address: str | None = None, confirm=None) -> dict:
    """{(figure, key, seed): RunRecord} for {figure: figure_plan(...)}: cached runs loaded, the others
    trained in parallel (:func:`gradlab.runs.executor.run_many`; runs shared between figures train once)."""
    configs = plan_configs(plans)
    named = {" ".join(map(str, [name, *(key if isinstance(key, tuple) else [key]), "seed", seed])): cfg
             for (name, key, seed), cfg in configs.items()}
    return dict(zip(configs, run_many(named, cache_dir, workers=workers, log=log, backend=backend,
                                      address=address, confirm=confirm).values()))


def figure_tables(plans: dict, records: dict) -> dict:
    """The per-seed table behind each figure (the CSVs) from ``records`` {(figure, key, seed): RunRecord}."""
    def by_seed(name):
        seeds = sorted({seed for runs in plans[name].values() for seed in runs})
        return {seed: {key: records[(name, key, seed)] for key in plans[name]} for seed in seeds}

    out = {}
    for name in plans:
        if name == "fig2":
            out[name] = T.per_seed(T.gradient_magnitudes, {s: r["CE"] for s, r in by_seed(name).items()})
        elif name == "fig5":
            out[name] = T.per_seed(T.forgetting_curves, by_seed(name))
        elif name == "weight_norms":
            out[name] = T.per_seed(T.weight_norms, by_seed(name))
        else:
            out[name] = T.accuracy_by_setting({(*key, seed): records[(name, key, seed)]
                                               for key, runs in plans[name].items() for seed in runs})
    return out


def figure_verdicts(tables: dict) -> list:
    """The verdict rows (:mod:`gradlab.analysis.verdicts`) for the figures present in ``tables``."""
    rows = []
    if "fig2" in tables:
        rows.append(V.fig2_verdict(tables["fig2"]))
    if "weight_norms" in tables:
        rows += V.weight_norm_verdicts(tables["weight_norms"])
    if "fig5" in tables:
        rows.append(V.fig5_verdict(tables["fig5"]))
    if "fig4" in tables:
        rows.append(V.fig4_verdict(tables["fig4"]))
    return rows


def make_figures(out: str | Path = "runs/figures", quick: bool = True, scenario: str = "fashion_mnist",
                 device: str = "auto", cache_dir: str | Path = "runs/cache", only=None, seeds=SEEDS,
                 workers: int | None = None, progress: bool = False, backend: str = "local",
                 address: str | None = None, confirm=None, **overrides) -> dict[str, list[Path]]:
    """Run (or reuse) what the figures need and write them with their CSVs and a README; returns the files.
    ``confirm(seconds)`` is called with the estimated time before any training (it may stop the start)."""
    names = checked_request("figures", only, FIGURES, out, cache_dir, workers)
    out = Path(out)
    plans = {name: figure_plan(name, quick, scenario, device, seeds, **overrides) for name in names}
    configs, before = prepare_plans(plans, out, cache_dir)
    start = time.perf_counter()
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if progress else (lambda line: None)
    first = next(iter(configs.values()))
    log(f"figures {', '.join(names)}: the {'quick' if quick else 'full'} protocol on {scenario} over seeds "
        f"{', '.join(map(str, seeds))}: {first.recipe_text()}")
    if backend not in ("local", "ray"):
        raise ConfigError(f"backend must be 'local' or 'ray', got {backend!r}")
    records = run_plans(plans, cache_dir, workers, log, backend, address, confirm)
    seconds = time.perf_counter() - start
    tables = figure_tables(plans, records)
    rows = figure_verdicts(tables)
    draw = {"fig2": P.fig2, "fig5": P.fig5, "weight_norms": P.weight_norms, "fig4": P.fig4}
    written = {name: write_figure(out / FILE_NAMES[name], draw[name](tables[name]), tables[name]) for name in names}
    timing = {"seconds": seconds, "distinct": len({run_key(c) for c in configs.values()}), "cached": before,
              "workers": workers}
    readme = out / "README.md"
    settled = out / "tables" / "fig5_settled.csv"          # `make tables`' Fig. 5 over 5 seeds at two lengths
    extra = claims.fig5_settled_verdicts(pd.read_csv(settled)) if "fig5" in names and settled.is_file() else []
    write_text(readme, figures_readme(plans, records, tables, rows, quick, timing, settled=extra))
    written["README"] = [readme]
    return written


def checked_request(what: str, only, allowed, out, cache_dir, workers) -> list[str]:
    """The names asked for (``only``; default: all of ``allowed``), once they, the folders and ``workers`` pass."""
    names = list(allowed if only is None else only)
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise ConfigError(f"only: {unknown} are not {what}; allowed: {list(allowed)}")
    check_folder("out", out)
    check_folder("cache_dir", cache_dir)
    if workers is not None:
        check_int("workers", workers, 1, 4096)
    return names


def prepare_plans(plans: dict, out: Path, cache_dir) -> tuple[dict, int]:
    """Every run of ``plans`` checked before the first one trains and ``out`` made: (configs by (name, key,
    seed), how many distinct runs the cache holds already)."""
    configs = plan_configs(plans)
    check_figure_inputs(configs.values(), out)
    out.mkdir(parents=True, exist_ok=True)
    distinct = {run_key(c) for c in configs.values()}
    return configs, sum(1 for key in distinct if (Path(cache_dir) / key / "summary.json").is_file())


def write_figure(stem: Path, fig, table) -> list[Path]:
    """PNG (150 dpi), PDF and the CSV behind the figure, each written atomically."""
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf"), stem.with_suffix(".csv")]
    atomic_write(paths[0], lambda tmp: fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight"))
    atomic_write(paths[1], lambda tmp: fig.savefig(tmp, format="pdf", bbox_inches="tight",
                                                   metadata={"CreationDate": None}))   # same data, same bytes
    atomic_write(paths[2], lambda tmp: table.to_csv(tmp, index=False))
    return paths
