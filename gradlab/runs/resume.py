"""Resume: how a run continues from its newest checkpoint with the numbers it would have had.

A resumed run rebuilds everything from the settings, loads the newest checkpoint (a mid-phase one after
replaying its phase's start from the previous phase's checkpoint; see :mod:`gradlab.runs.checkpoints` for
what they hold) and goes on; on the CPU the final metrics equal an uninterrupted run's exactly.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import torch
import yaml

from gradlab.config import RunConfig
from gradlab.errors import ConfigError, RunFolderError, RunFolderStopped, RunFolderWarning
from gradlab.probes import ProbeLog
from gradlab.runs.checkpoints import (
    NOT_COMPARED,
    load_model_state,
    load_object_state,
    resume_point,
)
from gradlab.runs.folder import holds_files, refuse_if_in_use
from gradlab.training.schedules import build_optimizer, build_schedule
from gradlab.training.trainer import freeze


def restore_phase(trainer, writer, state: dict, cut_probes: bool = True) -> None:
    """The state after a phase: model (teacher = its frozen copy), memory, method, RNGs, counts, logs
    (the probe log is cut back to the checkpoint, unless a mid-phase checkpoint cuts it later)."""
    ctx = trainer.ctx
    load_model_state(ctx.model, state["model"], state["model_structure"])
    ctx.model.to(ctx.device)
    ctx.memory.load_state_dict(state["memory"])
    load_object_state(trainer.method, state["method"], ctx.device)
    ctx.correct = state["correct"].numpy().copy()
    ctx.phase = state["phase"]
    trainer.epoch_losses = list(state["epoch_losses"])
    writer.phase_log = json.loads(state["phase_log"])
    if writer.probe_log is not None and cut_probes:
        writer.probe_log.truncate(state["probe_rows"])
    _restore_rng(trainer, state)
    ctx.teacher = freeze(ctx.model)


def restore_within_phase(trainer, writer, state: dict) -> int:
    """After the phase's start was replayed: the model, optimizer, schedule and RNGs at the saved epoch; returns
    the main epoch to go on with (past the last one when the checkpoint was written inside an extra stage)."""
    ctx = trainer.ctx
    load_model_state(ctx.model, state["model"], state["model_structure"])
    ctx.model.to(ctx.device)
    ctx.optimizer = build_optimizer(ctx.model, ctx.cfg)
    ctx.optimizer.load_state_dict(state["optimizer"])
    trainer.schedule = build_schedule(ctx.optimizer, ctx.cfg)
    if state["multistep"] is not None:
        trainer.schedule.multistep.load_state_dict(state["multistep"])
    load_object_state(trainer.schedule, state["schedule"], ctx.device)
    load_object_state(trainer.method, state["method"], ctx.device)
    ctx.epoch, ctx.step = state["epoch"], state["step"]
    ctx.phase_log = json.loads(state["current_phase_log"])
    trainer.epoch_losses = list(state["epoch_losses"])
    writer.phase_log = json.loads(state["phase_log"])
    if writer.probe_log is not None:
        writer.probe_log.truncate(state["probe_rows"])
    _restore_rng(trainer, state)
    if state.get("stage") is not None:          # inside an extra stage: the main epochs are done
        trainer.resume_stage = state["stage"]
        return ctx.cfg.epochs
    return state["epoch"] + 1


def _restore_rng(trainer, state: dict) -> None:
    torch.set_rng_state(state["torch_rng"])
    trainer.generator.set_state(state["generator"])
    if "cuda_rng" in state and trainer.ctx.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], trainer.ctx.device)


# ------------------------------------------------------------------------------------- the plan
class ResumePlan:
    """What ``gradlab.run(..., resume=True)`` found in the folder and how it goes on."""

    def __init__(self, folder: Path, finished: bool = False, last: dict | None = None, mid: dict | None = None):
        self.folder, self.finished, self.last, self.mid = folder, finished, last, mid
        self.in_place = not finished

    def describe(self) -> str:
        if self.mid is not None and self.mid.get("stage") is not None:
            stage = self.mid["stage"]
            return f"phase {self.mid['phase']}, stage {stage['name']}, after its epoch {stage['epoch'] - 1}"
        if self.mid is not None:
            return f"phase {self.mid['phase']}, after epoch {self.mid['epoch']}"
        if self.last is not None:
            return f"after phase {self.last['phase']}"
        return "the start (no checkpoint had been written)"

    def check_machine(self, device_type: str, precision: str) -> None:
        """The run goes on in the device kind and precision it started with (``device`` and ``precision``
        auto may resolve otherwise on another machine), or a one-line error."""
        state = self.mid if self.mid is not None else self.last
        if state is None:
            return
        then = (state.get("device_type", device_type), state.get("precision", precision))
        if then != (device_type, precision):
            raise RunFolderError(f"resume: the run in {str(self.folder)!r} trained on {then[0]} in {then[1]}, but "
                                 f"here its settings mean {device_type} in {precision}; resume it on a machine like the "
                                 "one it started on, or pass --overwrite to start again")

    def probe_log(self):
        """The probe rows written before the interruption (cut back to the checkpoint when restoring)."""
        path = self.folder / "probes.parquet"
        return ProbeLog.from_frame(pd.read_parquet(path)) if path.is_file() else ProbeLog()

    def hook(self, writer):
        """``Trainer.fit(resume=...)``: restore the last phase, then (inside ``run_phase``) the mid-phase state."""
        last, mid = self.last, self.mid

        def resume(trainer):
            first = 0
            if last is not None:
                restore_phase(trainer, writer, last, cut_probes=mid is None)
                first = last["phase"] + 1
            if mid is None:
                return first, None

            def within(trainer_):
                return restore_within_phase(trainer_, writer, mid)
            return first, within
        return resume


def plan_resume(out: Path, cfg) -> ResumePlan | None:
    """None when ``out`` holds nothing yet (a fresh run, with a warning); else the plan, or a one-line error
    saying why the folder cannot be resumed with these settings."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"out: {str(out)!r} exists and is not a folder")
    if not holds_files(out):
        warnings.warn(f"nothing to resume in {str(out)!r}: starting a fresh run", RunFolderWarning, stacklevel=3)
        return None
    refuse_if_in_use(out, who="resume")
    if not (out / "config.yaml").is_file():
        raise RunFolderError(f"resume: {str(out)!r} holds files but no gradlab run (no config.yaml); "
                             "choose another folder or pass --overwrite")
    try:
        stored = RunConfig.from_yaml(out / "config.yaml")
    except ConfigError as err:
        raise RunFolderError(f"resume: {str(out / 'config.yaml')!r} is broken ({err}); pass --overwrite") from None
    differ = differing_settings(stored, cfg)
    if differ:
        raise RunFolderError(f"resume: the settings differ from the run in {str(out)!r}: {'; '.join(differ)}; "
                             "resume with the stored settings, or pass --overwrite to start again")
    summary = out / "summary.json"
    if summary.is_file():
        try:
            status = json.loads(summary.read_text()).get("status", "complete")
        except (ValueError, AttributeError):
            raise RunFolderError(f"resume: {str(summary)!r} is corrupt; pass --overwrite") from None
        if status == "complete":
            return ResumePlan(out, finished=True)
        raise RunFolderStopped(f"resume: the run in {str(out)!r} {status}; resuming would repeat it: change the "
                               "settings and pass --overwrite")
    if not stored.checkpoints:
        raise RunFolderError(f"resume: the run in {str(out)!r} was started with checkpoints off, so it cannot be "
                             "resumed; pass --overwrite to start again")
    last, mid = resume_point(out, stored)       # checked against the stored settings (written with the checkpoints)
    return ResumePlan(out, last=last, mid=mid)


def differing_settings(stored, wanted) -> list[str]:
    """'field: stored X, asked Y' for every setting (that changes the numbers) that differs."""
    a = yaml.safe_load(yaml.safe_dump(stored.to_dict()))
    b = yaml.safe_load(yaml.safe_dump(wanted.to_dict()))
    return [f"{key}: stored {a.get(key)!r}, asked {b.get(key)!r}" for key in sorted(set(a) | set(b))
            if key not in NOT_COMPARED and a.get(key) != b.get(key)]
