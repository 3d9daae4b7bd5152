"""Would a cheaper frozen network pay? The teacher's forward pass, evaluation and herding features run a
network that does not train; this times ResNet-32's no-grad forward pass as gradlab runs it (eager, NHWC) against
the same network with BatchNorm folded into the convolutions (``torch.fx``), TorchScript-frozen, and frozen with
``torch.jit.optimize_for_inference``, and prints each one's largest difference from the eager features.

    .venv/bin/python benchmarks/frozen_passes.py [--threads 1] [--batch 128] [--rounds 5]
"""
from __future__ import annotations

import argparse
import copy
import time
import warnings

import torch
from torch.fx.experimental.optimization import fuse

from gradlab.models.factory import build_backbone
from gradlab.training.host_memory import keep_freed_memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--passes", type=int, default=5, help="forward passes timed per round")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    torch.manual_seed(0)
    net = build_backbone("resnet32")
    x = torch.randn(args.batch, 3, 32, 32)
    with torch.no_grad():                         # a few training-mode passes: BatchNorm statistics not trivial
        for _ in range(3):
            net(x)
    net = net.eval().to(memory_format=torch.channels_last)
    x = x.contiguous(memory_format=torch.channels_last)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # TorchScript's deprecation notice
        frozen = torch.jit.freeze(torch.jit.trace(copy.deepcopy(net), x))
        optimized = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(copy.deepcopy(net), x)))
    variants = {"eager (gradlab)": net, "BatchNorm folded (fx)": fuse(copy.deepcopy(net)),
                "TorchScript frozen": frozen, "optimize_for_inference": optimized}
    with torch.no_grad():
        reference = net(x)
        error = {name: (model(x) - reference).abs().max().item() for name, model in variants.items()}
    speed = {name: [] for name in variants}
    for _ in range(args.rounds):                  # interleaved rounds
        for name, model in variants.items():
            with torch.no_grad():
                model(x)
                start = time.perf_counter()
                for _ in range(args.passes):
                    model(x)
                speed[name].append(args.passes * args.batch / (time.perf_counter() - start))
    base = sorted(speed["eager (gradlab)"])[args.rounds // 2]
    print(f"ResNet-32 no-grad forward, batch {args.batch}, NHWC fp32, {args.threads} thread(s), "
          f"median of {args.rounds} rounds, torch {torch.__version__}")
    print(f"{'variant':24s} {'img/s':>7s} {'vs eager':>9s} {'max |feature difference|':>25s}")
    for name, values in speed.items():
        median = sorted(values)[args.rounds // 2]
        print(f"{name:24s} {median:7.0f} {median / base:8.2f}x {error[name]:25.1e}")


if __name__ == "__main__":
    main()
