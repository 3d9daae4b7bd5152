"""Statistics over seeds, written once for tables, plots, verdicts, findings and notebooks.

- :func:`mean_std` - the mean and the standard deviation (ddof = 1; NaN for one seed) of value columns
  over the seeds of a per-seed table (a ``seed`` column, :func:`gradlab.analysis.tables.per_seed`), with
  the number of seeds per group;
- :func:`spearman` - Spearman's rank correlation (ties get their mean rank), NaN when undefined.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def mean_std(table: pd.DataFrame, by, values) -> pd.DataFrame:
    """``<col>_mean``, ``<col>_std`` for every column in ``values`` and one ``n`` (seeds in the group), grouped by
    the columns ``by`` in their order of appearance. A table without a ``seed`` column is one seed: each row
    keeps its other columns, its values become ``<col>_mean``, ``<col>_std`` is NaN and ``n`` is 1."""
    by, values = list(by), list(values)
    missing = [c for c in by + values if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks columns {missing}; expected {by + values}")
    if not len(table):
        raise ValueError("table is empty: nothing to average")
    if "seed" not in table.columns:
        out = table.rename(columns={col: f"{col}_mean" for col in values})
        for col in values:
            out[f"{col}_mean"] = out[f"{col}_mean"].to_numpy(float)
            out[f"{col}_std"] = np.nan
        out["n"] = 1
        return out
    grouped = table.groupby(by, sort=False, dropna=False)
    out = grouped[values].agg(["mean", "std"])
    out.columns = [f"{col}_{stat}" for col, stat in out.columns]
    out["n"] = grouped.size()
    return out.reset_index()


def spearman(x, y) -> float:
    """Spearman's rank correlation of two equally long series (pairs with a NaN left out); NaN with fewer than
    three pairs or when either side is constant."""
    frame = pd.DataFrame({"x": np.asarray(x, float), "y": np.asarray(y, float)}).dropna()
    if len(frame) < 3 or frame["x"].nunique() < 2 or frame["y"].nunique() < 2:
        return float("nan")
    return float(frame["x"].rank().corr(frame["y"].rank()))
