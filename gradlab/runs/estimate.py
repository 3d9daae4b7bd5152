"""What a set of runs costs, said before it starts: training images and an estimated time on this machine.

``train_images(cfg)`` counts the images a run's training steps see (every epoch of every phase, exemplar
memory included) from the scenario's long-tail profile: arithmetic only, nothing is loaded. ``throughput``
times a few training steps of the run's network on random images, as the run would compute them (model,
batch size, precision, layout, device, threads); ``estimate_seconds`` puts the two together for a list of
runs shared among parallel workers. Extra stages (BiC's bias layer, two-stage classifiers, EEIL's balanced
fine-tuning) and the teachers' forward passes are not counted, so the estimate leans short.
"""
from __future__ import annotations

import sys
import time
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from gradlab.config import RunConfig
from gradlab.data.profiles import class_order, long_tail_counts, task_sizes
from gradlab.data.sources import SOURCE_INFO, source_classes
from gradlab.errors import ConfigError
from gradlab.models.factory import build_backbone
from gradlab.runs.runner import run_precision, uses_channels_last
from gradlab.training.trainer import pick_device

STARTUP_S = 3.0           # a run's fixed cost before its first step (imports, data, model), measured on 2 cores
LONG_S = 30 * 60          # asking before starting more than this on a CPU


def train_images(cfg: RunConfig) -> tuple[int, int]:
    """(images through training steps, images through the test passes) of one run, from nominal counts."""
    info = SOURCE_INFO[cfg.scenario]
    num_classes = source_classes(cfg.scenario, cfg.data_root)
    n_max = cfg.max_per_class or info.train_per_class
    counts = np.maximum(long_tail_counts(n_max, num_classes, cfg.rho, cfg.profile), 1)
    counts = counts * (1.0 - cfg.holdout_fraction)
    counts = counts[class_order(cfg.order, num_classes, cfg.seed)]
    train = tests = seen = 0
    for size in task_sizes(num_classes, cfg.tasks, cfg.base):
        old = counts[:seen]
        memory = (min(cfg.memory_total, old.sum()) if cfg.memory_total is not None
                  else np.minimum(old, cfg.memory).sum())
        train += cfg.epochs * (counts[seen:seen + size].sum() + memory)
        seen += size
        tests += seen * info.test_per_class
    return int(train), int(tests)


def throughput(cfg: RunConfig, threads: int = 1) -> float:
    """Training images per second of ``cfg``'s network on this machine (a few timed steps on random images)."""
    device = pick_device(cfg.device)
    model = cfg.model if cfg.model != "auto" else SOURCE_INFO[cfg.scenario].model
    h, w, c = SOURCE_INFO[cfg.scenario].image_shape
    batch = cfg.batch_size if h * w <= 32 * 32 else min(cfg.batch_size, 16)     # big images: a short batch
    return _throughput(model, (c, h, w), batch, run_precision(cfg, device), uses_channels_last(cfg, device),
                       str(device), max(1, threads))


@lru_cache(maxsize=32)
def _throughput(model_name: str, shape: tuple, batch: int, precision: str, channels_last: bool, device: str,
                threads: int) -> float:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):          # the caller's random streams stay untouched
            torch.manual_seed(0)
            backbone = build_backbone(model_name, in_channels=shape[0])
            model = nn.Sequential(backbone, nn.Linear(backbone.out_dim, 10)).to(device)
            x = torch.randn(batch, *shape, device=device)
            if channels_last:
                model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
            y = torch.randint(0, 10, (batch,), device=device)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            steps, start = 0, None
            while steps < 2 or (steps < 8 and time.perf_counter() - start < 0.5):
                with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                    loss = nn.functional.cross_entropy(model(x).float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                if start is None:                         # the first step warms up and is not timed
                    start = time.perf_counter()
                else:
                    steps += 1
            return steps * batch / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)


def run_seconds(cfg: RunConfig, threads: int = 1) -> float:
    """Estimated wall time of one run with ``threads`` torch threads (evaluation at a third of a step)."""
    train, tests = train_images(cfg)
    return STARTUP_S + (train + tests / 3) / throughput(cfg, threads)


def estimate_seconds(configs, parallel: int, threads: int = 1) -> float:
    """Estimated wall time of ``configs`` shared among ``parallel`` workers (on CUDA: one after another)."""
    times = sorted((run_seconds(cfg, threads) for cfg in configs), reverse=True)
    if not times:
        return 0.0
    lanes = [0.0] * max(1, parallel)
    for seconds in times:                                 # longest first, each to the least loaded worker
        lanes[lanes.index(min(lanes))] += seconds
    return max(lanes)


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def confirm_start(seconds: float | None, long: bool, yes: bool, ask=input, interactive: bool | None = None,
                  say=lambda line: print(line, file=sys.stderr, flush=True)) -> None:
    """Before a long start (``long``: the full / paper protocol on a CPU, or more than 30 min): ask on a
    terminal (anything but y / yes stops with :class:`ConfigError`); elsewhere say so and go on. ``yes``: go on.
    ``seconds`` None: not estimated (runs on a Ray cluster)."""
    if not long or yes:
        return
    interactive = sys.stdin.isatty() if interactive is None else interactive
    amount = "training of unestimated length" if seconds is None else f"about {duration(seconds)} of training"
    if not interactive:
        say(f"gradlab: note: {amount}; not a terminal, so starting (--yes skips this note)")
        return
    answer = ask(f"{amount[0].upper()}{amount[1:]} on this machine. Start? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise ConfigError("not started: the answer was not yes (pass --yes to start without asking; --quick, "
                          "fewer --seeds or --epochs make it shorter)")
