"""Weights & Biases through the ``wandb`` package: one W&B run per gradlab run, in project ``gradlab``
(``WANDB_PROJECT`` overrides it), grouped by method, named after the run.

Offline unless you are logged in: ``WANDB_MODE`` wins when set; otherwise the run is online when a W&B API
key is configured (``WANDB_API_KEY`` or ``wandb login``'s netrc entry) and offline (no network needed) when
not. Offline runs land in ``<log folder>/wandb/offline-run-*``; ``wandb sync <that folder>`` uploads one later.
Keys as in TensorBoard (``loss/<term>``, ``phase/<metric>``, ``<term>/class_<k>``, ``hist/<term>``,
``summary/<key>``), with ``global_step`` and ``phase`` as their x axes; the config is the run's config.
"""
from __future__ import annotations

import netrc
import os

import numpy as np

from gradlab.runs.logs.base import RunLogger


def wandb_mode() -> str:
    """``WANDB_MODE`` when set, else online with an API key configured, else offline."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        hosts = netrc.netrc().hosts
    except (OSError, netrc.NetrcParseError):
        return "offline"
    return "online" if any("wandb" in host for host in hosts) else "offline"


class WandbLogger(RunLogger):
    """Writes the signals of :class:`~gradlab.runs.logs.base.RunLogger` to a W&B run."""

    def open(self, config: dict) -> None:
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "gradlab"), dir=str(self.log_dir),
                              name=self.name, group=self.group, job_type="train", config=config,
                              mode=wandb_mode(), reinit="create_new", settings=wandb.Settings(silent=True))
        self.run.define_metric("global_step")
        self.run.define_metric("phase")
        for prefix in ("loss", "throughput", "hist"):
            self.run.define_metric(f"{prefix}/*", step_metric="global_step")
        self.run.define_metric("phase/*", step_metric="phase")
        self._defined: set[str] = set()
        self._last: dict[str, tuple] = {}

    def _per_phase(self, term: str) -> None:
        if term not in self._defined:
            self.run.define_metric(f"{term}/*", step_metric="phase")
            self._defined.add(term)

    def losses(self, phase, epoch, steps, values) -> None:
        for i, step in enumerate(steps):
            self.run.log({"global_step": int(step), **{f"loss/{t}": float(v[i]) for t, v in values.items()}})

    def throughput(self, phase, epoch, step, images, seconds) -> None:
        if seconds > 0 and images:
            self.run.log({"global_step": step, "throughput/train_images_per_s": images / seconds})

    def probe_rows(self, chunks, step) -> None:
        last = {}
        for phase, epoch, _, term, values in chunks:
            if self.histogram_due(epoch):
                last[(term, epoch)] = values
            self._last[term] = (phase, values)
        hists = {f"hist/{term}": self.wandb.Histogram(values) for (term, _), values in last.items() if len(values)}
        if hists:
            self.run.log({"global_step": step, **hists})

    def phase_metrics(self, phase, scalars, per_class) -> None:
        row = {"phase": phase, **{f"phase/{name}": value for name, value in scalars.items()}}
        for term, values in {**{t: v for t, (p, v) in self._last.items() if p == phase}, **per_class}.items():
            self._per_phase(term)
            row.update({f"{term}/class_{k:03d}": float(v) for k, v in enumerate(values) if not np.isnan(v)})
        self._last = {}
        self.run.log(row)

    def summary(self, values) -> None:
        for key, value in values.items():
            self.run.summary[f"summary/{key}"] = value

    def close(self, failed: bool = False) -> None:
        if not self.closed and hasattr(self, "run"):
            self.run.finish(exit_code=1 if failed else 0)
        super().close(failed)
