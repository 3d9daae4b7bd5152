"""Where does a CPU run's system time go? Page faults from large evaluation batches, measured side by side.

Runs the same DGR run (Fashion-MNIST-LT, rho 100, head classes cut to ``--n-max``, 5 tasks, ResNet-32,
batch 128, fp32, ``--epochs`` per phase) in fresh processes pinned to one core, interleaved over ``--rounds``,
with the evaluation batch (test passes, herding features) at 512, 256 and 64, with glibc's malloc defaults
and with freed memory kept in the process (:mod:`gradlab.training.host_memory`, what gradlab CPU runs do now). Prints
per variant the median wall, user and system CPU seconds and minor page faults.

A tensor above glibc's mmap threshold is mapped fresh and unmapped when freed, so every such allocation
page-faults its memory in again, zero-filled by the kernel: system time. Evaluation batches of 512 make
activation maps of 32 MiB (512 x 16 x 32 x 32 floats); every map above the threshold is faulted in afresh.

    .venv/bin/python benchmarks/system_time.py [--rounds 3] [--epochs 1] [--n-max 1000]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {   # name -> (evaluation batch, glibc keeps freed memory)
    "eval batch 512, malloc defaults": (512, False),     # gradlab before 2026-12-02
    "eval batch 64, malloc defaults": (64, False),       # gradlab on 2026-12-02
    "eval batch 512, freed memory kept": (512, True),
    "eval batch 256, freed memory kept": (256, True),    # gradlab now
    "eval batch 64, freed memory kept": (64, True),
}


def child(spec: dict) -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import torch

    import gradlab
    from gradlab.data import device_data
    from gradlab.runs import runner

    torch.set_num_threads(1)
    device_data.EVAL_BATCH["cpu"] = spec["eval_batch"]
    if not spec["keep_memory"]:
        runner.keep_freed_memory = lambda: False          # leave glibc's defaults, as gradlab did before
    gradlab.run(scenario="fashion_mnist", order="lt", imbalance=100, max_per_class=spec["n_max"], tasks=5,
                method="dgr", model="resnet32", batch_size=128, epochs=spec["epochs"], precision="fp32",
                device="cpu", seed=0, progress=False, checkpoints=False, out=spec["out"])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    Path(spec["result"]).write_text(json.dumps({"user": usage.ru_utime, "sys": usage.ru_stime,
                                                "faults": usage.ru_minflt}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--n-max", type=int, default=1000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    rows: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for i, (name, (batch, keep)) in enumerate(VARIANTS.items()):
                spec = {"eval_batch": batch, "keep_memory": keep, "epochs": args.epochs, "n_max": args.n_max,
                        "out": f"{tmp}/run_{r}_{i}", "result": f"{tmp}/result.json"}
                start = time.perf_counter()
                subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], check=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL)
                row = {"wall": time.perf_counter() - start, **json.loads(Path(spec["result"]).read_text())}
                rows[name].append(row)
                print(f"round {r + 1}: {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()), flush=True)
    print(f"\nmedian of {args.rounds} rounds (DGR, Fashion-MNIST-LT, ResNet-32, fp32, one core)")
    print(f"{'variant':40s} {'wall s':>8s} {'user s':>8s} {'sys s':>8s} {'minor faults':>13s}")
    for name, runs in rows.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "user", "sys", "faults")}
        print(f"{name:40s} {med['wall']:8.1f} {med['user']:8.1f} {med['sys']:8.1f} {med['faults']:13.0f}")


if __name__ == "__main__":
    main()
