"""Probes: instrumentation callbacks that measure a run without the method knowing they exist.

Each probe writes tidy rows (phase, epoch, step, class, term, value) into a shared :class:`ProbeLog`;
the record writer saves it as ``probes.parquet``. ``epoch = -1`` marks a value taken at the end of a
phase (after any extra stage), ``step = -1`` a value aggregated over an epoch.

| probe       | term(s)                                                    | when |
|-------------|------------------------------------------------------------|------|
| gradients   | grad_<loss>: mean over the epoch's steps of ||grad_{W_j} L|| per loss term, before any rewrite; grad_<loss>_reweighted when the method publishes row scales; grad_applied: the classifier-row gradient actually applied | every epoch (or step) |
| weights     | weight_norm ||W_j||_2, bias_abs abs(b_j)                        | every epoch and phase end |
| accuracy    | test_acc per seen class                                    | after every phase |
"""
from gradlab.probes.accuracy import AccuracyProbe
from gradlab.probes.gradients import ClassifierGradientProbe
from gradlab.probes.log import ProbeLog
from gradlab.probes.weights import WeightNormProbe

PROBES = {"gradients": ClassifierGradientProbe, "weights": WeightNormProbe, "accuracy": AccuracyProbe}
PROBE_EVERY = ("epoch", "step")


def build_probes(names, log: ProbeLog, every: str = "epoch") -> list:
    """Instantiate the named probes, all writing into ``log``."""
    probes = []
    for name in names:
        cls = PROBES[name]
        probes.append(cls(log, every=every) if cls is ClassifierGradientProbe else cls(log))
    return probes


__all__ = ["PROBES", "PROBE_EVERY", "ProbeLog", "build_probes", "ClassifierGradientProbe", "WeightNormProbe",
           "AccuracyProbe"]
