"""What keeps the notebooks thin.

- ``helpers`` - a figure's runs (trained or read from the cache) with a progress line, tables over seeds,
  one output per figure; ``explorer`` - the ipywidgets explorer (choose settings, train, look).

May import everything below it except the CLI.
"""
