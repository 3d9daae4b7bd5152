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
from gradlab.checks import check_registration
from gradlab.errors import ConfigError
from gradlab.probes.accuracy import AccuracyProbe
from gradlab.probes.base import Probe
from gradlab.probes.gradients import ClassifierGradientProbe
from gradlab.probes.log import ProbeLog
from gradlab.probes.weights import WeightNormProbe

PROBES: dict[str, type[Probe]] = {"gradients": ClassifierGradientProbe, "weights": WeightNormProbe,
                                  "accuracy": AccuracyProbe}
PROBE_EVERY = ("epoch", "step")


def register_probe(name: str, cls: type[Probe]) -> type[Probe]:
    """Make a probe available by ``name`` (``probes: [name]``, ``--probes name``): a :class:`Probe` subclass,
    built as ``cls(log, every=...)``; its rows land in the run's probes.parquet. One-line errors: not a Probe,
    a bad name, or a name another probe already has."""
    if not (isinstance(cls, type) and issubclass(cls, Probe)):
        raise ConfigError(f"register_probe: {cls!r} is not a subclass of gradlab.Probe")
    check_registration("register_probe", name, cls, PROBES)
    PROBES[name] = cls
    return cls


def build_probes(names, log: ProbeLog, every: str = "epoch") -> list:
    """Instantiate the named probes, all writing into ``log``."""
    return [PROBES[name](log, every=every) for name in names]


__all__ = ["PROBES", "PROBE_EVERY", "Probe", "ProbeLog", "build_probes", "register_probe", "ClassifierGradientProbe",
           "WeightNormProbe", "AccuracyProbe"]
