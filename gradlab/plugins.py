"""Loading users' code: plugin files and modules, and installed packages' ``gradlab.plugins`` entry points.

A plugin is ordinary Python that registers its parts when imported (``gradlab.register_method``,
``gradlab.register_probe``, ...). It is named by a path to a ``.py`` file or by an importable module name:
``--plugin PATH_OR_MODULE`` on the command line, ``plugins: [...]`` in a run or sweep file, or ``plugins=[...]``
in :class:`gradlab.RunConfig`. A pip-installed package registers itself with an entry point in the group
``gradlab.plugins`` (``[project.entry-points."gradlab.plugins"] mine = "my_package.gradlab_plugin"``); those load
once per process, before the first plugin or configuration is checked. Because a run's configuration names its
plugins, every worker process (a local pool or Ray) imports them before it builds the run.

A leaf module: it imports nothing of gradlab but its errors.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path

from gradlab.errors import ConfigError

ENTRY_POINT_GROUP = "gradlab.plugins"
_loaded: dict[str, str] = {}            # plugin spec (a resolved path or a module name) -> module name
_entry_points_loaded = False


def load_entry_points() -> list[str]:
    """Import every installed ``gradlab.plugins`` entry point (once per process); returns their names."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return []
    _entry_points_loaded = True
    names = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            point.load()
        except Exception as err:  # noqa: BLE001 - any failure of user code is reported in one line
            raise ConfigError(f"plugin entry point {point.name!r} ({point.value}) failed to import: "
                              f"{type(err).__name__}: {err}") from None
        names.append(point.name)
    return names


def _is_file_spec(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def absolute_spec(spec):
    """A plugin file that exists as its absolute path (a run's config then loads it from any working folder);
    module names and anything else unchanged."""
    if isinstance(spec, str) and spec.strip() and _is_file_spec(spec) and Path(spec).is_file():
        return str(Path(spec).resolve())
    return spec


def load_plugin(spec: str) -> str:
    """Import one plugin (a ``.py`` file or a module name) once; returns the module's name. A file that is
    missing or fails to import is a one-line :class:`ConfigError` naming it."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"plugins: each plugin must be a .py file or a module name, got {spec!r}")
    is_file = _is_file_spec(spec)
    key = str(Path(spec).resolve()) if is_file else spec
    if key in _loaded:
        return _loaded[key]
    try:
        if is_file:
            path = Path(key)
            if not path.is_file():
                raise ConfigError(f"plugins: {spec!r} is not a file; give a .py file or an importable module name")
            name = "gradlab_plugin_" + "".join(c if c.isalnum() else "_" for c in path.stem)
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module
            try:
                module_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(name, None)
                raise
        else:
            name = importlib.import_module(spec).__name__
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure of user code is reported in one line
        where = "" if isinstance(err, ModuleNotFoundError) and err.name == spec else f" ({type(err).__name__})"
        raise ConfigError(f"plugins: {spec!r} failed to import{where}: {err}") from None
    _loaded[key] = name
    return name


def load_plugins(specs=()) -> list[str]:
    """The installed entry points, then each plugin of ``specs`` in order (each at most once per process)."""
    if isinstance(specs, str) or not isinstance(specs, (list, tuple)):
        raise ConfigError(f"plugins must be a list of .py files or module names, got {specs!r}")
    load_entry_points()
    return [load_plugin(spec) for spec in specs]


def plugins_fingerprint(specs) -> str:
    """12 hex digits over the source of each plugin (a file's bytes; a module's file, where it has one, else
    its name): part of a run's settings hash, so a cached run of an edited method is not reused."""
    digest = hashlib.sha256()
    for spec in specs:
        spec = str(spec)
        path = Path(spec) if _is_file_spec(spec) else None
        if path is None:
            try:
                found = importlib.util.find_spec(spec)
            except (ImportError, ValueError):
                found = None
            origin = getattr(found, "origin", None)
            path = Path(origin) if origin and origin.endswith(".py") else None
        digest.update(spec.encode() if path is None or not path.is_file() else path.read_bytes())
    return digest.hexdigest()[:12]
