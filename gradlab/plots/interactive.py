"""Interactive plotly figures for the notebooks and the explorer.

Each function takes a tidy table from :mod:`gradlab.analysis.tables` and only builds a
``plotly.graph_objects.Figure`` (no rendering, no network / CDN). A per-seed table (a ``seed`` column,
:func:`tables.per_seed`) is drawn as its mean over seeds with ± one std error bars. Colours come from
:mod:`gradlab.plots.palette` (one colour per run in every figure). In notebooks, show them with
:func:`gradlab.notebook.helpers.show`: one output holding the plotly figure and a PNG of the same figure
(:func:`gradlab.plots.static.to_matplotlib`). Hovering shows the class, its task, training count and the
exact value. Paper = He & Zhu, "Gradient Reweighting: Towards Imbalanced Class-Incremental Learning", CVPR 2024.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gradlab.analysis import tables
from gradlab.analysis.seeds import mean_std
from gradlab.plots import palette
from gradlab.plots.paper import relative_norms


def gradient_label(loss: str = "ce") -> str:
    """The y-axis title of the per-class gradient figures (plotly HTML)."""
    return f"row gradient ‖∇L<sub>{loss}</sub>‖ (mean)"


WEIGHT_LABEL = "row norm ‖W<sub>j</sub>‖ ÷ run mean"


def _check(table, columns, name) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{name} needs the tidy DataFrame from gradlab.analysis.tables.{name}")
    return tables.check_table(table, columns)


def _labels(table) -> list[str]:
    return list(dict.fromkeys(table["label"]))


def _over_seeds(table: pd.DataFrame, by, values) -> tuple[pd.DataFrame, int]:
    """A per-seed table as its mean over seeds (:func:`~gradlab.analysis.seeds.mean_std`, the value columns under
    their own names), ``<col>_std`` beside them (NaN for one seed), and the number of seeds."""
    n = int(table["seed"].nunique()) if "seed" in table.columns else 1
    agg = mean_std(table, by, values).rename(columns={f"{col}_mean": col for col in values})
    return agg, n


def _error(frame: pd.DataFrame, col: str, n: int, scale: float = 1.0):
    """plotly error bars of ± one std over seeds (none for a single seed)."""
    if n <= 1:
        return None
    return dict(type="data", array=(scale * frame[f"{col}_std"]).to_numpy(float), visible=True, thickness=1)


def _seed_note(n: int) -> str:
    return f" — mean ± std over {n} seeds" if n > 1 else ""


def shared_axis_title(fig: go.Figure, text: str, axis: str = "x", domain=(0.0, 1.0)) -> go.Figure:
    """One axis title for several facets (instead of one per facet, which run into each other): an
    annotation named ``xtitle`` (below the plots, centred on ``domain``) or ``ytitle`` (left of them)."""
    centre = (domain[0] + domain[1]) / 2
    if axis == "x":
        fig.add_annotation(name="xtitle", text=text, x=centre, y=0, xref="paper", yref="paper", yanchor="top",
                           yshift=-42, showarrow=False)
        fig.update_layout(margin=dict(b=95))
    else:
        fig.add_annotation(name="ytitle", text=text, x=0, y=centre, xref="paper", yref="paper", xanchor="right",
                           xshift=-48, textangle=-90, showarrow=False)
        fig.update_layout(margin=dict(l=95))
    return fig


def gradient_magnitudes(table: pd.DataFrame, ylabel: str | None = None, title: str | None = None) -> go.Figure:
    """Paper Figure 2: per-class average ||grad L_ce(W_j)|| in each phase; one subplot per phase,
    one bar trace per (phase, task), classes head -> tail within a task, old tasks faded and hatched;
    a last subplot plots every class in the phase where it is new against its training count (log x).
    ``table``: :func:`tables.gradient_magnitudes`, or its per-seed stack (:func:`tables.per_seed`: the mean
    over seeds with ± std error bars; likewise for every figure here).
    """
    table = _check(table, tables.GRADIENT_COLUMNS, "gradient_magnitudes")
    table, n = _over_seeds(table, ["phase", "class", "task", "train_count", "group", "rank"], ["value"])
    phases = sorted(int(p) for p in table["phase"].unique())
    num_tasks = int(table["task"].max()) + 1
    fig = make_subplots(rows=1, cols=len(phases) + 1, shared_yaxes=True, horizontal_spacing=0.025,
                        column_widths=[1.0] * len(phases) + [1.4],
                        subplot_titles=[f"phase {p}" for p in phases] + ["new classes"])
    shown = set()
    for col, phase in enumerate(phases, start=1):
        frame = table[table["phase"] == phase].sort_values(["task", "rank"])
        for task, part in frame.groupby("task", sort=True):
            task = int(task)
            old = bool((part["group"] == "old").all())
            fig.add_trace(go.Bar(
                x=[f"c{c}" for c in part["class"]], y=part["value"], name=f"task {task}",
                error_y=_error(part, "value", n),
                legendgroup=f"task {task}", showlegend=task not in shown,
                marker=dict(color=palette.task_color(task, num_tasks), opacity=0.5 if old else 1.0,
                            pattern=dict(shape="/" if old else "")),
                customdata=part[["class", "task", "train_count", "group", "rank"]].to_numpy(),
                hovertemplate=("class %{customdata[0]} (task %{customdata[1]}, %{customdata[3]})<br>"
                               "train count %{customdata[2]}, rank %{customdata[4]}<br>"
                               "value %{y:.4g}<extra>phase " + str(phase) + "</extra>")),
                row=1, col=col)
            shown.add(task)
    new = table[table["group"] == "new"]
    for task, part in new.groupby("task", sort=True):
        fig.add_trace(go.Scatter(
            x=part["train_count"], y=part["value"], mode="markers", name=f"task {int(task)}",
            legendgroup=f"task {int(task)}", showlegend=False, error_y=_error(part, "value", n),
            marker=dict(color=palette.task_color(int(task), num_tasks), size=8, line=dict(width=0.5)),
            customdata=part[["class", "task"]].to_numpy(),
            hovertemplate="class %{customdata[0]} (task %{customdata[1]}): %{x} images, value %{y:.4g}<extra></extra>"),
            row=1, col=len(phases) + 1)
    last = len(phases) + 1
    fig.update_xaxes(type="log", dtick=1, title_text="training images (log)", row=1, col=last)
    bars_end = fig.layout[f"xaxis{len(phases) if len(phases) > 1 else ''}"].domain[1]
    shared_axis_title(fig, "class (head → tail within each task)", domain=(0.0, bars_end))
    fig.update_yaxes(title_text=ylabel or gradient_label("ce"), row=1, col=1)
    fig.update_layout(title=(title or "Per-class gradient magnitude of the classifier rows (Fig. 2)") + _seed_note(n),
                      bargap=0.15, barmode="stack", legend_traceorder="normal", legend_title_text="task")
    return fig


def weight_norms(table: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Classifier weight norms after the last phase, relative to each run's mean row norm (as
    ``gradlab figures`` draws them): left, the mean per task (does the newest task's head outgrow the
    old ones?); right, every class against its training count (log x). Hover: the raw ||W_j|| and |b_j|.
    ``table``: :func:`tables.weight_norms`.
    """
    table = relative_norms(_check(table, tables.WEIGHT_COLUMNS, "weight_norms"))
    keys = ["label", "seed"] if "seed" in table.columns else ["label"]
    per_task = table.groupby(keys + ["task"], as_index=False)["relative_norm"].mean()
    by_task, n = _over_seeds(per_task, ["label", "task"], ["relative_norm"])
    by_class, _ = _over_seeds(table, ["label", "class", "task", "train_count"],
                              ["relative_norm", "weight_norm", "bias_abs"])
    labels = _labels(table)
    styles = palette.styles(labels)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=["mean row norm per task", "row norm against training count"])
    step = 0.3 / max(1, len(labels) - 1) if len(labels) > 1 else 0.0
    for i, label in enumerate(labels):
        color, dash, symbol = styles[label]
        frame = by_task[by_task["label"] == label].sort_values("task")
        fig.add_trace(go.Scatter(
            x=frame["task"] + (i * step - 0.15 if len(labels) > 1 else 0.0), y=frame["relative_norm"],
            mode="lines+markers", name=label, legendgroup=label, line=dict(color=color, dash=dash),
            marker=dict(symbol=symbol, size=8), error_y=_error(frame, "relative_norm", n),
            customdata=frame[["task"]].to_numpy(),
            hovertemplate="task %{customdata[0]}: %{y:.3f} × the run's mean row<extra>" + label + "</extra>"),
            row=1, col=1)
        frame = by_class[by_class["label"] == label].sort_values("class")
        fig.add_trace(go.Scatter(
            x=frame["train_count"], y=frame["relative_norm"], mode="markers", name=label, legendgroup=label,
            showlegend=False, marker=dict(color=color, symbol=symbol, size=8),
            error_y=_error(frame, "relative_norm", n),
            customdata=frame[["class", "task", "weight_norm", "bias_abs"]].to_numpy(),
            hovertemplate=("class %{customdata[0]} (task %{customdata[1]}, %{x} train): %{y:.3f} × mean<br>"
                           "‖W‖ %{customdata[2]:.4g}, |b| %{customdata[3]:.3g}<extra>" + label + "</extra>")),
            row=1, col=2)
    fig.update_xaxes(title_text="task (the last one is the newest)", dtick=1, row=1, col=1)
    fig.update_xaxes(title_text="training images of the class (log)", type="log", row=1, col=2)
    fig.update_yaxes(title_text=WEIGHT_LABEL, row=1, col=1)
    fig.update_layout(title=(title or "Classifier weight norms after the last phase") + _seed_note(n))
    return fig


ACCURACY_NAMES = {"acc_all_seen": "class-weighted A<sub>t</sub>", "acc_task_mean": "mean over tasks"}


def accuracy_curves(table: pd.DataFrame, metric: str = "acc_all_seen", title: str | None = None) -> go.Figure:
    """Accuracy after every phase, one line per run: ``metric`` = ``acc_all_seen`` (class-weighted
    A_t), ``acc_task_mean`` (unweighted over tasks) or ``both`` (two panels); the hover shows both.
    ``table``: :func:`tables.accuracy_curves`.
    """
    table = _check(table, tables.ACCURACY_COLUMNS, "accuracy_curves")
    if metric not in ("acc_all_seen", "acc_task_mean", "both"):
        raise ValueError(f"metric must be 'acc_all_seen', 'acc_task_mean' or 'both', got {metric!r}")
    metrics = ["acc_all_seen", "acc_task_mean"] if metric == "both" else [metric]
    table, n = _over_seeds(table, ["label", "phase"], ["acc_all_seen", "acc_task_mean"])
    if len(metrics) > 1:
        fig = make_subplots(rows=1, cols=2, shared_yaxes=True, subplot_titles=[ACCURACY_NAMES[m] for m in metrics])
        heading = title or "Accuracy after every phase"
    else:
        fig = make_subplots(rows=1, cols=1)
        heading = title or f"Accuracy after every phase ({ACCURACY_NAMES[metric]})"
    labels = _labels(table)
    styles = palette.styles(labels)
    for col, name in enumerate(metrics, start=1):
        for label in labels:
            color, dash, symbol = styles[label]
            frame = table[table["label"] == label].sort_values("phase")
            fig.add_trace(go.Scatter(
                x=frame["phase"], y=100 * frame[name], mode="lines+markers", name=label, legendgroup=label,
                showlegend=col == 1, line=dict(color=color, dash=dash), marker=dict(symbol=symbol, size=7),
                error_y=_error(frame, name, n, 100.0),
                customdata=100 * frame[["acc_all_seen", "acc_task_mean"]].to_numpy(),
                hovertemplate=("phase %{x}: A<sub>t</sub> %{customdata[0]:.1f}%, task mean %{customdata[1]:.1f}%"
                               "<extra>" + label + "</extra>")), row=1, col=col)
        fig.update_xaxes(title_text="phase", dtick=1, row=1, col=col)
    fig.update_yaxes(title_text="accuracy (%)", row=1, col=1)
    fig.update_layout(title=heading + _seed_note(n))
    return fig


def forgetting_curves(table: pd.DataFrame) -> go.Figure:
    """Paper Figure 5: average task forgetting (FACIL) at each incremental step, one line per run,
    named "label (ACC xx.x%)" with its average incremental accuracy. ``table``: :func:`tables.forgetting_curves`.
    """
    table = _check(table, tables.FORGETTING_COLUMNS, "forgetting_curves")
    table, n = _over_seeds(table, ["label", "phase"], ["forgetting", "accuracy", "average_incremental_accuracy"])
    fig = go.Figure()
    labels = _labels(table)
    styles = palette.styles(labels)
    for label in labels:
        color, dash, symbol = styles[label]
        frame = table[table["label"] == label].sort_values("phase")
        aia = 100 * float(frame["average_incremental_accuracy"].iloc[0])
        fig.add_trace(go.Scatter(
            x=frame["phase"], y=100 * frame["forgetting"], mode="lines+markers",
            name=f"{label} (ACC {aia:.1f}%)", line=dict(color=color, dash=dash), marker=dict(symbol=symbol, size=7),
            error_y=_error(frame, "forgetting", n, 100.0), customdata=100 * frame[["accuracy"]].to_numpy(),
            hovertemplate=("phase %{x}: forgetting %{y:.1f}%, A<sub>t</sub> %{customdata[0]:.1f}%<extra>"
                           + label + "</extra>")))
    fig.update_layout(title="Forgetting at each incremental step (Fig. 5)" + _seed_note(n),
                      xaxis_title="incremental step (phase)",
                      yaxis_title="average forgetting (%)", xaxis=dict(dtick=1))
    return fig


def forgetting_vs_count(table: pd.DataFrame, title: str | None = None) -> go.Figure:
    """Per-class forgetting after the last phase against the class's training count (log x): one
    marker series per run (``label`` column, the palette's colours; every seed a point), else per shot
    group. ``table``: :func:`tables.class_forgetting` (with ``label`` / ``seed`` columns as notebooks stack it)."""
    table = _check(table, tables.CLASS_FORGETTING_COLUMNS, "class_forgetting")
    by_label = "label" in table.columns
    series = _labels(table) if by_label else [g for g in ("many", "medium", "few") if g in set(table["shot_group"])]
    styles = palette.styles(series) if by_label else {g: (palette.SHOT_COLORS[g], "solid", "circle") for g in series}
    fig = go.Figure()
    for name in series:
        color, _, symbol = styles[name]
        part = table[table["label" if by_label else "shot_group"] == name]
        fig.add_trace(go.Scatter(
            x=part["train_count"], y=100 * part["forgetting"], mode="markers", name=name,
            marker=dict(color=color, symbol=symbol, size=8, opacity=0.85),
            customdata=part[["class", "task", "shot_group"]].to_numpy(),
            hovertemplate=("class %{customdata[0]} (task %{customdata[1]}, %{customdata[2]}-shot): %{x} images, "
                           "forgetting %{y:.1f}%<extra>" + str(name) + "</extra>")))
    fig.update_layout(title=title or "Per-class forgetting after the last phase vs training count",
                      xaxis_title="training images of the class (log)", yaxis_title="forgetting (%)",
                      xaxis_type="log")
    return fig


def heatmap(matrix_frame: pd.DataFrame, title: str = "", percent: bool = True) -> go.Figure:
    """A phase x task matrix (acc[t, u] or FACIL forgetting f[t, u]) as an annotated heatmap, phase 0
    on top; empty where undefined. ``matrix_frame``: :func:`tables.phase_task_matrix`.
    """
    if not isinstance(matrix_frame, pd.DataFrame) or matrix_frame.size == 0:
        raise ValueError("matrix_frame must be a non-empty phase x task DataFrame")
    z = matrix_frame.astype(float).to_numpy() * (100.0 if percent else 1.0)
    fmt = ".1f" if percent else ".2f"
    fig = go.Figure(go.Heatmap(
        z=z, x=[str(c) for c in matrix_frame.columns], y=[str(i) for i in matrix_frame.index],
        colorscale="Viridis", texttemplate="%{z:" + fmt + "}", hoverongaps=False,
        colorbar=dict(title="%" if percent else "fraction"),
        hovertemplate="phase %{y}, task %{x}: %{z:" + fmt + "}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=matrix_frame.columns.name or "task",
                      yaxis_title=matrix_frame.index.name or "phase", yaxis=dict(autorange="reversed"))
    return fig
