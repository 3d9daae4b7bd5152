"""``gradlab.run(cfg)``: validate, build, train, record. Every check happens before any training or
any file is written, so a bad setting leaves nothing behind."""
from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import gradlab
from gradlab.checks import read_yaml_file
from gradlab.config import RunConfig
from gradlab.data.device_data import DeviceImages
from gradlab.data.file_data import FileImages
from gradlab.data.sources import ArrayData, check_source
from gradlab.data.sources.files import FileImageSet
from gradlab.errors import (
    ConfigError,
    DataError,
    RunDiverged,
    RunInterrupted,
    SettingWarning,
    WriteError,
)
from gradlab.methods import build_method
from gradlab.models.factory import build_backbone, default_backbone
from gradlab.probes import ProbeLog, build_probes
from gradlab.runs.folder import RunFolder, refuse_if_in_use, refuse_if_taken
from gradlab.runs.logs import RunLogger, SharedSignals, build_loggers, check_loggers, run_log_dir
from gradlab.runs.records import RecordWriter, RunRecord
from gradlab.runs.resume import ResumePlan, plan_resume
from gradlab.scenario import Scenario
from gradlab.training.context import Context
from gradlab.training.distributed import (
    SINGLE,
    Ranks,
    check_method_runs_on_ranks,
    global_batch_norm,
    join_ranks,
)
from gradlab.training.divergence import DivergenceGuard
from gradlab.training.exemplars import ExemplarMemory
from gradlab.training.host_memory import keep_freed_memory
from gradlab.training.trainer import EVENTS, Trainer, pick_device


def check_out_dir(out: Path, overwrite: bool) -> None:
    """The run folder must be new (or ``overwrite``) and creatable: probed with a temp file in the
    nearest existing ancestor, so read-only file systems are caught too (``os.access`` lies for root)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out: {str(out)!r} exists and is not a folder")
    refuse_if_in_use(out)
    refuse_if_taken(out, overwrite)
    ancestor = next(p for p in [out, *out.absolute().parents] if p.exists())
    if not ancestor.is_dir():
        raise ConfigError(f"out: cannot create {str(out)!r}: {str(ancestor)!r} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as err:
        raise ConfigError(f"out: cannot write under {str(ancestor)!r} ({err.strerror}); choose a writable folder") from None


def build_context(cfg: RunConfig, scenario: Scenario, method, ranks: Ranks = SINGLE,
                  device: torch.device | None = None) -> Context:
    """Model, memory and device data for one run (the seed fixes the model's initial weights); on several ranks
    (``ranks``, ``device`` from :func:`~gradlab.training.distributed.join_ranks`) ``sync_bn`` makes BatchNorm
    global."""
    device = pick_device(cfg.device) if device is None else device
    if device.type == "cpu":
        keep_freed_memory()        # no page-fault churn from the activation maps (gradlab.training.host_memory)
    torch.manual_seed(cfg.seed)
    model_name = default_backbone(cfg.scenario) if cfg.model == "auto" else cfg.model
    backbone = build_backbone(model_name, in_channels=scenario.source.image_shape[2])
    model = method.build_model(backbone)
    if cfg.sync_bn and ranks.active:
        model = global_batch_norm(model)
    model = model.to(device)
    if uses_channels_last(cfg, device):
        model = model.to(memory_format=torch.channels_last)
        model.register_forward_pre_hook(_to_channels_last)
    train_data = image_data(cfg, scenario.train, scenario.source, device, cfg.augmentation)
    test_data = image_data(cfg, scenario.test, scenario.source, device, "none")
    val_data = image_data(cfg, scenario.val, scenario.source, device, "none") if len(scenario.val) else None
    memory = ExemplarMemory(per_class=cfg.memory, total=cfg.memory_total, selection=cfg.selection, seed=cfg.seed)
    return Context(cfg=cfg, scenario=scenario, model=model, memory=memory, device=device,
                   train_data=train_data, test_data=test_data, val_data=val_data,
                   precision=run_precision(cfg, device), ranks=ranks)


def has_native_bf16(device: torch.device) -> bool:
    """Whether the chip computes bf16 in hardware: a CPU with AVX512-BF16 or AMX, a GPU that reports bf16
    support without emulation (NVIDIA Ampere and later)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def run_precision(cfg: RunConfig, device: torch.device) -> str:
    """``precision``, with auto resolved: bf16 autocast where the chip has bf16 in hardware, fp32 elsewhere.
    bf16 keeps the answer within the spread over seeds and trains faster on a CPU with bf16 in hardware
    (benchmarks/cpu_precision.py; numbers in benchmarks/README.md); DGR's statistics and the loss reductions
    stay fp32."""
    if cfg.precision != "auto":
        return cfg.precision
    return "bf16" if has_native_bf16(device) else "fp32"


def uses_channels_last(cfg: RunConfig, device: torch.device) -> bool:
    """``channels_last``, with auto (None) resolved: NHWC on CPU, where oneDNN trains our conv nets faster
    (benchmarks/vs_official.py; numbers in benchmarks/README.md); NCHW on GPUs, where it is not measured."""
    return cfg.channels_last if cfg.channels_last is not None else device.type == "cpu"


def image_data(cfg: RunConfig, split, source, device, augment: str):
    """Small images: one uint8 tensor on the device; image files: a DataLoader pipeline with workers."""
    if isinstance(split.image_set, FileImageSet):
        return FileImages(split.image_set.paths[split.ids], split.labels, source.mean, source.std, device,
                          augment=augment, flip=source.flip, size=source.image_shape[0], workers=cfg.loader_workers,
                          progress=cfg.progress)
    return DeviceImages(split.images, split.labels, source.mean, source.std, device, augment=augment,
                        pad=source.pad, flip=source.flip)


def _to_channels_last(module, args):
    """Forward pre-hook: the input batch in NHWC layout, like the weights (kept by the teacher's deepcopy)."""
    return (args[0].contiguous(memory_format=torch.channels_last), *args[1:])


def check_validation_split(cfg: RunConfig, scenario: Scenario) -> None:
    """The patience schedule needs validation images in every task."""
    if cfg.lr_schedule != "patience":
        return
    empty = [task.index for task in scenario.tasks if scenario.val_counts[task.classes].sum() == 0]
    if empty:
        raise ConfigError(f"val_fraction: {cfg.holdout_fraction} leaves task(s) {empty} without validation images, "
                          "which lr_schedule 'patience' needs; raise val_fraction or use lr_schedule 'step'")


def build_trainer(cfg: RunConfig, callbacks=(), ranks: Ranks = SINGLE, device: torch.device | None = None) -> Trainer:
    """Method, context and trainer for a validated ``cfg``, ready to be stepped phase by phase
    (``begin_phase`` / ``train_epoch`` / ``end_phase``): what tests and benchmarks drive by hand (``ranks`` and
    ``device`` from :func:`~gradlab.training.distributed.join_ranks` under torchrun)."""
    scenario = Scenario.from_config(cfg)
    method = build_method(cfg.method, cfg, **cfg.method_args)
    check_method_runs_on_ranks(method, ranks)
    trainer = Trainer(build_context(cfg, scenario, method, ranks, device), method, callbacks)
    method.ctx = trainer.ctx
    trainer.ctx.correct = np.full((scenario.num_tasks, scenario.num_classes), np.nan)
    return trainer


def run(cfg: RunConfig | dict | str | None = None, callbacks=(), overwrite: bool = False, resume: bool = False,
        data: ArrayData | None = None, **overrides) -> RunRecord:
    """Train one class-incremental run and write its record folder; returns the loaded record.

    ``cfg`` may be a :class:`RunConfig`, a dict, the path of a YAML file, or None (keywords only); keyword
    overrides win, e.g. ``gradlab.run(scenario="digits", tasks=3, epochs=2, out="runs/x")``; ``scenario`` is
    required, the optimisation settings left out take the scenario's default recipe. Every check runs
    before training; the folder is locked for the run's life, and ``overwrite`` replaces an earlier record only
    once the new run has finished. ``resume`` continues an interrupted run in ``out`` from its newest checkpoint
    (settings must equal the stored ones; a finished run is returned as it is). A run that diverges raises
    :class:`RunDiverged` and its folder says so. ``data`` trains on your own arrays
    (:class:`~gradlab.data.sources.arrays.ArrayData`; the ``arrays`` scenario, saved under ``data_root``).

    Started by ``torchrun --nproc-per-node N`` (N > 1), the N processes train this one run together
    (:mod:`gradlab.training.distributed`); rank 0 writes the folder, whose summary says ``"ranks": N``.
    """
    cfg = as_config(cfg, with_data(data, cfg, overrides))
    callbacks = check_callbacks(callbacks)
    for name, value in (("overwrite", overwrite), ("resume", resume)):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
    if overwrite and resume:
        raise ConfigError("overwrite and resume contradict each other: resume continues the run in the folder, "
                          "overwrite replaces it; pass one of them")
    device = pick_device(cfg.device)  # fails early when cuda is asked for but absent
    ranks, device = join_ranks(device)
    return _run_on_ranks(cfg, callbacks, overwrite, resume, ranks, device)


def _run_on_ranks(cfg: RunConfig, callbacks: list, overwrite: bool, resume: bool, ranks: Ranks,
                  device: torch.device) -> RunRecord:
    """Check everything on every rank (all refuse when one does), then train; only rank 0 writes the folder."""
    error, plan = None, None
    out = Path(cfg.out) if cfg.out else Path("runs") / cfg.folder_name()
    try:
        plan, method, scenario = _check_run(cfg, out, overwrite, resume, ranks, device)
    except Exception as err:   # noqa: BLE001 - raised again below, on every rank
        error = err
    ranks.agree(error)
    if plan is not None and plan.finished:
        return RunRecord(out)
    for line in cfg.unused_settings():
        warnings.warn(line, SettingWarning, stacklevel=3)
    if not ranks.main:
        cfg.progress = False                  # one progress bar: rank 0's
    ctx = build_context(cfg, scenario, method, ranks, device)
    if cfg.progress:
        where = f"{ranks.world} ranks on {ctx.device.type}" if ranks.active else ctx.device.type
        print(f"{cfg.scenario} · {cfg.method}: {cfg.recipe_text()}; {ctx.precision} on {where}",
              file=sys.stderr, flush=True)
    if ranks.main:
        folder = RunFolder(out, overwrite, resume=plan is not None and plan.in_place).open()
        train_in_folder(ctx, method, callbacks, folder, plan)
    else:
        train_beside(ctx, method, callbacks, plan)
    ranks.barrier()                          # rank 0 has committed the folder
    return RunRecord(out)


def _check_run(cfg: RunConfig, out: Path, overwrite: bool, resume: bool, ranks: Ranks, device: torch.device):
    """Every check before training (nothing written): the resume plan, the method and the scenario."""
    plan = plan_resume(out, cfg) if resume else None
    if plan is not None and plan.finished:
        return plan, None, None
    if plan is not None:
        plan.check_machine(device.type, run_precision(cfg, device))
    if plan is None or not plan.in_place:
        check_out_dir(out, overwrite)
    check_source(cfg.scenario, cfg.data_root, cfg.download)
    check_loggers(cfg.log)
    if cfg.log_dir and Path(cfg.log_dir).exists() and not Path(cfg.log_dir).is_dir():
        raise ConfigError(f"log_dir: {cfg.log_dir!r} exists and is not a folder")
    method = build_method(cfg.method, cfg, **cfg.method_args)
    check_method_runs_on_ranks(method, ranks)
    try:
        scenario = Scenario.from_config(cfg)
    except ValueError as err:
        if isinstance(err, (DataError, ConfigError)):
            raise
        raise ConfigError(str(err)) from None
    check_validation_split(cfg, scenario)
    return plan, method, scenario


def record_writer(ctx: Context, folder: RunFolder, plan: ResumePlan | None) -> RecordWriter:
    """The writer of the run's record, its summary holding what ran where."""
    cfg = ctx.cfg
    probe_log = plan.probe_log() if plan is not None else ProbeLog()
    writer = RecordWriter(folder.train_dir, probe_log=probe_log, extra_summary={
        "method": cfg.method, "scenario": cfg.scenario, "seed": cfg.seed, "device": str(ctx.device),
        "precision": ctx.precision, "channels_last": uses_channels_last(cfg, ctx.device),
        "threads": torch.get_num_threads(), "ranks": ctx.ranks.world,
        "task_sizes": ctx.scenario.task_sizes, "gradlab_version": gradlab.__version__,
        "torch_version": torch.__version__, "python": platform.python_version()})
    if plan is not None and plan.in_place:
        writer.extra_summary["resumed_from"] = plan.describe()
    return writer


def train_in_folder(ctx: Context, method, callbacks: list, folder: RunFolder, plan: ResumePlan | None) -> None:
    """Train into ``folder`` and commit it; a divergence, Ctrl-C or failed write abandons it (an overwrite keeps
    the earlier record) and is raised again as one line saying what is kept and how to go on."""
    cfg, out = ctx.cfg, folder.out
    writer = record_writer(ctx, folder, plan)
    probes = build_probes(cfg.probes, writer.probe_log, every=cfg.probe_every)
    timer = _WallClock(writer, time.perf_counter())
    shared = SharedSignals()
    loggers = build_loggers(cfg, run_log_dir(cfg, folder.train_dir), writer.probe_log, writer.extra_summary, shared,
                            resumed=plan is not None and plan.in_place)      # a resumed run adds to its logs
    for logger in (c for c in callbacks if isinstance(c, RunLogger)):   # yours (e.g. the live view): after the
        logger.attach(writer.probe_log, writer.extra_summary, shared)   # probes, so they see this epoch's rows
        loggers.append(logger)
    callbacks = [c for c in callbacks if not isinstance(c, RunLogger)]
    try:
        trainer = Trainer(ctx, method, callbacks=[*callbacks, *probes, DivergenceGuard(), timer, writer, *loggers])
        writer.trainer = trainer
        trainer.fit(resume=plan.hook(writer) if plan is not None else None)
    except RunDiverged as err:
        try:
            writer.mark_failed("diverged", str(err), phases_done=max(ctx.phase, 0))
        finally:
            folder.abandon()
        kept = (f"the earlier record in {str(out)!r} is kept" if folder.train_dir != out
                else f"{str(out)!r} is marked diverged")
        raise RunDiverged(f"{err} ({kept})") from None
    except KeyboardInterrupt:
        folder.abandon()
        where = f"in phase {ctx.phase}, epoch {max(ctx.epoch, 0)}" if ctx.phase >= 0 else "before its first phase"
        if folder.train_dir != out:
            how = "again"                   # an overwrite: its new folder is gone, the earlier record stays
        elif not cfg.checkpoints:
            how = "overwrite"
        else:
            how = "resume" if any((out / "checkpoints").glob("*.pt")) else "resume-fresh"
        raise RunInterrupted(f"interrupted {where}", how) from None
    except WriteError as err:               # a full disk, a read-only or failing file system
        folder.abandon()
        if folder.train_dir == out:
            raise
        target = str(err.filename).replace(str(folder.train_dir), str(out), 1)   # the file the user knows
        raise WriteError(err.errno, f"{err.strerror} (the new run is written beside {str(out)!r} until it "
                         f"finishes); the earlier record in {str(out)!r} is kept", target) from err
    except BaseException:
        folder.abandon()
        raise
    finally:
        for logger in loggers:               # a failed run's logs are flushed and closed too (and say so)
            logger.close(failed=not logger.closed)
    try:
        folder.commit()
    except BaseException:
        folder.abandon()
        raise


def train_beside(ctx: Context, method, callbacks: list, plan: ResumePlan | None) -> None:
    """A rank other than 0: the same training, probes and checks (so every collective is matched), nothing
    written; resumed from the same checkpoint as rank 0."""
    cfg = ctx.cfg
    writer = RecordWriter(Path(os.devnull), probe_log=plan.probe_log() if plan is not None else ProbeLog())
    probes = build_probes(cfg.probes, writer.probe_log, every=cfg.probe_every)
    callbacks = [c for c in callbacks if not isinstance(c, RunLogger)]
    trainer = Trainer(ctx, method, callbacks=[*callbacks, *probes, DivergenceGuard()])
    writer.trainer = trainer
    trainer.fit(resume=plan.hook(writer) if plan is not None else None)


def as_config(cfg, overrides: dict) -> RunConfig:
    """``run``'s first argument as a validated RunConfig (keyword overrides applied)."""
    if cfg is None:
        cfg = {}
    if isinstance(cfg, (str, os.PathLike)):
        if not Path(cfg).is_file():
            raise ConfigError(f"cfg: {str(cfg)!r} is not a YAML file; pass a RunConfig, a dict, the path of a YAML "
                              "file, or keywords (e.g. gradlab.run(scenario='digits'))")
        return RunConfig.from_yaml(cfg, overrides)
    if isinstance(cfg, RunConfig):
        cfg = cfg.to_dict()
    if not isinstance(cfg, dict):
        raise ConfigError(f"cfg must be a RunConfig, a dict, the path of a YAML file or None, got {type(cfg).__name__}")
    return RunConfig.from_dict({**cfg, **overrides}, source="run()")


def with_data(data, cfg, overrides: dict) -> dict:
    """``run(data=ArrayData(...))``: the overrides of the ``arrays`` scenario, the arrays saved once as
    ``<data_root>/arrays/arrays-<fingerprint>.npz`` (what the config records, so workers and resume read them)."""
    if data is None:
        return overrides
    if not isinstance(data, ArrayData):
        raise ConfigError(f"data must be a gradlab.ArrayData(x_train, y_train, x_test, y_test), got {type(data).__name__}")
    if isinstance(cfg, (str, os.PathLike)) and Path(cfg).is_file():
        cfg = read_yaml_file(Path(cfg), "config file")
    settings = {**(cfg.to_dict() if isinstance(cfg, RunConfig) else cfg if isinstance(cfg, dict) else {}), **overrides}
    if settings.get("scenario") not in (None, "arrays"):
        raise ConfigError(f"data and scenario {settings['scenario']!r} contradict each other: data trains on your "
                          "arrays (scenario 'arrays'); drop one of them")
    root = settings.get("data_root", "data")
    if not (isinstance(root, str) and root.strip()):
        raise ConfigError(f"data_root must be a folder path (where the arrays are saved), got {root!r}")
    return {**overrides, "scenario": "arrays", "data_root": str(data.saved_under(root))}


def check_callbacks(callbacks) -> list:
    """Callbacks are objects with at least one event method (``before_run`` ... ``after_run``)."""
    if not isinstance(callbacks, (list, tuple)):
        raise ConfigError(f"callbacks must be a list of callback objects, got {type(callbacks).__name__}")
    for i, callback in enumerate(callbacks):
        if not any(callable(getattr(callback, event, None)) for event in EVENTS):
            raise ConfigError(f"callbacks[{i}]: {callback!r} is not a callback: it has none of the event methods "
                              f"{', '.join(EVENTS)}")
    return list(callbacks)


class _WallClock:
    """Puts the wall time and the throughput into the summary: training images per second (over the epochs'
    steps, memory included) and evaluation images per second (the test passes after each phase)."""

    def __init__(self, writer: RecordWriter, start: float):
        self.writer, self.start = writer, start
        self.train_s = self.eval_s = 0.0
        self.train_images = self.eval_images = 0

    def before_epoch(self, ctx) -> None:
        self.epoch_start = time.perf_counter()

    def after_step(self, ctx) -> None:
        self.train_images += ctx.batch_images

    def after_epoch(self, ctx) -> None:           # the epoch's loss was read on the host: the device is done
        self.train_s += time.perf_counter() - self.epoch_start

    def after_task(self, ctx) -> None:
        self.eval_start = time.perf_counter()

    def after_eval(self, ctx) -> None:            # the correct counts are on the host: the device is done
        self.eval_s += time.perf_counter() - self.eval_start
        self.eval_images += int(ctx.scenario.test_counts[: ctx.num_seen].sum())

    def after_run(self, ctx) -> None:
        summary = self.writer.extra_summary
        summary["wall_time_s"] = round(time.perf_counter() - self.start, 3)
        summary["train_images_per_s"] = round(self.train_images / self.train_s, 1) if self.train_s else None
        summary["eval_images_per_s"] = round(self.eval_images / self.eval_s, 1) if self.eval_s else None
