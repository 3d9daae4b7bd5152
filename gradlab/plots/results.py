"""Figures of the results tables (:mod:`gradlab.experiments.paper_tables`): methods side by side per setting,
each old class's forgetting against its training count, and Figure 5 at two training lengths. Every figure
shows the mean over seeds with ± one std; each returns a :class:`matplotlib.figure.Figure` built without
pyplot's global state.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gradlab.analysis.seeds import mean_std
from gradlab.plots.paper import _grid, label_styles


def _check(table: pd.DataFrame, columns, name: str) -> pd.DataFrame:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name}: table lacks columns {missing}")
    return table


def method_bars(table: pd.DataFrame, metric: str = "average_incremental_accuracy") -> Figure:
    """One panel per setting, a horizontal bar per method (label) at its mean ``metric`` (percent) with
    ± one std over seeds; the best mean is drawn dark, methods whose interval reaches it mid-grey."""
    table = _check(table, ["setting", "label", "seed", metric], "method_bars")
    settings, labels = list(dict.fromkeys(table["setting"])), list(dict.fromkeys(table["label"]))
    agg = mean_std(table, ["setting", "label"], [metric])
    fig, axes = _grid(len(settings), 2, 4.6, 0.32 * len(labels) + 1.2)
    for ax, setting in zip(axes, settings):
        frame = agg[agg["setting"] == setting].set_index("label").reindex(labels)
        mean = 100 * frame[f"{metric}_mean"].to_numpy(float)
        std = np.nan_to_num(100 * frame[f"{metric}_std"].to_numpy(float))
        best = int(np.nanargmax(mean))
        colors = ["#1f3b73" if i == best else "#8c8c8c" if mean[i] + std[i] >= mean[best] - std[best] else "#c8c8c8"
                  for i in range(len(labels))]
        y = np.arange(len(labels))[::-1]
        ax.barh(y, mean, xerr=std, color=colors, error_kw={"elinewidth": 1, "capsize": 2})
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_title(setting, fontsize=10)
        ax.set_xlabel(metric.replace("_", " ") + " (%)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    n = table["seed"].nunique()
    fig.suptitle(f"Mean ± std over {n} seeds; darkest: best mean; mid-grey: interval overlaps the best", fontsize=9)
    return fig


def forgetting_vs_count(table: pd.DataFrame) -> Figure:
    """One panel per setting: each old class's forgetting after the last phase (mean over seeds, ± std)
    against its training count (log scale), a line per method (label)."""
    table = _check(table, ["setting", "label", "seed", "class", "train_count", "forgetting"], "forgetting_vs_count")
    settings, labels = list(dict.fromkeys(table["setting"])), list(dict.fromkeys(table["label"]))
    styles = label_styles(labels)
    agg = mean_std(table, ["setting", "label", "class", "train_count"], ["forgetting"])
    fig, axes = _grid(len(settings), 2, 4.6, 3.4)
    for ax, setting in zip(axes, settings):
        for label in labels:
            frame = agg[(agg["setting"] == setting) & (agg["label"] == label)].sort_values("train_count")
            color, marker, dash = styles[label]
            ax.errorbar(frame["train_count"], 100 * frame["forgetting_mean"],
                        yerr=np.nan_to_num(100 * frame["forgetting_std"].to_numpy(float)), color=color,
                        marker=marker, linestyle=dash, capsize=2, linewidth=1, markersize=4, label=label)
        ax.set_xscale("log")
        ax.set_title(setting, fontsize=10)
        ax.set_xlabel("training images of the class (log)", fontsize=8)
        ax.set_ylabel("forgetting after the last phase (%)", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Imbalanced forgetting: every old class, mean ± std over {table['seed'].nunique()} seeds",
                 fontsize=9)
    return fig


def fig5_settled(table: pd.DataFrame) -> Figure:
    """Figure 5 (forgetting at each incremental step) once per training length (``epochs``), mean ± std bands."""
    table = _check(table, ["label", "seed", "phase", "forgetting", "epochs"], "fig5_settled")
    lengths, labels = sorted(table["epochs"].unique()), list(dict.fromkeys(table["label"]))
    styles = label_styles(labels)
    agg = mean_std(table, ["epochs", "label", "phase"], ["forgetting"])
    fig, axes = _grid(len(lengths), 2, 4.6, 3.4)
    for ax, epochs in zip(axes, lengths):
        for label in labels:
            frame = agg[(agg["epochs"] == epochs) & (agg["label"] == label)].sort_values("phase")
            color, marker, dash = styles[label]
            y, err = 100 * frame["forgetting_mean"].to_numpy(float), 100 * frame["forgetting_std"].to_numpy(float)
            ax.plot(frame["phase"], y, color=color, marker=marker, linestyle=dash, label=label)
            ax.fill_between(frame["phase"], y - np.nan_to_num(err), y + np.nan_to_num(err), color=color, alpha=0.15,
                            linewidth=0)
        ax.set_title(f"{epochs} epochs per phase", fontsize=10)
        ax.set_xlabel("incremental step (phase)", fontsize=8)
        ax.set_ylabel("average forgetting (%)", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Fig. 5 over {table['seed'].nunique()} seeds at two training lengths", fontsize=9)
    return fig
