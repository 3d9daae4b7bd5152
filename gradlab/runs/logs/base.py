"""The logger contract: a trainer callback that turns events into a few signals a backend writes.

Signals (each backend overrides what it writes; every value is the one the run's record holds):

=================  =======================================================  ============================
signal             what                                                     when (x axis)
=================  =======================================================  ============================
``losses``         every loss term of every step (and their sum, ``total``)  after each epoch (global step)
``throughput``     training images per second over the epoch               after each epoch (global step)
``probe_rows``     the probes' new per-class rows (gradients, weight norms) after each epoch and phase
``phase_metrics``  accuracy, forgetting, many / medium / few; per class       after each evaluation (phase)
``summary``        the headline numbers of ``summary.json``                 at the end of the run
=================  =======================================================  ============================

Loss values are kept on the device and read once per epoch (no extra host sync per step); the phase
metrics come from the same function that writes ``metrics.parquet`` (:func:`gradlab.runs.records.metrics_table`),
so a logger never computes a number of its own.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from gradlab.analysis.metrics import shot_groups
from gradlab.runs.records import metrics_table, summarize
from gradlab.training.trainer import Callback

#: The per-phase scalars (``metrics.parquet`` names) every logger writes as ``phase/<name>``.
PHASE_SCALARS = ("acc_all_seen", "acc_task_mean", "avg_forgetting_task", "avg_forgetting_class", "acc_many",
                 "acc_medium", "acc_few")
#: The per-class metrics written as ``<name>/class_<k>`` after every phase.
CLASS_METRICS = ("class_acc", "forgetting_class")
#: The summary keys written as ``summary/<key>`` (numbers only; None is left out).
SUMMARY_KEYS = ("average_incremental_accuracy", "average_incremental_accuracy_task_mean", "final_accuracy",
                "final_accuracy_task_mean", "average_forgetting", "average_forgetting_class", "bwt",
                "final_accuracy_many", "final_accuracy_medium", "final_accuracy_few", "wall_time_s",
                "train_images_per_s", "eval_images_per_s")


def phase_signals(metrics: pd.DataFrame, phase: int, num_seen: int) -> tuple[dict, dict]:
    """The ``phase_metrics`` signal from a ``metrics.parquet`` table: {name: value} of :data:`PHASE_SCALARS`
    and {name: per-class vector (NaN where undefined)} of :data:`CLASS_METRICS`."""
    now = metrics[metrics.phase == phase]
    scalars = {name: float(now.value[now.metric == name].iloc[0]) for name in PHASE_SCALARS
               if (now.metric == name).any()}
    per_class = {}
    for name in CLASS_METRICS:
        rows = now[now.metric == name]
        vector = np.full(num_seen, np.nan)
        vector[rows["class"].to_numpy(int)] = rows.value.to_numpy(float)
        per_class[name] = vector
    return scalars, per_class


def _step_losses(ctx) -> tuple[tuple, torch.Tensor]:
    """A step's loss term names and their values (and the total) as one device vector: no host read."""
    terms = tuple(ctx.losses)
    values = [ctx.losses[t].detach().float().reshape(()) for t in terms] + [ctx.loss.detach().float().reshape(())]
    return terms, torch.stack(values)


def _phase_metrics(ctx) -> tuple:
    """The metrics table after this phase (as ``metrics.parquet`` holds it) and its ``phase_metrics`` signal."""
    s = ctx.scenario
    frame = metrics_table(ctx.correct, s.test_counts, s.class_task, s.train_counts, ctx.phase + 1)
    return (frame, *phase_signals(frame, ctx.phase, ctx.num_seen))


class SharedSignals:
    """What every logger of one run reads at the same event (a step's losses, a phase's metrics): made by the
    first logger that asks, reused by the others, so three loggers cost one computation."""

    def __init__(self):
        self._key, self._value = {}, {}

    def get(self, kind: str, key, make):
        if self._key.get(kind) != key:
            self._key[kind], self._value[kind] = key, make()
        return self._value[kind]


@dataclass
class RunSnapshot:
    """What a run has recorded so far, shaped like a :class:`~gradlab.runs.records.RunRecord` (``path``,
    ``config``, ``classes``, ``metrics``, ``probes``, ``summary``): what the live view draws from."""

    path: Path
    config: object
    classes: pd.DataFrame
    metrics: pd.DataFrame
    probes: pd.DataFrame
    summary: dict = field(default_factory=dict)


class RunLogger(Callback):
    """Base class of the loggers (``gradlab.runs.logs``): subclasses override the signal methods below.

    ``log_dir``: the folder to write (None: the logger writes no files, e.g. the live view); ``name``: the run's
    name, ``group``: its group (the method); ``probe_log``: the run's :class:`~gradlab.probes.log.ProbeLog`
    (read, never written); ``extra_summary``: the record writer's summary extras (wall time, throughput), read
    at the end of the run."""

    def __init__(self, log_dir=None, name: str = "run", group: str = "", probe_log=None,
                 extra_summary: dict | None = None, shared: SharedSignals | None = None):
        self.log_dir, self.name, self.group = Path(log_dir) if log_dir is not None else None, name, group
        self.probe_log, self.extra_summary = probe_log, extra_summary if extra_summary is not None else {}
        self.shared = shared if shared is not None else SharedSignals()
        self.global_step, self.closed, self.ctx = 0, False, None
        self.resumed = False            # set for a run resumed in its folder: add to the logs, keep what is there
        self._pending: list[tuple[int, tuple, torch.Tensor]] = []
        self._probe_chunks = 0
        self._images = 0
        self._epoch_start = 0.0

    # ------------------------------------------------------------------ signals (backends override)
    def open(self, config: dict) -> None:
        """The run starts: ``config`` is its RunConfig as a dict."""

    def losses(self, phase: int, epoch: int, steps: np.ndarray, values: dict[str, np.ndarray]) -> None:
        """One value per global step in ``steps`` for every loss term (and ``total``)."""

    def throughput(self, phase: int, epoch: int, step: int, images: int, seconds: float) -> None:
        """Training images and wall seconds of one epoch, at global step ``step``."""

    def probe_rows(self, chunks: list[tuple], step: int) -> None:
        """New probe rows since the last call: (phase, epoch, step, term, per-class values) tuples."""

    def phase_metrics(self, phase: int, scalars: dict[str, float], per_class: dict[str, np.ndarray]) -> None:
        """After phase ``phase``'s evaluation: the scalars of :data:`PHASE_SCALARS` and per-class vectors."""

    def summary(self, values: dict) -> None:
        """The run finished: the numbers of :data:`SUMMARY_KEYS` it has."""

    def close(self, failed: bool = False) -> None:
        """Flush and close (also after a failed or interrupted run, with ``failed=True``)."""
        self.closed = True

    def attach(self, probe_log, extra_summary: dict, shared: SharedSignals | None = None) -> None:
        """What :func:`gradlab.run` hands a logger passed in ``callbacks``: the run's probe log, summary extras and
        shared signals (such loggers are called after the probes and the record writer, like the ``log`` ones)."""
        self.probe_log, self.extra_summary = probe_log, extra_summary
        self.shared = shared if shared is not None else self.shared

    # ------------------------------------------------------------------ events
    def before_run(self, ctx) -> None:
        self.ctx = ctx
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        self._probe_chunks = self.probe_log.num_chunks if self.probe_log is not None else 0
        self.open(ctx.cfg.to_dict())

    def before_epoch(self, ctx) -> None:
        self._epoch_start, self._images = time.perf_counter(), 0

    def after_step(self, ctx) -> None:
        terms, values = self.shared.get("step", (ctx.phase, ctx.step), lambda: _step_losses(ctx))
        self._pending.append((self.global_step, terms, values))
        self.global_step += 1
        self._images += ctx.batch_images

    def after_epoch(self, ctx) -> None:
        self._flush_losses(ctx)
        self.throughput(ctx.phase, ctx.epoch, self.global_step, self._images, time.perf_counter() - self._epoch_start)
        self._flush_probes()

    def after_eval(self, ctx) -> None:
        self._flush_probes()
        frame, scalars, per_class = self.shared.get("eval", ctx.phase, lambda: _phase_metrics(ctx))
        self._metrics = frame
        self.phase_metrics(ctx.phase, scalars, per_class)

    def after_run(self, ctx) -> None:
        s = ctx.scenario
        values = {**summarize(ctx.correct, s.test_counts, s.class_task, s.train_counts), **self.extra_summary}
        self.summary({k: float(values[k]) for k in SUMMARY_KEYS if isinstance(values.get(k), (int, float))})
        self.close()

    # ------------------------------------------------------------------ helpers
    def histogram_due(self, epoch: int) -> bool:
        """Whether a probe histogram is written for ``epoch``: about ten per phase (every epoch up to 10 epochs,
        then every ``ceil(epochs / 10)``-th and the last), and the phase-end rows (``epoch = -1``)."""
        epochs = self.ctx.cfg.epochs if self.ctx is not None else 1
        every = -(-epochs // 10)
        return epoch < 0 or epoch >= epochs or (epoch + 1) % every == 0 or epoch + 1 == epochs

    def _flush_losses(self, ctx) -> None:
        """The epoch's buffered loss terms, read from the device in one go, grouped by their term names."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        flat = torch.cat([v for _, _, v in pending]).cpu().numpy().astype(np.float64)   # one host read
        rows = np.split(flat, np.cumsum([len(v) for _, _, v in pending])[:-1])           # a step's terms may differ
        steps = np.array([s for s, _, _ in pending])
        names = [(*terms, "total") for _, terms, _ in pending]
        for signature in dict.fromkeys(names):
            mine = [i for i, n in enumerate(names) if n == signature]
            values = np.stack([rows[i] for i in mine])
            self.losses(ctx.phase, ctx.epoch, steps[mine], {t: values[:, k] for k, t in enumerate(signature)})

    def _flush_probes(self) -> None:
        if self.probe_log is None:
            return
        chunks = self.probe_log.chunks(self._probe_chunks)
        self._probe_chunks += len(chunks)
        if chunks:
            self.probe_rows(list(chunks), self.global_step)

    def snapshot(self) -> RunSnapshot:
        """The run as recorded so far (metrics after the last evaluation, every probe row)."""
        ctx = self.ctx
        table = ctx.scenario.class_table()
        table["shot_group"] = shot_groups(table["train_count"].to_numpy())
        return RunSnapshot(path=Path(ctx.cfg.out or "."), config=ctx.cfg, classes=table,
                           metrics=getattr(self, "_metrics", pd.DataFrame()),
                           probes=self.probe_log.frame() if self.probe_log is not None else pd.DataFrame())
