"""The probe contract: a callback with the run's probe log (``log.add(phase, epoch, step, term, values)``)."""
from __future__ import annotations

from gradlab.training.trainer import Callback


class Probe(Callback):
    """Base class of every probe (``gradlab.Probe``): a :class:`~gradlab.training.trainer.Callback` that writes
    tidy rows into the run's :class:`~gradlab.probes.log.ProbeLog` from any event (``after_epoch``,
    ``after_eval``, ...); ``every`` is the run's ``probe_every`` (``epoch`` or ``step``)."""

    def __init__(self, log, every: str = "epoch"):
        self.log, self.every = log, every
