"""Live panels: a run's accuracy and per-class gradients redrawn after every phase while it trains.

    gradlab.run(scenario="fashion_mnist", method="dgr", max_per_class=1000, live=True)   # in a notebook cell

:class:`LiveView` is a logger (:class:`gradlab.runs.logs.RunLogger`, the same signals TensorBoard and W&B get)
that draws instead of writing: after every evaluated phase it redraws, in place, the accuracy after every phase
so far and the per-class gradient magnitudes on the classification loss (the DGR paper's Figure 2 quantity;
old classes and new ones). In a Jupyter kernel the panels are cell outputs (plotly with a PNG twin, as in the
explorer); elsewhere (a script, a terminal) it prints one line per phase. The explorer's panels follow a run
the same way (``on_phase``).
"""
from __future__ import annotations

from gradlab.analysis import tables
from gradlab.plots import interactive
from gradlab.plots.static import figure_bundle
from gradlab.runs.logs import RunLogger

PANELS = ("accuracy", "gradients")


def in_kernel() -> bool:
    """Whether this is a Jupyter kernel (where display handles update outputs in place)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def live_panels(snapshot, label: str) -> dict:
    """{panel: plotly figure} of a run so far: ``accuracy`` and, when the gradients probe is on, ``gradients``."""
    figures = {"accuracy": interactive.accuracy_curves(tables.accuracy_curves({label: snapshot}),
                                                       title=f"{label}: accuracy after every phase so far")}
    if any(str(t) in tables.CLASSIFICATION_TERMS for t in snapshot.probes.get("term", [])):
        term = tables.classification_term(snapshot)
        name = term.removeprefix("grad_")
        figures["gradients"] = interactive.gradient_magnitudes(
            tables.gradient_magnitudes(snapshot, term), ylabel=interactive.gradient_label(name),
            title=f"{label}: per-class {name.upper()} gradient of the classifier rows")
    return figures


class LiveView(RunLogger):
    """Redraws :data:`PANELS` after every phase (``show=False``: draws nothing). ``on_phase(snapshot)``, when
    given, is called first with a :class:`~gradlab.runs.logs.RunSnapshot` of the run so far. Attributes:
    ``figures`` (panel -> the latest plotly figure), ``phases`` (the phases drawn), ``lines`` (what it printed)."""

    def __init__(self, on_phase=None, show: bool = True):
        super().__init__(name="live")
        if on_phase is not None and not callable(on_phase):
            raise TypeError(f"on_phase must be a function of the run's snapshot, got {type(on_phase).__name__}")
        self.on_phase, self.show = on_phase, show
        self.figures: dict = {}
        self.phases: list[int] = []
        self.lines: list[str] = []
        self.handles: dict = {}

    def open(self, config: dict) -> None:
        self.label = f"{config['method']} · {config['scenario']} · seed {config['seed']}"
        if self.show and in_kernel():
            from IPython.display import display

            for name in PANELS:
                text = f"{name}: drawn after the first phase"
                self.handles[name] = display({"text/plain": text}, raw=True, display_id=True)

    def phase_metrics(self, phase, scalars, per_class) -> None:
        snapshot = self.snapshot()
        self.phases.append(phase)
        if self.on_phase is not None:
            self.on_phase(snapshot)
        if not self.show:
            return
        self.figures = live_panels(snapshot, self.label)
        for name, handle in self.handles.items():
            if name in self.figures:
                handle.update({"text/plain": ""}, raw=True)       # a fresh renderer (jupyterlab-plotly keeps a graph)
                handle.update(figure_bundle(self.figures[name]), raw=True)
        if not self.handles:
            tasks = self.ctx.scenario.num_tasks
            line = (f"phase {phase + 1}/{tasks}: accuracy on the {self.ctx.num_seen} classes seen "
                    f"{scalars.get('acc_all_seen', float('nan')):.1%}")
            self.lines.append(line)
            print(line, flush=True)


__all__ = ["LiveView", "PANELS", "in_kernel", "live_panels"]
