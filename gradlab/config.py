"""Run configuration: one flat dataclass, YAML load/save, presets and early validation.

Every check here runs before any data is loaded or any file is written, and every error names the
field and what is allowed (scikit-learn style).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from gradlab.checks import (
    check_choice,
    check_int,
    check_keys,
    is_number,
    non_finite,
    read_yaml_file,
    short,
)
from gradlab.data.holdout import HOLDOUTS
from gradlab.data.profiles import ORDERS, PROFILES, task_sizes
from gradlab.data.sources import SOURCE_INFO, source_classes
from gradlab.errors import ConfigError, DataError, SettingWarning  # noqa: F401 - ConfigError: also importable here
from gradlab.methods import list_methods
from gradlab.plugins import absolute_spec, load_plugins
from gradlab.probes import PROBE_EVERY, PROBES
from gradlab.training.schedules import SCHEDULES

SCENARIOS = SOURCE_INFO.keys()       # a live view: fashion_mnist, cifar100, ..., and plugins' scenarios
MODELS = ("auto", "resnet32", "resnet32_podnet", "resnet18", "small")
MODEL_NAMES = {"resnet32": "ResNet-32", "resnet32_podnet": "ResNet-32 (PODNet)", "resnet18": "ResNet-18",
               "small": "small CNN"}
LOGGERS = ("tensorboard", "csv", "wandb")     # what `log` may name (gradlab.runs.logs writes them)
AUGMENTS = ("auto", "crop_flip", "resized_crop", "none")
SELECTIONS = ("herding", "random")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")

# Presets fill fields the user did not set explicitly (flags and YAML keys always win).
PRESETS: dict[str, dict[str, Any]] = {
    # the official DGR recipe for CIFAR-100-LT (its main.sh and data loader): 10 % per-class validation hold-out,
    # RandomResizedCrop augmentation, 160 epochs with steps at 80 and 120, batch 128
    "paper": {"val_fraction": 0.1, "augment": "resized_crop", "epochs": 160, "batch_size": 128,
              "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "memory": 20},
    "lfs": {"split": "lfs"},  # learning from scratch: C/20 base classes, 20 tasks (5 + 19x5 on CIFAR-100)
    "lfh": {"split": "lfh"},  # learning from half: C/2 base classes, then 5 tasks (50 + 5x10)
    # the quick protocol (`make figures`, `gradlab figures --quick`): a short CPU recipe - the small CNN, 20 epochs of
    # batch 32, bf16 autocast, NHWC; `make figures` also caps Fashion-MNIST's head classes at 1 000 images
    "quick": {"model": "small", "epochs": 20, "batch_size": 32, "precision": "bf16", "channels_last": True},
}
SPLITS = ("custom", "lfs", "lfh")
DEFAULT_TASKS = 5
# The official DGR recipe for CIFAR-100-LT: what a recipe field takes when neither the user nor the scenario's
# own recipe (``SourceInfo.recipe``: Fashion-MNIST and digits train short, the ImageNet-sized sources 90 epochs)
# sets it. lr 0.1 and momentum 0.9 are the same everywhere; the lr steps at 50 % and 75 % of the epochs.
PAPER_RECIPE: dict[str, Any] = {"epochs": 160, "batch_size": 128, "weight_decay": 5e-4}
# Upper bounds no run could reach: epochs per phase (the paper trains 160), and counts (images, exemplars, batch
# sizes) far beyond the largest data set gradlab reads (ImageNet-1k: 1.28 million training images).
MAX_EPOCHS = 10_000
MAX_FACTOR = 1e30          # learning rates and the like: float32 overflows past 3.4e38 in the optimizer
MAX_COUNT = 100_000_000
QUICK_START = "gradlab run --scenario fashion_mnist --method dgr --max-per-class 1000 --out runs/demo"


@dataclass
class RunConfig:
    """All settings of one class-incremental run; ``scenario`` has no default.

    Optimisation (the *recipe*): ``epochs``, ``batch_size`` and ``weight_decay`` left unset (None) take the
    scenario's default recipe (``gradlab info`` lists them): Fashion-MNIST 20 epochs of batch 32, digits 10 of
    32, the ImageNet-sized sources 90 epochs with lr steps at 30 and 60 and weight decay 1e-4, CIFAR-100 and
    synthetic the official DGR recipe (160 epochs of batch 128, weight decay 5e-4; also ``presets: [paper]``).
    SGD lr 0.1, momentum 0.9, the lr divided by 10 after 50 % and 75 % of the epochs, 20 exemplars per class
    chosen by herding. The recipe is filled in when the config is built, so a saved config says what ran.
    Data: ``val_fraction`` and
    ``augment`` left unset take the source's official protocol (CIFAR-100: a 10 % per-class hold-out drawn as
    the official loader draws it, and Pad 4 + RandomResizedCrop + flip; sources without an official protocol:
    no hold-out, crop + flip), and ``model: auto`` the paper's network (ResNet-32 for CIFAR). The ImageNet and
    Food-101 rows of the paper change epochs, milestones and weight decay: see ``configs/``.
    """

    # scenario
    scenario: str | None = None         # required: see SCENARIOS (the quick start: fashion_mnist)
    order: str = "lt"
    imbalance: float | None = None      # rho = n_max / n_min; None: 100 for lt/ltio/seeded, 1 for conv
    profile: str = "exp"
    max_per_class: int | None = None    # head-class training count n_max; None: all the source has
    split: str = "custom"               # custom (use base/tasks), lfs, lfh
    base: int | None = None             # classes in the base task; None: classes split evenly
    tasks: int = 5                      # tasks in all, base task included (DEFAULT_TASKS)
    val_fraction: float | None = None   # per-class validation hold-out; None: the source's official value
    holdout: str = "official"           # official (the DGR loaders' draw, quirk included) | stratified
    # method and memory
    method: str = "finetune"
    method_args: dict = field(default_factory=dict)
    memory: int = 20                    # exemplars per class (fixed per class; the total grows)
    memory_total: int | None = None     # a fixed total budget instead of `memory`
    selection: str = "herding"
    # model and optimisation
    model: str = "auto"
    augment: str = "auto"
    epochs: int | None = None           # None: the scenario's recipe (160 for CIFAR-100, 20 for Fashion-MNIST)
    batch_size: int | None = None       # None: the scenario's recipe (128 for CIFAR-100, 32 for Fashion-MNIST)
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float | None = None   # None: the scenario's recipe (5e-4; 1e-4 for the ImageNet-sized sources)
    lr_milestones: list[int] | None = None   # None: the recipe's, else 50 % and 75 % of the epochs (80, 120 of 160)
    lr_factor: float = 10.0
    lr_schedule: str = "step"           # step (milestones) | patience (LT-CIL iCaRL; needs val_fraction > 0)
    lr_patience: int = 5                # patience: epochs without a better validation loss before lr / lr_factor
    lr_min: float = 1e-4                # patience: the phase ends once the lr falls below this
    # run
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"             # auto (bf16 where the chip has it natively, else fp32) | fp32 | bf16
    channels_last: bool | None = None   # NHWC layout for the convolutions; None (auto): on CPU (1.2-1.3x fp32)
    loader_workers: int = 4             # DataLoader workers for image-file sources (ImageNet, Food-101)
    sync_bn: bool = False               # several ranks (torchrun): BatchNorm over the global batch, not each rank's
    out: str | None = None
    data_root: str = "data"
    download: bool = False
    checkpoints: bool = True            # a checkpoint after every phase (what resume continues from)
    checkpoint_every: int = 0           # also inside a phase, every K epochs (0: only after phases)
    progress: bool = True
    probes: list[str] = field(default_factory=lambda: ["gradients", "weights", "accuracy"])
    probe_every: str = "epoch"          # gradient probe: mean per epoch, or every step
    presets: list[str] = field(default_factory=list)
    plugins: list[str] = field(default_factory=list)   # .py files or modules imported first (your methods, probes)
    log: list[str] = field(default_factory=list)       # loggers: tensorboard, csv, wandb (gradlab.runs.logs)
    log_dir: str | None = None          # where they write; None: <run folder>/logs

    def __post_init__(self) -> None:
        """Fill the recipe fields left unset from the scenario's recipe, then the paper's."""
        if isinstance(self.plugins, (list, tuple)) and self.scenario not in SOURCE_INFO:
            load_plugins([str(p) for p in self.plugins])     # a plugin's scenario brings its own recipe
        recipe = dict(PAPER_RECIPE)
        if self.scenario in SOURCE_INFO:
            own = SOURCE_INFO[self.scenario].recipe
            recipe.update(own)
            if self.epochs is not None and "lr_milestones" in own:
                recipe.pop("lr_milestones")      # the recipe's steps belong to its epochs, not to the user's
        for name, value in recipe.items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    def folder_name(self) -> str:
        """The run's folder name from its settings (``runs/<name>`` by default):
        ``<scenario>-<method>-<order>-r<rho>-b<base>-t<tasks>-m<memory>-e<epochs>[-n<max per class>]-s<seed>``,
        then ``-a<hash>`` when ``method_args`` are set, so runs that differ only there do not share a folder."""
        base = "even" if self.base is None else self.base
        name = (f"{self.scenario}-{self.method}-{self.order}-r{self.rho:g}-b{base}-t{self.tasks}-m{self.memory}"
                f"-e{self.epochs}" + ("" if self.max_per_class is None else f"-n{self.max_per_class}") + f"-s{self.seed}")
        if self.method_args:
            text = json.dumps(self.method_args, sort_keys=True, default=str)
            name += "-a" + hashlib.sha256(text.encode()).hexdigest()[:8]
        return name

    def recipe_text(self) -> str:
        """The optimisation recipe in one line, e.g. ``small CNN, 20 epochs per task of batch 32, SGD lr 0.1
        (/10 after epochs 10, 15), momentum 0.9, weight decay 0.0005``."""
        model = self.model
        if model == "auto" and self.scenario in SOURCE_INFO:
            model = SOURCE_INFO[self.scenario].model
        steps = ("lr / 10 when the validation loss stalls" if self.lr_schedule == "patience"
                 else f"/{self.lr_factor:g} after epochs {', '.join(map(str, self.milestones()))}")
        return (f"{MODEL_NAMES.get(model, model)}, {self.epochs} epochs per task of batch {self.batch_size}, "
                f"SGD lr {self.lr:g} ({steps}), momentum {self.momentum:g}, weight decay {self.weight_decay:g}")

    # ----------------------------------------------------------------- derived values
    @property
    def rho(self) -> float:
        if self.imbalance is not None:
            return float(self.imbalance)
        return 1.0 if self.order == "conv" else 100.0

    @property
    def holdout_fraction(self) -> float:
        """``val_fraction``, or the source's official hold-out when unset (0.1 for CIFAR-100, else 0)."""
        if self.val_fraction is not None:
            return float(self.val_fraction)
        return SOURCE_INFO[self.scenario].val_fraction if self.scenario in SOURCE_INFO else 0.0

    @property
    def augmentation(self) -> str:
        """``augment``, with ``auto`` resolved to the source's official training augmentation."""
        if self.augment != "auto":
            return self.augment
        return SOURCE_INFO[self.scenario].augment if self.scenario in SOURCE_INFO else "crop_flip"

    def unused_settings(self) -> list[str]:
        """Settings changed from their default that have no effect in this configuration (one line each);
        :func:`gradlab.run` warns about them."""
        info, default = SOURCE_INFO[self.scenario], RunConfig()
        changed = {f.name for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)}
        rules = [
            ("loader_workers", not info.image_files, (f"{self.scenario!r} is held in memory; only image-file sources "
                                                      "(imagenet_subset, food101, imagenet1k, image_folder) use "
                                                      "DataLoader workers")),
            ("data_root", not info.needs_root, f"{self.scenario!r} reads no files"),
            ("download", not info.needs_root, f"{self.scenario!r} reads no files"),
            ("lr_patience", self.lr_schedule == "step", "only lr_schedule 'patience' uses it"),
            ("lr_min", self.lr_schedule == "step", "only lr_schedule 'patience' uses it"),
            ("lr_milestones", self.lr_schedule == "patience", "lr_schedule 'patience' ignores milestones"),
            ("probe_every", "gradients" not in self.probes, "only the 'gradients' probe uses it, which is off"),
            ("holdout", self.holdout_fraction == 0, "val_fraction is 0: nothing is held out"),
            ("memory", self.memory_total is not None, "memory_total sets the exemplar budget instead"),
            ("selection", self.memory == 0 and not self.memory_total, "there is no exemplar memory"),
            ("checkpoint_every", not self.checkpoints, "checkpoints are off"),
            ("profile", self.rho == 1, "the data are balanced (imbalance 1)"),
        ]
        return [f"{name} has no effect here: {why}" for name, idle, why in rules if idle and name in changed]

    def milestones(self) -> list[int]:
        """Epochs after which the LR is divided by ``lr_factor`` (80, 120 of 160, scaled)."""
        if self.lr_milestones is not None:
            return sorted(int(m) for m in self.lr_milestones)
        return sorted({max(1, round(self.epochs * 0.5)), max(1, round(self.epochs * 0.75))})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "RunConfig":
        """Build from a mapping; unknown keys and presets are rejected by name."""
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a mapping of settings, got {type(values).__name__}")
        check_keys(values, source)
        if "workers" in values and "loader_workers" not in values:      # the name before gradlab 0.2
            values = {("loader_workers" if k == "workers" else k): v for k, v in values.items()}
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {unknown}; allowed keys: {sorted(allowed)}")
        presets = values.get("presets") or []
        if isinstance(presets, str):
            presets = [presets]
        if not isinstance(presets, (list, tuple)) or not all(isinstance(p, str) for p in presets):
            raise ConfigError(f"presets must be a preset name or a list of them ({sorted(PRESETS)}), "
                              f"got {short(presets)}")
        merged: dict[str, Any] = {}
        for name in presets:
            if name not in PRESETS:
                raise ConfigError(f"presets: unknown preset {name!r}; allowed: {sorted(PRESETS)}")
            merged.update(PRESETS[name])
        merged.update(values)
        merged["presets"] = list(presets)
        cfg = cls(**merged)
        cfg.validate()
        if cfg.split != "custom" and values.get("tasks") not in (None, cfg.tasks):
            raise ConfigError(f"tasks: {values['tasks']} contradicts split {cfg.split!r}, which sets {cfg.tasks} "
                              f"tasks for {cfg.scenario!r}; drop one of them (split 'custom' uses base and tasks)")
        return cfg

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: dict | None = None) -> "RunConfig":
        path = Path(path)
        values = read_yaml_file(path, "config file")
        if values is None and not overrides:
            raise ConfigError(f"config file {str(path)!r} is empty; give at least a scenario, one of "
                              f"{list(SCENARIOS)}")
        values = {} if values is None else values
        if not isinstance(values, dict):
            raise ConfigError(f"config file {str(path)!r}: expected a mapping of settings")
        values.update(overrides or {})
        return cls.from_dict(values, source=str(path))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    # ----------------------------------------------------------------- validation
    def validate(self) -> "RunConfig":
        """Check every field against its allowed values; raise :class:`ConfigError` on the first bad one."""
        if isinstance(self.plugins, (list, tuple)):         # files as absolute paths: loadable from any folder
            self.plugins = [absolute_spec(str(p)) for p in self.plugins]
        load_plugins(self.plugins)          # before the names below are checked: a plugin may register them
        if self.scenario is None:
            raise ConfigError(f"scenario: none given; choose one of {list(SCENARIOS)} (the quick start: "
                              f"`{QUICK_START}`)")
        check_choice("scenario", self.scenario, tuple(SCENARIOS))
        check_choice("order", self.order, ORDERS)
        check_choice("profile", self.profile, PROFILES)
        check_choice("split", self.split, SPLITS)
        check_choice("model", self.model, MODELS)
        check_choice("augment", self.augment, AUGMENTS)
        check_choice("selection", self.selection, SELECTIONS)
        check_choice("device", self.device, DEVICES)
        check_choice("precision", self.precision, PRECISIONS)
        self._validate_method_args()
        self._validate_imbalance()
        check_int("tasks", self.tasks, 1, MAX_COUNT)
        if self.base is not None:
            check_int("base", self.base, 1, MAX_COUNT)
        if self.max_per_class is not None:
            check_int("max_per_class", self.max_per_class, 1, MAX_COUNT)
        check_int("memory", self.memory, 0, MAX_COUNT)
        if self.memory_total is not None:
            check_int("memory_total", self.memory_total, 0, MAX_COUNT)
        check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        check_int("batch_size", self.batch_size, 1, MAX_COUNT)
        check_int("seed", self.seed, 0, 2**32 - 1)
        check_int("loader_workers", self.loader_workers, 0, 256)
        check_int("checkpoint_every", self.checkpoint_every, 0, MAX_EPOCHS)
        if SOURCE_INFO[self.scenario].image_files and self.augmentation not in ("resized_crop", "none"):
            raise ConfigError(f"augment: {self.scenario!r} is read from image files, which take 'auto', "
                              f"'resized_crop' or 'none', got {short(self.augment)}")
        if self.val_fraction is not None and not (is_number(self.val_fraction) and 0 <= self.val_fraction < 1):
            raise ConfigError(f"val_fraction must be in [0, 1) (or unset: the source's official hold-out), "
                              f"got {short(self.val_fraction)}")

        self._validate_optimizer()
        if self.out is not None and not (isinstance(self.out, str) and self.out.strip()):
            raise ConfigError(f"out must be a folder path (a non-empty string) or unset (runs/<settings>), got {short(self.out)}")
        if not (isinstance(self.data_root, str) and self.data_root.strip()):
            raise ConfigError(f"data_root must be a path (a non-empty string), got {short(self.data_root)}")
        for name in ("download", "checkpoints", "progress", "sync_bn"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {short(getattr(self, name))}")
        if self.channels_last is not None and not isinstance(self.channels_last, bool):
            raise ConfigError(f"channels_last must be true, false or null (auto: on for CPU runs), got {short(self.channels_last)}")

        if not isinstance(self.probes, (list, tuple)) or any(p not in PROBES for p in self.probes):
            raise ConfigError(f"probes must be a list drawn from {sorted(PROBES)}, got {short(self.probes)}")
        check_choice("probe_every", self.probe_every, PROBE_EVERY)
        self._validate_log()
        self._validate_split()
        return self

    def _validate_optimizer(self) -> None:
        """The hold-out, SGD's numbers and the learning-rate schedule."""
        check_choice("holdout", self.holdout, HOLDOUTS)
        for name in ("lr", "lr_factor"):
            if not (is_number(getattr(self, name)) and 0 < getattr(self, name) <= MAX_FACTOR):
                raise ConfigError(f"{name} must be a number in (0, {MAX_FACTOR:g}] (the optimizer computes in "
                                  f"float32), got {short(getattr(self, name))}")
        for name in ("momentum", "weight_decay"):
            if not (is_number(getattr(self, name)) and 0 <= getattr(self, name) <= MAX_FACTOR):
                raise ConfigError(f"{name} must be a number in [0, {MAX_FACTOR:g}] (the optimizer computes in "
                                  f"float32), got {short(getattr(self, name))}")
        check_choice("lr_schedule", self.lr_schedule, SCHEDULES)
        check_int("lr_patience", self.lr_patience, 1, MAX_EPOCHS)
        if not (is_number(self.lr_min) and self.lr_min > 0):
            raise ConfigError(f"lr_min must be a finite number > 0, got {short(self.lr_min)}")
        if self.lr_schedule == "patience" and not self.holdout_fraction > 0:
            raise ConfigError("lr_schedule 'patience' watches the validation loss: set val_fraction > 0 "
                              f"(LT-CIL: 0.1), got val_fraction {self.holdout_fraction!r}")
        if self.lr_milestones is not None:
            if not isinstance(self.lr_milestones, (list, tuple)) or not all(
                    isinstance(m, int) and 1 <= m <= self.epochs for m in self.lr_milestones):
                raise ConfigError(f"lr_milestones must be a list of epochs in [1, {self.epochs}], got {short(self.lr_milestones)}")

    def _validate_log(self) -> None:
        if isinstance(self.log, str):                     # "tensorboard,csv" as the CLI and YAML may write it
            self.log = [name for name in self.log.split(",") if name]
        if not isinstance(self.log, (list, tuple)) or any(name not in LOGGERS for name in self.log):
            raise ConfigError(f"log must be a list drawn from {list(LOGGERS)}, got {short(self.log)}")
        self.log = list(dict.fromkeys(self.log))
        if self.log_dir is not None and not (isinstance(self.log_dir, str) and self.log_dir.strip()):
            raise ConfigError(f"log_dir must be a folder path (a non-empty string) or unset, got {short(self.log_dir)}")
        if self.log_dir is not None and not self.log:
            raise ConfigError("log_dir is set but log is empty: nothing would be written there; add loggers "
                              f"(log: {list(LOGGERS)}) or drop log_dir")

    def _validate_method_args(self) -> None:
        """The method's name and its arguments' shape (the method itself checks their values when it is built)."""
        check_choice("method", self.method, tuple(list_methods()))
        if not isinstance(self.method_args, dict):
            raise ConfigError("method_args must be a mapping of method-specific settings")
        check_keys(self.method_args, "method_args")
        for key, value in self.method_args.items():      # a method's extra stages: epochs no run could finish
            if key.endswith("epochs") and isinstance(value, int) and not isinstance(value, bool):
                check_int(f"method_args.{key}", value, 0, MAX_EPOCHS)
        bad = non_finite(self.method_args, "method_args")
        if bad:
            raise ConfigError(f"{bad[0]} must be a finite number, got {short(bad[1])}")
    def _validate_imbalance(self) -> None:
        if self.imbalance is not None and not (is_number(self.imbalance) and self.imbalance >= 1):
            raise ConfigError(f"imbalance must be a finite number >= 1 (rho = n_max / n_min; 1 = balanced), got {short(self.imbalance)}")
        if self.order == "conv" and self.rho != 1:
            raise ConfigError(f"order 'conv' is the balanced protocol: imbalance must be 1 (or unset), got {self.imbalance}")

    def _validate_split(self) -> None:
        """``split`` lfs / lfh set base and tasks: given values must agree (they are filled in when unset, so
        the saved config says what ran); ``tasks: 1`` holds every class in its one task."""
        try:
            num_classes = source_classes(self.scenario, self.data_root)
        except DataError:
            return           # data read from files that are not there (yet): loading them names the problem
        if self.split != "custom":
            base, tasks = self.split_base_tasks(num_classes)
            if self.base is not None and self.base != base:
                raise ConfigError(f"base: {self.base} contradicts split {self.split!r}, which sets {base} base classes "
                                  f"for {self.scenario!r}; drop one of them (split 'custom' uses base and tasks)")
            if self.tasks not in (DEFAULT_TASKS, tasks):
                raise ConfigError(f"tasks: {self.tasks} contradicts split {self.split!r}, which sets {tasks} tasks "
                                  f"for {self.scenario!r}; drop one of them (split 'custom' uses base and tasks)")
            self.base, self.tasks = base, tasks
        if self.tasks == 1 and self.base is not None and self.base != num_classes:
            raise ConfigError(f"base: {self.base} contradicts tasks 1: a single task holds all {num_classes} classes "
                              f"of {self.scenario!r}; drop base or set it to {num_classes}")
        base, tasks = self.base, self.tasks
        if tasks > num_classes:
            raise ConfigError(f"tasks: {tasks} tasks cannot be made from the {num_classes} classes of "
                              f"{self.scenario!r}; allowed: 1..{num_classes}")
        if base is not None and tasks > 1 and base >= num_classes:
            raise ConfigError(f"base: {base} base classes leave none for the other {tasks - 1} task(s) of "
                              f"{self.scenario!r} ({num_classes} classes); allowed: 1..{num_classes - 1}")
        try:
            task_sizes(num_classes, tasks, base)
        except ValueError as err:
            raise ConfigError(f"base/tasks: {err}") from None

    def split_base_tasks(self, num_classes: int) -> tuple[int | None, int]:
        """(base, tasks) after applying the ``split`` shortcut (lfs: C/20 + 19 tasks, lfh: C/2 + 5 tasks)."""
        if self.split == "lfs":
            return max(1, num_classes // 20), min(20, num_classes)
        if self.split == "lfh":
            return num_classes // 2, 6
        return self.base, self.tasks


def scenario_recipes() -> dict[str, str]:
    """Scenario name -> its default recipe in one line (what ``gradlab info`` and ``gradlab run --help`` show)."""
    return {name: RunConfig(scenario=name).recipe_text() for name in SCENARIOS}
