"""Declared method arguments: what each ``method_args`` key takes, in one place that ``gradlab info``, the CLI,
the explorer and validation all read.

A method lists its arguments in a class attribute ``args = {"temperature": Arg.number(2.0, above=0), ...}``;
subclasses add to (or override) their parents' (:func:`declared_args`). The base :class:`~gradlab.methods.base.Method`
checks every value when the method is built and sets it as an attribute of the same name, so a bad value is a
one-line :class:`~gradlab.errors.ConfigError` naming ``method_args.<key>`` and what it allows, before training.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from gradlab.errors import ConfigError


@dataclass(frozen=True)
class Arg:
    """One method argument: its default, its kind (``number``, ``int``, ``bool``, ``choice``), its bounds or choices,
    what ``null`` means when it is allowed (``none``), and a line of help."""

    default: Any
    kind: str = "number"
    low: float | None = None                 # the smallest value allowed (inclusive unless ``above``)
    high: float | None = None                # the largest value allowed (inclusive)
    above: bool = False                      # ``low`` itself is not allowed
    below: bool = False                      # ``high`` itself is not allowed
    choices: tuple = ()
    none: str = ""                           # null allowed, meaning this (e.g. "the run's lr")
    help: str = ""

    @classmethod
    def number(cls, default, low: float | None = 0.0, high: float | None = None, above: bool = False,
               below: bool = False, none: str = "", help: str = "") -> "Arg":
        return cls(default, "number", low, high, above, below, none=none, help=help)

    @classmethod
    def integer(cls, default, low: int | None = 0, none: str = "", help: str = "") -> "Arg":
        return cls(default, "int", low, none=none, help=help)

    @classmethod
    def flag(cls, default, none: str = "", help: str = "") -> "Arg":
        return cls(default, "bool", none=none, help=help)

    @classmethod
    def choice(cls, default, choices, none: str = "", help: str = "") -> "Arg":
        return cls(default, "choice", choices=tuple(choices), none=none, help=help)

    def allowed(self) -> str:
        """What the argument takes, in words: ``a number > 0 (or null: the run's lr)``."""
        if self.kind == "bool":
            text = "true or false"
        elif self.kind == "choice":
            text = f"one of {list(self.choices)}"
        else:
            text = "a number" if self.kind == "number" else "an integer"
            if self.low is not None and self.high is not None:
                text += f" in {'(' if self.above else '['}{self.low:g}, {self.high:g}{')' if self.below else ']'}"
            elif self.low is not None:
                text += f" {'>' if self.above else '>='} {self.low:g}"
        return text + (f" (or null: {self.none})" if self.none else "")

    def check(self, name: str, value: Any) -> Any:
        """``value`` as the method uses it (numbers as float), or a ConfigError naming ``method_args.<name>``."""
        if value is None and self.none:
            return None
        ok = {"bool": isinstance(value, bool),
              "choice": isinstance(value, str) and value in self.choices,
              "int": isinstance(value, int) and not isinstance(value, bool),
              "number": isinstance(value, (int, float)) and not isinstance(value, bool)
              and math.isfinite(value)}[self.kind]
        if ok and self.kind in ("int", "number"):
            ok = ((self.low is None or value > self.low or (value == self.low and not self.above))
                  and (self.high is None or value < self.high or (value == self.high and not self.below)))
        if not ok:
            raise ConfigError(f"method_args.{name} must be {self.allowed()}, got {value!r}")
        return float(value) if self.kind == "number" else value


def declared_args(cls: type) -> dict[str, Arg]:
    """Every argument a method class declares, its parents' first (a subclass may override one)."""
    merged: dict[str, Arg] = {}
    for klass in reversed(cls.__mro__):
        merged.update(vars(klass).get("args", {}))
    return merged
