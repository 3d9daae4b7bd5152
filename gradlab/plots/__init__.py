"""Plots of run records: tidy tables, static paper figures, interactive figures.

- :mod:`gradlab.plots.tables` - tidy pandas tables from :class:`gradlab.records.RunRecord` s
  (the CSV written next to each figure);
- :mod:`gradlab.plots.figures` - static matplotlib / seaborn figures (Figure objects, headless-safe)
  and ``save`` (PNG + PDF);
- :mod:`gradlab.plots.interactive` - plotly ``go.Figure`` equivalents for the explorer.
"""
from gradlab.plots import figures, interactive, tables

__all__ = ["tables", "figures", "interactive"]
