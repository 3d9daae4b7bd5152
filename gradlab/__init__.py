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
    "run": ("gradlab.runs.runner", "run"),
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
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'gradlab' has no attribute {name!r}")
    import importlib

    module, attr = _EXPORTS[name]
    return getattr(importlib.import_module(module), attr)
