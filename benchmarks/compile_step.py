"""Does ``torch.compile`` pay back its compile time for a ResNet-32 training step on this machine?

For fp32 and bf16 autocast (both NHWC, gradlab's CPU layout) it times, in one process, an eager training step
(forward, cross-entropy, backward, SGD) and the same step with the backbone compiled by inductor, then prints
the compile time, both step times, and the steps after which compiling is ahead (never, when the compiled
step is not faster). Also the teacher's no-grad forward, eager and compiled.

    .venv/bin/python benchmarks/compile_step.py [--threads 1] [--batch 128] [--steps 12]
"""
from __future__ import annotations

import argparse
import copy
import os
import time
from contextlib import nullcontext

os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")   # time a real first compile, not a cache hit
import torch  # noqa: E402

from gradlab.models.factory import IncrementalNet, build_backbone  # noqa: E402


def timed(fn, steps: int, warm: int = 3) -> float:
    for _ in range(warm):
        fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 60, (args.batch,))
    print(f"ResNet-32, batch {args.batch}, {args.threads} thread(s), NHWC, torch {torch.__version__}")
    print(f"{'precision':9s} {'eager ms':>9s} {'compiled ms':>12s} {'compile s':>10s} {'pays back after':>16s}"
          f" {'teacher eager ms':>17s} {'teacher compiled ms':>20s}")
    for precision in ("fp32", "bf16"):
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
        times, compile_s = {}, 0.0
        for mode in ("eager", "compiled"):
            torch.manual_seed(0)
            model = IncrementalNet(build_backbone("resnet32"))
            model.head.grow(60)
            model = model.to(memory_format=torch.channels_last)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            if mode == "compiled":
                model.backbone = torch.compile(model.backbone)

            def step():
                with autocast:
                    loss = torch.nn.functional.cross_entropy(model(x).logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            teacher = copy.deepcopy(model).eval()

            def teacher_forward():
                with torch.no_grad(), autocast:
                    teacher(x)

            start = time.perf_counter()
            step()
            teacher_forward()
            if mode == "compiled":
                compile_s = time.perf_counter() - start
            times[mode] = (timed(step, args.steps), timed(teacher_forward, args.steps))
        (eager, t_eager), (compiled, t_compiled) = times["eager"], times["compiled"]
        gain = eager - compiled
        payback = f"{compile_s / gain:.0f} steps" if gain > 0 else "never"
        print(f"{precision:9s} {eager * 1e3:9.0f} {compiled * 1e3:12.0f} {compile_s:10.0f} {payback:>16s}"
              f" {t_eager * 1e3:17.0f} {t_compiled * 1e3:20.0f}", flush=True)


if __name__ == "__main__":
    main()
