"""Experiments: many runs planned, run through :mod:`gradlab.runs.executor` and summarised.

- ``compare`` - methods side by side on one scenario over seeds; ``sweep`` - a YAML grid of settings;
- ``paper_figures`` - the runs behind the paper's figures and the checks of its claims; ``figures_readme``
  - the README written next to them; ``reproduce`` - the table of the paper-benchmark configs;
  ``bundled`` - where ``configs/`` and ``sweeps/`` are (a checkout's root, or the copies a wheel carries).

May import ``runs``, ``plots``, ``analysis`` and everything below them. Never the notebook helpers or the CLI.
"""
