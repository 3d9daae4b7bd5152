"""One run, start to finish, and many runs side by side.

- ``runner`` - builds a run from a :class:`~gradlab.config.RunConfig` (scenario, model, method, probes,
  trainer) and trains it; ``records`` - the run's record folder (write while training, read back);
- ``checkpoints`` - the checkpoint format (write, read, check it belongs to the run); ``resume`` - going on
  from the last checkpoint; ``folder`` - the run folder's lock and its state (free, in use, finished);
- ``executor`` - many run configurations on a local process pool or Ray, with a cache;
  ``estimate`` - how long a list of runs will take here.

May import everything below it: ``analysis``, ``scenario``, ``config``, ``methods``, ``probes``,
``training``, ``models``, ``data`` and the leaves. Never an experiment, a plot or the CLI.
"""
