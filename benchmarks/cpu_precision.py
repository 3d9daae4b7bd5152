"""Does bf16 autocast + channels_last change the answer of the main job's runs, and how much faster is it?

Runs the quick Fashion-MNIST-LT protocol of ``gradlab figures --quick`` for CE and DGR over several seeds
in two numeric modes, side by side in one process pool (the runs of both modes interleaved, one thread
each): fp32 (NCHW) and bf16 autocast + channels_last (NHWC). Prints, per method and mode, the average
incremental accuracy (mean ± std over seeds) and the mean training wall time per run, then the speed
ratio and the accuracy difference with its spread.

    .venv/bin/python benchmarks/cpu_precision.py [--seeds 0,1,2] [--epochs 20] [--workers 2]
        [--model resnet32] [--methods DGR]
"""
from __future__ import annotations

import argparse
import tempfile

import numpy as np

from gradlab.experiments.paper_figures import figure_plan
from gradlab.runs.executor import run_many

MODES = {"fp32": {"precision": "fp32", "channels_last": False}, "bf16+NHWC": {"precision": "bf16", "channels_last": True}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=None, help="default: the quick protocol's")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--model", default=None, help="default: the quick protocol's (the small CNN)")
    parser.add_argument("--methods", default="CE,DGR", help="comma-separated, from CE, DGR")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods or set(methods) - {"CE", "DGR"}:
        parser.error(f"--methods: choose from CE, DGR, got {args.methods!r}")
    extra = {} if args.epochs is None else {"epochs": args.epochs}
    extra.update({} if args.model is None else {"model": args.model})
    configs = {}
    for seed in seeds:                                   # interleaved: each seed's runs of both modes together
        for mode, values in MODES.items():
            plan = figure_plan("weight_norms", seeds=[seed], **values, **extra)
            for label in methods:
                configs[(label, mode, seed)] = plan[label][seed]
    with tempfile.TemporaryDirectory() as cache:
        records = run_many({" ".join(map(str, key)): cfg for key, cfg in configs.items()}, cache,
                           workers=args.workers, log=print)
        rows = {key: records[" ".join(map(str, key))].summary for key in configs}
    model = args.model or "the small CNN"
    print(f"\nquick Fashion-MNIST-LT protocol, {model}, seeds {seeds}; accuracy = average incremental (class-weighted)")
    print(f"{'method':6s} {'mode':10s} {'accuracy (%)':>16s} {'s / run':>8s}")
    for label in methods:
        acc, secs = {}, {}
        for mode in MODES:
            acc[mode] = np.array([100 * rows[(label, mode, s)]["average_incremental_accuracy"] for s in seeds])
            secs[mode] = np.array([rows[(label, mode, s)]["wall_time_s"] for s in seeds])
            print(f"{label:6s} {mode:10s} {acc[mode].mean():9.1f} ± {acc[mode].std(ddof=1):4.1f} {secs[mode].mean():8.1f}")
        diff = acc["bf16+NHWC"] - acc["fp32"]
        print(f"{label:6s} speed-up fp32 / bf16+NHWC: {secs['fp32'].mean() / secs['bf16+NHWC'].mean():.2f}x; "
              f"accuracy difference (bf16 - fp32, same seed): {diff.mean():+.1f} ± {diff.std(ddof=1):.1f} points")


if __name__ == "__main__":
    main()
