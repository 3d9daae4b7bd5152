"""An ipywidgets explorer: pick a scenario and a method, press Run, watch the probes.

    from gradlab.notebook.explorer import explorer
    explorer(method="dgr", epochs=5)      # the last line of a notebook cell; Fashion-MNIST-LT by default

The controls (scenario, order, ρ, method, method args, base, tasks, memory, epochs, seed, max per class,
device) map to a :class:`~gradlab.config.RunConfig` through :func:`config_from_controls` (a plain
function, testable without a browser). The method-args field takes ``key=value`` pairs separated by
commas or spaces (``distillation=kd, eta=0``), each value read as YAML like the CLI's ``--method-arg``
(:func:`parse_method_args`). The Run button trains with :func:`gradlab.run` in the kernel; a
trainer callback (:class:`ProgressCallback`) moves a progress bar over phases x epochs and writes the
status line. Settings errors (``ConfigError``, missing data, a bad method argument) land in the status
line as one line naming the field, never as a traceback. After every phase of the run (a
:class:`~gradlab.notebook.live.LiveView` follows it) and when it ends, the outputs under the widget show a
summary of the run and three figures (from :mod:`gradlab.plots.interactive`, titled with the run's method):
the accuracy after every phase (every run of this session, to compare), the per-class gradient magnitudes on
the method's classification loss (the paper's Figure 2 quantity) and the classifier weight norms of the latest
run. They are regular cell outputs, not widget state: each is one output holding the plotly figure and a PNG
of it, redrawn in place through display handles, so JupyterLab saves the last result with the notebook and
shows it again after a reload (static viewers show the PNG).

Keyword arguments of :func:`explorer` that name a control set its starting value (``method_args`` as
a dict or as the field's text); any other ``RunConfig`` field (``batch_size=16``, ``model="small"``,
``precision="fp32"``) is passed to every run unchanged (over :data:`RUN_EXTRAS`). ``run_now=True`` starts one run at once
(notebooks under CI use it).
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path

import ipywidgets as W
import numpy as np

from gradlab.analysis import tables
from gradlab.checks import format_method_args, parse_method_args
from gradlab.config import DEVICES, SCENARIOS, RunConfig
from gradlab.data.profiles import ORDERS
from gradlab.errors import ConfigError
from gradlab.experiments.paper_figures import QUICK_MAX_PER_CLASS
from gradlab.methods import build_method, list_methods, method_options
from gradlab.notebook.live import LiveView
from gradlab.plots import interactive
from gradlab.plots.static import figure_bundle, to_matplotlib
from gradlab.plugins import load_plugins
from gradlab.runs import runner
from gradlab.training.trainer import Callback

#: Starting values of the controls: Fashion-MNIST-LT (real images, 10 classes) as ``make figures`` has it
#: (ρ = 100, head classes cut to 1 000 images, 5 tasks of 2 classes, 20 exemplars per class), with half its
#: epochs (10 instead of 20). ``max_per_class``: 0 = every image; None = the scenario's cap in
#: ``make figures`` (1 000 on Fashion-MNIST, else every image), also what the field switches to when the
#: scenario changes.
DEFAULTS = {"scenario": "fashion_mnist", "imbalance": 100.0, "order": "lt", "base": 0, "tasks": 5, "memory": 20,
            "method": "dgr", "method_args": "", "epochs": 10, "seed": 0, "max_per_class": None, "device": "auto"}
#: Fixed settings every explorer run gets unless overridden: no tqdm bars, no checkpoints, batch 32 (as
#: ``make figures``). Precision and layout are the run defaults (auto: bf16 autocast where the chip has bf16 in
#: hardware, NHWC on CPU): on a CPU with bf16 a default run takes about 15 s instead of two minutes in fp32;
#: pass ``precision="fp32"`` to turn bf16 off.
RUN_EXTRAS = {"progress": False, "checkpoints": False, "batch_size": 32}
IMBALANCES = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0)
MAX_COMPARED = 6               # runs kept in the accuracy panel
PANELS = ("accuracy", "gradients", "weights")
WAITING = ("No run yet: choose settings and press **Run**. The last run's summary and figures appear here, "
           "and stay in the notebook when it is saved.")


def scenario_cap(scenario: str) -> int:
    """The max-per-class value the field takes for a scenario: its cap in ``make figures`` (0 = none)."""
    return int(QUICK_MAX_PER_CLASS.get(scenario) or 0)


def config_from_controls(values: dict, extras: dict | None = None,
                         out_root: str | Path = "runs/explorer") -> dict:
    """Control values (+ fixed extras) -> a validated ``RunConfig`` dict with an ``out`` folder.

    ``base == 0`` (or None) means "split the classes evenly"; ``max_per_class == 0`` (or None) "every
    image the source has"; the balanced order ``conv`` forces ρ = 1; ``method_args`` may be the text of
    the method-args field (:func:`parse_method_args`) or a dict, and is checked against the method.
    Raises :class:`gradlab.ConfigError` with the field's name when a value is not allowed.
    """
    cfg = {**RUN_EXTRAS, **(extras or {}), **values}
    if not cfg.get("base"):
        cfg["base"] = None
    if not cfg.get("max_per_class"):
        cfg["max_per_class"] = None
    if cfg.get("order") == "conv":
        cfg["imbalance"] = 1.0
    elif cfg.get("imbalance") is not None:
        cfg["imbalance"] = float(cfg["imbalance"])
    cfg["method_args"] = parse_method_args(cfg.get("method_args"))
    cfg.pop("out", None)
    checked = RunConfig.from_dict(cfg, source="explorer")
    build_method(checked.method, checked, **checked.method_args)   # unknown / bad method args, by name
    checked.out = str(Path(out_root) / checked.folder_name())
    return checked.to_dict()


def run_label(cfg: RunConfig) -> str:
    """Legend label of a run in the accuracy panel."""
    args = f" ({format_method_args(cfg.method_args)})" if cfg.method_args else ""
    cap = "" if cfg.max_per_class is None else f" n≤{cfg.max_per_class}"
    return (f"{cfg.method}{args} · {cfg.scenario} {cfg.order} ρ={cfg.rho:g}{cap} · m={cfg.memory} "
            f"e={cfg.epochs} seed {cfg.seed}")


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
        if ctx.stage is not None:               # an extra stage (BiC's bias layer, ...): named, not counted
            self._say(ctx, f"stage {ctx.stage}")
            return
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
    """The explorer widget: controls, Run button, progress and status; displayed, it is followed by four
    regular outputs (the last run's summary and its three figures) that every run redraws in place.

    Attributes worth knowing: ``controls`` (name -> widget), ``records`` (label -> RunRecord, this
    session's runs), ``record`` (the latest), ``figures`` (panel name -> plotly figure), ``error``
    (the last error message or None), ``handles`` (output name -> display handle, once displayed).
    """

    def __init__(self, out_root: str | Path = "runs/explorer", **defaults):
        unknown = sorted(set(defaults) - {f for f in RunConfig.__dataclass_fields__})
        if unknown:
            raise ConfigError(f"explorer: unknown setting(s) {unknown}; allowed: RunConfig fields")
        load_plugins(list(defaults.get("plugins") or []))     # their methods and scenarios join the dropdowns
        values = {**DEFAULTS, **{k: v for k, v in defaults.items() if k in DEFAULTS}}
        values["method_args"] = format_method_args(values["method_args"])
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
        self.handles: dict = {}
        self.errors: dict = {}
        self._display_id = f"gradlab-explorer-{uuid.uuid4().hex}"
        c = self.controls
        grid = W.GridBox([c["scenario"], c["order"], c["imbalance"], c["method"], c["method_args"], c["base"],
                          c["tasks"], c["memory"], c["epochs"], c["seed"], c["max_per_class"], c["device"]],
                         layout=W.Layout(grid_template_columns="repeat(3, 1fr)", grid_gap="4px 12px"))
        super().__init__([W.HTML("<h3>gradlab explorer</h3>"), grid, self.method_help,
                          W.HBox([self.run_button, self.progress]), self.status])
        self.add_class("gradlab-explorer")

    # ---------------------------------------------------------------- controls
    def _build_controls(self, v: dict) -> dict:
        style = {"description_width": "120px"}
        methods = list_methods()
        rho = min(IMBALANCES, key=lambda r: abs(r - float(v["imbalance"] or 1.0)))
        c = {
            "scenario": W.Dropdown(options=list(SCENARIOS), value=v["scenario"], description="scenario"),
            "order": W.Dropdown(options=list(ORDERS), value=v["order"], description="order"),
            "imbalance": W.SelectionSlider(options=[(f"{r:g}", r) for r in IMBALANCES], value=rho,
                                           description="ρ (imbalance)"),
            "method": W.Dropdown(options=list(methods), value=v["method"], description="method"),
            "method_args": W.Text(value=v["method_args"], description="method args",
                                  placeholder="key=value, … e.g. distillation=kd eta=0",
                                  tooltip="the method's settings, key=value pairs (values read as YAML)"),
            "base": W.BoundedIntText(value=v["base"] or 0, min=0, max=99, description="base (0 = even)"),
            "tasks": W.BoundedIntText(value=v["tasks"], min=1, max=100, description="tasks"),
            "memory": W.IntSlider(value=v["memory"], min=0, max=50, description="memory / class"),
            "epochs": W.BoundedIntText(value=v["epochs"], min=1, max=500, description="epochs"),
            "seed": W.BoundedIntText(value=v["seed"], min=0, max=2**31 - 1, description="seed"),
            "max_per_class": W.BoundedIntText(value=(scenario_cap(v["scenario"]) if v["max_per_class"] is None
                                                     else v["max_per_class"]), min=0, max=100_000,
                                              description="max per class",
                                              tooltip="training images of the head classes; 0 = every image"),
            "device": W.ToggleButtons(options=list(DEVICES), value=v["device"], description="device",
                                      style={"button_width": "60px", **style}),
        }
        for name, widget in c.items():
            if name != "device":
                widget.style = style
        self.method_help = W.HTML()

        def describe(_=None):
            name = c["method"].value
            options = method_options(name) if name in methods else {}
            rows = "".join(f"<br><code>{key}</code> = {_escape(str(arg.default))}: {_escape(arg.allowed())}"
                           f"{' - ' + _escape(arg.help) if arg.help else ''}" for key, arg in options.items())
            self.method_help.value = f"<i>{name}</i>: {_escape(methods.get(name, ''))}" + rows

        def conv_is_balanced(_=None):
            c["imbalance"].disabled = c["order"].value == "conv"

        def follow_scenario(change):
            c["max_per_class"].value = scenario_cap(change["new"])

        c["method"].observe(describe, names="value")
        c["order"].observe(conv_is_balanced, names="value")
        c["scenario"].observe(follow_scenario, names="value")
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
            live = LiveView(on_phase=self._follow, show=False)       # the panels follow the run phase by phase
            record = runner.run(cfg, callbacks=[callback, live], overwrite=True)
        except Exception as err:  # noqa: BLE001  (shown in the status line, not raised)
            self.error = " ".join(f"{type(err).__name__}: {err}".split())   # one line
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
                             f"{_pct(s.get('average_forgetting'))} · run: {_escape(label)} · "
                             f"record: <code>{_escape(str(record.path))}</code>")
        self.update_panels()
        return record

    def _follow(self, snapshot) -> None:
        """After every phase of the run in progress: its snapshot joins the panels, which are redrawn."""
        self.records.pop(run_label(snapshot.config), None)
        self.records[run_label(snapshot.config)] = snapshot
        self.record = snapshot
        self.update_panels()

    def _method(self) -> str:
        cfg = self.record.config
        return cfg.method + (f" ({format_method_args(cfg.method_args)})" if cfg.method_args else "")

    def _gradient_panel(self):
        """Figure 2 for the latest run, on its classification loss (CE, or NCA for PODNet / SIR)."""
        term = tables.classification_term(self.record)
        name = term.removeprefix("grad_")
        return interactive.gradient_magnitudes(
            tables.gradient_magnitudes(self.record, term), ylabel=interactive.gradient_label(name),
            title=f"{self._method()}: per-class {name.upper()} gradient of the classifier rows")

    def update_panels(self) -> None:
        """Redraw the three figures from ``records`` / ``record``, and the outputs under the widget."""
        latest = {run_label(self.record.config): self.record}
        makers = {
            "accuracy": lambda: interactive.accuracy_curves(tables.accuracy_curves(self.records),
                                                            title="Accuracy after every phase, this session's runs"),
            "gradients": lambda: self._gradient_panel(),
            "weights": lambda: interactive.weight_norms(
                tables.weight_norms(latest), title=f"{self._method()}: classifier weight norms after the last phase"),
        }
        self.errors = {}
        for name, make in makers.items():
            try:
                self.figures[name] = make()
            except Exception as err:  # noqa: BLE001  (a panel that cannot draw says why)
                self.figures.pop(name, None)
                self.errors[name] = f"{name} panel: {type(err).__name__}: {err}"
        for name in sorted(self.handles, key=lambda n: n == "summary"):     # the summary last: "all redrawn"
            handle, bundle = self.handles[name], self.bundle(name)
            handle.update({"text/plain": ""}, raw=True)   # a fresh renderer: jupyterlab-plotly keeps a graph it drew
            handle.update(bundle, raw=True)

    def summary(self) -> str:
        """The last run in one Markdown line (the first output under the widget)."""
        if self.record is None:
            return WAITING
        s = self.record.summary
        if "average_incremental_accuracy" not in s:          # a run in progress (a snapshot after a phase)
            phases = self.record.metrics.phase.max() + 1
            acc = tables.accuracy_curves({"run": self.record}).acc_all_seen.iloc[-1]
            return (f"**Running:** {_escape(run_label(self.record.config))} · {phases} of "
                    f"{self.record.config.tasks} phases done · accuracy on the classes seen {acc:.1%}")
        return (f"**Last run:** {_escape(run_label(self.record.config))} · done in {s.get('wall_time_s', 0):.1f} s "
                f"on {s.get('device', '?')} · average incremental accuracy {s['average_incremental_accuracy']:.1%} · "
                f"final {s['final_accuracy']:.1%} · forgetting {_pct(s.get('average_forgetting'))} · "
                f"record: `{self.record.path}`")

    def bundle(self, name: str) -> dict:
        """The display bundle of one output under the widget: ``summary`` (Markdown) or a figure (plotly + PNG)."""
        if name == "summary":
            return {"text/markdown": self.summary(), "text/plain": self.summary()}
        if name in self.figures:
            return figure_bundle(self.figures[name])
        return {"text/plain": self.errors.get(name, "")}

    def _ipython_display_(self) -> None:
        """The widget, then the summary and the three figures as regular outputs with display ids."""
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)
        for name in ("summary", *PANELS):
            self.handles[name] = display(self.bundle(name), raw=True, display_id=f"{self._display_id}-{name}")

    def static_figures(self) -> dict:
        """Matplotlib copies of the three figures (the PNGs of the outputs): {name: Figure}."""
        return {name: to_matplotlib(fig) for name, fig in self.figures.items()}


def explorer(run_now: bool = False, out_root: str | Path = "runs/explorer", data=None, **defaults) -> Explorer:
    """The explorer widget (show it as a cell's last expression). ``run_now=True`` trains once right
    away, so the widget already holds a finished run and its plots when it is shown. ``plugins=[...]`` loads
    your methods, probes and scenarios first (they appear in the dropdowns); ``data=ArrayData(...)`` starts on
    your arrays (the ``arrays`` scenario)."""
    defaults = runner.with_data(data, None, defaults)
    ex = Explorer(out_root=out_root, **defaults)
    if run_now:
        ex.run()
    return ex


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


__all__ = ["DEFAULTS", "Explorer", "ProgressCallback", "config_from_controls", "explorer", "run_label",
           "scenario_cap"]
