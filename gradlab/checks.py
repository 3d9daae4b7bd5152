"""Checks every entry point shares (CLI flags, YAML files, sweeps, the Python API, method arguments): numbers that
fit, counts in range, folder arguments, setting names, and YAML read with limits. Each failure is one
:class:`~gradlab.errors.ConfigError` line naming the setting and what is allowed."""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import yaml

from gradlab.errors import ConfigError


class LimitedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with limits for files gradlab did not write: no duplicate keys, nesting at most
    ``MAX_DEPTH`` deep, and at most ``MAX_VALUES`` values once aliases (*name) are expanded (an alias bomb,
    nine aliases of nine aliases of ..., is a few lines that expand to millions of values)."""

    MAX_DEPTH, MAX_VALUES = 64, 100_000

    def compose_node(self, parent, index):
        self._depth = getattr(self, "_depth", 0) + 1
        if self._depth > self.MAX_DEPTH:
            raise yaml.YAMLError(f"nested more than {self.MAX_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node):
        sizes: dict[int, int] = {}

        def expanded(n) -> int:            # values under n with aliases expanded, each shared node counted once
            if id(n) not in sizes:
                children = (n.value if isinstance(n, yaml.SequenceNode) else
                            [c for pair in n.value for c in pair] if isinstance(n, yaml.MappingNode) else [])
                sizes[id(n)] = 1 + sum(expanded(c) for c in children)
            return sizes[id(n)]
        if expanded(node) > self.MAX_VALUES:
            raise yaml.YAMLError(f"more than {self.MAX_VALUES} values once its aliases (*name) are expanded")
        return super().construct_document(node)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.YAMLError(f"key {key!r} appears twice (line {key_node.start_mark.line + 1}); keep one")
            seen.add(key) if isinstance(key, (str, int, float, bool)) else None
        return super().construct_mapping(node, deep)


def load_yaml(text: str, source: str):
    """YAML text as Python values, with :class:`LimitedLoader`'s limits; errors are one-line ConfigErrors."""
    try:
        return yaml.load(text, Loader=LimitedLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise ConfigError(f"{source} is not valid YAML: {one_line(err)}") from None
    except RecursionError:
        raise ConfigError(f"{source} is not valid YAML: nested too deeply") from None


def read_yaml_file(path, what: str):
    """The YAML values of the file at ``path`` (``what``: "config file", "sweep file"), or a one-line
    ConfigError naming the file: missing, not UTF-8 text, or not valid YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{what} {str(path)!r} is not UTF-8 text (byte {err.start}); save it as UTF-8 YAML") from None
    return load_yaml(text, f"{what} {str(path)!r}")


def check_keys(values: dict, source: str) -> None:
    """Setting names must be strings (YAML allows numbers, lists ... as keys)."""
    bad = [key for key in values if not isinstance(key, str)]
    if bad:
        raise ConfigError(f"{source}: setting names must be text, got {short(bad[0])} ({type(bad[0]).__name__})")


def check_folder(name: str, value: Any) -> None:
    """A folder argument of the API: a non-empty path string or ``os.PathLike``."""
    if not (isinstance(value, os.PathLike) or (isinstance(value, str) and value.strip())):
        raise ConfigError(f"{name} must be a folder path (a non-empty string or Path), got {short(value)}")


def one_line(err: Exception) -> str:
    """A YAML error in one line (PyYAML's messages span several)."""
    return " ".join(str(err).split())


def check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {list(allowed)}, got {short(value)}")


def is_number(value: Any) -> bool:
    """A finite int or float that fits a float (NaN, infinities and 400-digit integers are rejected everywhere)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def non_finite(value: Any, where: str) -> tuple[str, float] | None:
    """(place, value) of the first NaN, infinity or number too large for a float in a nested setting, or None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and not is_number(value):
        return where, value
    if isinstance(value, dict):
        return next((w for k, v in value.items() if (w := non_finite(v, f"{where}.{k}"))), None)
    if isinstance(value, (list, tuple)):
        return next((w for i, v in enumerate(value) if (w := non_finite(v, f"{where}[{i}]"))), None)
    return None


def check_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> None:
    """An integer setting (epochs, workers, threads, ...) in [minimum, maximum]."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum or (maximum and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ConfigError(f"{name} must be an integer {allowed}, got {short(value)}")


def short(value: Any) -> str:
    """``repr`` cut to 60 characters (a 400-digit number stays one readable line)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


_KEY = r"[A-Za-z_][A-Za-z0-9_]*"
_PAIRS = re.compile(r"[,\s]+(?=" + _KEY + r"\s*=)")


def parse_method_args(pairs: str | list | dict | None, field: str = "method_args") -> dict:
    """Method arguments from text: ``"distillation=kd, eta=0"`` (pairs separated by commas and/or spaces, the
    explorer's field) or a list of ``KEY=VALUE`` items (the CLI's repeated ``--method-arg``), each value read as
    YAML (``true``, ``0.5``, ``[1, 2]``, ``"a b"``) -> ``{"distillation": "kd", "eta": 0}``. Empty -> ``{}``; a
    dict is returned as it is. A bad pair is a :class:`ConfigError` naming ``field`` and the pair."""
    if isinstance(pairs, dict):
        return dict(pairs)
    if isinstance(pairs, str):
        text = pairs.strip().strip(",").strip()
        pairs = _PAIRS.split(text) if text else []
    args: dict = {}
    for pair in pairs or []:
        key, sep, value = str(pair).strip().rstrip(",").strip().partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not re.fullmatch(_KEY, key):
            raise ConfigError(f"{field}: expected KEY=VALUE pairs (e.g. distillation=kd, eta=0), got {pair!r}")
        if not value:
            raise ConfigError(f"{field}: {key!r} has no value (write {key}=VALUE)")
        if key in args:
            raise ConfigError(f"{field}: {key!r} is given twice")
        try:
            args[key] = yaml.load(value, Loader=LimitedLoader)  # noqa: S506 - a SafeLoader subclass with limits
        except (yaml.YAMLError, RecursionError) as err:
            problem = " ".join(str(getattr(err, "problem", None) or err or "invalid YAML").split())
            raise ConfigError(f"{field} {key}: {value!r} is not a plain YAML value ({problem}); "
                              "use numbers, true/false, strings or [lists]") from None
    return args


def format_method_args(args: dict | str | None) -> str:
    """The inverse of :func:`parse_method_args`: ``{"eta": 0, "distillation": "kd"}`` -> ``"eta=0, distillation=kd"``."""
    if not args:
        return ""
    if isinstance(args, str):
        return args

    def value(v):
        plain = isinstance(v, str) and v and not re.search(r"[\s,=:#\[\]{}'\"]", v)
        return v if plain and yaml.safe_load(v) == v else json.dumps(v)

    return ", ".join(f"{k}={value(v)}" for k, v in args.items())


def check_registration(what: str, name: Any, cls: type, registry: dict) -> None:
    """A name for ``registry`` (``what``: "register_method", "register_probe"): lower case letters, digits, '_',
    '-', '.', and not taken by another class (the same class registered again, e.g. by a re-imported plugin, is
    fine); a one-line ConfigError otherwise."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name):
        raise ConfigError(f"{what}: {cls.__qualname__} needs a name of lower case letters, digits, '_', '-', '.', "
                          f"got {name!r}")
    taken = registry.get(name)
    if taken is not None and (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ConfigError(f"{what}: the name {name!r} is taken by {taken.__module__}.{taken.__qualname__}; "
                          "choose another name")
