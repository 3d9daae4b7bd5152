"""Figures of a scenario's data, drawn before anything trains (the tour's first pictures), and the tour's
faceted comparisons; plotly figures for :func:`gradlab.notebook.helpers.show`, coloured by
:mod:`gradlab.plots.palette`.

- :func:`class_counts` - the long tail: training images per class, coloured by the task that brings it;
- :func:`sample_images` - one training image per class, in the order the classes are learnt;
- :func:`phase_table` / :func:`phase_images` - what each phase trains on: all images of the new classes,
  ``min(n, m)`` exemplars of the old ones;
- :func:`reweighting` - DGR's per-class CE gradients before and after its rewrite, per phase.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gradlab.data.sources.fashion_mnist import CLASS_NAMES as FASHION_NAMES
from gradlab.plots import palette
from gradlab.plots.interactive import gradient_label, shared_axis_title

ROLES = {"new (all its data)": "new", "old (memory only)": "old"}


def class_names(scen) -> list[str]:
    """A name per class position: the dataset's class name where gradlab knows it, else the original label."""
    names = scen.source.class_names or (FASHION_NAMES if scen.source.name == "fashion_mnist" else None)
    return [names[int(o)] if names is not None and int(o) < len(names) else f"label {int(o)}"
            for o in scen.original_label]


def class_counts(scen) -> go.Figure:
    """Training images per class (position = the order classes are learnt), one bar per class coloured by
    its task; hover: the class name and its test images."""
    table = scen.class_table()
    names = class_names(scen)
    fig = go.Figure()
    for task, part in table.groupby("task", sort=True):
        fig.add_trace(go.Bar(
            x=[f"c{c}" for c in part["class"]], y=part["train_count"], name=f"task {int(task)}",
            marker_color=palette.task_color(int(task), scen.num_tasks),
            customdata=np.column_stack([[names[c] for c in part["class"]], part["test_count"]]),
            hovertemplate="%{x} %{customdata[0]}: %{y} training, %{customdata[1]} test images<extra></extra>"))
    rho = f"ρ = {scen.imbalance:g}, " if scen.order != "conv" else ""
    fig.update_layout(title=f"The long tail: training images per class ({rho}{scen.num_tasks} tasks)",
                      xaxis_title="class, in the order it is learnt (c0 first)", yaxis_title="training images",
                      legend_title_text="task", height=360, bargap=0.2, barmode="stack", legend_traceorder="normal")
    return fig


def sample_images(scen, columns: int = 5) -> go.Figure:
    """The first training image of every class, titled with its position, name and training images."""
    names = class_names(scen)
    labels = scen.train.labels
    firsts = [int(np.flatnonzero(labels == c)[0]) for c in range(scen.num_classes)]
    images = scen.train.images[firsts] if len(firsts) else np.zeros((0, 1, 1, 1), np.uint8)
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    columns = max(1, min(columns, scen.num_classes))
    rows = int(np.ceil(scen.num_classes / columns))
    titles = [f"c{c} {names[c][:12]} ({int(scen.train_counts[c])})" for c in range(scen.num_classes)]
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=titles, horizontal_spacing=0.01,
                        vertical_spacing=0.12 if rows > 1 else 0.0)
    for c, image in enumerate(images):
        fig.add_trace(go.Image(z=image, hovertemplate=f"c{c} {names[c]}<extra></extra>"),
                      row=c // columns + 1, col=c % columns + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_annotations(font_size=10)
    fig.update_layout(title="One training image per class (in brackets: its training images)",
                      height=130 + 150 * rows)
    return fig


def phase_table(scen, memory: int) -> pd.DataFrame:
    """What each phase trains on: phase, class, task, role (new: all its images; old: min(n, memory)
    exemplars) and images."""
    rows = []
    for t in range(scen.num_tasks):
        for c in range(scen.classes_seen(t)):
            n, new = int(scen.train_counts[c]), bool(scen.class_task[c] == t)
            rows.append({"phase": t, "class": c, "task": int(scen.class_task[c]),
                         "role": "new (all its data)" if new else "old (memory only)",
                         "images": n if new else min(n, memory)})
    return pd.DataFrame(rows)


def phase_images(table: pd.DataFrame) -> go.Figure:
    """:func:`phase_table` as one panel per phase: a bar per seen class, new classes blue, old grey."""
    phases = sorted(table["phase"].unique())
    fig = make_subplots(rows=1, cols=len(phases), shared_yaxes=True, horizontal_spacing=0.02,
                        subplot_titles=[f"phase {p}" for p in phases])
    shown = set()
    for col, phase in enumerate(phases, start=1):
        frame = table[table["phase"] == phase]
        for role, group in ROLES.items():
            part = frame[frame["role"] == role]
            if len(part):
                fig.add_trace(go.Bar(x=[f"c{c}" for c in part["class"]], y=part["images"], name=role,
                                     legendgroup=role, showlegend=role not in shown,
                                     marker_color=palette.GROUP_COLORS[group],
                                     hovertemplate="%{x}: %{y} images<extra>" + role + "</extra>"),
                              row=1, col=col)
                shown.add(role)
    shared_axis_title(fig, "class (c0 is learnt first)")
    fig.update_yaxes(title_text="training images", row=1, col=1)
    fig.update_layout(title="What each phase trains on: new classes' images, old classes' exemplars", height=340,
                      barmode="stack", legend_traceorder="normal", bargap=0.15)
    return fig


def reweighting(before: pd.DataFrame, after: pd.DataFrame, method: str = "DGR") -> go.Figure:
    """Per-class CE gradient magnitude in every phase before (top row) and after (bottom row) DGR's rewrite,
    old classes grey, new ones blue. ``before`` / ``after``: :func:`tables.gradient_magnitudes` with terms
    ``grad_ce`` and ``grad_ce_reweighted``."""
    phases = sorted(before["phase"].unique())
    fig = make_subplots(rows=2, cols=len(phases), shared_yaxes=True, shared_xaxes=True, horizontal_spacing=0.02,
                        vertical_spacing=0.1, subplot_titles=[f"phase {p}" for p in phases],
                        row_titles=["before", "after"])
    shown = set()
    for row, table in enumerate((before, after), start=1):
        for col, phase in enumerate(phases, start=1):
            frame = table[table["phase"] == phase].sort_values("class")
            for group in ("new", "old"):
                part = frame[frame["group"] == group]
                if len(part):
                    fig.add_trace(go.Bar(x=[f"c{c}" for c in part["class"]], y=part["value"], name=f"{group} classes",
                                         legendgroup=group, showlegend=group not in shown,
                                         marker_color=palette.GROUP_COLORS[group],
                                         hovertemplate="%{x}: %{y:.4g}<extra>" + group + "</extra>"),
                                  row=row, col=col)
                    shown.add(group)
    shared_axis_title(fig, "class")
    shared_axis_title(fig, gradient_label("ce"), axis="y")
    fig.update_layout(title=f"{method}: per-class CE gradient before and after the rewrite", height=480,
                      barmode="stack", legend_traceorder="normal", bargap=0.15)
    return fig
