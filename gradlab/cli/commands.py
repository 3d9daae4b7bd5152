"""Command line: ``gradlab run [CONFIG.yaml] --flags``, ``gradlab figures [--quick]``, ``gradlab compare --methods a,b``,
``gradlab sweep SWEEP.yaml --out DIR``, ``gradlab data`` and ``gradlab info``.

Flags override the YAML file; the YAML overrides presets; presets override the scenario's default recipe.
The parser is in :mod:`gradlab.cli.parser`.
"""
from __future__ import annotations

import argparse
import errno
import json
import os
import shlex
import shutil
import sys
import warnings
from pathlib import Path

import torch
import yaml

from gradlab.checks import parse_method_args
from gradlab.cli.parser import build_parser  # noqa: F401 - the parser, public here too
from gradlab.config import PRESETS, RunConfig, scenario_recipes
from gradlab.data.profiles import ORDERS
from gradlab.data.sources import check_source
from gradlab.data.sources.files import write_scenario_lists
from gradlab.errors import (
    ConfigError,
    DataError,
    RunDiverged,
    RunFolderWarning,
    RunInterrupted,
    SettingWarning,
    WriteError,
)
from gradlab.experiments.bundled import resolve
from gradlab.experiments.compare import compare, expand_methods
from gradlab.experiments.paper_figures import make_figures
from gradlab.experiments.paper_tables import make_tables
from gradlab.experiments.sweep import default_sweep_out, run_sweep
from gradlab.files import atomic_write, write_error
from gradlab.methods import list_methods, method_options
from gradlab.plugins import load_plugins
from gradlab.runs.estimate import LONG_S, confirm_start
from gradlab.runs.logs import run_log_dir
from gradlab.runs.runner import run
from gradlab.scenario import Scenario, list_scenarios


def _run_config(ns: argparse.Namespace, not_settings: tuple) -> RunConfig:
    """The RunConfig of a `run`-style command: YAML file, then flags (``not_settings`` are other options)."""
    values = {k: v for k, v in vars(ns).items() if k not in ("command", "config", *not_settings)}
    if "method_args" in values:
        values["method_args"] = parse_method_args(values["method_args"], "--method-arg")
    if not ns.config:
        return RunConfig.from_dict(values, source="flags")
    return RunConfig.from_yaml(resolve(ns.config, "configs"), values)   # configs/NAME.yaml: bundled if not here


def command_data(ns: argparse.Namespace) -> int:
    """The scenario a configuration builds, as tables: per task, then per class (in learning order)."""
    cfg = _run_config(ns, ("csv", "write_lists"))
    if ns.csv and not Path(ns.csv).absolute().parent.is_dir():
        raise ConfigError(f"--csv: folder {str(Path(ns.csv).absolute().parent)!r} does not exist")
    if ns.write_lists and not Path(ns.write_lists).is_dir():
        raise ConfigError(f"--write-lists: folder {ns.write_lists!r} does not exist")
    check_source(cfg.scenario, cfg.data_root, cfg.download)
    try:
        scenario = Scenario.from_config(cfg)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    table = scenario.class_table()
    per_task = table.groupby("task").agg(classes=("class", "size"), train=("train_count", "sum"),
                                         val=("val_count", "sum"), test=("test_count", "sum"))
    print(f"{scenario!r}")
    print(f"class order (original labels): {' '.join(map(str, scenario.original_label))}")
    print("\nper task:")
    print(per_task.to_string())
    print(f"total: train {int(table.train_count.sum())}, val {int(table.val_count.sum())}, "
          f"test {int(table.test_count.sum())}")
    print("\nper class (in learning order):")
    print(table.to_string(index=False))
    if ns.csv:
        path = Path(ns.csv)
        atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))
        print(f"\nwritten: {path}")
    if ns.write_lists:
        for path in write_scenario_lists(scenario, Path(ns.write_lists)):
            print(f"written: {path}")
    return 0


def command_run(ns: argparse.Namespace) -> int:
    cfg = _run_config(ns, ("overwrite", "quiet", "resume"))
    if ns.quiet:
        cfg.progress = False
    record = run(cfg, overwrite=ns.overwrite, resume=ns.resume)
    if os.environ.get("RANK", "0") != "0":           # torchrun: rank 0 reports the run
        return 0
    s = record.summary
    print(f"average incremental accuracy: {_percent(s['average_incremental_accuracy'])} (class-weighted), "
          f"{_percent(s['average_incremental_accuracy_task_mean'])} (mean over tasks)")
    ranks = f" on {s['ranks']} ranks" if s.get("ranks", 1) > 1 else ""
    print(f"final accuracy: {_percent(s['final_accuracy'])}; average forgetting: {_percent(s['average_forgetting'])}"
          f"; {s.get('wall_time_s', 0):.0f} s{ranks}")
    python = _here(Path(sys.executable))
    print(f"record: {record.path}  (read it: {python} -c \"import gradlab; r = gradlab.load_run('{record.path}'); "
          "print(r.accuracy_matrix())\")")
    if cfg.log:
        print(f"logs ({', '.join(cfg.log)}): {run_log_dir(cfg, record.path)}"
              + (f"  (view: {_here(Path(sys.executable).parent / 'tensorboard')} --logdir "
                 f"{run_log_dir(cfg, record.path)})" if "tensorboard" in cfg.log else ""))
    other = "finetune" if cfg.method == "dgr" else "dgr"
    print(f"next: the same flags with `{_here(Path(sys.executable).parent / 'gradlab')} compare --methods "
          f"{other},{cfg.method}` to compare methods, or `{_here(Path(sys.executable).parent / 'jupyter')} lab "
          "notebooks/` to look inside (04_explorer)")
    return 0


def _here(program: Path) -> str:
    """How to call ``program`` (next to this Python) from the current folder: ``.venv/bin/gradlab`` after
    `make`, its plain name when it is on PATH or elsewhere."""
    if shutil.which(program.name) == str(program) or not program.exists():
        return program.name
    relative = os.path.relpath(program)
    return relative if not relative.startswith("..") else str(program)


def _percent(value) -> str:
    """A fraction as a percentage with one decimal ('-' where the metric is undefined, e.g. one phase)."""
    return "-" if value is None else f"{100 * value:.1f} %"


def command_figures(ns: argparse.Namespace) -> int:
    overrides = {k: getattr(ns, k) for k in ("epochs", "data_root", "download") if hasattr(ns, k)}
    if ns.seeds is not None:
        overrides["seeds"] = ns.seeds
    _check_workers(ns.workers)
    make = make_tables if ns.tables else make_figures
    out = Path(ns.out) / "tables" if ns.tables else ns.out
    written = make(out=out, quick=ns.quick, scenario=ns.scenario, device=ns.device, cache_dir=ns.cache,
                           only=ns.only, workers=ns.workers, progress=not ns.quiet, backend=ns.backend,
                           address=ns.address, confirm=_confirm(ns.yes, long_protocol=not ns.quick), **overrides)
    for name, paths in written.items():
        print(f"{name}: {', '.join(str(p) for p in paths)}")
    return 0


def _check_workers(workers: int | None) -> None:
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be an integer >= 1 (runs trained in parallel), got {workers}")


def _confirm(yes: bool, long_protocol: bool = False):
    """``confirm(seconds)`` for :func:`gradlab.runs.executor.run_many`: on a CPU, the full / paper protocol or more
    than 30 min of estimated training asks first (see :func:`gradlab.runs.estimate.confirm_start`)."""

    def confirm(seconds: float | None) -> None:
        on_cpu = not torch.cuda.is_available()
        confirm_start(seconds, long=on_cpu and (long_protocol or (seconds or 0) > LONG_S), yes=yes)
    return confirm


def command_compare(ns: argparse.Namespace) -> int:
    skip = ("command", "config", "methods", "method_args", "out", "cache", "quiet", "seeds", "backend", "address",
            "workers", "yes")
    _check_workers(ns.workers)
    values = {k: v for k, v in vars(ns).items() if k not in skip}
    settings = (RunConfig.from_yaml(resolve(ns.config, "configs"), values) if ns.config
                else RunConfig.from_dict(values, source="flags"))
    settings = {k: v for k, v in settings.to_dict().items() if k not in ("method", "method_args", "out", "progress")}
    per_method: dict[str, list[str]] = {}
    for item in ns.method_args:
        method, sep, pair = item.partition(":")
        if not sep or "=" not in pair or "=" in method:
            raise ConfigError(f"--method-arg expects METHOD:KEY=VALUE (e.g. wa:clip=false), got {item!r}")
        per_method.setdefault(method, []).append(pair)
    method_args = {method: parse_method_args(pairs, "--method-arg") for method, pairs in per_method.items()}
    if not ns.quiet:
        print(f"compare {len(expand_methods(ns.methods))} methods x {len(ns.seeds or [settings['seed']])} seed(s) on "
              f"{settings['scenario']}: {RunConfig.from_dict({**settings, 'method': 'finetune'}).recipe_text()}",
              file=sys.stderr, flush=True)
    table = compare(ns.methods, out=ns.out, cache_dir=ns.cache, method_args=method_args, progress=not ns.quiet,
                    seeds=ns.seeds, backend=ns.backend, address=ns.address, workers=ns.workers,
                    confirm=_confirm(ns.yes, long_protocol="paper" in settings["presets"]), **settings)
    print((Path(ns.out) / "comparison.md").read_text())
    print(f"written: {ns.out}/comparison.csv, comparison.md, accuracy_curves.png/.pdf/.csv ({len(table)} methods)")
    if settings["log"]:
        root = settings["log_dir"] or Path(ns.out) / "logs"
        print(f"logs ({', '.join(settings['log'])}): {root}/<method>/seed_<k>"
              + (f"  (side by side: tensorboard --logdir {root})" if "tensorboard" in settings["log"] else ""))
    return 0


def command_sweep(ns: argparse.Namespace) -> int:
    if ns.address and ns.backend != "ray":
        raise ConfigError(f"--address is a Ray cluster: it needs --backend ray, got --backend {ns.backend}")
    _check_workers(ns.workers)
    log = (lambda line: None) if ns.quiet else None
    out = Path(ns.out) if ns.out else default_sweep_out(ns.file)
    table = run_sweep(resolve(ns.file, "sweeps"), out, backend=ns.backend, address=ns.address,
                      cpus_per_run=ns.cpus_per_run, gpus_per_run=ns.gpus_per_run, workers=ns.workers, log=log,
                      confirm=_confirm(ns.yes), plugins=ns.plugins)
    print((out / "sweep.md").read_text())
    failed = int((table.status != "complete").sum())
    print(f"written: {out}/sweep.csv, {out}/sweep.md ({len(table)} runs, {failed} did not finish)")
    return 1 if failed else 0


def command_info() -> int:
    recipes = scenario_recipes()
    scenarios = {name: f"{text}\ndefault recipe: {recipes[name]}" for name, text in list_scenarios().items()}
    presets = {name: json.dumps(values) for name, values in PRESETS.items()}
    methods = {name: text + "".join(f"\n  {key}={yaml.safe_dump(arg.default).splitlines()[0]}: {arg.allowed()}"
                                    for key, arg in method_options(name).items())
               for name, text in list_methods().items()}
    width = max(map(len, [*scenarios, *presets, *methods])) + 2
    for title, rows in (("scenarios", scenarios), ("presets", presets), ("methods", methods)):
        print(f"{title}:")
        for name, text in rows.items():
            print(f"  {name:{width}s}" + text.replace("\n", "\n  " + " " * width))
        if title == "scenarios":
            print(f"orders: {', '.join(ORDERS)}")
    return 0


def _warnings_as_lines() -> None:
    """gradlab's own warnings as one line on stderr ("gradlab: warning: ..."), not Python's two-line form
    (call inside ``warnings.catch_warnings()``, which restores the default)."""

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (SettingWarning, RunFolderWarning)):
            print(f"gradlab: warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)
    warnings.showwarning = show


def _interrupted(err: KeyboardInterrupt, ns: argparse.Namespace, argv: list[str]) -> str:
    """Ctrl-C as one line: where the run stopped and the command that goes on from there."""
    if ns.command != "run":
        if ns.command in ("compare", "figures", "sweep"):
            return ("interrupted; finished runs are kept, and the same command continues the others from their last "
                    "checkpoints")
        return "interrupted"
    if not isinstance(err, RunInterrupted):
        return "interrupted before training started; nothing was recorded"

    args = [a for a in argv if a not in ("--resume", "--overwrite")]
    command = f"{_here(Path(sys.executable).parent / 'gradlab')} {shlex.join(args)}"
    how = {"resume": f"`{command} --resume` continues it from its last checkpoint",
           "resume-fresh": f"`{command} --resume` starts it again (no checkpoint yet)",
           "overwrite": f"`{command} --overwrite` starts it again (checkpoints are off)",
           "again": f"the earlier record is kept; `{command} --overwrite` starts the new run again"}[err.how]
    return f"{err}; {how}"


def _os_error(err: OSError) -> str:
    """A failed read or write as one line naming the path (and, for a full disk, the space left there)."""
    if isinstance(err, WriteError) or err.filename is None:
        return str(err) if isinstance(err, WriteError) else " ".join(f"{err.strerror or err}".split())
    if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO):
        return str(write_error(err.filename, err))
    return f"{err.strerror}: {str(err.filename)!r}"


def main(argv: list[str] | None = None) -> int:
    """The ``gradlab`` command: errors end as one line on stderr (exit 2 for bad settings or a failed read /
    write such as a full disk, 3 for a diverged run, 130 for Ctrl-C), never as a traceback."""
    argv = sys.argv[1:] if argv is None else list(argv)
    ns = None
    try:
        ns = build_parser().parse_args(argv)
        plugins = list(getattr(ns, "plugins", None) or [])
        commands = {"info": lambda: command_info(), "run": lambda: command_run(ns), "figures": lambda: command_figures(ns),
                    "compare": lambda: command_compare(ns), "data": lambda: command_data(ns),
                    "sweep": lambda: command_sweep(ns)}
        try:
            with warnings.catch_warnings():
                _warnings_as_lines()
                load_plugins(plugins)          # before anything checks a name a plugin registers
                return commands[ns.command]()
        except (ConfigError, DataError, FileNotFoundError) as err:
            print(f"gradlab: error: {err}", file=sys.stderr)
            return 2
        except RunDiverged as err:
            print(f"gradlab: error: {err}", file=sys.stderr)
            return 3
    except KeyboardInterrupt as err:
        line = _interrupted(err, ns, argv) if ns is not None else "interrupted"
        print(f"gradlab: {line}", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:          # `gradlab data | head`: the reader left; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:           # a full disk, a read-only or failing file system
        print(f"gradlab: error: {_os_error(err)}", file=sys.stderr)
        return 2

