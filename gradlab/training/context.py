"""What the trainer shares with methods and callbacks: one mutable :class:`Context` per run.

The trainer owns it and updates it as the run goes (phase, epoch, step, the current batch and its
losses); methods and probes read it. Keeping it in one object means a probe needs nothing but the
context to measure anything the method computed.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gradlab.training.distributed import SINGLE, Ranks

if TYPE_CHECKING:  # imports for type checkers only; avoids import cycles at run time
    from gradlab.config import RunConfig
    from gradlab.data.device_data import Batch, DeviceImages
    from gradlab.models.factory import IncrementalNet, ModelOutput
    from gradlab.scenario import Scenario, Task
    from gradlab.training.exemplars import ExemplarMemory


@dataclass
class Context:
    cfg: "RunConfig"
    scenario: "Scenario"
    model: "IncrementalNet"
    memory: "ExemplarMemory"
    device: torch.device
    train_data: "DeviceImages"
    test_data: "DeviceImages"
    val_data: "DeviceImages | None" = None        # the validation hold-out (val_fraction > 0), no augmentation
    precision: str = "fp32"                       # what the run computes in: fp32 or bf16 (``precision`` resolved)
    ranks: Ranks = SINGLE                         # the processes training this run together (torchrun), or one
    teacher: "IncrementalNet | None" = None       # frozen copy of the model after the previous phase
    phase: int = -1
    task: "Task | None" = None
    train_indices: np.ndarray | None = None       # this phase's training set: memory + new data
    optimizer: torch.optim.Optimizer | None = None
    epoch: int = -1                               # main epochs, then an extra stage's epochs counting on
    stage: str | None = None                      # the extra stage being trained (None: the main training)
    step: int = -1                                # step within the phase
    batch: "Batch | None" = None
    out: "ModelOutput | None" = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    loss: torch.Tensor | None = None
    correct: np.ndarray | None = None             # (phases, classes): correct test predictions, NaN = unseen
    extras: dict[str, Any] = field(default_factory=dict)  # free space for callbacks
    phase_log: dict[str, Any] = field(default_factory=dict)  # what the method reports about this phase
    # (JSON-safe: WA's gamma, BiC's alpha/beta, LUCIR's lambda and sigma, ...); emptied at each phase start,
    # kept per phase in summary.json["phase_log"] by the record writer

    def autocast(self):
        """bf16 autocast for a bf16 run, else a no-op: wraps forward passes and losses."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.precision == "bf16" else nullcontext()

    @property
    def batch_images(self) -> int:
        """Images in this step's batch over all ranks (``batch`` holds this rank's slice of it)."""
        return self.ranks.images if self.ranks.active else len(self.batch.y)

    # -------------------------------------------------------------- class bookkeeping
    @property
    def num_old(self) -> int:
        """Classes learned before the current phase."""
        return self.scenario.classes_seen(self.phase - 1) if self.phase > 0 else 0

    @property
    def num_seen(self) -> int:
        """Classes seen after the current phase (old + new)."""
        return self.scenario.classes_seen(self.phase)

    def phase_class_counts(self) -> np.ndarray:
        """Training images available per seen class in this phase: exemplars for old classes,
        the full count for new ones (``num_per_cls`` of the official DGR code, JiangpengHe/imbalanced_cil)."""
        counts = self.scenario.train_counts[: self.num_seen].copy()
        memory = self.memory.counts()
        for c in range(self.num_old):
            counts[c] = memory.get(c, 0)
        return counts
