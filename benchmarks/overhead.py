"""Probe and DGR overhead, measured side by side in one run.

Prints ratios of epoch times (median and min over rounds) (phase 1, with a teacher, memory + new data):
  probes on / probes off   (CE; goal <= 1.03)
  guard on / guard off     (CE; the divergence guard every run has; goal <= 1.01)
  loggers on / off         (CE, probes on both sides; TensorBoard + CSV + W&B offline; goal <= 1.02), and the
                           loggers' one-time start and finish (W&B starts a local service)
  DGR / CE                 (both with probes off; DGR adds the teacher forward, DAKD and the FC rewrite)
On CPU it also times the probes from inside (a stopwatch around every probe event), which is exact
where end-to-end timings carry a few per cent of noise. Configurations are interleaved round by round, in a rotating order, so that drift in machine speed hits
all of them alike; a second, identical probes-off trainer shows the noise floor of the measurement.

    .venv/bin/python benchmarks/overhead.py                  # ResNet-32 on synthetic CIFAR-sized data
    .venv/bin/python benchmarks/overhead.py --model small --rounds 5
    .venv/bin/python benchmarks/overhead.py --whole-runs 3    # + whole Fashion-MNIST-LT runs with / without loggers
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gradlab.config import RunConfig
from gradlab.methods import build_method
from gradlab.probes import PROBES, ProbeLog, build_probes
from gradlab.runs.logs import build_loggers
from gradlab.runs.runner import build_context
from gradlab.scenario import Scenario
from gradlab.training.divergence import DivergenceGuard
from gradlab.training.trainer import Trainer, freeze


class Stopwatch:
    """Wraps a callback and adds up the wall time spent inside its events (exact on CPU, where work is
    synchronous; on CUDA the launches are asynchronous, so only the end-to-end ratio counts there)."""

    def __init__(self, callback):
        self.callback, self.seconds = callback, 0.0

    def __getattr__(self, event):
        handler = getattr(self.callback, event)

        def timed(ctx):
            start = time.perf_counter()
            handler(ctx)
            self.seconds += time.perf_counter() - start
        return timed


def phase_one_trainer(cfg: RunConfig, scenario: Scenario, probes: bool, guard: bool = False,
                      log_dir: Path | None = None) -> Trainer:
    """A trainer positioned at the start of phase 1 (base head grown, memory filled, teacher frozen); with
    ``log_dir``, the loggers of ``cfg.log`` after the probes, started (``trainer.logger_start_s``)."""
    method = build_method(cfg.method, cfg)
    ctx = build_context(cfg, scenario, method)
    probe_log = ProbeLog()
    callbacks = [Stopwatch(p) for p in build_probes(list(PROBES) if probes else [], probe_log)]
    callbacks += [Stopwatch(DivergenceGuard())] if guard else []
    loggers = build_loggers(cfg, log_dir, probe_log, {}) if log_dir is not None else []
    start = time.perf_counter()
    for logger in loggers:
        logger.before_run(ctx)
    callbacks += [Stopwatch(logger) for logger in loggers]
    trainer = Trainer(ctx, method, callbacks)
    method.ctx = ctx
    ctx.correct = np.full((scenario.num_tasks, scenario.num_classes), np.nan)
    trainer.begin_phase(scenario.tasks[0])
    trainer.update_memory(scenario.tasks[0])
    ctx.teacher = freeze(ctx.model)
    trainer.begin_phase(scenario.tasks[1])
    trainer.loggers, trainer.logger_start_s = loggers, time.perf_counter() - start
    return trainer


def timed_epoch(trainer: Trainer, epoch: int) -> tuple[float, int]:
    device = trainer.ctx.device
    if device.type == "cuda":
        torch.cuda.synchronize()
    start_step = trainer.ctx.step
    start = time.perf_counter()
    trainer.train_epoch(epoch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, trainer.ctx.step - start_step


def whole_runs(rounds: int) -> None:
    """Whole ``make figures``-protocol DGR runs (Fashion-MNIST-LT, 1 000 per head class) without loggers, with
    TensorBoard + CSV and with all three, interleaved: the loggers' per-run costs (imports, W&B's service start,
    the per-phase writes) on top of the per-epoch ones."""
    import gradlab
    from gradlab.runs.logs import LOGGERS, RunLogger

    inside = {"seconds": 0.0}

    def timed(handler):
        def wrapper(self, ctx):
            start = time.perf_counter()
            handler(self, ctx)
            inside["seconds"] += time.perf_counter() - start
        return wrapper

    for cls in {RunLogger, *LOGGERS.values()}:      # every logger event, timed from inside (the same code runs)
        for event in ("before_run", "before_epoch", "after_step", "after_epoch", "after_eval", "after_run"):
            if event in vars(cls):
                setattr(cls, event, timed(vars(cls)[event]))
    settings = dict(scenario="fashion_mnist", method="dgr", max_per_class=1000, progress=False, checkpoints=False)
    kinds = {"no loggers": [], "tensorboard + csv": ["tensorboard", "csv"], "tensorboard + csv + wandb":
             ["tensorboard", "csv", "wandb"]}
    times: dict[str, list[float]] = {name: [] for name in kinds}
    spent: dict[str, list[float]] = {}
    names = list(kinds)
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(rounds):
            for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                inside["seconds"], start = 0.0, time.perf_counter()
                gradlab.run(**settings, out=f"{folder}/{round_}-{names.index(name)}", log=kinds[name])
                times[name].append(time.perf_counter() - start)
                spent.setdefault(name, []).append(inside["seconds"])
    base = statistics.median(times["no loggers"])
    for name, values in times.items():
        share = sum(spent[name]) / (sum(values) - sum(spent[name]))
        print(f"[whole runs] {name:26s} median {statistics.median(values):6.2f} s  (ratio {statistics.median(values) / base:.3f}"
              f"; inside logger events {sum(spent[name]) / len(values):.2f} s per run -> in-situ ratio {1 + share:.4f})"
              f"   all: {', '.join(f'{v:.1f}' for v in values)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet32", choices=["resnet32", "small"])
    parser.add_argument("--max-per-class", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--whole-runs", type=int, default=0, help="also time N rounds of whole runs with / without "
                                                                  "loggers (needs Fashion-MNIST: make data)")
    args = parser.parse_args()

    base = dict(scenario="synthetic", order="lt", imbalance=100, base=50, tasks=2, max_per_class=args.max_per_class,
                model=args.model, epochs=1000, batch_size=args.batch_size, device=args.device, progress=False,
                precision="fp32")
    scenario = Scenario.from_config(RunConfig(**base).validate())
    configs = {
        "ce, probes off": (RunConfig(method="ce", **base).validate(), False),
        "ce, probes on": (RunConfig(method="ce", **base).validate(), True),
        "ce, probes off (2)": (RunConfig(method="ce", **base).validate(), False),
        "dgr, probes off": (RunConfig(method="dgr", **base).validate(), False),
        "ce, guard on": (RunConfig(method="ce", **base).validate(), False),
        "ce, probes + loggers": (RunConfig(method="ce", log=["tensorboard", "csv", "wandb"], **base).validate(), True),
    }
    os.environ.setdefault("WANDB_MODE", "offline")
    log_dir = Path(tempfile.mkdtemp(prefix="gradlab-overhead-"))
    trainers = {}
    for name, (cfg, probes) in configs.items():
        torch.manual_seed(0)
        trainers[name] = phase_one_trainer(cfg, scenario, probes, guard=name == "ce, guard on",
                                           log_dir=log_dir if cfg.log else None)
        timed_epoch(trainers[name], 0)   # warm-up epoch, not counted
    on, guarded, logged = trainers["ce, probes on"], trainers["ce, guard on"], trainers["ce, probes + loggers"]
    for watch in on.callbacks + guarded.callbacks + logged.callbacks:
        watch.seconds = 0.0
    times = {name: [] for name in configs}
    steps = {}
    names = list(trainers)
    for round_ in range(args.rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:   # rotate the order each round
            seconds, steps[name] = timed_epoch(trainers[name], round_ + 1)
            times[name].append(seconds)
    median = {name: statistics.median(values) for name, values in times.items()}
    device = trainers["ce, probes off"].ctx.device
    print(f"device {device}, model {args.model}, phase-1 training set {len(trainers['ce, probes off'].ctx.train_indices)} "
          f"images, {steps['ce, probes off']} steps/epoch, {args.rounds} interleaved rounds (median)")
    for name in configs:
        print(f"  {name:22s} {median[name]:8.3f} s/epoch   {1000 * median[name] / steps[name]:8.2f} ms/step")
    off = times["ce, probes off"] + times["ce, probes off (2)"]   # the two identical twins pooled
    for label, stat in (("median", statistics.median), ("min", min)):
        base = stat(off)
        print(f"[{label:6s}] ratio probes on / off (CE): {stat(times['ce, probes on']) / base:.3f}   (goal <= 1.03)   "
              f"DGR / CE step time: {stat(times['dgr, probes off']) / base:.3f}   "
              f"noise floor (twin / twin): {stat(times['ce, probes off (2)']) / stat(times['ce, probes off']):.3f}   "
              f"guard on / off (CE): {stat(times['ce, guard on']) / base:.3f}   (goal <= 1.01)   "
              f"loggers on / off (CE, probes on): {stat(times['ce, probes + loggers']) / stat(times['ce, probes on']):.3f}"
              "   (goal <= 1.02)")
    start = time.perf_counter()
    for logger in logged.loggers:
        logger.close()
    print(f"loggers' one-time cost: start {logged.logger_start_s:.2f} s, finish {time.perf_counter() - start:.2f} s "
          f"(TensorBoard + CSV + W&B {os.environ['WANDB_MODE']}; written to {log_dir})")
    if device.type == "cpu":   # in-situ: time inside the probes / the rest of the probes-on epochs
        inside = sum(watch.seconds for watch in on.callbacks)
        total = sum(times["ce, probes on"])
        print(f"[in-situ] time inside probe events: {inside:.3f} s of {total:.1f} s -> "
              f"ratio probes on / off (CE): {total / (total - inside):.4f}   (goal <= 1.03)")
        inside = sum(watch.seconds for watch in guarded.callbacks)
        total = sum(times["ce, guard on"])
        print(f"[in-situ] time inside the divergence guard: {inside:.4f} s of {total:.1f} s -> "
              f"ratio guard on / off (CE): {total / (total - inside):.4f}   (goal <= 1.01)")
        loggers = logged.callbacks[-len(logged.loggers):]
        inside = sum(watch.seconds for watch in loggers)
        total = sum(times["ce, probes + loggers"])
        print(f"[in-situ] time inside logger events: {inside:.3f} s of {total:.1f} s -> "
              f"ratio loggers on / off: {total / (total - inside):.4f}   (goal <= 1.02)")
    if args.whole_runs:
        whole_runs(args.whole_runs)


if __name__ == "__main__":
    main()
