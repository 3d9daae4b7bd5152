"""Training one phase after another: the loop and what runs beside it.

- ``trainer`` - phases -> epochs -> steps, with events (``before_task`` ... ``after_task``) that callbacks
  and probes hook into; ``context`` - what a method and a callback see of the run;
- ``schedules`` - learning-rate schedules; ``divergence`` - the guard that stops a run whose loss or weights
  explode; ``exemplars`` - the exemplar memory (herding / random selection);
- ``row_gradients`` - per-class classifier-row gradients of one loss term (DGR and the gradient probe);
- ``host_memory`` - returning freed host memory to the system between phases.

May import: ``errors``, ``files``, ``checks``, ``data``, ``models``. Never a method, a probe or a run.
"""
