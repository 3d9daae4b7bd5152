"""The method contract and the registry (one file per method; see the README's Methods section).

A method is one small class in one file. The trainer calls, in order:

- ``build_model(backbone)``          once: the network (default: backbone + growing linear head);
- ``before_task(ctx)``               at the start of each phase, after the head has grown;
- ``losses(batch, out)``             every step: named loss terms, summed by the trainer;
- ``after_backward(ctx)``            every step, after ``backward`` and before the optimizer step;
- ``after_task(ctx)``                at the end of each phase's main training (e.g. WA's weight aligning);
- ``stages(ctx)``                   then: yields extra training stages (:class:`~gradlab.training.stages.Stage`),
                                     which the trainer runs like the main training, before the memory update;
- ``memory_candidates(task)``        optional: the new classes' images the memory may pick from (default all);
- ``predict(x)``                     at evaluation: logits over the classes seen so far.

``self.ctx`` is the run's :class:`~gradlab.training.context.Context`, set before ``before_task``.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import nn

from gradlab.checks import check_registration
from gradlab.errors import ConfigError
from gradlab.methods.args import Arg, declared_args
from gradlab.models.factory import IncrementalNet
from gradlab.training.stages import Stage

METHODS: dict[str, type["Method"]] = {}


def register(cls: type["Method"]) -> type["Method"]:
    """Class decorator (``gradlab.register_method``): make a method available by its ``name`` to ``gradlab.run``,
    the command line, sweeps and the explorer. One-line errors: not a :class:`Method` subclass, no ``name``, no
    ``losses``, or a name another method already has."""
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ConfigError(f"register_method: {cls!r} is not a subclass of gradlab.Method")
    name = vars(cls).get("name")                  # its own name = "...", not a parent's
    check_registration("register_method", name, cls, METHODS)
    if cls.losses is Method.losses:
        raise ConfigError(f"register_method: {cls.__qualname__} ({name!r}) does not define losses(batch, out)")
    METHODS[name] = cls
    return cls


def list_methods() -> dict[str, str]:
    """Method name -> the first line of its docstring."""
    return {name: (cls.__doc__ or "").strip().splitlines()[0] for name, cls in sorted(METHODS.items())}


def method_options(name: str) -> dict[str, Arg]:
    """The ``method_args`` a method accepts: name -> its declared :class:`Arg` (default, what it allows, help)."""
    return declared_args(METHODS[name])


def build_method(name: str, cfg, **method_args) -> "Method":
    """Instantiate a registered method; unknown ``method_args`` are rejected by name."""
    if name not in METHODS:
        raise ConfigError(f"method must be one of {sorted(METHODS)}, got {name!r}")
    allowed = list(method_options(name))
    unknown = sorted(set(method_args) - set(allowed))
    if unknown:
        raise ConfigError(f"method_args: {unknown} not understood by method {name!r}; allowed: {allowed}")
    return METHODS[name](cfg, **method_args)


class Method:
    """Base class: plain cross-entropy over all seen classes, CNN prediction."""

    name = "base"
    args: dict[str, Arg] = {}           # the method's declared arguments (``method_args``), see gradlab.methods.args
    #: True when every loss term (and every extra stage's loss) is a mean over the images of the batch, plus terms
    #: of the parameters only: then the run can train on several ranks (torchrun), whose gradients are summed
    #: weighted by each rank's share of the batch. Otherwise the reason it cannot, said when a run refuses.
    distributed: bool | str = False

    def __init__(self, cfg, **method_args):
        """Every declared argument checked (:meth:`Arg.check`) and set as an attribute of the same name."""
        self.cfg = cfg
        self.ctx = None
        for key, arg in declared_args(type(self)).items():
            setattr(self, key, arg.check(key, method_args.get(key, arg.default)))

    def build_model(self, backbone: nn.Module) -> nn.Module:
        return IncrementalNet(backbone)

    def before_task(self, ctx) -> None:
        pass

    def losses(self, batch, out) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def after_backward(self, ctx) -> None:
        pass

    def after_task(self, ctx) -> None:
        pass

    def stages(self, ctx) -> Iterator[Stage]:
        """Extra training stages after this phase's main training (BiC's bias layer, EEIL's balanced fine-tuning,
        ...): yield each :class:`Stage`; the trainer runs it before the next one is asked for."""
        return iter(())

    def memory_candidates(self, task):
        """Indices of the new classes' training images the memory may choose from (BiC holds some out)."""
        return task.train_indices

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.ctx.model(x).logits
