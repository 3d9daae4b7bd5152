"""Static figures (matplotlib + seaborn), one function per figure, each returning a
:class:`matplotlib.figure.Figure` built without pyplot's global state (headless-safe, never shown).
The paper's figures (``fig2``, ``fig5``, ``weight_norms``, ``fig4``) live in :mod:`gradlab.plots.paper`
and are re-exported here.

Each function takes the tidy table from :mod:`gradlab.analysis.tables` (or, for convenience, what that
table is built from: a RunRecord or a ``{label: RunRecord}`` mapping). Paper = He & Zhu, "Gradient
Reweighting: Towards Imbalanced Class-Incremental Learning", CVPR 2024. :func:`save` writes PNG + PDF.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from gradlab.analysis import tables
from gradlab.files import atomic_write
from gradlab.plots import palette
from gradlab.plots.paper import fig2, fig4, fig5, weight_norms  # noqa: F401  (re-exported)

SHOT_ORDER = ("many", "medium", "few")
SHOT_COLORS = palette.SHOT_COLORS


def _table(obj, builder, columns) -> pd.DataFrame:
    """The tidy table itself, or ``builder(obj)`` for a record / mapping of records."""
    if isinstance(obj, pd.DataFrame):
        return tables.check_table(obj, columns)
    return builder(obj)


def _label_colors(labels) -> dict:
    """Each label's colour from :mod:`gradlab.plots.palette` (the same run, the same colour in every figure)."""
    return {label: palette.color(label) for label in labels}


def _grid(n: int, ncols: int, width: float, height: float, sharey: bool = True, sharex: bool = False):
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey, sharex=sharex).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


# ---------------------------------------------------------------------- other figures
def accuracy_curves(table, metrics=("acc_all_seen", "acc_task_mean"), percent: bool = True) -> Figure:
    """Accuracy after every phase, one line per run, one panel per metric: class-weighted A_t over
    all seen test images (``acc_all_seen``) and the unweighted task mean (``acc_task_mean``).
    ``table``: :func:`tables.accuracy_curves`; with a ``seed`` column (several seeds per label), the mean line
    and a ± 1 std band (sample std) per label.
    """
    table = _table(table, tables.accuracy_curves, tables.ACCURACY_COLUMNS)
    titles = {"acc_all_seen": "class-weighted $A_t$", "acc_task_mean": "mean over tasks"}
    scale = 100.0 if percent else 1.0
    labels = list(dict.fromkeys(table["label"]))
    colors = _label_colors(labels)
    seeds = table["seed"].nunique() if "seed" in table.columns else 1
    fig, axes = _grid(len(metrics), len(metrics), 4.5, 3.6, sharey=True)
    for ax, metric in zip(axes, metrics):
        for i, label in enumerate(labels):
            frame = table[table["label"] == label].groupby("phase")[metric].agg(["mean", "std"]).reset_index()
            name = label if seeds == 1 else f"{label} (mean ± std, {seeds} seeds)"
            ax.plot(frame["phase"], frame["mean"] * scale, marker="osD^v"[i % 5], markersize=4,
                    linestyle="-" if i % 2 == 0 else "--", color=colors[label], label=name)
            if seeds > 1:
                band = frame["std"].fillna(0.0)
                ax.fill_between(frame["phase"], (frame["mean"] - band) * scale, (frame["mean"] + band) * scale,
                                color=colors[label], alpha=0.2, linewidth=0)
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
    base = Path(path_without_suffix)
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt, kwargs in (("png", {"dpi": 150}), ("pdf", {})):
        path = base.with_name(base.name + "." + fmt)
        atomic_write(path, lambda tmp, fmt=fmt, kwargs=kwargs: fig.savefig(tmp, format=fmt, **kwargs))
        written.append(path)
    return written
