"""Evaluation throughput by batch size and grad mode, measured side by side in one run.

Evaluation (test accuracy after every phase, herding features, validation losses) is a forward pass in eval
mode over every image. Its speed depends on the batch size (a large batch spills the CPU caches) and on
the grad mode (``torch.inference_mode`` skips autograd's version counting; ``no_grad`` does not). This script
times ResNet-32 forwards on CIFAR-sized images for each (batch size, mode), interleaved round by round in a
rotating order, and prints img/s and the ratio to gradlab's CPU default (``device_data.EVAL_BATCH``, inference
mode). As in a gradlab CPU run: NHWC layout and glibc told to keep freed memory (``gradlab.training.host_memory``;
``--keep-memory false`` leaves malloc's defaults, under which every large batch page-faults afresh).

    .venv/bin/python benchmarks/eval_batch.py                 # all cores
    .venv/bin/python benchmarks/eval_batch.py --threads 1     # one core, as one run of `gradlab figures`
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from gradlab.cli.parser import _bool
from gradlab.data.device_data import EVAL_BATCH as EVAL_BATCHES
from gradlab.models.factory import IncrementalNet, build_backbone
from gradlab.training.host_memory import keep_freed_memory

EVAL_BATCH = EVAL_BATCHES["cpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet32")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-sizes", default="64,128,256,512")
    parser.add_argument("--keep-memory", type=_bool, default=True)
    args = parser.parse_args()
    if args.keep_memory:
        keep_freed_memory()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = IncrementalNet(build_backbone(args.model, in_channels=3))
    model.head.grow(100)
    model = model.eval().to(memory_format=torch.channels_last)
    images = torch.randn(args.images, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    configs = [(size, mode) for size in sizes for mode in ("inference_mode", "no_grad")]

    def timed(size: int, mode: str) -> float:
        context = torch.inference_mode() if mode == "inference_mode" else torch.no_grad()
        start = time.perf_counter()
        with context:
            for i in range(0, len(images), size):
                model(images[i:i + size]).logits.argmax(1)
        return len(images) / (time.perf_counter() - start)

    timed(sizes[0], "inference_mode")                        # warm-up
    rates = {c: [] for c in configs}
    for round_ in range(args.rounds):
        for config in configs[round_ % len(configs):] + configs[:round_ % len(configs)]:
            rates[config].append(timed(*config))
    base = statistics.median(rates[(EVAL_BATCH, "inference_mode")]) if (EVAL_BATCH, "inference_mode") in rates else None
    print(f"{args.model}, {args.images} images 32x32, {torch.get_num_threads()} thread(s), {args.rounds} interleaved "
          f"rounds, NHWC, keep freed memory {args.keep_memory} (median img/s; ratio to batch {EVAL_BATCH}, "
          "inference_mode)")
    for (size, mode), values in rates.items():
        median = statistics.median(values)
        ratio = f"{median / base:.2f}x" if base else ""
        print(f"  batch {size:4d}  {mode:15s} {median:8.0f} img/s  {ratio}")


if __name__ == "__main__":
    main()
