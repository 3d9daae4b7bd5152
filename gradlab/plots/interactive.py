"""Interactive plotly equivalents of :mod:`gradlab.plots.figures` for the explorer.

Each function takes a tidy table from :mod:`gradlab.plots.tables` and only builds a
``plotly.graph_objects.Figure`` (no rendering, no network / CDN). A per-seed table (a ``seed`` column,
:func:`tables.per_seed`) is drawn as its mean over seeds with ± one std error bars. In notebooks, show
them with :func:`gradlab.plots.notebook.show`, which adds a static PNG for viewers without JavaScript.
Hovering shows the class, its task, training count and the exact value. Paper = He & Zhu, "Gradient
Reweighting: Towards Imbalanced Class-Incremental Learning", CVPR 2024.
"""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from gradlab.plots import tables

PALETTE = qualitative.Plotly


def _check(table, columns, name) -> pd.DataFrame:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{name} needs the tidy DataFrame from gradlab.plots.tables.{name}")
    return tables.check_table(table, columns)


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _labels(table) -> list[str]:
    return list(dict.fromkeys(table["label"]))


def _over_seeds(table: pd.DataFrame, by, values) -> tuple[pd.DataFrame, int]:
    """A per-seed table (``seed`` column, :func:`tables.per_seed`) as its mean over seeds, with
    ``<col>_std`` beside every value column (NaN for one seed), and the number of seeds; a
    single-seed table as it is (n = 1)."""
    if "seed" not in table.columns:
        out = table.copy()
        for col in values:
            out[f"{col}_std"] = float("nan")
        return out, 1
    n = int(table["seed"].nunique())
    agg = tables.aggregate(table, by, values)
    agg = agg.rename(columns={f"{col}_mean": col for col in values})
    return agg, n


def _error(frame: pd.DataFrame, col: str, n: int, scale: float = 1.0):
    """plotly error bars of ± one std over seeds (none for a single seed)."""
    if n <= 1:
        return None
    return dict(type="data", array=(scale * frame[f"{col}_std"]).to_numpy(float), visible=True, thickness=1)


def _seed_note(n: int) -> str:
    return f" — mean ± std over {n} seeds" if n > 1 else ""


def gradient_magnitudes(table: pd.DataFrame, ylabel: str = "mean ‖∇<sub>W_j</sub> L<sub>ce</sub>‖") -> go.Figure:
    """Paper Figure 2: per-class average ||grad L_ce(W_j)|| in each phase; one subplot per phase,
    one bar trace per (phase, task), classes head -> tail within a task, old tasks faded and hatched.
    ``table``: :func:`tables.gradient_magnitudes`, or its per-seed stack (:func:`tables.per_seed`: the mean
    over seeds with ± std error bars; likewise for every figure here).
    """
    table = _check(table, tables.GRADIENT_COLUMNS, "gradient_magnitudes")
    table, n = _over_seeds(table, ["phase", "class", "task", "train_count", "group", "rank"], ["value"])
    phases = sorted(int(p) for p in table["phase"].unique())
    fig = make_subplots(rows=1, cols=len(phases), shared_yaxes=True,
                        subplot_titles=[f"phase {p}" for p in phases])
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
                marker=dict(color=_color(task), opacity=0.5 if old else 1.0,
                            pattern=dict(shape="/" if old else "")),
                customdata=part[["class", "task", "train_count", "group", "rank"]].to_numpy(),
                hovertemplate=("class %{customdata[0]} (task %{customdata[1]}, %{customdata[3]})<br>"
                               "train count %{customdata[2]}, rank %{customdata[4]}<br>"
                               "value %{y:.4g}<extra>phase " + str(phase) + "</extra>")),
                row=1, col=col)
            shown.add(task)
        fig.update_xaxes(title_text="class (head → tail per task)", row=1, col=col)
    fig.update_yaxes(title_text=ylabel, row=1, col=1)
    fig.update_layout(title="Per-class gradient magnitude of the classifier rows (Fig. 2)" + _seed_note(n),
                      bargap=0.15, legend_title_text="task")
    return fig


def weight_norms(table: pd.DataFrame) -> go.Figure:
    """Per-class classifier weight norm ||W_j||_2 after the last phase; one bar trace per run
    (grouped bars), hover shows the task, training count and |b_j|. ``table``: :func:`tables.weight_norms`.
    """
    table = _check(table, tables.WEIGHT_COLUMNS, "weight_norms")
    table, n = _over_seeds(table, ["label", "class", "task", "train_count"], ["weight_norm", "bias_abs"])
    fig = go.Figure()
    for i, label in enumerate(_labels(table)):
        frame = table[table["label"] == label].sort_values("class")
        fig.add_trace(go.Bar(
            x=frame["class"], y=frame["weight_norm"], name=label, marker_color=_color(i),
            error_y=_error(frame, "weight_norm", n),
            customdata=frame[["task", "train_count", "bias_abs"]].to_numpy(),
            hovertemplate=("class %{x} (task %{customdata[0]}, %{customdata[1]} train)<br>"
                           "‖W_j‖ %{y:.4g}, |b_j| %{customdata[2]:.3g}<extra>" + label + "</extra>")))
    fig.update_layout(barmode="group", title="Classifier weight norms after the last phase" + _seed_note(n),
                      xaxis_title="class", yaxis_title="‖W_j‖₂")
    return fig


def accuracy_curves(table: pd.DataFrame, metric: str = "acc_all_seen") -> go.Figure:
    """Accuracy after every phase, one line per run: ``metric`` = ``acc_all_seen`` (class-weighted
    A_t) or ``acc_task_mean`` (unweighted over tasks); the hover shows both.
    ``table``: :func:`tables.accuracy_curves`.
    """
    table = _check(table, tables.ACCURACY_COLUMNS, "accuracy_curves")
    if metric not in ("acc_all_seen", "acc_task_mean"):
        raise ValueError(f"metric must be 'acc_all_seen' or 'acc_task_mean', got {metric!r}")
    table, n = _over_seeds(table, ["label", "phase"], ["acc_all_seen", "acc_task_mean"])
    fig = go.Figure()
    for i, label in enumerate(_labels(table)):
        frame = table[table["label"] == label].sort_values("phase")
        fig.add_trace(go.Scatter(
            x=frame["phase"], y=100 * frame[metric], mode="lines+markers", name=label,
            line_color=_color(i), error_y=_error(frame, metric, n, 100.0),
            customdata=100 * frame[["acc_all_seen", "acc_task_mean"]].to_numpy(),
            hovertemplate=("phase %{x}: A_t %{customdata[0]:.1f}%, task mean %{customdata[1]:.1f}%"
                           "<extra>" + label + "</extra>")))
    names = {"acc_all_seen": "class-weighted A_t", "acc_task_mean": "mean over tasks"}
    fig.update_layout(title=f"Accuracy after every phase ({names[metric]})" + _seed_note(n), xaxis_title="phase",
                      yaxis_title="accuracy (%)", xaxis=dict(dtick=1))
    return fig


def forgetting_curves(table: pd.DataFrame) -> go.Figure:
    """Paper Figure 5: average task forgetting (FACIL) at each incremental step, one line per run,
    named "label (ACC xx.x%)" with its average incremental accuracy. ``table``: :func:`tables.forgetting_curves`.
    """
    table = _check(table, tables.FORGETTING_COLUMNS, "forgetting_curves")
    table, n = _over_seeds(table, ["label", "phase"], ["forgetting", "accuracy", "average_incremental_accuracy"])
    fig = go.Figure()
    for i, label in enumerate(_labels(table)):
        frame = table[table["label"] == label].sort_values("phase")
        aia = 100 * float(frame["average_incremental_accuracy"].iloc[0])
        fig.add_trace(go.Scatter(
            x=frame["phase"], y=100 * frame["forgetting"], mode="lines+markers",
            name=f"{label} (ACC {aia:.1f}%)", line_color=_color(i), error_y=_error(frame, "forgetting", n, 100.0),
            customdata=100 * frame[["accuracy"]].to_numpy(),
            hovertemplate=("phase %{x}: forgetting %{y:.1f}%, A_t %{customdata[0]:.1f}%<extra>"
                           + label + "</extra>")))
    fig.update_layout(title="Forgetting at each incremental step (Fig. 5)" + _seed_note(n),
                      xaxis_title="incremental step (phase)",
                      yaxis_title="average forgetting (%)", xaxis=dict(dtick=1))
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
