"""The command line's parser: every flag of ``gradlab run | compare | figures | sweep | data | info`` with its help.

Run flags default to "not given" (``argparse.SUPPRESS``), so a YAML file, then presets, then the scenario's
recipe fill what a flag leaves out. The commands themselves are in :mod:`gradlab.cli`.
"""
from __future__ import annotations

import argparse

from gradlab import __version__
from gradlab.config import PRESETS, QUICK_START, scenario_recipes


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
    "--epochs": ("epochs", int, "epochs per phase (LR steps at 50%% and 75%%; default: the scenario's recipe)"),
    "--batch-size": ("batch_size", int, "mini-batch size (default: the scenario's recipe)"),
    "--lr": ("lr", float, "initial learning rate"),
    "--lr-schedule": ("lr_schedule", str, "step (LR steps at 50%% and 75%%) | patience (needs --val-fraction)"),
    "--lr-patience": ("lr_patience", int, "patience schedule: epochs without a better validation loss"),
    "--lr-min": ("lr_min", float, "patience schedule: the phase ends once the lr falls below this"),
    "--weight-decay": ("weight_decay", float, "SGD weight decay (default: the scenario's recipe)"),
    "--seed": ("seed", int, "fixes data order, augmentation and initial weights"),
    "--device": ("device", str, "auto | cpu | cuda"),
    "--precision": ("precision", str, "auto | fp32 | bf16 (autocast); auto: bf16 where the chip has it natively"),
    "--loader-workers": ("loader_workers", int, "DataLoader worker processes for image-file sources (imagenet_subset, "
                         "food101, imagenet1k, image_folder; default 4)"),
    "--channels-last": ("channels_last", _bool_or_auto,
                        "NHWC layout for the convolutions: true, false or auto (the default: on for CPU runs)"),
    "--sync-bn": ("sync_bn", _bool, "on several ranks (torchrun --nproc-per-node N -m gradlab run ...): BatchNorm over "
                  "the global batch (true) or each rank's slice (false, the default)"),
    "--out": ("out", str, "run folder (default runs/<settings>)"),
    "--data-root": ("data_root", str, "folder holding the datasets (cifar100: DATA_ROOT/cifar-100-python; fashion_mnist: the IDX "
                   "files; image_folder: ROOT with train/<class>/ and test/<class>/; arrays: the .npz file)"),
    "--download": ("download", _bool, "download missing datasets (needs internet)"),
    "--checkpoints": ("checkpoints", _bool, "save a checkpoint after every phase (what --resume continues from)"),
    "--checkpoint-every": ("checkpoint_every", int, "also checkpoint inside a phase every K epochs (0: only after phases)"),
    "--probes": ("probes", lambda t: [p for p in t.split(",") if p], "comma list: gradients,weights,accuracy ('' = none)"),
    "--probe-every": ("probe_every", str, "gradient probe granularity: epoch | step"),
    "--log": ("log", lambda t: [p for p in t.split(",") if p], "loggers, comma list: tensorboard,csv,wandb (W&B "
              "offline unless you are logged in); they write into --log-dir"),
    "--log-dir": ("log_dir", str, "where the loggers write (default <run folder>/logs; compare and sweep: "
                  "<out>/logs/<method>/seed_<k>)"),
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
    _add_plugin_flag(parser, argparse.SUPPRESS)


def _add_plugin_flag(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument("--plugin", dest="plugins", action="append", default=default, metavar="PATH_OR_MODULE",
                        help="a .py file or module to import first: your methods, probes (repeatable)")


def _add_executor_flags(parser: argparse.ArgumentParser, workers: bool = True) -> None:
    """How many runs train: worker processes here (local), or tasks on Ray (this machine or a cluster)."""
    parser.add_argument("--backend", default="local", help="local (worker processes on this machine; the default "
                                                           "but for sweep) | ray (a local Ray runtime, or the "
                                                           "cluster at --address)")
    parser.add_argument("--address", default=None, help="an existing Ray cluster (with --backend ray), e.g. auto")
    if workers:
        parser.add_argument("--workers", type=int, default=None, help="runs trained in parallel (local backend: "
                                                                      "worker processes; default: one per core)")
    parser.add_argument("--yes", action="store_true", help="start without asking, even when the estimated time is "
                                                           "long (the full and paper protocols on a CPU)")


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors in one line (the usage block is what ``--help`` is for)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="gradlab", description="Imbalanced class-incremental learning you can see.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_figures(sub)
    _add_compare(sub)
    _add_data(sub)
    _add_sweep(sub)
    _add_plugin_flag(sub.add_parser("info", help="list scenarios, orders, presets and methods"), [])
    return parser


def _add_run(sub) -> None:
    """``gradlab run``: the run flags, --overwrite, --resume."""
    recipes = "\n".join(f"  {name:16s}{text}" for name, text in scenario_recipes().items())
    run = sub.add_parser("run", help="train one class-incremental run and write its record folder",
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         epilog=f"Default recipe of each scenario (flags, YAML keys and presets override it; "
                                f"--preset paper is the official DGR recipe):\n{recipes}\n\n"
                                f"Quick start (about 20 s on 2 cores): {QUICK_START}")
    _add_run_flags(run, "a method-specific setting (repeatable)")
    run.add_argument("--overwrite", action="store_true", help="replace an existing run folder (only once the new "
                                                              "run has finished)")
    run.add_argument("--resume", action="store_true", help="continue an interrupted run in --out from its newest "
                                                           "checkpoint (the settings must equal the stored ones)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_figures(sub) -> None:
    """``gradlab figures``: the paper's figures over seeds."""
    figures = sub.add_parser("figures", help="regenerate the paper figures over several seeds, with verdicts "
                                             "(runs what they need in parallel, reusing a cache)")
    figures.add_argument("--quick", action="store_true",
                         help="the short CPU protocol (make figures: Fashion-MNIST-LT, small CNN, 20 epochs, "
                              "about 10 min on 2 cores); default: the paper recipe (160 epochs)")
    figures.add_argument("--scenario", default="fashion_mnist",
                         help="fashion_mnist (default, real data) | cifar100 (the paper's) | synthetic | digits")
    figures.add_argument("--device", default="auto", help="auto | cpu | cuda")
    figures.add_argument("--out", default="runs/figures", help="folder for the PNG/PDF/CSV files and README.md "
                                                               "(default runs/figures; make figures: figures/)")
    figures.add_argument("--cache", default="runs/cache", help="folder of cached runs (default runs/cache)")
    figures.add_argument("--only", type=lambda t: [f for f in t.split(",") if f], default=None,
                         help="comma list of figures: fig2,fig5,weight_norms,fig4 (default: all); with --tables: "
                              "table1,ablation,imbalanced_forgetting,fig5_settled")
    figures.add_argument("--tables", action="store_true",
                         help="the results tables instead (main results in lt/ltio x LFS/LFH, ablation, imbalanced "
                              "forgetting, Fig. 5 over 5 seeds at two lengths) into OUT/tables (make tables)")
    figures.add_argument("--seeds", type=_seeds, default=None, help="comma list of seeds (default 0,1,2)")
    figures.add_argument("--epochs", type=int, default=argparse.SUPPRESS, help="epochs per phase for every run")
    figures.add_argument("--data-root", dest="data_root", default=argparse.SUPPRESS,
                         help="folder holding the datasets (fashion_mnist: the four IDX files; "
                              "cifar100: DATA_ROOT/cifar-100-python)")
    figures.add_argument("--download", type=_bool, default=argparse.SUPPRESS,
                         help="download missing datasets with torchvision (needs internet)")
    _add_executor_flags(figures)
    _add_plugin_flag(figures, [])
    figures.add_argument("--quiet", action="store_true", help="no progress lines")


def _add_compare(sub) -> None:
    """``gradlab compare``: several methods on one scenario."""
    compare = sub.add_parser("compare", help="run several methods on one scenario and tabulate them")
    compare.add_argument("config", nargs="?", help="YAML file with RunConfig keys (flags override it)")
    compare.add_argument("--methods", required=True, type=lambda t: [m for m in t.split(",") if m],
                         help="comma list of registered methods (see `gradlab info`), or `all`")
    for flag, (dest, kind, text) in RUN_FLAGS.items():
        if flag not in ("--method", "--out"):
            compare.add_argument(flag, dest=dest, type=kind, default=argparse.SUPPRESS, help=text)
    compare.add_argument("--preset", dest="presets", action="append", default=argparse.SUPPRESS,
                         help=f"apply a preset (repeatable): {', '.join(sorted(PRESETS))}")
    _add_plugin_flag(compare, argparse.SUPPRESS)
    compare.add_argument("--method-arg", dest="method_args", action="append", default=[],
                         metavar="METHOD:KEY=VALUE", help="a setting of one compared method (repeatable), "
                                                          "e.g. wa:clip=false")
    compare.add_argument("--out", default="runs/compare", help="folder for comparison.{csv,md} and the figure")
    compare.add_argument("--cache", default="runs/cache", help="folder of cached runs (default runs/cache)")
    compare.add_argument("--seeds", type=_seeds, default=None,
                         help="comma list of seeds: mean ± std over them (default: --seed, one run per method)")
    _add_executor_flags(compare)
    compare.add_argument("--quiet", action="store_true", help="no progress lines")


def _add_data(sub) -> None:
    """``gradlab data``: a configuration's counts, without training."""
    data = sub.add_parser("data", help="print a configuration's per-class and per-task counts and class order "
                                       "(check a protocol before a long run)")
    _add_run_flags(data, "accepted as in `run`; it does not change the data")
    data.add_argument("--csv", default=None, metavar="FILE",
                      help="also write one row per class: class, original_label, task, train/val/test counts")
    data.add_argument("--write-lists", default=None, metavar="DIR",
                      help="image-file sources: write DIR/train.txt and DIR/test.txt ('<path> <label>', the whole "
                           "source, e.g. the ImageNetSubset) and DIR/train_<order>.txt (the long-tailed training "
                           "images before the hold-out), labels as in the source")


def _add_sweep(sub) -> None:
    """``gradlab sweep``: every run of a sweep file."""
    sweep = sub.add_parser("sweep", help="train every run of a sweep file in parallel (Ray) and tabulate mean ± std "
                                         "over seeds")
    sweep.add_argument("file", help="YAML with keys base (run settings), grid (field -> list) and/or list "
                                    "(partial settings)")
    sweep.add_argument("--out", default=None, help="folder for runs/, sweep.csv and sweep.md (default "
                                                   "runs/sweeps/<the sweep file's name>)")
    _add_executor_flags(sweep)
    sweep.set_defaults(backend="ray")
    sweep.add_argument("--cpus-per-run", type=int, default=1,
                       help="CPU cores (torch threads) per run (default 1); a run on N >= 2 GPUs holds N times this, "
                            "one process per GPU")
    sweep.add_argument("--gpus-per-run", type=float, default=0.0,
                       help="GPUs per run, with --backend ray: a fraction below 1 shares a GPU (0.25 packs four runs "
                            "on each; device auto uses the GPU Ray gives the run), or a whole number N (N >= 2: "
                            "each run trains with DDP on N GPUs, N processes of --cpus-per-run threads each); "
                            "default 0 (CPU runs)")
    _add_plugin_flag(sweep, [])
    sweep.add_argument("--quiet", action="store_true", help="no progress lines")
