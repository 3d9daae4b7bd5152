"""Per-class test accuracy after every phase (the input of per-class forgetting)."""
from __future__ import annotations

from gradlab.probes.base import Probe


class AccuracyProbe(Probe):
    """``test_acc`` of every seen class after each phase (``epoch = -1``)."""


    def after_eval(self, ctx) -> None:
        seen = ctx.num_seen
        acc = ctx.correct[ctx.phase, :seen] / ctx.scenario.test_counts[:seen]
        self.log.add(ctx.phase, -1, -1, "test_acc", acc)
