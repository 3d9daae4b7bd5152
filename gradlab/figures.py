"""The paper's figures, regenerated: which runs each figure needs, a cache of finished runs, the files.

``make_figures`` (CLI: ``gradlab figures``) writes, into ``out``:

- ``fig2_gradient_magnitudes.{png,pdf,csv}``: DGR paper Figure 2, the per-class average
  ||grad L_ce(W_j)|| in each of 3 tasks under plain CE with 20 exemplars per class (specs/dgr.md §7);
- ``fig5_forgetting.{png,pdf,csv}``: Figure 5, forgetting (FACIL) at every incremental step for the
  distillation variants none / kd / feature / dakd, all on DGR's reweighting and prior;
- ``weight_norms.{png,pdf,csv}``: per-class classifier weight norms after the last phase, CE vs DGR
  (and WA / BiC once those methods are registered);
- ``README.md``: the settings of every run behind them, and whether the data were generated.

``quick=True`` is the offline CPU setting of ``make figures`` (small CNN, few epochs, head classes cut to
100 images); ``quick=False`` is the paper's recipe (the ``paper`` preset: 160 epochs, batch 128,
10 % hold-out, RandomResizedCrop; pass ``scenario="cifar100"`` for CIFAR-100-LT). Finished runs are
cached in ``cache_dir`` under a hash of their settings and reused; files are written atomically.
"""
from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path

import yaml

from gradlab.config import PRESETS, ConfigError, RunConfig
from gradlab.records import RunRecord, atomic_write, write_text

FIGURES = ("fig2", "fig5", "weight_norms")
FILE_NAMES = {"fig2": "fig2_gradient_magnitudes", "fig5": "fig5_forgetting", "weight_norms": "weight_norms"}
QUICK = {"model": "small", "epochs": 6, "max_per_class": 100, "batch_size": 64}
PAPER = {key: value for key, value in PRESETS["paper"].items() if key != "memory"}
NOT_HASHED = ("out", "progress")            # settings that do not change a run's numbers
DISTILLATIONS = {"none": "none", "KD": "kd", "feature": "feature", "DAKD": "dakd"}
EXTRA_WEIGHT_NORM_METHODS = {"WA": "wa", "BiC": "bic"}   # drawn when registered


def _settings(quick: bool, scenario: str, device: str, overrides: dict) -> dict:
    """What every run of every figure shares: the long-tailed scenario, memory 20, seed 0."""
    settings = {"scenario": scenario, "order": "lt", "imbalance": 100, "memory": 20, "seed": 0,
                "device": device, "checkpoints": False, "progress": False,
                "probes": ["gradients", "weights", "accuracy"], **(QUICK if quick else PAPER)}
    return {**settings, **overrides}


def figure_configs(name: str, quick: bool = True, scenario: str = "synthetic", device: str = "auto",
                   **overrides) -> dict[str, RunConfig]:
    """The runs one figure needs, by legend label; ``overrides`` (e.g. ``epochs=1``) apply to all of them."""
    from gradlab.methods import METHODS

    if name not in FIGURES:
        raise ConfigError(f"figure must be one of {list(FIGURES)}, got {name!r}")
    common = _settings(quick, scenario, device, overrides)
    # Fig. 2: three tasks; Fig. 5 and weight norms: four equal tasks (quick) or learning from half (paper)
    steps = {"base": None, "tasks": 3} if name == "fig2" else \
        {"base": None, "tasks": 4} if quick else {"split": "lfh"}
    steps = {**steps, **{k: v for k, v in overrides.items() if k in ("base", "tasks", "split")}}
    if name == "fig2":
        plan = {"CE": ("ce", {})}
    elif name == "fig5":
        plan = {label: ("dgr", {"distillation": kind}) for label, kind in DISTILLATIONS.items()}
    else:
        plan = {"CE": ("ce", {}), "DGR": ("dgr", {"distillation": "dakd"})}
        plan.update({label: (method, {}) for label, method in EXTRA_WEIGHT_NORM_METHODS.items() if method in METHODS})
    return {label: RunConfig.from_dict({**common, **steps, "method": method, "method_args": args})
            for label, (method, args) in plan.items()}


def run_key(cfg: RunConfig) -> str:
    """A folder name for a run: method + a hash of every setting that changes its numbers."""
    values = {k: v for k, v in cfg.to_dict().items() if k not in NOT_HASHED}
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{cfg.method}-{digest}"


def _same_settings(record: RunRecord, cfg: RunConfig) -> bool:
    stored = {k: v for k, v in record.config.to_dict().items() if k not in NOT_HASHED}
    wanted = {k: v for k, v in cfg.to_dict().items() if k not in NOT_HASHED}
    return yaml.safe_load(yaml.safe_dump(stored)) == yaml.safe_load(yaml.safe_dump(wanted))


def cached_run(cfg: RunConfig, cache_dir: str | Path = "runs/cache", progress: bool = False,
               callbacks=()) -> RunRecord:
    """Load the finished run with exactly these settings from ``cache_dir``, or train it there."""
    import gradlab

    folder = Path(cache_dir) / run_key(cfg)
    if (folder / "summary.json").is_file():
        record = RunRecord(folder)
        if record.complete and _same_settings(record, cfg):
            return record
    return gradlab.run(cfg, callbacks=callbacks, overwrite=True, out=str(folder), progress=progress)


def check_figure_inputs(configs: dict[str, dict[str, RunConfig]], out: Path) -> None:
    """Everything that can be checked before the first run: settings, data files, the output folder."""
    from gradlab.data.sources import check_source
    from gradlab.methods import build_method
    from gradlab.runner import check_out_dir
    from gradlab.trainer import pick_device

    if out.exists() and not out.is_dir():
        raise ConfigError(f"out: {str(out)!r} exists and is not a folder")
    check_out_dir(out / ".gradlab-probe", overwrite=True)
    for runs in configs.values():
        for cfg in runs.values():
            cfg.validate()
            pick_device(cfg.device)
            build_method(cfg.method, cfg, **cfg.method_args)
            check_source(cfg.scenario, cfg.data_root, cfg.download)


def make_figures(out: str | Path = "figures", quick: bool = True, scenario: str = "synthetic",
                 device: str = "auto", cache_dir: str | Path = "runs/cache", only=None, progress: bool = False,
                 **overrides) -> dict[str, list[Path]]:
    """Run (or reuse) what the figures need and write them with their CSVs and a README; returns the files."""
    from gradlab.plots import figures as F
    from gradlab.plots import tables as T

    names = list(FIGURES if only is None else only)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        raise ConfigError(f"only: {unknown} are not figures; allowed: {list(FIGURES)}")
    out = Path(out)
    configs = {name: figure_configs(name, quick, scenario, device, **overrides) for name in names}
    check_figure_inputs(configs, out)
    out.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    records = {name: {label: cached_run(cfg, cache_dir, progress) for label, cfg in runs.items()}
               for name, runs in configs.items()}
    written: dict[str, list[Path]] = {}
    for name in names:
        runs = records[name]
        if name == "fig2":
            table = T.gradient_magnitudes(runs["CE"])
            fig = F.fig2(table)
        elif name == "fig5":
            table = T.forgetting_curves(runs)
            fig = F.fig5(table)
        else:
            table = T.weight_norms(runs)
            fig = F.weight_norms(table)
        written[name] = write_figure(out / FILE_NAMES[name], fig, table)
    readme = out / "README.md"
    write_text(readme, figures_readme(configs, records, quick, time.perf_counter() - start))
    written["README"] = [readme]
    return written


def write_figure(stem: Path, fig, table) -> list[Path]:
    """PNG (150 dpi), PDF and the CSV behind the figure, each written atomically."""
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf"), stem.with_suffix(".csv")]
    atomic_write(paths[0], lambda tmp: fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight"))
    atomic_write(paths[1], lambda tmp: fig.savefig(tmp, format="pdf", bbox_inches="tight"))
    atomic_write(paths[2], lambda tmp: table.to_csv(tmp, index=False))
    return paths


SETTING_COLUMNS = ("scenario", "order", "imbalance", "max_per_class", "base", "tasks", "split", "memory",
                   "model", "epochs", "batch_size", "augment", "val_fraction", "seed")


def figures_readme(configs, records, quick: bool, seconds: float) -> str:
    """figures/README.md: what each figure shows and the settings of every run behind it."""
    scenarios = {cfg.scenario for runs in configs.values() for cfg in runs.values()}
    lines = ["# Figures", "",
             "Regenerated by `gradlab figures" + (" --quick" if quick else "") + "` "
             f"({'quick offline settings' if quick else 'the paper recipe'}; "
             f"{seconds:.0f} s for the runs and files on this machine, cached runs reused).", ""]
    if "synthetic" in scenarios or "digits" in scenarios:
        lines += ["**The data are generated, not CIFAR-100.** `synthetic` is gradlab's offline stand-in: 100 "
                  "classes of generated 32×32 images with the CIFAR-100-LT count profile (ρ = 100, exponential, "
                  "by original label) and the iCaRL class order. `digits` is scikit-learn's handwritten digits. "
                  "The shapes of the effects are what to look at, not the numbers; for the paper's setting run "
                  "`gradlab figures --scenario cifar100 --device cuda` (160 epochs per phase).", ""]
    about = {"fig2": "Per-class average ‖∇L_ce(W_j)‖ (classifier-row gradient magnitude, the `grad_ce` probe "
                     "averaged over each phase's epochs) under plain CE with 20 exemplars per class; classes "
                     "grouped by task, head→tail within a task, old classes (memory only) vs new.",
             "fig5": "Average forgetting (FACIL/Chaudhry: best earlier accuracy minus now, averaged over the old "
                     "tasks) at each incremental step, for DGR with each distillation; the legend gives each "
                     "run's average incremental accuracy (class-weighted, base phase included).",
             "weight_norms": "Per-class classifier weight norms ‖W_j‖₂ after the last phase, coloured by task."}
    for name, runs in configs.items():
        lines += [f"## `{FILE_NAMES[name]}` (.png, .pdf, .csv)", "", about[name], "",
                  "| run | method | method_args | " + " | ".join(SETTING_COLUMNS) + " | avg. inc. acc. |",
                  "|---" * (len(SETTING_COLUMNS) + 4) + "|"]
        for label, cfg in runs.items():
            values = cfg.to_dict()
            acc = records[name][label].summary.get("average_incremental_accuracy")
            cells = [label, cfg.method, json.dumps(cfg.method_args) if cfg.method_args else "",
                     *("" if values[c] is None else str(values[c]) for c in SETTING_COLUMNS),
                     "" if acc is None else f"{100 * acc:.1f} %"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    import torch

    lines += [f"Software: gradlab, torch {torch.__version__}, Python {platform.python_version()}; "
              f"device: {next(iter(next(iter(records.values())).values())).summary.get('device', '?')}.", ""]
    return "\n".join(lines)
