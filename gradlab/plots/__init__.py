"""Plots of run records: tidy tables, static paper figures, interactive figures.

- :mod:`gradlab.analysis.tables` - tidy pandas tables from :class:`gradlab.runs.records.RunRecord` s
  (the CSV written next to each figure); ``per_seed`` stacks seeds, ``aggregate`` gives mean / std / n;
- :mod:`gradlab.plots.palette` - one colour per run (method / series) in every figure, plotly and matplotlib;
- :mod:`gradlab.plots.paper` - the paper's figures (2, 4, 5, weight norms) for one seed or many;
- :mod:`gradlab.plots.curves` - other static matplotlib / seaborn figures (Figure objects, headless-safe)
  and ``save`` (PNG + PDF); re-exports the paper figures;
- :mod:`gradlab.plots.interactive` - plotly ``go.Figure`` s for the explorer and notebooks;
- :mod:`gradlab.plots.dataviews` - plotly figures of a scenario's data, before anything trains (the tour);
- :mod:`gradlab.plots.static` - one notebook output per figure: the plotly figure and a PNG of it
  (``show``, ``figure_bundle``, ``to_matplotlib``);
- :mod:`gradlab.notebook.helpers` - what keeps the notebooks thin: a figure's runs from the ``make figures``
  cache (``figure_runs``), ``run_cached`` with a progress bar, ``show``, and the findings of :mod:`gradlab.analysis.findings`.
"""
from gradlab.analysis import tables
from gradlab.plots import curves as figures
from gradlab.plots import interactive, palette, paper

__all__ = ["tables", "palette", "paper", "figures", "interactive"]
