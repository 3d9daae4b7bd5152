"""The optimizer and learning-rate schedules of one phase (``lr_schedule``): the step schedule and FACIL's patience scheme.

The trainer calls ``end_epoch(validation_loss)`` after every epoch and stops the phase early once
``finished`` is true. ``validation_loss`` is None for schedules that do not need one (``needs_validation``).

- ``step`` (default; the official DGR training recipe): lr / ``lr_factor`` after each of
  ``cfg.milestones()`` (80 and 120 of 160 epochs), every epoch run.
- ``patience`` (LT-CIL's iCaRL train loop, a FACIL-heritage quirk): after
  each epoch the method's loss on the current task's validation hold-out; when it has not improved for
  ``lr_patience`` epochs the lr is divided by ``lr_factor`` and the patience restarts; the phase ends when
  the lr falls below ``lr_min`` or after ``epochs``. As in the LT-CIL code the weights of the best epoch are
  *not* restored (FACIL's restore is commented out there). Needs ``val_fraction`` > 0.
"""
from __future__ import annotations

import math

import torch

SCHEDULES = ("step", "patience")


def build_optimizer(model: torch.nn.Module, cfg) -> torch.optim.SGD:
    """SGD over the model's trainable parameters with the run's lr, momentum and weight decay (every phase,
    and again when a phase resumes from a mid-phase checkpoint)."""
    return torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                           momentum=cfg.momentum, weight_decay=cfg.weight_decay)


class StepSchedule:
    """lr / lr_factor after each milestone epoch."""

    needs_validation = False

    def __init__(self, optimizer: torch.optim.Optimizer, cfg):
        self.multistep = torch.optim.lr_scheduler.MultiStepLR(optimizer, cfg.milestones(), gamma=1.0 / cfg.lr_factor)
        self.finished = False

    def end_epoch(self, validation_loss: float | None = None) -> None:
        self.multistep.step()

    def log(self) -> dict:
        return {}


class PatienceSchedule:
    """FACIL / LT-CIL patience scheme on the validation loss (see the module docstring)."""

    needs_validation = True

    def __init__(self, optimizer: torch.optim.Optimizer, cfg):
        self.optimizer, self.factor, self.patience, self.lr_min = optimizer, cfg.lr_factor, cfg.lr_patience, cfg.lr_min
        self.lr = cfg.lr
        self.best = math.inf
        self.waiting = 0                    # epochs since the last improvement
        self.finished = False
        self.history: list[tuple[float, float]] = []   # (validation loss, lr) per epoch

    def end_epoch(self, validation_loss: float | None = None) -> None:
        if validation_loss is None:
            raise ValueError("the patience schedule needs the validation loss of every epoch")
        self.history.append((float(validation_loss), self.lr))
        if validation_loss < self.best:
            self.best, self.waiting = validation_loss, 0
            return
        self.waiting += 1
        if self.waiting < self.patience:
            return
        self.lr /= self.factor
        if self.lr < self.lr_min:
            self.finished = True
            return
        self.waiting = 0
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr

    def log(self) -> dict:
        """Epochs run, the lr of the last epoch and every epoch's validation loss and lr: the phase log's
        ``schedule`` entry."""
        return {"epochs": len(self.history), "last_lr": self.history[-1][1] if self.history else self.lr,
                "stopped_early": self.finished,
                "validation_loss": [loss for loss, _ in self.history], "lr": [lr for _, lr in self.history]}


def build_schedule(optimizer: torch.optim.Optimizer, cfg):
    return {"step": StepSchedule, "patience": PatienceSchedule}[cfg.lr_schedule](optimizer, cfg)
