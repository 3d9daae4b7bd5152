"""Run by tests/test_distributed.py under torchrun (1 or 2 processes).

``steps``: from a phase-0 checkpoint, the incremental phase 1 of one method on this rank, saving what every step
computed (global loss, DGR's Phi / omega / beta), the final parameters, the memory, the counts and the probes:

    torchrun --nproc-per-node 2 tests/ddp_steps.py steps OUT_DIR METHOD SYNC_BN PHASE0_CHECKPOINT

``methods``: a tiny ``gradlab.run`` of each named method into ROOT/<method>.

``run``: ``gradlab.run`` of a small DGR run into RUN_DIR, interrupted (Ctrl-C) at the start of phase INTERRUPT
unless it is -1, or resumed (``resume``):

    torchrun --nproc-per-node 2 tests/ddp_steps.py run RUN_DIR INTERRUPT|resume
"""
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

import gradlab
from gradlab.errors import RunInterrupted
from gradlab.probes import ProbeLog, build_probes
from gradlab.runs.checkpoints import read_checkpoint
from gradlab.runs.resume import restore_phase
from gradlab.runs.runner import build_trainer
from gradlab.training.distributed import join_ranks
from gradlab.training.trainer import Callback

STEPS = dict(scenario="digits", tasks=2, epochs=2, model="small", device="cpu", precision="fp32",
             channels_last=False, seed=3, batch_size=50, progress=False, probes=["gradients", "weights"],
             probe_every="step")
RUN = dict(scenario="digits", tasks=3, epochs=2, method="dgr", model="small", device="cpu", precision="fp32",
           channels_last=False, seed=1, batch_size=40, sync_bn=True, progress=False, checkpoint_every=1)


class StepRecord(Callback):
    """Per step of phase 1 (main training and extra stages): the global loss, and DGR's statistics."""

    def __init__(self, method):
        self.method, self.rows = method, []

    def after_step(self, ctx):
        row = {"stage": ctx.stage, "loss": float(ctx.loss.detach())}
        if hasattr(self.method, "phi") and ctx.stage is None:
            scales = ctx.extras["row_scales"]
            row.update(phi=self.method.phi.clone(), omega=scales["ce"].clone(), beta=scales["kd"].clone())
        self.rows.append(row)


class Interrupt(Callback):
    def __init__(self, phase):
        self.phase = phase

    def before_task(self, ctx):
        if ctx.phase == self.phase:
            raise KeyboardInterrupt


def steps(out: str, method: str, sync_bn: str, phase0: str) -> None:
    cfg = gradlab.RunConfig(method=method, sync_bn=sync_bn == "true", **STEPS)
    ranks, device = join_ranks(torch.device("cpu"))
    log = ProbeLog()
    trainer = build_trainer(cfg, build_probes(cfg.probes, log, every="step"), ranks=ranks, device=device)
    record = StepRecord(trainer.method)
    trainer.callbacks.append(record)
    state = read_checkpoint(Path(phase0))

    def after_phase_0(trainer):
        restore_phase(trainer, SimpleNamespace(phase_log=[], probe_log=None), state)
        return 1, None
    trainer.fit(resume=after_phase_0)
    ctx = trainer.ctx
    torch.save({"params": {k: v.detach().clone() for k, v in ctx.model.state_dict().items()},
                "steps": record.rows, "memory": ctx.memory.state_dict(), "correct": torch.as_tensor(ctx.correct),
                "lost": getattr(trainer.method, "lost", None), "probes": log.frame(), "world": ranks.world,
                "batch_norm": sorted({type(m).__name__ for m in ctx.model.modules() if "Norm" in type(m).__name__})},
               Path(out) / f"rank{ranks.rank}.pt")


def run(folder: str, how: str) -> None:
    try:
        if how == "resume":
            gradlab.run(out=folder, resume=True, **RUN)
        else:
            gradlab.run(out=folder, callbacks=[Interrupt(int(how))], **RUN)
    except (RunInterrupted, KeyboardInterrupt) as err:
        print(f"interrupted: {err}", flush=True)


def methods(root: str, *names: str) -> None:
    """A tiny run of each method into ROOT/<method> (every rank takes part; rank 0 writes)."""
    for name in names:
        gradlab.run(out=str(Path(root) / name), **{**RUN, "method": name, "tasks": 2, "epochs": 1,
                                                   "checkpoint_every": 0, "val_fraction": 0.2})


if __name__ == "__main__":
    {"steps": steps, "run": run, "methods": methods}[sys.argv[1]](*sys.argv[2:])
