"""TensorBoard: event files in the run's log folder (``tensorboard --logdir <folder>``).

Tags: ``loss/<term>`` and ``throughput/train_images_per_s`` over the global step; ``hist/<term>``, a histogram
over classes of each probe term about ten times per phase (the epoch's last rows; every epoch up to 10); ``phase/<metric>`` (accuracy,
forgetting, many / medium / few) and ``<term>/class_<k>`` (per-class accuracy, forgetting, gradient
magnitudes, weight norms: the phase's last value) over the phase; ``summary/<key>`` at the end; the run's
config as text and as hparams (the HPARAMS tab lists runs by their settings and headline numbers).
"""
from __future__ import annotations

import numpy as np
import yaml

from gradlab.runs.logs.base import SUMMARY_KEYS, RunLogger

#: Config values shown as hparams (the settings that tell runs apart in a sweep).
HPARAMS = ("scenario", "method", "order", "imbalance", "split", "base", "tasks", "memory", "memory_total", "model",
           "epochs", "batch_size", "lr", "weight_decay", "seed", "precision", "max_per_class", "method_args")


def hparam_value(value):
    """TensorBoard's hparams take numbers, strings and bools; anything else as its text."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)


class TensorBoardLogger(RunLogger):
    """Writes the signals of :class:`~gradlab.runs.logs.base.RunLogger` with ``torch.utils.tensorboard``."""

    def open(self, config: dict) -> None:
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        for old in [] if self.resumed else self.log_dir.glob("events.out.tfevents.*"):   # a new run: afresh
            old.unlink()
        self.writer = SummaryWriter(log_dir=str(self.log_dir), flush_secs=30)
        self.writer.add_text("config", "```yaml\n" + yaml.safe_dump(config, sort_keys=False) + "```", 0)
        chosen = {k: hparam_value(config[k]) for k in HPARAMS if k in config}
        metrics = {f"summary/{k}": 0.0 for k in ("average_incremental_accuracy", "final_accuracy",
                                                 "average_forgetting")}
        for item in hparams(chosen, metrics):
            self.writer.file_writer.add_summary(item)
        self._last: dict[str, tuple] = {}       # term -> its latest rows this phase (per-class scalars)

    def losses(self, phase, epoch, steps, values) -> None:
        """One event per step holding every term (as ``add_scalar`` would write them, a third of the events)."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        tags = [f"loss/{term}" for term in values]
        series = list(values.values())
        for i, step in enumerate(steps):
            summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(v[i])) for tag, v in zip(tags, series)])
            self.writer.file_writer.add_summary(summary, int(step))

    def throughput(self, phase, epoch, step, images, seconds) -> None:
        if seconds > 0 and images:
            self.writer.add_scalar("throughput/train_images_per_s", images / seconds, step)

    def probe_rows(self, chunks, step) -> None:
        last: dict[tuple, np.ndarray] = {}
        for phase, epoch, _, term, values in chunks:
            if self.histogram_due(epoch):
                last[(term, epoch)] = values                         # per epoch: the last rows of each term
            self._last[term] = (phase, values)
        for (term, _), values in last.items():
            if len(values):                  # a few bins, not the default ~1 500 (TensorFlow's)
                self.writer.add_histogram(f"hist/{term}", values, step, bins=min(len(values), 20))

    def phase_metrics(self, phase, scalars, per_class) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(f"phase/{name}", value, phase)
        rows = {**{t: v for t, (p, v) in self._last.items() if p == phase}, **per_class}
        for term, values in rows.items():
            for k, value in enumerate(values):
                if not np.isnan(value):
                    self.writer.add_scalar(f"{term}/class_{k:03d}", value, phase)
        self._last = {}
        self.writer.flush()

    def summary(self, values) -> None:
        for key in SUMMARY_KEYS:
            if key in values:
                self.writer.add_scalar(f"summary/{key}", values[key], 0)

    def close(self, failed: bool = False) -> None:
        if not self.closed and hasattr(self, "writer"):
            self.writer.flush()
            self.writer.close()
        super().close(failed)
