"""The paper's figures (He & Zhu, "Gradient Reweighting: Towards Imbalanced Class-Incremental Learning",
CVPR 2024), drawn from the tidy tables of :mod:`gradlab.analysis.tables`, for one seed or many.

When a table has a ``seed`` column, every figure shows the mean over seeds with the standard deviation
(error bars or bands; :func:`tables.aggregate`); without one, the single run. Each function returns a
:class:`matplotlib.figure.Figure` built without pyplot's global state.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import NullFormatter, ScalarFormatter

from gradlab.analysis import tables
from gradlab.analysis.seeds import mean_std, spearman
from gradlab.plots import palette

TASK_GAP = 0.8                     # blank x-space between two tasks' bars
MARKERS = "osD^vP*Xph<>"
DASHES = ("-", "--", "-.", ":")


def _table(obj, builder, columns) -> pd.DataFrame:
    """The tidy table itself, or ``builder(obj)`` for a record / mapping of records."""
    if isinstance(obj, pd.DataFrame):
        return tables.check_table(obj, columns)
    return builder(obj)


def task_colors(num_tasks: int) -> list:
    """A colour per task (:func:`palette.task_color`, as in the plotly figures)."""
    return [palette.task_color(t, num_tasks) for t in range(max(num_tasks, 1))]


def label_styles(labels) -> dict:
    """(colour, marker, dash) per label: the run's colour from :mod:`gradlab.plots.palette` (the same in every
    figure), a distinct marker and dash so that many lines stay apart in print and greyscale."""
    return {label: (palette.color(label), MARKERS[i % len(MARKERS)], DASHES[(i // 2) % len(DASHES)])
            for i, label in enumerate(labels)}


def _task_positions(frame: pd.DataFrame) -> np.ndarray:
    """x positions for bars in frame order, with a gap whenever the task changes."""
    tasks = frame["task"].to_numpy(int)
    breaks = np.concatenate([[0], np.cumsum(tasks[1:] != tasks[:-1])])
    return np.arange(len(frame)) + TASK_GAP * breaks


def thin_ticks(ax, positions, labels, max_ticks: int = 24, fontsize: int = 7) -> None:
    """Tick labels that never overlap: every k-th label once there are more than ``max_ticks``."""
    step = max(1, int(np.ceil(len(positions) / max_ticks)))
    ax.set_xticks(list(positions)[::step], list(labels)[::step], fontsize=fontsize,
                  rotation=90 if len(positions[::step]) > 12 else 0)


def _grid(n: int, ncols: int, width: float, height: float, sharey=True):
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _seed_note(table) -> str:
    return f" — mean ± std over {table['seed'].nunique()} seeds" if "seed" in table.columns else ""


# ---------------------------------------------------------------------- Figure 2
def fig2(table, ylabel: str = r"row gradient $\|\nabla L_{ce}\|$ (mean)", ncols: int = 3,
         title: str = "Per-class gradient magnitude of the classifier rows under CE (Fig. 2)") -> Figure:
    """Figure 2: per-class average classifier-row gradient norm ||grad L_ce(W_j)|| in each phase.

    One panel per phase: a bar per seen class, grouped by task, head -> tail within its task; colour =
    task, old-task classes (memory only) hatched and faded. A last panel plots every class in the
    phase where it is new against its training count (log x), with Spearman's rank correlation.
    ``table``: :func:`tables.gradient_magnitudes` (or its :func:`tables.per_seed` stack); ``title`` names
    the run's method (the default is ``gradlab figures``' CE runs).
    """
    table = _table(table, tables.gradient_magnitudes, tables.GRADIENT_COLUMNS)
    agg = mean_std(table, ["phase", "class", "task", "train_count", "group", "rank"], ["value"])
    phases = sorted(agg["phase"].unique())
    colors = task_colors(int(agg["task"].max()) + 1)
    fig, axes = _grid(len(phases) + 1, ncols, 4.0, 3.0, sharey=False)
    for ax, phase in zip(axes, phases):
        frame = agg[agg["phase"] == phase].sort_values(["task", "rank"])
        x = _task_positions(frame)
        old = (frame["group"] == "old").to_numpy()
        bars = ax.bar(x, frame["value_mean"].to_numpy(float), width=0.85,
                      color=[colors[t] for t in frame["task"]], edgecolor="black", linewidth=0.4)
        if frame["n"].max() > 1:
            ax.errorbar(x, frame["value_mean"], yerr=frame["value_std"], fmt="none", ecolor="black",
                        elinewidth=0.8, capsize=2)
        for patch, is_old in zip(bars.patches, old):
            if is_old:
                patch.set_alpha(0.5)
                patch.set_hatch("//")
        thin_ticks(ax, x, [str(c) for c in frame["class"]])
        ax.set_title(f"phase {phase}", fontsize=10)
        ax.set_xlabel("class (by task, head → tail)", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
    new = agg[agg["group"] == "new"]
    ax = axes[-1]
    ax.errorbar(new["train_count"], new["value_mean"], yerr=new["value_std"] if new["n"].max() > 1 else None,
                fmt="none", ecolor="grey", elinewidth=0.8)
    ax.scatter(new["train_count"], new["value_mean"], c=[colors[t] for t in new["task"]], edgecolors="black",
               linewidths=0.4, s=30, zorder=3)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training images of the class (log)", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    rho = spearman(new["train_count"], new["value_mean"])
    ax.set_title(f"new classes: Spearman ρ = {rho:.2f}", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    handles = [Patch(facecolor=colors[t], edgecolor="black", label=f"task {t}") for t in sorted(agg["task"].unique())]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", alpha=0.5, label="old classes"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8)
    fig.suptitle(title + _seed_note(table), fontsize=11)
    return fig


# ---------------------------------------------------------------------- Figure 5
def fig5(table, percent: bool = True) -> Figure:
    """Figure 5: average task forgetting (FACIL) at each incremental step, one line per run (label),
    a band of ± one std over seeds, legend "label (ACC xx.x%)" with the average incremental accuracy
    (mean ± std over seeds when there are several). ``table``: :func:`tables.forgetting_curves`.
    """
    table = _table(table, tables.forgetting_curves, tables.FORGETTING_COLUMNS)
    scale = 100.0 if percent else 1.0
    labels = list(dict.fromkeys(table["label"]))
    styles = label_styles(labels)
    agg = mean_std(table, ["label", "phase"], ["forgetting", "average_incremental_accuracy"])
    fig = Figure(figsize=(6, 4.2), layout="constrained")
    ax = fig.subplots()
    for label in labels:
        frame = agg[agg["label"] == label].sort_values("phase")
        color, marker, dash = styles[label]
        aia, aia_std = frame["average_incremental_accuracy_mean"].iloc[0], frame["average_incremental_accuracy_std"].iloc[0]
        acc = f"{100 * aia:.1f}%" if frame["n"].max() == 1 else f"{100 * aia:.1f} ± {100 * aia_std:.1f}%"
        y = frame["forgetting_mean"].to_numpy(float) * scale
        ax.plot(frame["phase"], y, marker=marker, linestyle=dash, color=color, label=f"{label} (ACC {acc})")
        if frame["n"].max() > 1:
            err = frame["forgetting_std"].to_numpy(float) * scale
            ax.fill_between(frame["phase"], y - err, y + err, color=color, alpha=0.15, linewidth=0)
    ax.set_xticks(sorted(table["phase"].unique()))
    ax.set_xlabel("incremental step (phase)")
    ax.set_ylabel("average forgetting" + (" (%)" if percent else ""))
    ax.set_title("Forgetting at each incremental step (Fig. 5)" + _seed_note(table), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------- weight norms
def relative_norms(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with ``relative_norm`` = ||W_j|| / mean_j ||W_j|| within each run (label, seed): the
    methods' norms on one scale, 1 = the run's average row."""
    keys = ["label", "seed"] if "seed" in table.columns else ["label"]
    out = table.copy()
    out["relative_norm"] = out["weight_norm"] / out.groupby(keys)["weight_norm"].transform("mean")
    return out


def weight_norms(table) -> Figure:
    """Classifier weight norms after the last phase, relative to each run's mean row norm: left, the
    mean per task (does the newest task's head outgrow the old ones?); right, every class against its
    training count (log x; do head classes get larger rows?). ``table``: :func:`tables.weight_norms`.
    """
    table = relative_norms(_table(table, tables.weight_norms, tables.WEIGHT_COLUMNS))
    labels = list(dict.fromkeys(table["label"]))
    styles = label_styles(labels)
    keys = ["label", "seed"] if "seed" in table.columns else ["label"]
    per_task = table.groupby(keys + ["task"], as_index=False)["relative_norm"].mean()
    by_task = mean_std(per_task, ["label", "task"], ["relative_norm"])
    by_class = mean_std(table, ["label", "class", "task", "train_count"], ["relative_norm"])
    fig = Figure(figsize=(10.5, 4), layout="constrained")
    left, right = fig.subplots(1, 2)
    offsets = np.linspace(-0.15, 0.15, len(labels)) if len(labels) > 1 else [0.0]
    for offset, label in zip(offsets, labels):
        color, marker, dash = styles[label]
        frame = by_task[by_task["label"] == label].sort_values("task")
        left.errorbar(frame["task"] + offset, frame["relative_norm_mean"],
                      yerr=frame["relative_norm_std"] if frame["n"].max() > 1 else None,
                      color=color, marker=marker, linestyle=dash, capsize=2, label=label)
        frame = by_class[by_class["label"] == label]
        right.errorbar(frame["train_count"], frame["relative_norm_mean"],
                       yerr=frame["relative_norm_std"] if frame["n"].max() > 1 else None,
                       color=color, marker=marker, linestyle="none", capsize=2, markersize=5, alpha=0.85,
                       label=f"{label} (ρ_s = {spearman(frame['train_count'], frame['relative_norm_mean']):.2f})")
    for ax in (left, right):
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
        ax.grid(alpha=0.3, which="both")
        ax.set_ylabel(r"row norm $\|W_j\|$ ÷ run mean")
    left.set_xticks(sorted(table["task"].unique()))
    left.set_xlabel("task (the last one is the newest)")
    left.set_title("mean row norm per task", fontsize=10)
    left.legend(fontsize=8)
    right.set_xscale("log")
    right.xaxis.set_major_formatter(ScalarFormatter())
    right.xaxis.set_minor_formatter(NullFormatter())
    right.set_xlabel("training images of the class (log)")
    right.set_title("row norm against training count (Spearman ρ_s)", fontsize=10)
    right.legend(fontsize=8)
    fig.suptitle("Classifier weight norms after the last phase" + _seed_note(table), fontsize=11)
    return fig


# ---------------------------------------------------------------------- Figure 4
FACTOR_NAMES = {"memory": "memory {:g} / class", "imbalance": "ρ = {:g}"}


def fig4(table, percent: bool = True) -> Figure:
    """Figure 4 analogue: accuracy (class-weighted A_t) after every phase as the memory budget (top
    row) and the imbalance ratio ρ (bottom row) change, one line per method with a ± std band; the
    legend gives each line's average incremental accuracy. ``table``: :func:`tables.accuracy_by_setting`.
    """
    table = tables.check_table(table, tables.FIG4_COLUMNS)
    scale = 100.0 if percent else 1.0
    labels = list(dict.fromkeys(table["label"]))
    styles = label_styles(labels)
    factors = list(dict.fromkeys(table["factor"]))
    ncols = max(table[table["factor"] == f]["setting"].nunique() for f in factors)
    fig = Figure(figsize=(3.6 * ncols, 3.0 * len(factors)), layout="constrained")
    axes = fig.subplots(len(factors), ncols, squeeze=False, sharey=True)
    agg = mean_std(table, ["factor", "setting", "label", "phase"], ["acc_all_seen", "average_incremental_accuracy"])
    for row, factor in enumerate(factors):
        settings = sorted(agg[agg["factor"] == factor]["setting"].unique())
        for col in range(ncols):
            ax = axes[row, col]
            if col >= len(settings):
                ax.set_visible(False)
                continue
            for label in labels:
                frame = agg[(agg["factor"] == factor) & (agg["setting"] == settings[col]) & (agg["label"] == label)]
                if not len(frame):
                    continue
                frame = frame.sort_values("phase")
                color, marker, dash = styles[label]
                y = frame["acc_all_seen_mean"].to_numpy(float) * scale
                aia = 100 * frame["average_incremental_accuracy_mean"].iloc[0]
                ax.plot(frame["phase"], y, color=color, marker=marker, linestyle=dash, label=f"{label} ({aia:.1f}%)")
                if frame["n"].max() > 1:
                    err = frame["acc_all_seen_std"].to_numpy(float) * scale
                    ax.fill_between(frame["phase"], y - err, y + err, color=color, alpha=0.15, linewidth=0)
            ax.set_title(FACTOR_NAMES.get(factor, factor + " {:g}").format(settings[col]), fontsize=10)
            ax.set_xticks(sorted(table["phase"].unique()))
            ax.set_xlabel("phase", fontsize=8)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, title="avg. inc. acc.", title_fontsize=7)
        axes[row, 0].set_ylabel("accuracy $A_t$" + (" (%)" if percent else ""))
    fig.suptitle("Accuracy at each incremental step as memory and imbalance change (Fig. 4)" + _seed_note(table),
                 fontsize=11)
    return fig

