"""CSV: one tidy file per signal in ``<log folder>/csv/``, flushed as the run goes (open them while it trains).

===================  ===========================================================
file                 columns
===================  ===========================================================
``losses.csv``       phase, epoch, step (global), term, value  (every step; ``total`` = their sum)
``throughput.csv``   phase, epoch, step, images, seconds, images_per_s
``probes.csv``       phase, epoch, step, class, term, value   (as ``probes.parquet``)
``phases.csv``       phase, metric, value                     (accuracy, forgetting, many / medium / few)
``classes.csv``      phase, class, metric, value              (class_acc, forgetting_class)
``summary.csv``      key, value
===================  ===========================================================

Floats are written with ``repr``: they read back exactly.
"""
from __future__ import annotations

import csv

import numpy as np

from gradlab.runs.logs.base import RunLogger

FILES = {"losses": ("phase", "epoch", "step", "term", "value"),
         "throughput": ("phase", "epoch", "step", "images", "seconds", "images_per_s"),
         "probes": ("phase", "epoch", "step", "class", "term", "value"),
         "phases": ("phase", "metric", "value"),
         "classes": ("phase", "class", "metric", "value"),
         "summary": ("key", "value")}


class CsvLogger(RunLogger):
    """Writes the signals of :class:`~gradlab.runs.logs.base.RunLogger` as CSV files (a fresh set per run)."""

    def open(self, config: dict) -> None:
        folder = self.log_dir / "csv"
        folder.mkdir(parents=True, exist_ok=True)
        keep = {name for name in FILES if self.resumed and (folder / f"{name}.csv").is_file()}   # resumed: add rows
        self.files = {name: open(folder / f"{name}.csv", "a" if name in keep else "w", newline="")  # noqa: SIM115
                      for name in FILES}
        self.writers = {name: csv.writer(handle) for name, handle in self.files.items()}
        for name, columns in FILES.items():
            if name not in keep:
                self.writers[name].writerow(columns)

    def _rows(self, name: str, rows) -> None:
        self.writers[name].writerows(rows)
        self.files[name].flush()

    def losses(self, phase, epoch, steps, values) -> None:
        self._rows("losses", [(phase, epoch, int(s), term, repr(float(v)))
                              for term, series in values.items() for s, v in zip(steps, series)])

    def throughput(self, phase, epoch, step, images, seconds) -> None:
        rate = images / seconds if seconds > 0 else float("nan")
        self._rows("throughput", [(phase, epoch, step, images, repr(seconds), repr(rate))])

    def probe_rows(self, chunks, step) -> None:
        self._rows("probes", [(p, e, s, k, term, repr(float(v)))
                              for p, e, s, term, values in chunks for k, v in enumerate(values)])

    def phase_metrics(self, phase, scalars, per_class) -> None:
        self._rows("phases", [(phase, name, repr(value)) for name, value in scalars.items()])
        self._rows("classes", [(phase, k, name, repr(float(v))) for name, values in per_class.items()
                               for k, v in enumerate(values) if not np.isnan(v)])

    def summary(self, values) -> None:
        self._rows("summary", [(key, repr(value)) for key, value in values.items()])

    def close(self, failed: bool = False) -> None:
        if not self.closed:
            for handle in getattr(self, "files", {}).values():
                handle.close()
        super().close(failed)
