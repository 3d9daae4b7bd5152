"""Where a phase's training time goes, by operator: one epoch of the first incremental phase profiled with
``torch.profiler`` and grouped into convolution forward / backward, BatchNorm, ReLU and additions, the rest.

The configuration is ``vs_official.py``'s (CIFAR-100-LT lt, rho 100, learning from half, ResNet-32, batch 128,
DGR + DAKD, herding 20 per class) on format-exact fake CIFAR-100 files, one epoch per phase; phase 1 trains
without the profiler, phase 2's epoch is profiled.

    .venv/bin/python benchmarks/profile_phase.py [--precision fp32|bf16] [--threads 1] [--rows 0]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import gradlab
from gradlab.data.fake_trees import write_fake_cifar100
from gradlab.training.trainer import Callback

GROUPS = {   # self time of these aten operators, summed
    "convolutions forward": ("aten::mkldnn_convolution", "aten::convolution", "aten::_convolution", "aten::conv2d"),
    "convolutions backward": ("aten::convolution_backward",),
    "BatchNorm fwd + bwd": ("aten::native_batch_norm", "aten::native_batch_norm_backward", "aten::batch_norm",
                            "aten::_batch_norm_impl_index"),
    "ReLU fwd + bwd, additions": ("aten::clamp_min", "aten::relu", "aten::relu_", "aten::threshold_backward",
                                  "aten::add", "aten::add_"),
}


class Stop(Exception):
    pass


class ProfileSecondPhase(Callback):
    def __init__(self):
        self.profiler, self.seconds = None, 0.0

    def before_epoch(self, ctx):
        if ctx.phase == 1:
            self.profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self.profiler.__enter__()
            self.start = time.perf_counter()

    def after_epoch(self, ctx):
        if ctx.phase == 1:
            self.seconds = time.perf_counter() - self.start
            self.profiler.__exit__(None, None, None)
            raise Stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", type=int, default=0, help="also print the profiler's top operators")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    probe = ProfileSecondPhase()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_fake_cifar100(Path(tmp) / "data")
        cfg = dict(scenario="cifar100", order="lt", imbalance=100, base=50, tasks=6, method="dgr", model="resnet32",
                   batch_size=128, epochs=1, lr=0.1, momentum=0.9, weight_decay=5e-4, memory=20, selection="herding",
                   data_root=str(root), seed=0, device="cpu", progress=False, precision=args.precision)
        try:
            gradlab.run(cfg, out=str(Path(tmp) / "run"), callbacks=[probe])
        except Stop:
            pass
    events = probe.profiler.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    shares = {group: sum(e.self_cpu_time_total for e in events if e.key in names) / total
              for group, names in GROUPS.items()}
    shares["everything else"] = 1.0 - sum(shares.values())
    print(f"phase-2 epoch, {args.precision}, {args.threads} thread(s), torch {torch.__version__}: "
          f"{probe.seconds:.1f} s (profiled)")
    for group, share in shares.items():
        print(f"  {group:27s} {100 * share:5.1f} %")
    if args.rows:
        print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
