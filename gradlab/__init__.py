"""gradlab: imbalanced class-incremental learning you can see.

Public API (imported lazily so that ``import gradlab`` stays cheap):

- :class:`RunConfig` - every setting of one run (``gradlab.config``);
- :func:`run` - train one class-incremental run and write its record folder;
- :func:`load_run` - read a record folder back (config, summary, tidy tables);
- :class:`Scenario` - a long-tailed class-incremental scenario (``gradlab.scenario``);
- :func:`list_methods`, :func:`list_scenarios` - what can be run;
- :class:`ArrayData` - your own image arrays as a scenario (``gradlab.run(..., data=ArrayData(...))``).

Extending gradlab (docs/extending.md): :class:`Method` and :func:`register_method` (declared arguments:
:class:`Arg`; extra training stages: :class:`Stage`), :class:`Probe` / :class:`Callback` and
:func:`register_probe`, :func:`register_scenario` (:class:`SourceInfo`, :class:`Source`, :class:`ArrayImageSet`),
:func:`load_plugins` (what ``--plugin`` and ``plugins:`` do).
"""

__version__ = "0.1.0"

_EXPORTS = {
    "RunConfig": ("gradlab.config", "RunConfig"),
    "ConfigError": ("gradlab.errors", "ConfigError"),
    "Scenario": ("gradlab.scenario", "Scenario"),
    "load_run": ("gradlab.runs.records", "load_run"),
    "list_methods": ("gradlab.methods", "list_methods"),
    "list_scenarios": ("gradlab.scenario", "list_scenarios"),
    "Method": ("gradlab.methods.base", "Method"),
    "register_method": ("gradlab.methods.base", "register"),
    "Arg": ("gradlab.methods.args", "Arg"),
    "Stage": ("gradlab.training.stages", "Stage"),
    "Callback": ("gradlab.training.trainer", "Callback"),
    "Probe": ("gradlab.probes.base", "Probe"),
    "register_probe": ("gradlab.probes", "register_probe"),
    "load_plugins": ("gradlab.plugins", "load_plugins"),
    "register_scenario": ("gradlab.data.sources", "register_scenario"),
    "SourceInfo": ("gradlab.data.sources.base", "SourceInfo"),
    "Source": ("gradlab.data.sources.base", "Source"),
    "ArrayImageSet": ("gradlab.data.sources.base", "ArrayImageSet"),
    "ArrayData": ("gradlab.data.sources.arrays", "ArrayData"),
    "GradlabError": ("gradlab.errors", "GradlabError"),
    "DataError": ("gradlab.errors", "DataError"),
    "LiveView": ("gradlab.notebook.live", "LiveView"),
    "RunLogger": ("gradlab.runs.logs", "RunLogger"),
}
_INTERNAL = {"_train": ("gradlab.runs.runner", "run")}

__all__ = sorted([*_EXPORTS, "run"])


def run(cfg=None, callbacks=(), overwrite=False, resume=False, data=None, live=False, **overrides):
    """Train one class-incremental run and write its record folder; returns the loaded record.

    ``cfg``: a :class:`RunConfig`, a dict, the path of a YAML file, or None (keywords only); keyword overrides
    win, e.g. ``gradlab.run(scenario="digits", tasks=3, epochs=2, out="runs/x")``. ``log=["tensorboard", "csv",
    "wandb"]`` writes logs as the run trains (into ``log_dir``, default ``<run folder>/logs``). ``live=True``
    redraws the accuracy and per-class gradient panels after every phase (in a notebook; one printed line per
    phase elsewhere; :class:`LiveView`). ``callbacks``, ``overwrite``, ``resume`` and ``data``: see
    :func:`gradlab.runs.runner.run`, which this calls."""
    if not isinstance(live, bool):
        raise __getattr__("ConfigError")(f"live must be true or false, got {live!r}")
    if live:                # (lazily, like every export: the live view needs the notebook extras)
        callbacks = [*callbacks, __getattr__("LiveView")()] if isinstance(callbacks, (list, tuple)) else callbacks
    train = __getattr__("_train")
    return train(cfg, callbacks=callbacks, overwrite=overwrite, resume=resume, data=data, **overrides)


def __getattr__(name):
    if name not in _EXPORTS and name not in _INTERNAL:
        raise AttributeError(f"module 'gradlab' has no attribute {name!r}")
    import importlib

    module, attr = {**_EXPORTS, **_INTERNAL}[name]
    return getattr(importlib.import_module(module), attr)
