"""Shared pytest fixtures and helpers (``from conftest import make_trainer, to_phase_one``)."""
from __future__ import annotations

import pytest

from gradlab.config import RunConfig
from gradlab.data.fake_trees import write_fake_cifar100
from gradlab.runs.runner import build_trainer


def make_trainer(settings: dict, method: str, method_args: dict | None = None, callbacks=(), **overrides):
    """A run built but not started, ready to step phase by phase: ``(ctx, method, trainer)`` for ``settings``
    with ``method``, its ``method_args`` and any other ``overrides`` (one epoch unless the overrides say)."""
    values = {**settings, "epochs": 1, "method": method, "method_args": method_args or {}, **overrides}
    trainer = build_trainer(RunConfig(**values).validate(), callbacks=callbacks)
    return trainer.ctx, trainer.method, trainer


def to_phase_one(settings: dict, method: str, method_args: dict | None = None, **overrides):
    """Phase 0 trained (its extra stages, memory and teacher included), phase 1 begun and trained for one epoch:
    ``(ctx, method, trainer)`` just before phase 1's ``after_task``."""
    ctx, method_, trainer = make_trainer(settings, method, method_args, **overrides)
    trainer.run_phase(ctx.scenario.tasks[0])
    trainer.begin_phase(ctx.scenario.tasks[1])
    trainer.train_epoch(0)
    return ctx, method_, trainer


@pytest.fixture(autouse=True)
def restore_registries():
    """A test that loads a plugin (the docs' examples, tests/test_plugins.py) leaves no method, probe or scenario
    registered behind it for the next test."""
    from gradlab import plugins
    from gradlab.data import sources
    from gradlab.methods import METHODS
    from gradlab.probes import PROBES

    saved = [(d, dict(d)) for d in (METHODS, PROBES, sources.REGISTRY, sources.SOURCE_INFO, plugins._loaded)]
    yield
    for registry, before in saved:
        registry.clear()
        registry.update(before)


@pytest.fixture(scope="session")
def fake_cifar_root(tmp_path_factory):
    """Root folder holding a fake ``cifar-100-python/{train,test,meta}`` in the real pickle format.

    train: 50 000 rows (500 per class), test: 10 000 rows (100 per class). Decode an image
    (H, W, C) as: label = img[0, 0, 0], per-class sample number = img[0, 0, 1] + 256 * img[0, 0, 2].
    """
    return write_fake_cifar100(tmp_path_factory.mktemp("fake_cifar"))


@pytest.fixture
def no_training(monkeypatch):
    """Bad input must be refused before training: training that starts fails the test."""
    from gradlab.training.trainer import Trainer

    def refuse(self):
        raise AssertionError("training started although the input was bad")
    monkeypatch.setattr(Trainer, "fit", refuse)


@pytest.fixture
def cli(capsys):
    """``cli(argv) -> (exit code, stderr)`` through ``gradlab.cli.main``, argparse's own exits included."""
    from gradlab.cli import main

    def call(argv):
        try:
            code = main(argv)
        except SystemExit as exit_:          # argparse's own errors (a flag of the wrong type)
            code = exit_.code
        return code, capsys.readouterr().err
    return call
