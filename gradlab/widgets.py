"""An ipywidgets explorer: pick a scenario and a method, press Run, watch the probes.

    from gradlab.widgets import explorer
    explorer(scenario="digits", method="dgr", epochs=2)      # the last line of a notebook cell

The controls map to a :class:`~gradlab.config.RunConfig` through :func:`config_from_controls` (a plain
function, testable without a browser). The Run button trains with :func:`gradlab.run` in the kernel; a
trainer callback (:class:`ProgressCallback`) moves a progress bar over phases x epochs and writes the
status line. Settings errors (``ConfigError``, missing data) land in the status line, never as a
traceback. When the run ends three plotly panels (from :mod:`gradlab.plots.interactive`) show the
accuracy after every phase (every run of this session, to compare), the per-class CE gradient
magnitudes (the paper's Figure 2 quantity) and the classifier weight norms of the latest run.

Keyword arguments of :func:`explorer` that name a control set its starting value; any other
``RunConfig`` field (``batch_size=32``, ``max_per_class=30``, ``model="small"``) is passed to every run
unchanged. ``run_now=True`` starts one run at once (notebooks under CI use it).
"""
from __future__ import annotations

import time
from pathlib import Path

import ipywidgets as W
import numpy as np
import gradlab
from gradlab.config import DEVICES, SCENARIOS, RunConfig
from gradlab.data.profiles import ORDERS
from gradlab.trainer import Callback

#: Starting values of the controls (small enough to train in seconds on a laptop CPU).
DEFAULTS = {"scenario": "digits", "imbalance": 10.0, "order": "lt", "base": 0, "tasks": 3, "memory": 5,
            "method": "dgr", "epochs": 2, "device": "auto"}
#: Fixed settings every explorer run gets unless overridden: no tqdm bars, no checkpoints.
RUN_EXTRAS = {"progress": False, "checkpoints": False}
IMBALANCES = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0)
RENDERER = "plotly_mimetype"   # JupyterLab's plotly renderer (jupyterlab-plotly); no CDN, no network
MAX_COMPARED = 6               # runs kept in the accuracy panel


def config_from_controls(values: dict, extras: dict | None = None,
                         out_root: str | Path = "runs/explorer") -> dict:
    """Control values (+ fixed extras) -> a validated ``RunConfig`` dict with an ``out`` folder.

    ``base == 0`` (or None) means "split the classes evenly"; the balanced order ``conv`` forces
    ρ = 1. Raises :class:`gradlab.ConfigError` with the field's name when a value is not allowed.
    """
    cfg = {**RUN_EXTRAS, **(extras or {}), **values}
    if not cfg.get("base"):
        cfg["base"] = None
    if cfg.get("order") == "conv":
        cfg["imbalance"] = 1.0
    elif cfg.get("imbalance") is not None:
        cfg["imbalance"] = float(cfg["imbalance"])
    cfg.pop("out", None)
    checked = RunConfig.from_dict(cfg, source="explorer")
    checked.out = str(Path(out_root) / run_name(checked))
    return checked.to_dict()


def run_name(cfg: RunConfig) -> str:
    """Folder name of one explorer run: every control value, so a rerun overwrites only itself."""
    base = "even" if cfg.base is None else cfg.base
    return (f"{cfg.scenario}-{cfg.method}-{cfg.order}-r{cfg.rho:g}-b{base}-t{cfg.tasks}-m{cfg.memory}"
            f"-e{cfg.epochs}-s{cfg.seed}")


def run_label(cfg: RunConfig) -> str:
    """Legend label of a run in the accuracy panel."""
    return f"{cfg.method} · {cfg.scenario} {cfg.order} ρ={cfg.rho:g} · m={cfg.memory} e={cfg.epochs}"


class ProgressCallback(Callback):
    """Drives an ``IntProgress`` over phases x epochs and a status label from trainer events."""

    def __init__(self, bar: W.IntProgress, status: W.HTML):
        self.bar, self.status = bar, status
        self.start = time.perf_counter()

    def before_run(self, ctx) -> None:
        self.start = time.perf_counter()
        self.bar.max = max(1, ctx.scenario.num_tasks * ctx.cfg.epochs)
        self.bar.value = 0
        self.bar.bar_style = "info"
        self._say(ctx, "started")

    def after_epoch(self, ctx) -> None:
        self.bar.value = min(self.bar.max, self.bar.value + 1)
        self._say(ctx, f"epoch {ctx.epoch + 1}/{ctx.cfg.epochs}")

    def after_eval(self, ctx) -> None:
        seen = ctx.num_seen
        acc = float(np.nansum(ctx.correct[ctx.phase, :seen]) / ctx.scenario.test_counts[:seen].sum())
        self._say(ctx, f"evaluated: accuracy on {seen} seen classes {acc:.1%}")

    def _say(self, ctx, what: str) -> None:
        elapsed = time.perf_counter() - self.start
        self.status.value = (f"<b>running</b> phase {ctx.phase + 1}/{ctx.scenario.num_tasks} · {what}"
                             f" · {elapsed:.1f} s") if ctx.phase >= 0 else f"<b>running</b> · {what}"


class Explorer(W.VBox):
    """The explorer widget: controls, Run button, progress, status and three plot panels.

    Attributes worth knowing: ``controls`` (name -> widget), ``records`` (label -> RunRecord, this
    session's runs), ``record`` (the latest), ``figures`` (panel name -> plotly figure), ``error``
    (the last error message or None).
    """

    def __init__(self, out_root: str | Path = "runs/explorer", **defaults):
        unknown = sorted(set(defaults) - {f for f in RunConfig.__dataclass_fields__})
        if unknown:
            raise gradlab.ConfigError(f"explorer: unknown setting(s) {unknown}; allowed: RunConfig fields")
        values = {**DEFAULTS, **{k: v for k, v in defaults.items() if k in DEFAULTS}}
        self.extras = {k: v for k, v in defaults.items() if k not in DEFAULTS}
        self.out_root = Path(out_root)
        self.records: dict = {}           # label -> RunRecord, oldest first
        self.record = None
        self.figures: dict = {}
        self.error: str | None = None
        self.controls = self._build_controls(values)
        self.run_button = W.Button(description="Run", button_style="primary", icon="play",
                                   tooltip="train with these settings (in the kernel)")
        self.run_button.on_click(lambda _: self.run())
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress",
                                      layout=W.Layout(width="60%"))
        self.status = W.HTML("ready: choose settings and press <b>Run</b>")
        self.panels = {name: W.Output(layout=W.Layout(width="100%", min_height="60px"))
                       for name in ("accuracy", "gradients", "weights")}
        c = self.controls
        grid = W.GridBox([c["scenario"], c["order"], c["imbalance"], c["method"], c["base"], c["tasks"],
                          c["memory"], c["epochs"], c["device"]],
                         layout=W.Layout(grid_template_columns="repeat(3, 1fr)", grid_gap="4px 12px"))
        super().__init__([W.HTML("<h3>gradlab explorer</h3>"), grid, self.method_help,
                          W.HBox([self.run_button, self.progress]), self.status,
                          *self.panels.values()])
        self.add_class("gradlab-explorer")

    # ---------------------------------------------------------------- controls
    def _build_controls(self, v: dict) -> dict:
        style = {"description_width": "120px"}
        methods = gradlab.list_methods()
        rho = min(IMBALANCES, key=lambda r: abs(r - float(v["imbalance"] or 1.0)))
        c = {
            "scenario": W.Dropdown(options=list(SCENARIOS), value=v["scenario"], description="scenario"),
            "order": W.Dropdown(options=list(ORDERS), value=v["order"], description="order"),
            "imbalance": W.SelectionSlider(options=[(f"{r:g}", r) for r in IMBALANCES], value=rho,
                                           description="ρ (imbalance)"),
            "method": W.Dropdown(options=list(methods), value=v["method"], description="method"),
            "base": W.BoundedIntText(value=v["base"] or 0, min=0, max=99, description="base (0 = even)"),
            "tasks": W.BoundedIntText(value=v["tasks"], min=1, max=100, description="tasks"),
            "memory": W.IntSlider(value=v["memory"], min=0, max=50, description="memory / class"),
            "epochs": W.BoundedIntText(value=v["epochs"], min=1, max=500, description="epochs"),
            "device": W.ToggleButtons(options=list(DEVICES), value=v["device"], description="device",
                                      style={"button_width": "60px", **style}),
        }
        for name, widget in c.items():
            if name != "device":
                widget.style = style
        self.method_help = W.HTML()

        def describe(_=None):
            self.method_help.value = f"<i>{c['method'].value}</i>: {methods.get(c['method'].value, '')}"

        def conv_is_balanced(_=None):
            c["imbalance"].disabled = c["order"].value == "conv"

        c["method"].observe(describe, names="value")
        c["order"].observe(conv_is_balanced, names="value")
        describe()
        conv_is_balanced()
        return c

    def values(self) -> dict:
        """The controls' current values (control name -> value)."""
        return {name: widget.value for name, widget in self.controls.items()}

    def config(self) -> dict:
        """The RunConfig dict the Run button would train (raises ConfigError on bad settings)."""
        return config_from_controls(self.values(), self.extras, self.out_root)

    # ---------------------------------------------------------------- run
    def run(self):
        """Train one run with the current settings; returns the RunRecord, or None on an error."""
        self.error = None
        self.run_button.disabled = True
        self.progress.bar_style = ""
        self.progress.value = 0
        try:
            cfg = self.config()
            self.status.value = "<b>preparing</b> (data, model) ..."
            callback = ProgressCallback(self.progress, self.status)
            record = gradlab.run(cfg, callbacks=[callback], overwrite=True)
        except Exception as err:  # noqa: BLE001  (shown in the status line, not raised)
            self.error = f"{type(err).__name__}: {err}"
            self.progress.bar_style = "danger"
            self.status.value = f"<span style='color:#b00020'><b>error</b> · {_escape(self.error)}</span>"
            return None
        finally:
            self.run_button.disabled = False
        label = run_label(record.config)
        self.records.pop(label, None)
        self.records[label] = record
        while len(self.records) > MAX_COMPARED:
            self.records.pop(next(iter(self.records)))
        self.record = record
        self.progress.value, self.progress.bar_style = self.progress.max, "success"
        s = record.summary
        self.status.value = (f"<b>done</b> in {s.get('wall_time_s', 0):.1f} s on {s.get('device', '?')} · "
                             f"average incremental accuracy {s['average_incremental_accuracy']:.1%} · "
                             f"final {s['final_accuracy']:.1%} · forgetting "
                             f"{_pct(s.get('average_forgetting'))} · record: <code>{record.path}</code>")
        self.update_panels()
        return record

    def _gradient_panel(self):
        """Figure 2 for the latest run, on its classification loss (CE, or NCA for PODNet / SIR)."""
        from gradlab.plots import interactive, tables

        term = tables.classification_term(self.record)
        name = term.removeprefix("grad_")
        return interactive.gradient_magnitudes(tables.gradient_magnitudes(self.record, term),
                                               ylabel=f"mean ‖∇<sub>W_j</sub> L<sub>{name}</sub>‖")

    def update_panels(self) -> None:
        """Redraw the three plotly panels from ``records`` / ``record``."""
        from gradlab.plots import interactive, tables

        latest = {run_label(self.record.config): self.record}
        makers = {
            "accuracy": lambda: interactive.accuracy_curves(tables.accuracy_curves(self.records)),
            "gradients": lambda: self._gradient_panel(),
            "weights": lambda: interactive.weight_norms(tables.weight_norms(latest)),
        }
        in_kernel = _in_kernel()
        for name, make in makers.items():
            try:
                fig = self.figures[name] = make()
            except Exception as err:  # noqa: BLE001  (a panel that cannot draw says why)
                self.figures.pop(name, None)
                fig, message = None, f"{name} panel: {type(err).__name__}: {err}"
            if not in_kernel:  # plain Python (tests, scripts): keep the figures, print nothing
                continue
            panel = self.panels[name]
            panel.clear_output(wait=True)
            with panel:
                if fig is None:
                    print(message)
                else:
                    fig.show(renderer=RENDERER)


def explorer(run_now: bool = False, out_root: str | Path = "runs/explorer", **defaults) -> Explorer:
    """The explorer widget (show it as a cell's last expression). ``run_now=True`` trains once right
    away, so the widget already holds a finished run and its plots when it is shown."""
    ex = Explorer(out_root=out_root, **defaults)
    if run_now:
        ex.run()
    return ex


def _in_kernel() -> bool:
    """True inside a Jupyter kernel, where Output widgets capture what is displayed."""
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


__all__ = ["DEFAULTS", "Explorer", "ProgressCallback", "config_from_controls", "explorer", "run_label",
           "run_name"]
