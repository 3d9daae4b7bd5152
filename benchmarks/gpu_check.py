"""One command that checks gradlab's CUDA path: DGR step speed, host syncs, bf16, torch.compile, the official
code, packing, DDP, and what the CIFAR-100-LT LFS-20 run would take.

    .venv/bin/python benchmarks/gpu_check.py --device cuda --json benchmarks/results/gpu_check.json  # one H100/H200
    .venv/bin/python benchmarks/gpu_check.py --device cpu       # tiny settings (tests/test_gpu_check.py runs this)

Expected time on one H100/H200: 5-8 min, mostly the official comparison and torch.compile (a child process may
take --timeout s, 300 by default); the CPU tiny run about 30 s on 2 cores (benchmarks/README.md). Sections:

1. phase        DGR in phase 1 (DAKD, prior and classifier reweighting active) of configs/cifar100_lt_lt_lfh6.yaml
                (50 old + 10 new classes, 13 steps per epoch, near the LFS-20 mean of 10.4), fp32 and bf16:
                steps/s and images/s over whole epochs, with the per-step callbacks every run has.
2. sync         no host sync inside a training step: CUDA's sync debug mode "error" over N steps; if a step
                synchronises, its traceback, then one window in "warn" mode listing every line that did.
3. bf16         bf16 against fp32 from the same weights over the same batches: relative differences of loss and
                classifier after k steps (fails on NaN / inf, different batches or a loss difference > 0.1).
4. compile      steps/s with ``torch.compile`` on model and teacher (full batches: one shape), compile time, and
                whether it pays over an LFS-20 run (which compiles anew every phase: the head grows).
5. official     benchmarks/vs_official.py --device cuda (needs a checkout of JiangpengHe/imbalanced_cil).
6. packing      4 small digits runs at once on one device as separate processes (as a sweep with
                --gpus-per-run 0.25 places them) against one alone: training images/s summed over the runs.
7. ddp          ``torchrun --nproc-per-node 2 -m gradlab run ...`` against one process; needs 2 GPUs (or
                --ddp-on-cpu: 2 CPU processes over gloo); its summary.json must say "ranks".
8. extrapolate  the training time of configs/cifar100_lt_lt_lfs20.yaml (steps counted from the scenario).
Data: format-exact fake CIFAR-100 files (gradlab.data.fake_trees, as vs_official.py uses): the real pipeline
(long-tail counts, official hold-out, RandomResizedCrop on the device, ResNet-32) without a download.

Single steps through the trainer's own loop (section 2): after ``begin_phase`` the training set
(``ctx.train_indices``) is cut to N full batches, so ``Trainer.train_epoch`` runs exactly N steps. A callback
appended after all others (:class:`SyncWindow`) opens the debug mode at ``before_epoch`` and closes it at the
N-th ``after_step``: the window holds the data path, forward, losses, backward, DGR's rewrite, the optimizer and
every callback's step events, not the epoch end's ``float(loss_sum)`` (the trainer's one intended read per
epoch). The divergence guard's intended read every 50 steps is moved out (``every`` set very large). Nothing is
copied or monkeypatched; the detector is a parameter, so the tests drive the same window on CPU.

Exit 0 when every check passed or was skipped with its reason, 1 when one failed; a summary table comes last.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch._inductor.config

from gradlab.config import RunConfig
from gradlab.data.fake_trees import write_fake_cifar100
from gradlab.probes import ProbeLog, build_probes
from gradlab.runs.estimate import duration, train_images
from gradlab.runs.logs import RunLogger
from gradlab.runs.runner import _WallClock, build_trainer
from gradlab.scenario import Scenario
from gradlab.training.divergence import DivergenceGuard
from gradlab.training.trainer import Callback, Trainer, freeze

ROOT = Path(__file__).resolve().parent.parent
TIMED, LFS20 = ROOT / "configs" / "cifar100_lt_lt_lfh6.yaml", ROOT / "configs" / "cifar100_lt_lt_lfs20.yaml"
SECTIONS = ("phase", "sync", "bf16", "compile", "official", "packing", "ddp", "extrapolate")
TINY = {"max_per_class": 16, "imbalance": 2, "memory": 1, "batch_size": 32, "selection": "random"}  # 141 images
LOSS_LIMIT = 0.1                                 # bf16 against fp32: a larger loss difference is a gross mismatch


# ---------------------------------------------------------------------------------------------- trainers
def phase_one(args, root: Path, **over) -> Trainer:
    """A DGR trainer at the start of phase 1 (base memory chosen, teacher frozen) with the per-step callbacks
    every ``gradlab.run`` has: the default probes, the divergence guard, the wall clock, the loggers' shared
    step path. Phase 0 is not trained: it does not change what a step costs, and fp32 and bf16 start equal."""
    settings = {"data_root": str(root), "device": args.device, "progress": False, "checkpoints": False,
                **(TINY if args.tiny else {}), **over}
    callbacks = [*build_probes(RunConfig().probes, ProbeLog()), DivergenceGuard(), _WallClock(None, 0.0), RunLogger()]
    trainer = build_trainer(RunConfig.from_yaml(TIMED, settings), callbacks)
    first, second = trainer.ctx.scenario.tasks[:2]
    trainer.begin_phase(first)
    trainer.update_memory(first)
    trainer.ctx.teacher = freeze(trainer.ctx.model)
    trainer.begin_phase(second)
    return trainer


def cut(trainer: Trainer, steps: int) -> int:
    """Make every later epoch ``steps`` full batches (fewer if the phase is smaller); returns the steps."""
    ctx = trainer.ctx
    steps = max(1, min(steps, len(ctx.train_indices) // ctx.cfg.batch_size))
    ctx.train_indices = ctx.train_indices[: steps * ctx.cfg.batch_size]
    return steps


class StepTrace(Callback):
    """Counts training images and keeps every step's loss and batch indices (on the device, read at the end)."""

    def __init__(self):
        self.images, self.steps = 0, []

    def after_step(self, ctx) -> None:
        self.images += len(ctx.batch.y)
        self.steps.append((ctx.loss.detach().float(), ctx.batch.idx))


def time_steps(trainer: Trainer, steps: int, warm: int) -> dict:
    """Whole epochs until ``warm`` steps (not timed), then whole epochs until ``steps`` timed steps."""
    ctx, trace = trainer.ctx, StepTrace()
    drain = torch.cuda.synchronize if ctx.device.type == "cuda" else lambda: None
    begin = ctx.step
    while ctx.step - begin < warm:
        trainer.train_epoch(ctx.epoch + 1)
    trainer.callbacks.append(trace)
    drain()                                      # the device idle when the clock starts and stops
    first, t0 = ctx.step, time.perf_counter()
    while ctx.step - first < steps:
        trainer.train_epoch(ctx.epoch + 1)
    drain()
    seconds, done = time.perf_counter() - t0, ctx.step - first
    trainer.callbacks.remove(trace)
    return {"steps": done, "images": trace.images, "seconds": round(seconds, 3), "steps_per_s": done / seconds,
            "images_per_s": trace.images / seconds, "precision": ctx.precision, "batch_size": ctx.cfg.batch_size}


# ---------------------------------------------------------------------------------------------- host syncs
@contextmanager
def cuda_sync_debug(sites: list | None = None):
    """CUDA's sync debug mode over the block: "error" (a synchronising call raises), or with ``sites`` "warn",
    each sync's innermost gradlab line appended to ``sites``; back to "default" afterwards, whatever happened."""
    def record(message, *rest, **kwargs):
        frames = [f for f in traceback.extract_stack() if f"{os.sep}gradlab{os.sep}" in f.filename]
        if "synchroniz" in str(message) and frames:
            sites.append(f"{os.path.relpath(frames[-1].filename, ROOT)}:{frames[-1].lineno}  {frames[-1].line}")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = record if sites is not None else warnings.showwarning
        torch.cuda.set_sync_debug_mode("warn" if sites is not None else "error")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")


class SyncWindow(Callback):
    """Holds ``detector()`` (a context manager under which a host sync raises) open from ``before_epoch`` to the
    ``steps``-th ``after_step``; appended last, so it covers every other callback's step events."""

    def __init__(self, detector, steps: int):
        self.detector, self.steps, self.seen, self.active = detector, steps, 0, None

    def before_epoch(self, ctx) -> None:
        self.seen, self.active = 0, self.detector()
        self.active.__enter__()

    def after_step(self, ctx) -> None:
        self.seen += 1
        if self.seen == self.steps:
            self.close()

    def close(self) -> None:
        active, self.active = self.active, None
        if active is not None:
            active.__exit__(None, None, None)


def check_no_sync(trainer: Trainer, steps: int, detector=cuda_sync_debug) -> dict:
    """One warm-up epoch of ``steps`` full batches, then one inside a :class:`SyncWindow`: pass, or fail with
    the error and traceback of the first synchronising call (the detector is closed either way)."""
    steps = cut(trainer, steps)
    for guard in (c for c in trainer.callbacks if isinstance(c, DivergenceGuard)):
        guard.every = 10 ** 9                     # its read every 50 steps is intended: out of the window
    trainer.train_epoch(trainer.ctx.epoch + 1)   # lazy initialisation (cuBLAS, cuDNN, allocator) outside
    window = SyncWindow(detector, steps)
    trainer.callbacks.append(window)
    try:
        trainer.train_epoch(trainer.ctx.epoch + 1)
        return {"status": "pass", "steps": steps, "summary": f"no host sync in {steps} steps"}
    except Exception as err:  # noqa: BLE001 - whatever a step raised inside the window fails the check
        return {"status": "fail", "steps": steps, "error": f"{type(err).__name__}: {str(err).splitlines()[0]}",
                "traceback": traceback.format_exc()}
    finally:
        window.close()
        trainer.callbacks.remove(window)


def sync_check(trainers: dict, steps: int) -> dict:
    """:func:`check_no_sync` in each precision; where a step synchronised, every line that did (warn mode)."""
    out, lines = {}, []
    for precision, trainer in trainers.items():
        out[precision] = check_no_sync(trainer, steps)
        if out[precision]["status"] == "fail":
            sites: list[str] = []
            check_no_sync(trainer, steps, detector=lambda: cuda_sync_debug(sites))
            lines += [f"{precision}: {n} x {site}" for site, n in Counter(sites).most_common()]
    failed = [r for r in out.values() if r["status"] == "fail"]
    return {**(failed or list(out.values()))[0], "lines": lines, "precisions": {p: r["status"] for p, r in out.items()}}


# ---------------------------------------------------------------------------------------------- bf16 vs fp32
def same_batches(args, root: Path, steps: int) -> dict:
    """fp32 and bf16 trainers from the same weights over the same batches: relative differences after ``steps``."""
    runs = {}
    for precision in ("fp32", "bf16"):
        trainer, trace = phase_one(args, root, precision=precision), StepTrace()
        cut(trainer, steps)
        trainer.callbacks.append(trace)
        while len(trace.steps) < steps:
            trainer.train_epoch(trainer.ctx.epoch + 1)
        head = trainer.ctx.model.head
        runs[precision] = (torch.stack([s[0] for s in trace.steps]).cpu().double(), [s[1].cpu() for s in trace.steps],
                           torch.cat([head.weight.detach().flatten(), head.bias.detach()]).cpu().double())
    (loss32, idx32, w32), (loss16, idx16, w16) = runs["fp32"], runs["bf16"]
    loss_rel = float(((loss16 - loss32).abs() / loss32.abs().clamp_min(1e-12)).max())
    weight_rel = float((w16 - w32).abs().max() / w32.abs().max().clamp_min(1e-12))
    weight_l2 = float(torch.linalg.vector_norm(w16 - w32) / torch.linalg.vector_norm(w32).clamp_min(1e-12))
    same = len(idx32) == len(idx16) and all(torch.equal(a, b) for a, b in zip(idx32, idx16))
    ok = same and all(map(math.isfinite, (loss_rel, weight_rel, weight_l2))) and loss_rel <= LOSS_LIMIT
    return {"status": "pass" if ok else "fail", "steps": len(loss32), "same_batches": same,
            "summary": f"after {len(loss32)} steps: loss rel. diff. max {loss_rel:.2e} (limit {LOSS_LIMIT}), "
            f"classifier {weight_rel:.2e} (max) / {weight_l2:.2e} (L2)" + ("" if same else "; the batches differed"),
            "loss_rel_max": loss_rel, "classifier_rel_max": weight_rel, "classifier_rel_l2": weight_l2,
            "loss_fp32": loss32.tolist(), "loss_bf16": loss16.tolist()}


# ---------------------------------------------------------------------------------------------- torch.compile
def compile_check(args, root: Path, steps: int, counts: dict) -> dict:
    """Eager steps/s, then the same trainer with model and teacher compiled: cold compile time, steps/s, pay-back."""
    trainer = phase_one(args, root)
    per_epoch = cut(trainer, 16)                       # full batches only: one shape, one compile
    eager = time_steps(trainer, steps, warm=per_epoch)
    ctx = trainer.ctx
    ctx.model, ctx.teacher = torch.compile(ctx.model), torch.compile(ctx.teacher)
    warnings.filterwarnings("ignore", message="dynamo_pgo force disabled")   # says the caches are off, as asked
    with torch._inductor.config.patch(force_disable_caches=True):     # a cold compile, as on a fresh machine
        first = time_steps(trainer, 1, warm=0)                        # one epoch: compiles
        compiled = time_steps(trainer, steps, warm=per_epoch)
    compile_s = max(0.0, first["seconds"] - first["steps"] / eager["steps_per_s"])
    gain = 1 / eager["steps_per_s"] - 1 / compiled["steps_per_s"]               # seconds saved per step
    pays = gain > 0 and counts["phases"] * compile_s < counts["steps"] * gain
    speedup = compiled["steps_per_s"] / eager["steps_per_s"]
    return {"status": "pass", "summary": f"{ctx.precision}: {speedup:.2f}x eager, compile {compile_s:.0f} s; "
            f"{'pays' if pays else 'does not pay'} over LFS-20 ({counts['phases']} compiles, {counts['steps']} steps)",
            "precision": ctx.precision, "eager_steps_per_s": eager["steps_per_s"], "speedup": speedup,
            "compiled_steps_per_s": compiled["steps_per_s"], "compile_s": compile_s, "pays_for_lfs20": pays,
            "payback_steps": compile_s / gain if gain > 0 else None}


# ---------------------------------------------------------------------------------------------- child processes
def runs(args, cmds: list[list[str]], outs: list[Path]) -> tuple[float, list[dict]]:
    """Start every ``gradlab run`` command at once (``--out`` added, output in ``<out>.log``; one thread each on
    CPU) and wait for all: (wall seconds, their summary.json); RuntimeError with a log's end if one fails."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore",
           **({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"} if args.device == "cpu" else {})}
    t0, procs = time.perf_counter(), []
    try:
        for cmd, out in zip(cmds, outs):
            with open(f"{out}.log", "w") as log:
                procs.append(subprocess.Popen([*cmd, "--out", str(out)], stdout=log, stderr=subprocess.STDOUT,
                                              env=env, cwd=ROOT))
        for proc, out in zip(procs, outs):
            try:
                code = proc.wait(timeout=max(1.0, t0 + args.timeout - time.perf_counter()))
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"{out.name} did not finish in {args.timeout:.0f} s") from None
            if code != 0:
                raise RuntimeError(f"{out.name} failed (exit {code}): " + Path(f"{out}.log").read_text()[-1500:])
    finally:
        for proc in (p for p in procs if p.poll() is None):
            proc.kill()
            proc.wait()
    return time.perf_counter() - t0, [json.loads((out / "summary.json").read_text()) for out in outs]


def packing(args, work: Path, count: int = 4) -> dict:
    """``count`` digits runs at once on one device (separate processes) against one run alone."""
    cmd = [sys.executable, "-m", "gradlab", "run", "--scenario", "digits", "--method", "dgr", "--tasks", "3",
           "--epochs", "2" if args.tiny else "30", "--device", args.device, "--checkpoints", "false", "--quiet"]
    wall1, [alone] = runs(args, [cmd], [work / "alone"])
    wall4, packed = runs(args, [cmd] * count, [work / f"packed_{i}" for i in range(count)])
    total, one = sum(s["train_images_per_s"] for s in packed), alone["train_images_per_s"]
    return {"status": "pass", "summary": f"{len(packed)} runs at once: {total / one:.2f}x the training images/s of "
            f"one alone ({one:.0f} -> {total:.0f}); whole runs {count * wall1 / wall4:.2f}x", "runs": len(packed),
            "alone_images_per_s": one, "packed_images_per_s": total, "ratio": total / one, "wall_alone_s": wall1,
            "wall_packed_s": wall4, "wall_ratio": count * wall1 / wall4, "command": " ".join(cmd[1:])}


def ddp(args, work: Path, root: Path) -> dict:
    """``torchrun --nproc-per-node 2 -m gradlab run`` against the same run in one process."""
    flags = ["--scenario", "cifar100", "--method", "dgr", "--base", "50", "--tasks", "2", "--epochs", "1" if args.tiny
             else "2", "--data-root", str(root), "--device", args.device, "--checkpoints", "false", "--quiet"]
    flags += [f for k, v in (TINY.items() if args.tiny else ()) for f in (f"--{k.replace('_', '-')}", str(v))]
    out = {}
    for name, launch in (("one", []), ("two", ["-m", "torch.distributed.run", "--nproc-per-node", "2"])):
        cmd = [sys.executable, *launch, "-m", "gradlab", "run", *flags]
        wall, [summary] = runs(args, [cmd], [work / f"ddp_{name}"])
        out[name] = {"wall_s": wall, "images_per_s": summary["train_images_per_s"], "ranks": summary.get("ranks")}
    ok, speedup = bool(out["two"]["ranks"]), out["one"]["wall_s"] / out["two"]["wall_s"]
    return {"status": "pass" if ok else "fail", **out, "speedup": speedup,
            "summary": f"2 processes {speedup:.2f}x one (wall), ranks {out['two']['ranks']}",
            "reason": None if ok else "summary.json has no 'ranks': the run did not train distributed",
            "command": "torchrun --nproc-per-node 2 -m gradlab run " + " ".join(flags)}


def ratio_lines(text: str) -> list[str]:
    """vs_official.py's ratio table and goal lines, from its printed report."""
    lines = text.splitlines()
    begin = next((i for i, line in enumerate(lines) if line.startswith("speed ratio against")), None)
    return [] if begin is None else [line for line in lines[begin:] if line.strip()]


def official(args, work: Path) -> dict:
    places = [args.official] if args.official else [ROOT.parent / "imbalanced_cil", Path("/tmp/imbalanced_cil")]
    found = [p for p in places if (p / "src" / "main_incremental.py").is_file()]
    if not found:
        return {"status": "skip", "reason": f"the official DGR code is not in {', '.join(map(str, places))}; get "
                "it: git clone https://github.com/JiangpengHe/imbalanced_cil ../imbalanced_cil (or --official PATH)"}
    if args.tiny and not args.official:
        return {"status": "skip", "reason": "tiny run: the comparison takes minutes on a CPU; --official runs it"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "vs_official.py"), "--official", str(found[0]), "--device",
           args.device, "--rounds", "1", "--epochs", "1", "--phases", "2", "--variants", "gradlab fp32,gradlab bf16",
           "--cores", str(min(4, len(os.sched_getaffinity(0)))), "--save", str(work / "vs_official.json")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=ROOT)
    lines = ratio_lines(done.stdout)
    if done.returncode != 0 or not lines:
        return {"status": "fail", "reason": f"vs_official.py exit {done.returncode}, no ratios: {done.stderr[-1500:]}"}
    return {"status": "pass", "summary": "ratios below (> 1: gradlab faster)", "lines": lines, "command": cmd[1:]}


# ---------------------------------------------------------------------------------------------- LFS-20
def lfs20_steps(root: Path) -> dict:
    """Training steps of the LFS-20 config: per phase ceil((new images + min(memory, count) per old class) /
    batch), times epochs, from the scenario's counts (the fake tree has CIFAR-100's 500 images per class)."""
    cfg = RunConfig.from_yaml(LFS20, {"data_root": str(root), "device": "cpu"})
    scenario, per_phase = Scenario.from_config(cfg), []
    for task in scenario.tasks:
        old = scenario.train_counts[: scenario.classes_seen(task.index - 1)] if task.index else np.zeros(0)
        per_phase.append(math.ceil((len(task.train_indices) + int(np.minimum(old, cfg.memory).sum())) / cfg.batch_size))
    return {"phases": len(per_phase), "epochs": cfg.epochs, "steps_per_epoch": per_phase, "batch_size": cfg.batch_size,
            "steps": cfg.epochs * sum(per_phase), "images_estimate": train_images(cfg)[0]}


def extrapolate(counts: dict, phase: dict, compiled: dict, tiny: bool) -> dict:
    seconds = {p: counts["steps"] / r["steps_per_s"] for p, r in phase.items() if isinstance(r, dict)}
    if not seconds:
        return {"status": "skip", "reason": "no steps/s measured (section phase did not run)"}
    if compiled.get("status") == "pass":
        seconds[f"{compiled['precision']} compiled"] = (counts["steps"] / compiled["compiled_steps_per_s"]
                                                        + counts["phases"] * compiled["compile_s"])
    note = ("training steps only (no herding, evaluation, start-up; phase 0 has no teacher pass: leans long)"
            + ("; TINY settings (batch 32, small phases): not a forecast of the batch-128 run" if tiny else ""))
    return {"status": "pass", "summary": f"LFS-20, {counts['steps']} steps: " + ", ".join(
            f"{k} {duration(s)}" for k, s in seconds.items()), "hours": {k: s / 3600 for k, s in seconds.items()},
            "lines": [note], **counts}


# ---------------------------------------------------------------------------------------------- report
def text(result: dict) -> str:
    return result.get("summary") if result["status"] == "pass" else result.get("reason") or result.get("error")


def show(name: str, result: dict) -> None:
    """A section's result: one line, then its extra lines (timings, ratios, sync sites), a failure's traceback."""
    word = {"pass": "ok", "fail": "FAILED", "skip": "skipped"}[result["status"]]
    print(f"[{name}] {word} ({result['seconds']:.0f} s): {text(result)}", flush=True)
    for key in ("fp32", "bf16"):
        if isinstance(result.get(key), dict):
            print(f"[{name}]   {key}: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                     for k, v in result[key].items()), flush=True)
    for line in result.get("lines", []):
        print(f"[{name}]   {line}", flush=True)
    if result["status"] == "fail" and result.get("traceback"):
        print(result["traceback"], flush=True)


def verdict(sections: dict) -> int:
    """Print the summary table; 1 when a section failed, else 0."""
    print(f"\n{'section':12s} {'result':7s} detail")
    for name in SECTIONS:
        result = sections.get(name, {"status": "skip", "reason": "not run"})
        print(f"{name:12s} {result['status']:7s} {text(result)}")
    return int(any(r["status"] == "fail" for r in sections.values()))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action=argparse.BooleanOptionalAction, default=None,
                        help="tiny settings (default: on for cpu, off for cuda)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="time torch.compile (default: on for cuda; off for cpu, where compiling takes ~1 min)")
    parser.add_argument("--official", type=Path, help="a checkout of JiangpengHe/imbalanced_cil")
    parser.add_argument("--ddp-on-cpu", action="store_true", help="section ddp with 2 CPU processes (gloo)")
    parser.add_argument("--only", type=lambda t: [s for s in t.split(",") if s], default=list(SECTIONS),
                        help=f"comma list from {','.join(SECTIONS)}")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per measurement (cuda 100, tiny 4)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed for each child process")
    parser.add_argument("--json", type=Path, help="also write every result to this file")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA GPU (--device cpu runs the tiny check)")
    args.tiny = args.device == "cpu" if args.tiny is None else args.tiny
    args.compile = args.device == "cuda" if args.compile is None else args.compile
    steps = args.steps or (4 if args.tiny else 100)
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"gradlab GPU check on {device}, torch {torch.__version__}, {'tiny' if args.tiny else 'full'} settings",
          flush=True)
    sections, begin = {}, time.perf_counter()

    def section(name: str, work, skip: str | None = None) -> dict:
        t0, skip = time.perf_counter(), skip if name in args.only else "not selected (--only)"
        try:
            result = {"status": "skip", "reason": skip} if skip else work()
        except Exception as err:  # noqa: BLE001 - a section that crashes fails, with its traceback
            result = {"status": "fail", "error": f"{type(err).__name__}: {err}"[:400],
                      "traceback": traceback.format_exc()}
        sections[name] = {**result, "seconds": round(time.perf_counter() - t0, 1)}
        show(name, sections[name])
        return sections[name]

    with tempfile.TemporaryDirectory(prefix="gradlab-gpu-check-") as tmp:
        work = Path(tmp)
        root = write_fake_cifar100(work / "data", test_per_class=10)
        counts, trainers = lfs20_steps(root), {}

        def phase() -> dict:
            trainers.update({p: phase_one(args, root, precision=p) for p in ("fp32", "bf16")})
            warm = 0 if args.tiny else max(2, steps // 10)     # tiny: a rot check, not a measurement
            out = {p: time_steps(t, steps, warm) for p, t in trainers.items()}
            return {"status": "pass", **out, "summary": ", ".join(
                f"{p} {r['steps_per_s']:.1f} steps/s, {r['images_per_s']:.0f} img/s" for p, r in out.items())}

        def sync() -> dict:
            return sync_check(trainers or {p: phase_one(args, root, precision=p) for p in ("fp32", "bf16")},
                              4 if args.tiny else 20)

        phase_result = section("phase", phase)
        section("sync", sync, None if args.device == "cuda" else
                "CUDA sync debug mode (torch.cuda.set_sync_debug_mode) needs a GPU; not checked on CPU")
        section("bf16", lambda: same_batches(args, root, 3 if args.tiny else 20))
        compiled = section("compile", lambda: compile_check(args, root, steps, counts), None if args.compile else
                           "--no-compile (the default on CPU, where compiling ResNet-32 takes about a minute: "
                           "benchmarks/compile_step.py)")
        section("official", lambda: official(args, work))
        section("packing", lambda: packing(args, work))
        two = torch.cuda.device_count() >= 2 if args.device == "cuda" else args.ddp_on_cpu
        section("ddp", lambda: ddp(args, work, root), None if two else "1 GPU" if args.device == "cuda" else
                "CPU run without --ddp-on-cpu")
        section("extrapolate", lambda: extrapolate(counts, phase_result, compiled, args.tiny))
    seconds = round(time.perf_counter() - begin, 1)
    print(f"\ntotal {seconds:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": device, "torch": torch.__version__, "tiny": args.tiny, "seconds":
                                         seconds, "date": time.strftime("%Y-%m-%d"), "sections": sections},
                                        indent=1, default=str))
    return verdict(sections)


if __name__ == "__main__":
    raise SystemExit(main())
