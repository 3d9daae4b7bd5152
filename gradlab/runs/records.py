"""Run records: one folder per run, written atomically, read back with :func:`load_run`.

Layout::

    config.yaml           the full RunConfig
    classes.parquet       class, original_label, task, train/val/test counts, shot group
    metrics.parquet       tidy: phase, task, class, metric, value (fractions in [0, 1])
    probes.parquet        tidy: phase, epoch, step, class, term, value (written by probes, when on)
    summary.json          headline numbers and each phase's method log (``phase_log``: WA's gamma, BiC's
                          alpha/beta, ...); written last. ``status``: "complete", or "diverged" (then no
                          accuracy, and ``error`` says where); no summary.json = killed or still running
    .lock                 while a run writes the folder: its pid and host (see gradlab.runs.folder)
    checkpoints/phase_N.pt  model + memory + method + RNG state after phase N (load with weights_only=True);
    checkpoints/mid_phase.pt  the same inside a phase, every ``checkpoint_every`` epochs (see gradlab.runs.resume)

Metric names in ``metrics.parquet``: ``class_acc`` (per class), ``task_acc`` (acc[t, u]),
``acc_all_seen`` (class-weighted A_t), ``acc_task_mean`` (unweighted over tasks), ``forgetting_task``,
``forgetting_class``, ``avg_forgetting_task``, ``avg_forgetting_class``, ``acc_many``/``acc_medium``/``acc_few``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from gradlab.analysis import metrics as M
from gradlab.config import RunConfig
from gradlab.errors import ConfigError, RunFolderError, RunFolderWarning
from gradlab.files import plain, to_json, write_parquet, write_text
from gradlab.runs.checkpoints import (
    MID_PHASE,
    capture,
    read_checkpoint,
    run_identity,
    write_checkpoint,
)
from gradlab.runs.folder import describe_holder, lock_holder
from gradlab.training.trainer import Callback


# ---------------------------------------------------------------------- tables
def metrics_table(correct: np.ndarray, test_counts: np.ndarray, class_task: np.ndarray,
                  train_counts: np.ndarray, phases_done: int) -> pd.DataFrame:
    """Tidy metrics after ``phases_done`` phases, from per-class correct counts (NaN = unseen)."""
    correct = correct[:phases_done]
    num_tasks = int(class_task.max()) + 1
    class_acc = M.class_accuracy(correct, test_counts)
    task_acc = M.task_accuracy(correct, test_counts, class_task, num_tasks)
    groups = M.shot_groups(train_counts)
    rows: list[tuple] = []

    def add_matrix(name, matrix, kind):
        for p, k in zip(*np.nonzero(~np.isnan(matrix))):
            task = int(class_task[k]) if kind == "class" else int(k)
            rows.append((int(p), task, int(k) if kind == "class" else None, name, float(matrix[p, k])))

    def add_curve(name, values):
        rows.extend((p, None, None, name, float(v)) for p, v in enumerate(values) if not np.isnan(v))

    add_matrix("class_acc", class_acc, "class")
    add_matrix("task_acc", task_acc, "task")
    add_curve("acc_all_seen", M.accuracy_all_seen(correct, test_counts))
    add_curve("acc_task_mean", M.accuracy_task_mean(task_acc))
    f_task, f_class = M.forgetting(task_acc), M.forgetting(class_acc)
    add_matrix("forgetting_task", f_task, "task")
    add_matrix("forgetting_class", f_class, "class")
    add_curve("avg_forgetting_task", M.average_forgetting(f_task))
    add_curve("avg_forgetting_class", M.average_forgetting(f_class))
    for group in ("many", "medium", "few"):
        add_curve(f"acc_{group}", [M.group_accuracy(row, groups)[group] for row in class_acc])
    frame = pd.DataFrame(rows, columns=["phase", "task", "class", "metric", "value"])
    for col in ("task", "class"):
        frame[col] = frame[col].astype("Int64")
    return frame


def summarize(correct: np.ndarray, test_counts, class_task, train_counts) -> dict:
    """Headline numbers (fractions): average incremental and final accuracy both ways, forgetting, BWT."""
    num_tasks = int(class_task.max()) + 1
    task_acc = M.task_accuracy(correct, test_counts, class_task, num_tasks)
    class_acc = M.class_accuracy(correct, test_counts)
    weighted = M.accuracy_all_seen(correct, test_counts)
    unweighted = M.accuracy_task_mean(task_acc)
    groups = M.shot_groups(train_counts)
    final_groups = M.group_accuracy(class_acc[-1], groups)
    return {
        "average_incremental_accuracy": M.average_incremental_accuracy(weighted),
        "average_incremental_accuracy_task_mean": M.average_incremental_accuracy(unweighted),
        "final_accuracy": float(weighted[-1]),
        "final_accuracy_task_mean": float(unweighted[-1]),
        "average_forgetting": _nan_to_none(M.average_forgetting(M.forgetting(task_acc))[-1]),
        "average_forgetting_class": _nan_to_none(M.average_forgetting(M.forgetting(class_acc))[-1]),
        "bwt": _nan_to_none(M.backward_transfer(task_acc)),
        "final_accuracy_many": _nan_to_none(final_groups["many"]),
        "final_accuracy_medium": _nan_to_none(final_groups["medium"]),
        "final_accuracy_few": _nan_to_none(final_groups["few"]),
        "accuracy_per_phase": [float(v) for v in weighted],
    }


def _nan_to_none(value):
    value = float(value)
    return None if np.isnan(value) else value


# ---------------------------------------------------------------------- writer
class RecordWriter(Callback):
    """Writes the record folder as the run goes: config first, metrics after every evaluation,
    a checkpoint after every phase, and summary.json last."""

    def __init__(self, out: Path, extra_summary: dict | None = None, probe_log=None):
        self.out = Path(out)
        self.extra_summary = dict(extra_summary or {})
        self.probe_log = probe_log
        self.phase_log: list[dict] = []
        self.trainer = None              # set by gradlab.run: checkpoints then hold what resume needs

    def before_run(self, ctx) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        write_text(self.out / "config.yaml", ctx.cfg.to_yaml())
        table = ctx.scenario.class_table()
        table["shot_group"] = M.shot_groups(table["train_count"].to_numpy())
        write_parquet(self.out / "classes.parquet", table)

    def after_task(self, ctx) -> None:
        self.phase_log.append(json.loads(json.dumps({"phase": ctx.phase, **ctx.phase_log}, default=plain)))

    def after_eval(self, ctx) -> None:
        s = ctx.scenario
        write_parquet(self.out / "metrics.parquet",
                      metrics_table(ctx.correct, s.test_counts, s.class_task, s.train_counts, ctx.phase + 1))
        self._write_probes()
        if ctx.cfg.checkpoints:
            self._checkpoint(ctx, f"phase_{ctx.phase}.pt", within_phase=False)
            (self.out / "checkpoints" / MID_PHASE).unlink(missing_ok=True)

    def after_epoch(self, ctx) -> None:
        """Every ``checkpoint_every`` epochs inside a phase: a mid-phase checkpoint (resume goes on from it)."""
        every, run = ctx.cfg.checkpoint_every, self.trainer.stage_run if self.trainer is not None else None
        epoch, epochs = (ctx.epoch - run.offset, run.stage.epochs) if run is not None else (ctx.epoch, ctx.cfg.epochs)
        if ctx.cfg.checkpoints and every and (epoch + 1) % every == 0 and epoch + 1 < epochs:
            self._write_probes()
            self._checkpoint(ctx, MID_PHASE, within_phase=True)

    def _write_probes(self) -> None:
        if self.probe_log is not None and len(self.probe_log):
            write_parquet(self.out / "probes.parquet", self.probe_log.frame())

    def _checkpoint(self, ctx, name: str, within_phase: bool) -> None:
        state = capture(self.trainer, self, within_phase)
        state["run"] = run_identity(ctx.cfg)          # whose checkpoint it is (resume refuses another run's)
        folder = self.out / "checkpoints"
        folder.mkdir(exist_ok=True)
        write_checkpoint(folder / name, state)

    def after_run(self, ctx) -> None:
        s = ctx.scenario
        summary = {"status": "complete", **summarize(ctx.correct, s.test_counts, s.class_task, s.train_counts)}
        summary.update(self.extra_summary)
        summary["phase_log"] = self.phase_log
        summary["complete"] = True
        write_text(self.out / "summary.json", to_json(summary))

    def mark_failed(self, status: str, error: str, phases_done: int) -> None:
        """A run that stopped (e.g. ``diverged``): a summary without accuracy, so it never looks finished."""
        summary = {"status": status, "complete": False, "error": error, "phases_done": phases_done,
                   **self.extra_summary, "phase_log": self.phase_log}
        write_text(self.out / "summary.json", to_json(summary))


# ---------------------------------------------------------------------- reader
METRIC_COLUMNS = {"phase", "task", "class", "metric", "value"}          # what metrics.parquet always has
SUMMARY_KEYS = ("average_incremental_accuracy", "final_accuracy")        # what a complete summary.json has


def stored_config(path: Path) -> RunConfig:
    """A run's ``config.yaml`` as it was written, unchecked: for a record whose plugins cannot be imported here
    (the settings are read, nothing is trained from them)."""
    values = yaml.safe_load(path.read_text()) or {}
    config = object.__new__(RunConfig)
    for f in dataclasses.fields(RunConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        setattr(config, f.name, values.get(f.name, default))
    return config


class RunRecord:
    """A run read from disk: ``.config``, ``.summary``, ``.metrics``, ``.probes``, and ``.status``:
    "complete", "diverged", "running" (a live process holds the folder's lock) or "incomplete" (killed or
    failed before its summary was written; what it evaluated is still readable)."""

    def __init__(self, path: str | os.PathLike):
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise RunFolderError(f"path must be a run folder (a str or pathlib.Path), got {path!r}")
        self.path = Path(path)
        if not self.path.is_dir():
            raise RunFolderError(f"{str(self.path)!r} is not a folder; expected a run folder written by gradlab.run")
        if not (self.path / "config.yaml").is_file():
            raise RunFolderError(f"{str(self.path)!r} is not a gradlab run folder (no config.yaml)")
        try:
            self.config = RunConfig.from_yaml(self.path / "config.yaml")
        except ConfigError as err:
            if not str(err).startswith("plugins:"):
                raise RunFolderError(f"{str(self.path / 'config.yaml')!r} is broken ({err})") from None
            self.config = stored_config(self.path / "config.yaml")   # the record stays readable without its code
            warnings.warn(f"{self.path}: {err}; its record loads, but training or resuming it needs the plugin",
                          RunFolderWarning, stacklevel=2)
        self.summary = self._read_summary()
        self.metrics = self._read_parquet("metrics.parquet")
        self.classes = self._read_parquet("classes.parquet")
        self.probes = self._read_parquet("probes.parquet")
        holder = lock_holder(self.path)
        if self.summary:
            self.status = self.summary.get("status", "complete" if self.summary.get("complete") else "incomplete")
        else:
            self.status = "running" if holder is not None and not holder.get("stale") else "incomplete"
        self.missing = self._missing() if self.status == "complete" else []
        if self.missing:                       # a summary that says complete over a record that is not whole
            self.status = "incomplete"

    def _missing(self) -> list[str]:
        """What a complete record has and this one lacks (files, columns, summary keys)."""
        missing = [name for name, frame in (("metrics.parquet", self.metrics), ("classes.parquet", self.classes))
                   if frame.empty]
        if not self.metrics.empty and not METRIC_COLUMNS <= set(self.metrics.columns):
            missing.append(f"metrics.parquet columns {sorted(METRIC_COLUMNS - set(self.metrics.columns))}")
        if not self.classes.empty and "task" not in self.classes.columns:
            missing.append("classes.parquet column 'task'")
        missing += [f"summary.json key {key!r}" for key in SUMMARY_KEYS if key not in self.summary]
        return missing

    def _read_summary(self) -> dict:
        path = self.path / "summary.json"
        if not path.is_file():
            return {}
        try:
            summary = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise RunFolderError(f"{str(path)!r} is corrupt ({type(err).__name__}: {err}); the run did not finish "
                                 "cleanly: rerun it with --overwrite") from None
        if not isinstance(summary, dict):
            raise RunFolderError(f"{str(path)!r} is corrupt (expected a JSON object); rerun it with --overwrite")
        return summary

    def _read_parquet(self, name: str) -> pd.DataFrame:
        path = self.path / name
        if not path.is_file():
            return pd.DataFrame()
        try:
            return pd.read_parquet(path)
        except Exception as err:  # noqa: BLE001 - pyarrow raises several types for a damaged file
            raise RunFolderError(f"{str(path)!r} is corrupt ({type(err).__name__}: {err}); rerun the run "
                                 "with --overwrite") from None

    def explain(self) -> str:
        """One line on the folder's state: finished, diverged, running, or how far an unfinished run got."""
        if self.status == "complete":
            return f"{str(self.path)!r}: a finished run"
        if self.status == "diverged":
            return f"{str(self.path)!r}: the run diverged ({self.summary.get('error')}); no accuracy is recorded"
        if self.status == "running":
            return f"{str(self.path)!r}: a run is writing this folder now ({describe_holder(lock_holder(self.path))})"
        if self.missing:
            return (f"{str(self.path)!r}: summary.json says complete but the record is not whole (missing: "
                    f"{', '.join(self.missing)}); rerun it with --overwrite (overwrite=True)")
        phases = int(self.metrics.phase.max()) + 1 if len(self.metrics) else 0
        if not self.config.checkpoints:
            how = "it cannot be resumed (checkpoints were off): rerun it with --overwrite (overwrite=True)"
        else:
            how = "it can be resumed: rerun the same command with --resume (resume=True)"
        return f"{str(self.path)!r}: an unfinished run (no summary.json: killed or failed), {phases} phase(s) evaluated; {how}"

    @property
    def phase_log(self) -> list[dict]:
        """What the method reported about each phase, e.g. ``[{"phase": 1, "wa": {"gamma": 0.93}}, ...]``."""
        return self.summary.get("phase_log", [])

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    def _metric_rows(self, metric: str) -> pd.DataFrame:
        """The rows of one metric; what exists (none for a run killed in phase 0), or RunFolderError naming the
        file when metrics.parquet lacks the columns every record has."""
        if self.metrics.empty:
            return pd.DataFrame(columns=sorted(METRIC_COLUMNS))
        if not METRIC_COLUMNS <= set(self.metrics.columns):
            raise RunFolderError(f"{str(self.path / 'metrics.parquet')!r} is damaged (columns "
                                 f"{sorted(self.metrics.columns)}, expected {sorted(METRIC_COLUMNS)}); rerun the "
                                 "run with --overwrite")
        return self.metrics[self.metrics.metric == metric]

    def _matrix(self, metric: str, column: str) -> np.ndarray:
        rows = self._metric_rows(metric)
        num_phases = int(self.metrics.phase.max()) + 1 if len(rows) else 0
        if column == "task":
            size = int(self.classes["task"].max()) + 1 if "task" in self.classes.columns and len(self.classes) else 0
        else:
            size = len(self.classes)
        size = max(size, int(rows[column].max()) + 1 if len(rows) else 0)
        matrix = np.full((num_phases, size), np.nan)
        matrix[rows.phase.to_numpy(int), rows[column].to_numpy(int)] = rows.value.to_numpy(float)
        return matrix

    def accuracy_matrix(self) -> np.ndarray:
        """acc[t, u]: accuracy on task u's test set after phase t (NaN where u > t)."""
        return self._matrix("task_acc", "task")

    def class_accuracy_matrix(self) -> np.ndarray:
        return self._matrix("class_acc", "class")

    def forgetting_matrix(self, level: str = "task") -> np.ndarray:
        """f[t, k] (FACIL/GEM): best earlier accuracy minus now, per task or per class."""
        return self._matrix(f"forgetting_{level}", level)

    def accuracy_curve(self, weighted: bool = True) -> np.ndarray:
        """A_t per phase: class-weighted over all seen test images, or the unweighted task mean."""
        rows = self._metric_rows("acc_all_seen" if weighted else "acc_task_mean")
        return rows.sort_values("phase").value.to_numpy(float)

    def checkpoint(self, phase: int) -> dict:
        """The state saved after ``phase``: model, head sizes, memory, RNG state, correct counts."""
        folder = self.path / "checkpoints"
        have = sorted(int(p.stem.split("_")[1]) for p in folder.glob("phase_*.pt") if p.stem.split("_")[1].isdigit())
        if not isinstance(phase, int) or isinstance(phase, bool) or phase not in have:
            raise RunFolderError(f"phase: no checkpoint for phase {phase!r} in {str(folder)!r}; available: {have}")

        return read_checkpoint(folder / f"phase_{phase}.pt", self.config, phase)   # identity checked when present

    def __repr__(self) -> str:
        aia = self.summary.get("average_incremental_accuracy")
        state = "" if self.status == "complete" else f", status={self.status}"
        return f"RunRecord({str(self.path)!r}, method={self.config.method}, avg_inc_acc={aia}{state})"


def load_run(path: str | os.PathLike) -> RunRecord:
    """Read a run folder written by :func:`gradlab.run`. A folder that is not a finished run still loads
    (``.status`` says what it is: diverged, running, incomplete) and a warning says so; a corrupt one
    raises :class:`RunFolderError` naming the broken file."""
    record = RunRecord(path)
    if record.status != "complete":
        warnings.warn(record.explain(), RunFolderWarning, stacklevel=2)
    return record
