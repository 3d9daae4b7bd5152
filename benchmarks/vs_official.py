"""Side by side: gradlab against the official DGR code, same CPU, same configuration, same files.

    python benchmarks/vs_official.py --official PATH/TO/imbalanced_cil [--rounds 5] [--epochs 1] [--phases 2]
    python benchmarks/vs_official.py                 # without the official code: gradlab's own variants

The configuration is the paper's CIFAR-100-LT recipe: order lt, rho 100, learning from half (50 base
classes, 6 tasks), ResNet-32, batch 128, lr 0.1, momentum 0.9, weight decay 5e-4, DGR + DAKD, herding 20
exemplars per class, 10 % hold-out, seed 0; ``--epochs`` per phase and the first ``--phases`` phases (the
official ``--stop-at-task``). Both programs read the same format-exact CIFAR-100 files (a fake
``cifar-100-python`` folder, :func:`gradlab.data.fake_trees.write_fake_cifar100`; ``--data-root`` for the real
one), in fresh processes pinned to ``--cores`` cores with that many threads, one program after another within
a round and the rounds interleaved, so that a slow minute of the machine hits every program alike.

The official code is imported from the checkout's ``src/``, never copied into gradlab. The benchmark copies
``src/`` to a temporary folder and applies the one patch a CPU run needs: every ``.cuda()`` becomes ``.cpu()``
(it prints how many it changed), plus, for fake files only, torchvision's md5 check switched off. The official
loader runs in-process (``--num-workers 0``): on one pinned core, worker processes would only compete for it.

Timings come from wrappers around the programs, not from their own logs: training time is the time inside
each epoch's pass over the data (the official ``train_epoch``; gradlab's before_epoch -> after_epoch), divided
into the images that pass saw; evaluation is the test pass after each phase (the official ``eval`` of each
seen task's test loader; gradlab's after_task -> after_eval); the whole run is the child process's wall time
from start to exit (imports and data loading included). The official program also evaluates the
validation hold-out after every epoch; that time is part of its whole run and is shown on its own.

Each ratio is gradlab's speed over the reference's in the same round (throughput ratio, or reference wall /
gradlab wall), as min / median / max over the rounds; > 1 means gradlab is faster.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOALS = {("fp32", "wall"): 1.5, ("bf16", "wall"): 2.5, ("fp32", "train 2"): 1.3, ("bf16", "train 2"): 2.5}
GRADLAB_VARIANTS = {                     # name -> run settings
    "gradlab fp32 NCHW": {"precision": "fp32", "channels_last": False},
    "gradlab fp32": {"precision": "fp32"},
    "gradlab bf16": {"precision": "bf16"},
}


# ---------------------------------------------------------------------------------------------- children
def child_gradlab(spec: dict) -> dict:
    import torch

    import gradlab
    from gradlab.training.trainer import Callback

    torch.set_num_threads(spec["cores"])
    timing = {"train_s": {}, "train_images": {}, "eval_s": 0.0, "eval_images": 0}

    class Stop(Exception):
        pass

    class Timer(Callback):
        def before_epoch(self, ctx):
            self.t0 = time.perf_counter()

        def after_step(self, ctx):
            timing["train_images"][ctx.phase] = timing["train_images"].get(ctx.phase, 0) + len(ctx.batch.y)

        def after_epoch(self, ctx):               # the epoch's loss was read on the host: its work is done
            timing["train_s"][ctx.phase] = timing["train_s"].get(ctx.phase, 0.0) + time.perf_counter() - self.t0

        def after_task(self, ctx):
            self.t0 = time.perf_counter()

        def after_eval(self, ctx):
            timing["eval_s"] += time.perf_counter() - self.t0
            timing["eval_images"] += int((ctx.scenario.test.labels < ctx.num_seen).sum())
            if ctx.phase + 1 == spec["phases"]:
                raise Stop

    cfg = dict(scenario="cifar100", order="lt", imbalance=100, base=50, tasks=6, method="dgr", model="resnet32",
               batch_size=128, epochs=spec["epochs"], lr=0.1, momentum=0.9, weight_decay=5e-4, memory=20,
               selection="herding", data_root=spec["root"], seed=0, device=spec["device"], progress=False,
               **spec["settings"])
    try:
        gradlab.run(cfg, out=spec["out"], callbacks=[Timer()])
    except Stop:
        pass
    return timing


def child_official(spec: dict) -> dict:
    src = Path(spec["src"])
    sys.path.insert(0, str(src))
    os.chdir(spec["out"])                       # it saves modeltask0gw.pt into the working folder
    import torch
    import torchvision

    torch.set_num_threads(spec["cores"])
    if spec["fake"]:
        torchvision.datasets.CIFAR100._check_integrity = lambda self: True
        torchvision.datasets.cifar.check_integrity = lambda *args, **kwargs: True
    import main_incremental
    from approach import DGR
    from approach.incremental_learning import Inc_Learning_Appr
    from datasets.dataset_config import dataset_config

    dataset_config["cifar100_lt"]["path"] = spec["root"]
    timing = {"train_s": {}, "train_images": {}, "eval_s": 0.0, "eval_images": 0, "val_s": 0.0}
    inside = {"training": False}
    train_epoch, evaluate, train = DGR.Appr.train_epoch, Inc_Learning_Appr.eval, Inc_Learning_Appr.train

    def timed_train_epoch(self, t, loader):
        t0 = time.perf_counter()
        train_epoch(self, t, loader)
        timing["train_s"][t] = timing["train_s"].get(t, 0.0) + time.perf_counter() - t0
        timing["train_images"][t] = timing["train_images"].get(t, 0) + len(loader.dataset)

    def timed_eval(self, t, loader):
        t0 = time.perf_counter()
        out = evaluate(self, t, loader)
        if inside["training"]:
            timing["val_s"] += time.perf_counter() - t0
        else:
            timing["eval_s"] += time.perf_counter() - t0
            timing["eval_images"] += len(loader.dataset)
        return out

    def flagged_train(self, *args, **kwargs):
        inside["training"] = True
        try:
            return train(self, *args, **kwargs)
        finally:
            inside["training"] = False

    DGR.Appr.train_epoch, Inc_Learning_Appr.eval, Inc_Learning_Appr.train = timed_train_epoch, timed_eval, flagged_train
    argv = ["--datasets", "cifar100_lt", "--num-tasks", "6", "--network", "resnet32", "--seed", "0",
            "--nepochs", str(spec["epochs"]), "--batch-size", "128", "--results-path", spec["out"],
            "--approach", "DGR", "--gpu", "0", "--lr", "0.1", "--lr-factor", "10", "--momentum", "0.9",
            "--weight-decay", "5e-4", "--nc-first-task", "50", "--schedule_step", "80", "120",
            "--num-exemplars-per-class", "20", "--exemplar-selection", "herding",
            "--stop-at-task", str(spec["phases"]), "--num-workers", "0"]
    main_incremental.main(argv)
    return timing


def child_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    os.sched_setaffinity(0, set(range(spec["cores"])))
    timing = (child_official if spec["program"] == "official" else child_gradlab)(spec)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    timing.update(user_s=usage.ru_utime, sys_s=usage.ru_stime, minor_faults=usage.ru_minflt)
    Path(spec["result"]).write_text(json.dumps(timing))


# ---------------------------------------------------------------------------------------------- parent
def patched_official(official: Path, into: Path, device: str = "cpu") -> Path:
    """A copy of the official ``src/``, with ``.cuda()`` -> ``.cpu()`` for a CPU run (nothing changed for
    CUDA); prints what it changed."""
    if not (official / "src" / "main_incremental.py").is_file():
        raise SystemExit(f"--official: {str(official)!r} is not a checkout of JiangpengHe/imbalanced_cil "
                         "(no src/main_incremental.py)")
    src = into / "official_src"
    shutil.copytree(official / "src", src)
    changed = []
    if device == "cuda":
        print("device patch: none (the official code runs on CUDA as published)")
        return src
    for path in sorted(src.rglob("*.py")):
        text = path.read_text()
        if ".cuda()" in text:
            changed.append(f"{path.relative_to(src)} ({text.count('.cuda()')})")
            path.write_text(text.replace(".cuda()", ".cpu()"))
    print(f"device patch: '.cuda()' -> '.cpu()' in {', '.join(changed) or 'no file'}; nothing else changed")
    return src


def run_child(spec: dict, work: Path, cores: int) -> dict:
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    threads = str(cores)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONWARNINGS": "ignore"}
    if spec["device"] == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""          # the official code takes a GPU whenever it sees one
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", str(spec_path)], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{spec['program']} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    timing = json.loads(Path(spec["result"]).read_text())
    timing["wall_s"] = wall
    return timing


def throughputs(timing: dict, phases: int) -> dict:
    out = {f"train {p + 1}": timing["train_images"][str(p)] / timing["train_s"][str(p)] for p in range(phases)}
    out["eval"] = timing["eval_images"] / timing["eval_s"]
    out["wall"] = timing["wall_s"]
    out["val"] = timing.get("val_s", 0.0)
    out["sys"] = timing["sys_s"]
    return out


def spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, help="a checkout of https://github.com/JiangpengHe/imbalanced_cil")
    parser.add_argument("--data-root", type=Path, help="folder holding cifar-100-python (default: fake files)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1, help="epochs per phase (the paper: 160)")
    parser.add_argument("--phases", type=int, default=2, help="phases to run (base + incremental), 2..6")
    parser.add_argument("--cores", type=int, default=1, help="cores to pin each program to (= its threads)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="cuda: both programs on the GPU, the official code unpatched (not measured yet)")
    parser.add_argument("--variants", default=",".join(GRADLAB_VARIANTS),
                        help=f"gradlab variants, comma-separated, from {list(GRADLAB_VARIANTS)}")
    parser.add_argument("--save", type=Path, help="also write every round's numbers to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child)
        return 0
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in GRADLAB_VARIANTS]
    if bad or not variants:
        parser.error(f"--variants: {bad or 'nothing'} not allowed; choose from {list(GRADLAB_VARIANTS)}")
    if not 2 <= args.phases <= 6 or args.rounds < 1 or args.epochs < 1:
        parser.error("--phases must be 2..6, --rounds and --epochs >= 1")
    if not 1 <= args.cores <= len(os.sched_getaffinity(0)):
        parser.error(f"--cores must be 1..{len(os.sched_getaffinity(0))} (the cores this process may use)")

    from gradlab.data.fake_trees import write_fake_cifar100

    programs = (["official"] if args.official else []) + variants
    reference = programs[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = patched_official(args.official.resolve(), tmp, args.device) if args.official else None
        root = args.data_root.resolve() if args.data_root else write_fake_cifar100(tmp / "data")
        print(f"device {args.device}; CPU: {cpu_model()}; {args.cores} pinned core(s); torch threads = cores; "
              f"{args.epochs} epoch(s) per phase, {args.phases} phases, {args.rounds} rounds; "
              f"{'real' if args.data_root else 'fake'} CIFAR-100 files", flush=True)
        results: dict[str, list[dict]] = {p: [] for p in programs}
        for r in range(args.rounds):
            for program in programs:
                out = tmp / f"run_{r}_{programs.index(program)}"
                out.mkdir()
                spec = {"program": "official" if program == "official" else "gradlab", "src": str(src),
                        "root": str(root), "fake": args.data_root is None, "out": str(out),
                        "result": str(tmp / "result.json"), "cores": args.cores, "epochs": args.epochs,
                        "phases": args.phases, "settings": GRADLAB_VARIANTS.get(program, {}),
                        "device": args.device}
                results[program].append(throughputs(run_child(spec, tmp, args.cores), args.phases))
                row = results[program][-1]
                print(f"round {r + 1}: {program}: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()), flush=True)
                shutil.rmtree(out)
    if args.save:
        args.save.write_text(json.dumps({"cpu": cpu_model(), "date": time.strftime("%Y-%m-%d"), "args": {
            k: str(v) for k, v in vars(args).items() if k != "child"}, "results": results}, indent=1))
    report(results, reference, args.phases)
    return 0


def report(results: dict[str, list[dict]], reference: str, phases: int) -> None:
    columns = [f"train {p + 1}" for p in range(phases)] + ["eval", "wall"]
    print("\nmedian over rounds: training img/s per phase, evaluation img/s, whole-run wall s, system CPU s"
          + (", official per-epoch validation s" if "official" in results else ""))
    shown = columns + ["sys"] + (["val"] if "official" in results else [])
    print(f"{'program':20s}" + "".join(f"{c:>12s}" for c in shown))
    for program, rows in results.items():
        cells = [statistics.median(r[c] for r in rows) for c in shown if c != "val" or program == "official"]
        print(f"{program:20s}" + "".join(f"{v:12.1f}" for v in cells))
    print(f"\nspeed ratio against {reference} (same round; min / median / max; > 1: faster)")
    print(f"{'program':20s}" + "".join(f"{c:>20s}" for c in columns))
    for program, rows in results.items():
        if program == reference:
            continue
        ratios = {c: [(ref[c] / row[c]) if c == "wall" else (row[c] / ref[c])
                      for row, ref in zip(rows, results[reference])] for c in columns}
        print(f"{program:20s}" + "".join(f"{spread(ratios[c]):>20s}" for c in columns))
        if reference == "official":
            precision = "bf16" if "bf16" in program else "fp32"
            for (goal_precision, column), goal in GOALS.items():
                if goal_precision == precision and "NCHW" not in program:
                    got = statistics.median(ratios[column])
                    print(f"  goal {column} >= {goal}x at {precision}: median {got:.3f}x "
                          f"{'met' if got >= goal else 'NOT met'}")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
