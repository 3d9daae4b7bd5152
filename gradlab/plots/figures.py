"""Static figures (matplotlib + seaborn), one function per figure, each returning a
:class:`matplotlib.figure.Figure` built without pyplot's global state (headless-safe, never shown).

Each function takes the tidy table from :mod:`gradlab.plots.tables` (or, for convenience, what that
table is built from: a RunRecord or a ``{label: RunRecord}`` mapping). Paper = He & Zhu, "Gradient
Reweighting: Towards Imbalanced Class-Incremental Learning", CVPR 2024. :func:`save` writes PNG + PDF.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter, ScalarFormatter

from gradlab.plots import tables

SHOT_ORDER = ("many", "medium", "few")
SHOT_COLORS = {"many": "#1f77b4", "medium": "#ff7f0e", "few": "#d62728"}
TASK_GAP = 0.8       # blank x-space between two tasks' bars


def _table(obj, builder, columns) -> pd.DataFrame:
    """The tidy table itself, or ``builder(obj)`` for a record / mapping of records."""
    if isinstance(obj, pd.DataFrame):
        return tables.check_table(obj, columns)
    return builder(obj)


def _task_colors(num_tasks: int) -> list:
    return sns.color_palette("tab10" if num_tasks <= 10 else "husl", max(num_tasks, 1))


def _label_colors(labels) -> dict:
    return dict(zip(labels, sns.color_palette("tab10" if len(labels) <= 10 else "husl", len(labels))))


def _grid(n: int, ncols: int, width: float, height: float, sharey: bool = True, sharex: bool = False):
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey, sharex=sharex).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _task_positions(frame: pd.DataFrame) -> np.ndarray:
    """x positions for bars in frame order, with a gap whenever the task changes."""
    tasks = frame["task"].to_numpy(int)
    breaks = np.concatenate([[0], np.cumsum(tasks[1:] != tasks[:-1])])
    return np.arange(len(frame)) + TASK_GAP * breaks


# ---------------------------------------------------------------------- paper figures
def fig2(table, ylabel: str = r"mean $\|\nabla_{W_j} L_{ce}\|$", ncols: int = 4) -> Figure:
    """Paper Figure 2: per-class average classifier-row gradient norm ||grad L_ce(W_j)|| in each phase.

    One panel per phase; one bar per seen class, grouped by task and ordered head -> tail within its
    task; colour = task, old-task classes hatched and faded, the phase's new task solid.
    ``table``: :func:`tables.gradient_magnitudes`.
    """
    table = _table(table, tables.gradient_magnitudes, tables.GRADIENT_COLUMNS)
    phases = sorted(table["phase"].unique())
    colors = _task_colors(int(table["task"].max()) + 1)
    fig, axes = _grid(len(phases), ncols, 4.2, 3.2)
    for ax, phase in zip(axes, phases):
        frame = table[table["phase"] == phase].sort_values(["task", "rank"])
        x = _task_positions(frame)
        old = (frame["group"] == "old").to_numpy()
        bars = ax.bar(x, frame["value"].to_numpy(float), width=0.85,
                      color=[colors[t] for t in frame["task"]], edgecolor="black", linewidth=0.4)
        for patch, is_old in zip(bars.patches, old):
            if is_old:
                patch.set_alpha(0.5)
                patch.set_hatch("//")
        ax.set_xticks(x, [str(c) for c in frame["class"]], fontsize=7, rotation=90 if len(x) > 20 else 0)
        ax.set_title(f"phase {phase}")
        ax.set_xlabel("class (by task, head → tail)")
    axes[0].set_ylabel(ylabel)
    handles = [Patch(facecolor=colors[t], edgecolor="black", label=f"task {t}")
               for t in sorted(table["task"].unique())]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", alpha=0.5, label="old classes"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    fig.suptitle("Per-class gradient magnitude of the classifier rows (Fig. 2)")
    return fig


def fig5(table, percent: bool = True) -> Figure:
    """Paper Figure 5: average task forgetting (FACIL) at each incremental step, one line per run,
    legend "label (ACC xx.x%)" with the run's average incremental accuracy.
    ``table``: :func:`tables.forgetting_curves`.
    """
    table = _table(table, tables.forgetting_curves, tables.FORGETTING_COLUMNS)
    scale = 100.0 if percent else 1.0
    labels = list(dict.fromkeys(table["label"]))
    colors = _label_colors(labels)
    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.subplots()
    for label in labels:
        frame = table[table["label"] == label].sort_values("phase")
        aia = float(frame["average_incremental_accuracy"].iloc[0])
        ax.plot(frame["phase"], frame["forgetting"] * scale, marker="o", color=colors[label],
                label=f"{label} (ACC {100 * aia:.1f}%)")
    ax.set_xticks(sorted(table["phase"].unique()))
    ax.set_xlabel("incremental step (phase)")
    ax.set_ylabel("average forgetting" + (" (%)" if percent else ""))
    ax.set_title("Forgetting at each incremental step (Fig. 5)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def weight_norms(table, ncols: int = 1) -> Figure:
    """Per-class classifier weight norm ||W_j||_2 after the last phase (the bias towards new classes
    that WA / DGR correct), one panel per run, bars coloured by task.
    ``table``: :func:`tables.weight_norms`.
    """
    table = _table(table, tables.weight_norms, tables.WEIGHT_COLUMNS)
    labels = list(dict.fromkeys(table["label"]))
    colors = _task_colors(int(table["task"].max()) + 1)
    fig, axes = _grid(len(labels), ncols, 7.0, 2.4)
    for ax, label in zip(axes, labels):
        frame = table[table["label"] == label].sort_values(["task", "class"])
        x = _task_positions(frame)
        ax.bar(x, frame["weight_norm"].to_numpy(float), width=0.85,
               color=[colors[t] for t in frame["task"]], edgecolor="black", linewidth=0.4)
        ax.set_xticks(x, [str(c) for c in frame["class"]], fontsize=7, rotation=90 if len(x) > 30 else 0)
        ax.set_title(label, fontsize=10)
        ax.set_ylabel(r"$\|W_j\|_2$")
    axes[-1].set_xlabel("class (by task)")
    handles = [Patch(facecolor=colors[t], edgecolor="black", label=f"task {t}")
               for t in sorted(table["task"].unique())]
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    fig.suptitle("Classifier weight norms after the last phase")
    return fig


def accuracy_curves(table, metrics=("acc_all_seen", "acc_task_mean"), percent: bool = True) -> Figure:
    """Accuracy after every phase, one line per run, one panel per metric: class-weighted A_t over
    all seen test images (``acc_all_seen``) and the unweighted task mean (``acc_task_mean``).
    ``table``: :func:`tables.accuracy_curves`.
    """
    table = _table(table, tables.accuracy_curves, tables.ACCURACY_COLUMNS)
    titles = {"acc_all_seen": "class-weighted $A_t$", "acc_task_mean": "mean over tasks"}
    scale = 100.0 if percent else 1.0
    labels = list(dict.fromkeys(table["label"]))
    colors = _label_colors(labels)
    fig, axes = _grid(len(metrics), len(metrics), 4.5, 3.6, sharey=True)
    for ax, metric in zip(axes, metrics):
        for i, label in enumerate(labels):
            frame = table[table["label"] == label].sort_values("phase")
            ax.plot(frame["phase"], frame[metric] * scale, marker="osD^v"[i % 5], markersize=4,
                    linestyle="-" if i % 2 == 0 else "--", color=colors[label], label=label)
        ax.set_xticks(sorted(table["phase"].unique()))
        ax.set_title(titles.get(metric, metric))
        ax.set_xlabel("phase")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy" + (" (%)" if percent else ""))
    if len(labels) <= 6:
        axes[0].legend(fontsize=8)
    else:                                   # a long comparison: the legend beside the panels, not over the lines
        axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return fig


def heatmap(matrix_frame: pd.DataFrame, title: str = "", percent: bool = True, cmap: str = "viridis") -> Figure:
    """A phase x task matrix (acc[t, u] or FACIL forgetting f[t, u]) as an annotated heatmap; blank
    where undefined. ``matrix_frame``: :func:`tables.phase_task_matrix`.
    """
    if not isinstance(matrix_frame, pd.DataFrame) or matrix_frame.size == 0:
        raise ValueError("matrix_frame must be a non-empty phase x task DataFrame")
    data = matrix_frame.astype(float) * (100.0 if percent else 1.0)
    n_rows, n_cols = data.shape
    fig = Figure(figsize=(1.0 + 0.7 * n_cols, 0.8 + 0.55 * n_rows), layout="constrained")
    ax = fig.subplots()
    sns.heatmap(data, ax=ax, mask=data.isna(), annot=True, fmt=".1f" if percent else ".2f",
                cmap=cmap, cbar_kws={"label": "%" if percent else "fraction"}, annot_kws={"fontsize": 8})
    ax.set_xlabel(matrix_frame.columns.name or "task")
    ax.set_ylabel(matrix_frame.index.name or "phase")
    ax.set_title(title)
    return fig


def forgetting_vs_count(table) -> Figure:
    """Per-class forgetting after the last phase against the class's training count (log x),
    coloured by shot group (many / medium / few): do head classes forget more? The title gives
    Spearman's rank correlation. ``table``: :func:`tables.class_forgetting` (an optional ``label``
    column sets the marker style).
    """
    table = _table(table, tables.class_forgetting, tables.CLASS_FORGETTING_COLUMNS)
    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.subplots()
    present = [g for g in SHOT_ORDER if g in set(table["shot_group"])]
    sns.scatterplot(data=table, x="train_count", y="forgetting", hue="shot_group", hue_order=present,
                    palette={g: SHOT_COLORS[g] for g in present},
                    style="label" if "label" in table.columns else None, ax=ax, s=40)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training images of the class (log)")
    ax.set_ylabel("forgetting after the last phase")
    valid = table[["train_count", "forgetting"]].dropna()
    rho = valid["train_count"].rank().corr(valid["forgetting"].rank()) if len(valid) > 2 else float("nan")
    ax.set_title(f"Do head classes forget more? (Spearman ρ = {rho:.2f})")
    ax.grid(alpha=0.3, which="both")
    return fig


# ---------------------------------------------------------------------- files
def save(fig: Figure, path_without_suffix) -> list[Path]:
    """Write ``fig`` as ``<path>.png`` (dpi 150) and ``<path>.pdf``, atomically; returns both paths."""
    from gradlab.records import atomic_write

    base = Path(path_without_suffix)
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt, kwargs in (("png", {"dpi": 150}), ("pdf", {})):
        path = base.with_name(base.name + "." + fmt)
        atomic_write(path, lambda tmp, fmt=fmt, kwargs=kwargs: fig.savefig(tmp, format=fmt, **kwargs))
        written.append(path)
    return written
