"""Command line: ``gradlab run [CONFIG.yaml] --flags``, ``gradlab figures [--quick]``, ``gradlab compare --methods a,b``,
``gradlab sweep SWEEP.yaml --out DIR``, ``gradlab data`` and ``gradlab info``.

Flags override the YAML file; the YAML overrides presets; presets override defaults.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gradlab.config import PRESETS, ConfigError, RunConfig


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {text!r}")


def _bool_or_auto(text: str) -> bool | None:
    return None if text.lower() == "auto" else _bool(text)


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of integers, got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"expected a comma list of integers >= 0, got {text!r}")
    return seeds


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    return int(value) if value.is_integer() else value


# flag -> (config field, type, help); every flag defaults to "not given" so the YAML can fill it
RUN_FLAGS = {
    "--scenario": ("scenario", str, "fashion_mnist | cifar100 | imagenet_subset | food101 | imagenet1k | digits | "
                   "synthetic"),
    "--method": ("method", str, "a registered method (see `gradlab info`)"),
    "--order": ("order", str, "lt (iCaRL-shuffled) | ltio (ordered) | conv (balanced) | seeded"),
    "--imbalance": ("imbalance", _number, "rho = n_max / n_min (1 = balanced; default 100, conv: 1)"),
    "--profile": ("profile", str, "exp | step"),
    "--max-per-class": ("max_per_class", int, "head-class training count (default: all)"),
    "--split": ("split", str, "custom | lfs | lfh"),
    "--base": ("base", int, "classes in the base task (default: even split)"),
    "--tasks": ("tasks", int, "tasks in all, base task included"),
    "--val-fraction": ("val_fraction", float, "per-class validation hold-out (default: the source's official, "
                       "cifar100 0.1, others 0)"),
    "--holdout": ("holdout", str, "official (the DGR loaders' draw, quirk included) | stratified"),
    "--memory": ("memory", int, "exemplars per class"),
    "--memory-total": ("memory_total", int, "fixed total exemplar budget instead"),
    "--selection": ("selection", str, "herding | random"),
    "--model": ("model", str, "auto | resnet32 | resnet32_podnet (LT-CIL's PODNet ResNet-32) | resnet18 | small"),
    "--augment": ("augment", str, "auto (the source's official: cifar100 resized_crop, others crop_flip) | crop_flip | "
                 "resized_crop | none"),
    "--epochs": ("epochs", int, "epochs per phase (LR steps at 50%% and 75%%)"),
    "--batch-size": ("batch_size", int, "mini-batch size"),
    "--lr": ("lr", float, "initial learning rate"),
    "--lr-schedule": ("lr_schedule", str, "step (LR steps at 50%% and 75%%) | patience (needs --val-fraction)"),
    "--lr-patience": ("lr_patience", int, "patience schedule: epochs without a better validation loss"),
    "--lr-min": ("lr_min", float, "patience schedule: the phase ends once the lr falls below this"),
    "--weight-decay": ("weight_decay", float, "SGD weight decay"),
    "--seed": ("seed", int, "fixes data order, augmentation and initial weights"),
    "--device": ("device", str, "auto | cpu | cuda"),
    "--precision": ("precision", str, "auto | fp32 | bf16 (autocast); auto: bf16 where the chip has it natively"),
    "--workers": ("workers", int, "DataLoader workers for image-file sources (imagenet_subset, food101, imagenet1k)"),
    "--channels-last": ("channels_last", _bool_or_auto,
                        "NHWC layout for the convolutions: true, false or auto (the default: on for CPU runs)"),
    "--out": ("out", str, "run folder (default runs/<settings>)"),
    "--data-root": ("data_root", str, "folder holding the datasets (cifar100: DATA_ROOT/cifar-100-python; fashion_mnist: the IDX files)"),
    "--download": ("download", _bool, "download missing datasets (needs internet)"),
    "--checkpoints": ("checkpoints", _bool, "save a checkpoint after every phase (what --resume continues from)"),
    "--checkpoint-every": ("checkpoint_every", int, "also checkpoint inside a phase every K epochs (0: only after phases)"),
    "--probes": ("probes", lambda t: [p for p in t.split(",") if p], "comma list: gradients,weights,accuracy ('' = none)"),
    "--probe-every": ("probe_every", str, "gradient probe granularity: epoch | step"),
}


def _add_run_flags(parser: argparse.ArgumentParser, method_arg_help: str) -> None:
    """The flags of `gradlab run` (every RunConfig field, presets, method args) on ``parser``."""
    parser.add_argument("config", nargs="?", help="YAML file with RunConfig keys (flags override it)")
    for flag, (dest, kind, text) in RUN_FLAGS.items():
        parser.add_argument(flag, dest=dest, type=kind, default=argparse.SUPPRESS, help=text)
    parser.add_argument("--preset", dest="presets", action="append", default=argparse.SUPPRESS,
                        help=f"apply a preset (repeatable): {', '.join(sorted(PRESETS))}")
    parser.add_argument("--method-arg", dest="method_args", action="append", default=argparse.SUPPRESS,
                        metavar="KEY=VALUE", help=method_arg_help)


def _add_executor_flags(parser: argparse.ArgumentParser, workers: bool = True) -> None:
    """How many runs train: worker processes here (local), or tasks on Ray (this machine or a cluster)."""
    parser.add_argument("--backend", default="local", help="local (worker processes on this machine; default) | "
                                                           "ray (a local Ray runtime, or the cluster at --address)")
    parser.add_argument("--address", default=None, help="an existing Ray cluster (with --backend ray), e.g. auto")
    if workers:
        parser.add_argument("--workers", type=int, default=None, help="local backend: worker processes "
                                                                      "(default: one per core)")


def _run_config(ns: argparse.Namespace, not_settings: tuple) -> RunConfig:
    """The RunConfig of a `run`-style command: YAML file, then flags (``not_settings`` are other options)."""
    values = {k: v for k, v in vars(ns).items() if k not in ("command", "config", *not_settings)}
    if "method_args" in values:
        values["method_args"] = _method_args(values["method_args"])
    return RunConfig.from_yaml(ns.config, values) if ns.config else RunConfig.from_dict(values, source="flags")


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (the usage block is what ``--help`` is for)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gradlab", description="Imbalanced class-incremental learning you can see.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train one class-incremental run and write its record folder")
    _add_run_flags(run, "a method-specific setting (repeatable)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run folder (only once the new "
                                                              "run has finished)")
    run.add_argument("--resume", action="store_true", help="continue an interrupted run in --out from its newest "
                                                           "checkpoint (the settings must equal the stored ones)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    figures = sub.add_parser("figures", help="regenerate the paper figures over several seeds, with verdicts "
                                             "(runs what they need in parallel, reusing a cache)")
    figures.add_argument("--quick", action="store_true",
                         help="the short CPU protocol (make figures: Fashion-MNIST-LT, small CNN, 20 epochs, "
                              "about 10 min on 2 cores); default: the paper recipe (160 epochs)")
    figures.add_argument("--scenario", default="fashion_mnist",
                         help="fashion_mnist (default, real data) | cifar100 (the paper's) | synthetic | digits")
    figures.add_argument("--device", default="auto", help="auto | cpu | cuda")
    figures.add_argument("--out", default="figures", help="folder for the PNG/PDF/CSV files (default figures/)")
    figures.add_argument("--cache", default="runs/cache", help="folder of cached runs (default runs/cache)")
    figures.add_argument("--only", type=lambda t: [f for f in t.split(",") if f], default=None,
                         help="comma list of figures: fig2,fig5,weight_norms,fig4 (default: all)")
    figures.add_argument("--seeds", type=_seeds, default=None, help="comma list of seeds (default 0,1,2)")
    figures.add_argument("--workers", type=int, default=None,
                         help="parallel worker processes on CPU (default: one per core)")
    figures.add_argument("--epochs", type=int, default=argparse.SUPPRESS, help="epochs per phase for every run")
    figures.add_argument("--data-root", dest="data_root", default=argparse.SUPPRESS,
                         help="folder holding the datasets (fashion_mnist: the four IDX files; "
                              "cifar100: DATA_ROOT/cifar-100-python)")
    figures.add_argument("--download", type=_bool, default=argparse.SUPPRESS,
                         help="download missing datasets with torchvision (needs internet)")
    _add_executor_flags(figures, workers=False)
    figures.add_argument("--quiet", action="store_true", help="no progress lines")
    compare = sub.add_parser("compare", help="run several methods on one scenario and tabulate them")
    compare.add_argument("config", nargs="?", help="YAML file with RunConfig keys (flags override it)")
    compare.add_argument("--methods", required=True, type=lambda t: [m for m in t.split(",") if m],
                         help="comma list of registered methods (see `gradlab info`), or `all`")
    for flag, (dest, kind, text) in RUN_FLAGS.items():
        if flag not in ("--method", "--out"):
            compare.add_argument(flag, dest=dest, type=kind, default=argparse.SUPPRESS, help=text)
    compare.add_argument("--preset", dest="presets", action="append", default=argparse.SUPPRESS,
                         help=f"apply a preset (repeatable): {', '.join(sorted(PRESETS))}")
    compare.add_argument("--method-arg", dest="method_args", action="append", default=[],
                         metavar="METHOD:KEY=VALUE", help="a setting of one compared method (repeatable), "
                                                          "e.g. wa:clip=false")
    compare.add_argument("--out", default="runs/compare", help="folder for comparison.{csv,md} and the figure")
    compare.add_argument("--cache", default="runs/cache", help="folder of cached runs (default runs/cache)")
    compare.add_argument("--seeds", type=_seeds, default=None,
                         help="comma list of seeds: mean ± std over them (default: --seed, one run per method)")
    _add_executor_flags(compare, workers=False)      # --workers is the run setting (DataLoader workers) here
    compare.add_argument("--quiet", action="store_true", help="no progress lines")
    data = sub.add_parser("data", help="print a configuration's per-class and per-task counts and class order "
                                       "(check a protocol before a long run)")
    _add_run_flags(data, "accepted as in `run`; it does not change the data")
    data.add_argument("--csv", default=None, metavar="FILE",
                      help="also write one row per class: class, original_label, task, train/val/test counts")
    data.add_argument("--write-lists", default=None, metavar="DIR",
                      help="image-file sources: write DIR/train.txt and DIR/test.txt ('<path> <label>', the whole "
                           "source, e.g. the ImageNetSubset) and DIR/train_<order>.txt (the long-tailed training "
                           "images before the hold-out), labels as in the source")
    sweep = sub.add_parser("sweep", help="train every run of a sweep file in parallel (Ray) and tabulate mean ± std "
                                         "over seeds")
    sweep.add_argument("file", help="YAML with keys base (run settings), grid (field -> list) and/or list "
                                    "(partial settings)")
    sweep.add_argument("--out", required=True, help="folder for runs/, sweep.csv and sweep.md")
    sweep.add_argument("--backend", default="ray", help="ray (default: a local Ray runtime, or --address) | local "
                                                        "(worker processes on this machine)")
    sweep.add_argument("--address", default=None, help="an existing Ray cluster, e.g. ray://head:10001 or auto")
    sweep.add_argument("--cpus-per-run", type=int, default=1, help="CPU cores (torch threads) per run (default 1)")
    sweep.add_argument("--gpus-per-run", type=float, default=0.0,
                       help="GPUs per run; 0.25 packs four runs on one GPU (default 0)")
    sweep.add_argument("--workers", type=int, default=None, help="local backend: worker processes (default: cores)")
    sweep.add_argument("--quiet", action="store_true", help="no progress lines")
    sub.add_parser("info", help="list scenarios, orders, presets and methods")
    return parser


def _method_args(pairs: list[str]) -> dict:
    import yaml

    args = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--method-arg expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        if not key.strip():
            raise ConfigError(f"--method-arg expects KEY=VALUE with a non-empty KEY, got {pair!r}")
        try:
            args[key] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            problem = " ".join(str(getattr(err, "problem", None) or "invalid YAML").split())
            raise ConfigError(f"--method-arg {key}: {value!r} is not a plain YAML value ({problem}); "
                              "use numbers, true/false, strings or [lists]") from None
    return args


def command_data(ns: argparse.Namespace) -> int:
    """The scenario a configuration builds, as tables: per task, then per class (in learning order)."""
    from gradlab.data.scenario import Scenario
    from gradlab.data.sources import check_source
    from gradlab.records import atomic_write

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
        from gradlab.data.sources.files import write_scenario_lists

        for path in write_scenario_lists(scenario, Path(ns.write_lists)):
            print(f"written: {path}")
    return 0


def command_run(ns: argparse.Namespace) -> int:
    from gradlab.runner import run

    cfg = _run_config(ns, ("overwrite", "quiet", "resume"))
    if ns.quiet:
        cfg.progress = False
    record = run(cfg, overwrite=ns.overwrite, resume=ns.resume)
    s = record.summary
    print(f"run folder: {record.path}")
    print(f"average incremental accuracy: {s['average_incremental_accuracy']:.4f} (class-weighted), "
          f"{s['average_incremental_accuracy_task_mean']:.4f} (mean over tasks)")
    print(f"final accuracy: {s['final_accuracy']:.4f}; average forgetting: {s['average_forgetting']}")
    return 0


def command_figures(ns: argparse.Namespace) -> int:
    from gradlab.figures import make_figures

    overrides = {k: getattr(ns, k) for k in ("epochs", "data_root", "download") if hasattr(ns, k)}
    if ns.seeds is not None:
        overrides["seeds"] = ns.seeds
    if ns.workers is not None and ns.workers < 1:
        raise ConfigError(f"--workers must be an integer >= 1, got {ns.workers}")
    written = make_figures(out=ns.out, quick=ns.quick, scenario=ns.scenario, device=ns.device, cache_dir=ns.cache,
                           only=ns.only, workers=ns.workers, progress=not ns.quiet, backend=ns.backend,
                           address=ns.address, **overrides)
    for name, paths in written.items():
        print(f"{name}: {', '.join(str(p) for p in paths)}")
    return 0


def command_compare(ns: argparse.Namespace) -> int:
    from gradlab.compare import compare

    skip = ("command", "config", "methods", "method_args", "out", "cache", "quiet", "seeds", "backend", "address")
    values = {k: v for k, v in vars(ns).items() if k not in skip}
    settings = RunConfig.from_yaml(ns.config, values) if ns.config else RunConfig.from_dict(values, source="flags")
    settings = {k: v for k, v in settings.to_dict().items() if k not in ("method", "method_args", "out", "progress")}
    per_method: dict[str, list[str]] = {}
    for item in ns.method_args:
        method, sep, pair = item.partition(":")
        if not sep or "=" not in pair or "=" in method:
            raise ConfigError(f"--method-arg expects METHOD:KEY=VALUE (e.g. wa:clip=false), got {item!r}")
        per_method.setdefault(method, []).append(pair)
    method_args = {method: _method_args(pairs) for method, pairs in per_method.items()}
    table = compare(ns.methods, out=ns.out, cache_dir=ns.cache, method_args=method_args, progress=not ns.quiet,
                    seeds=ns.seeds, backend=ns.backend, address=ns.address, **settings)
    print((Path(ns.out) / "comparison.md").read_text())
    print(f"written: {ns.out}/comparison.csv, comparison.md, accuracy_curves.png/.pdf/.csv ({len(table)} methods)")
    return 0


def command_sweep(ns: argparse.Namespace) -> int:
    from gradlab.sweep import run_sweep

    if ns.address and ns.backend != "ray":
        raise ConfigError(f"--address is a Ray cluster: it needs --backend ray, got --backend {ns.backend}")
    log = (lambda line: None) if ns.quiet else None
    table = run_sweep(ns.file, ns.out, backend=ns.backend, address=ns.address, cpus_per_run=ns.cpus_per_run,
                      gpus_per_run=ns.gpus_per_run, workers=ns.workers, log=log)
    print((Path(ns.out) / "sweep.md").read_text())
    failed = int((table.status != "complete").sum())
    print(f"written: {ns.out}/sweep.csv, {ns.out}/sweep.md ({len(table)} runs, {failed} did not finish)")
    return 1 if failed else 0


def command_info() -> int:
    from gradlab.data.profiles import ORDERS
    from gradlab.data.scenario import list_scenarios
    from gradlab.methods import list_methods, method_options

    print("scenarios:")
    for name, text in list_scenarios().items():
        print(f"  {name:12s} {text}")
    print(f"orders: {', '.join(ORDERS)}")
    print("presets:")
    for name, values in PRESETS.items():
        print(f"  {name:12s} {json.dumps(values)}")
    print("methods:")
    for name, text in list_methods().items():
        options = method_options(name)
        print(f"  {name:14s} {text}" + (f"  [method_args: {', '.join(options)}]" if options else ""))
    return 0


def _warnings_as_lines() -> None:
    """gradlab's own warnings as one line on stderr ("gradlab: warning: ..."), not Python's two-line form
    (call inside ``warnings.catch_warnings()``, which restores the default)."""
    import warnings

    from gradlab.config import SettingWarning
    from gradlab.records import RunFolderWarning

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, (SettingWarning, RunFolderWarning)):
            print(f"gradlab: warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)
    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    from gradlab.data.sources import DataError
    from gradlab.divergence import RunDiverged

    import warnings

    ns = build_parser().parse_args(argv)
    try:
        commands = {"info": lambda: command_info(), "run": lambda: command_run(ns), "figures": lambda: command_figures(ns),
                    "compare": lambda: command_compare(ns), "data": lambda: command_data(ns),
                    "sweep": lambda: command_sweep(ns)}
        with warnings.catch_warnings():
            _warnings_as_lines()
            return commands[ns.command]()
    except (ConfigError, DataError, FileNotFoundError) as err:
        print(f"gradlab: error: {err}", file=sys.stderr)
        return 2
    except RunDiverged as err:
        print(f"gradlab: error: {err}", file=sys.stderr)
        return 3
    except BrokenPipeError:          # `gradlab data | head`: the reader left; no traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
