"""Resume: what a checkpoint holds, and how a run continues from it with the numbers it would have had.

Two kinds of checkpoint, both read with ``torch.load(weights_only=True)``:

- ``checkpoints/phase_N.pt`` after phase N's evaluation: the model (its tensors, which parameters train,
  and the small plain attributes of its modules, e.g. a head's ``task_sizes``), the memory, the method's own
  state, the RNG states (torch and the trainer's data-order generator), the correct counts, the phase log
  and how many probe rows were written;
- ``checkpoints/mid_phase.pt`` at the end of every ``checkpoint_every``-th epoch inside a phase: the same,
  plus the optimizer, the lr schedule, the epoch and the step. It is removed once the phase's own
  checkpoint is written.

Every checkpoint also carries its run's identity, ``"run": {"format", "settings", "seed"}`` (the settings
hash is :func:`settings_hash`, the one in ``run_key``; the phase is the state's own ``"phase"``). Resume
refuses, in one line naming the file, a checkpoint of another run, of another phase, a damaged or incomplete
one, and one without identity (written before format 1: it cannot be told from another run's; --overwrite).

A resumed run rebuilds everything from the settings, loads the newest checkpoint (a mid-phase one after
replaying its phase's start from the previous phase's checkpoint) and goes on; on the CPU the final
metrics equal an uninterrupted run's exactly.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

MID_PHASE = "mid_phase.pt"
CHECKPOINT_FORMAT = 1            # 1: checkpoints carry "run" (their run's identity); 0: before, none
NOT_COMPARED = ("out", "progress", "checkpoint_every")    # settings that do not change a run's numbers
_PLAIN = (int, float, bool, str, type(None))
# what restoring reads from a phase checkpoint, and from a mid-phase one besides
PHASE_KEYS = ("phase", "model", "model_structure", "memory", "method", "correct", "epoch_losses", "phase_log",
              "probe_rows", "torch_rng", "generator")
MID_KEYS = PHASE_KEYS + ("epoch", "step", "optimizer", "schedule", "multistep", "current_phase_log")


def settings_hash(cfg) -> str:
    """12 hex digits over every setting that changes a run's numbers (``run_key`` is method-hash)."""
    values = {k: v for k, v in cfg.to_dict().items() if k not in NOT_COMPARED}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]


def run_identity(cfg) -> dict:
    """What every checkpoint says of the run that wrote it."""
    return {"format": CHECKPOINT_FORMAT, "settings": settings_hash(cfg), "seed": cfg.seed}


# ------------------------------------------------------------------------------------- plain values
def _pack(value):
    """Plain values, tensors and numpy arrays (as {"__ndarray__": tensor}) that weights_only can load; None
    for anything else (objects, generators, modules: rebuilt, not restored)."""
    if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter):
        return value.detach().clone()
    if isinstance(value, np.ndarray) and value.dtype != object:
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(value))}
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (list, tuple)):
        items = [_pack(v) for v in value]
        return items if all(i is not None or v is None for i, v in zip(items, value)) else None
    if isinstance(value, dict) and all(isinstance(k, (int, str)) for k in value):
        items = {k: _pack(v) for k, v in value.items()}
        return items if all(items[k] is not None or value[k] is None for k in value) else None
    return None


def _unpack(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        if set(value) == {"__ndarray__"}:
            return value["__ndarray__"].numpy()
        return {k: _unpack(v, device) for k, v in value.items()}
    if isinstance(value, list):
        return [_unpack(v, device) for v in value]
    return value


def object_state(obj, skip=("cfg", "ctx")) -> dict:
    """The attributes of a method (or any object) that are plain values, tensors or arrays."""
    state = {}
    for key, value in vars(obj).items():
        if key in skip or isinstance(value, nn.Module):
            continue
        packed = _pack(value)
        if packed is not None or value is None:
            state[key] = packed
    return state


def load_object_state(obj, state: dict, device) -> None:
    for key, value in state.items():
        setattr(obj, key, _unpack(value, device))


# ------------------------------------------------------------------------------------- the model
def model_structure(model: nn.Module) -> dict:
    """Beside ``state_dict()``: which parameters train, and the plain attributes of every submodule
    (the sizes it has grown to)."""
    attrs = {}
    for name, module in model.named_modules():
        plain = {k: _pack(v) for k, v in vars(module).items()
                 if not k.startswith("_") and k != "training" and _pack(v) is not None and not torch.is_tensor(v)}
        attrs[name] = plain
    return {"requires_grad": {n: p.requires_grad for n, p in model.named_parameters()}, "attrs": attrs}


def load_model_state(model: nn.Module, tensors: dict, structure: dict) -> None:
    """Load into a freshly built model, growing parameters and parameter lists to the saved shapes first."""
    for name, plain in structure["attrs"].items():
        module = model.get_submodule(name) if name else model
        for key, value in plain.items():
            setattr(module, key, value)
    for key, tensor in tensors.items():
        *path, leaf = key.split(".")
        module = model
        for part in path:
            if isinstance(module, (nn.ParameterList, nn.ModuleList)) and part.isdigit():
                module = module[int(part)]
            else:
                module = getattr(module, part)
        if isinstance(module, nn.ParameterList) and leaf.isdigit():
            while len(module) <= int(leaf):
                module.append(nn.Parameter(torch.empty(0)))
            current = module[int(leaf)]
            if current.shape != tensor.shape:
                module[int(leaf)] = nn.Parameter(torch.empty_like(tensor, device=current.device))
        elif leaf in module._parameters:
            current = module._parameters[leaf]
            if current is None or current.shape != tensor.shape:
                device = current.device if current is not None else tensor.device
                setattr(module, leaf, nn.Parameter(torch.empty_like(tensor, device=device)))
        elif leaf in module._buffers:
            current = module._buffers[leaf]
            if current is None or current.shape != tensor.shape:
                module._buffers[leaf] = torch.empty_like(tensor, device=current.device if current is not None
                                                         else tensor.device)
    model.load_state_dict(tensors)
    for name, param in model.named_parameters():
        param.requires_grad_(structure["requires_grad"].get(name, param.requires_grad))


# ------------------------------------------------------------------------------------- trainer state
def capture(trainer, writer, within_phase: bool) -> dict:
    """Everything needed to go on from here (the end of a phase, or the end of an epoch inside one)."""
    from gradlab.records import _plain

    ctx = trainer.ctx
    state = {
        "phase": ctx.phase, "model": ctx.model.state_dict(), "model_structure": model_structure(ctx.model),
        "head_task_sizes": list(ctx.model.head.task_sizes),
        "memory": ctx.memory.state_dict(), "method": object_state(trainer.method),
        "torch_rng": torch.get_rng_state(), "generator": trainer.generator.get_state(),
        "correct": torch.as_tensor(ctx.correct), "epoch_losses": list(trainer.epoch_losses),
        "phase_log": json.dumps(writer.phase_log), "probe_rows": len(writer.probe_log) if writer.probe_log else 0,
        "device_type": ctx.device.type, "precision": ctx.precision,
    }
    if ctx.device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(ctx.device)
    if within_phase:
        state.update(epoch=ctx.epoch, step=ctx.step, optimizer=ctx.optimizer.state_dict(),
                     schedule=object_state(trainer.schedule, skip=("optimizer", "multistep")),
                     multistep=(trainer.schedule.multistep.state_dict() if hasattr(trainer.schedule, "multistep")
                                else None),
                     current_phase_log=json.dumps(ctx.phase_log, default=_plain))
    return state


def restore_phase(trainer, writer, state: dict, cut_probes: bool = True) -> None:
    """The state after a phase: model (teacher = its frozen copy), memory, method, RNGs, counts, logs
    (the probe log is cut back to the checkpoint, unless a mid-phase checkpoint cuts it later)."""
    from gradlab.trainer import freeze

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


def restore_within_phase(trainer, writer, state: dict) -> None:
    """After the phase's start was replayed: the model, optimizer, schedule and RNGs at the saved epoch."""
    ctx = trainer.ctx
    load_model_state(ctx.model, state["model"], state["model_structure"])
    ctx.model.to(ctx.device)
    ctx.optimizer = torch.optim.SGD([p for p in ctx.model.parameters() if p.requires_grad], lr=ctx.cfg.lr,
                                    momentum=ctx.cfg.momentum, weight_decay=ctx.cfg.weight_decay)
    ctx.optimizer.load_state_dict(state["optimizer"])
    from gradlab.schedules import build_schedule

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


def _restore_rng(trainer, state: dict) -> None:
    torch.set_rng_state(state["torch_rng"])
    trainer.generator.set_state(state["generator"])
    if "cuda_rng" in state and trainer.ctx.device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], trainer.ctx.device)


# ------------------------------------------------------------------------------------- where to go on
def read_checkpoint(path: Path, cfg=None, phase: int | None = None, keys=("phase", "model"),
                    need_identity: bool = False, hint: str = "") -> dict:
    """The checkpoint at ``path``, or a one-line error naming the file: unreadable, lacking ``keys``, of
    another run than ``cfg``'s, of another ``phase``, or (``need_identity``) without identity."""
    from gradlab.runfolder import RunFolderError

    name = repr(str(path))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # torch's own warnings before its error: gradlab's line says it
            state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - torch raises many types for a damaged file
        raise RunFolderError(f"{name} cannot be read ({type(err).__name__}): it is damaged or was not written by "
                             f"gradlab{hint}") from None
    if not isinstance(state, dict):
        raise RunFolderError(f"{name} is not a gradlab checkpoint (it holds a {type(state).__name__}){hint}")
    missing = [k for k in keys if k not in state]
    if missing:
        raise RunFolderError(f"{name} is not a complete gradlab checkpoint (no {', '.join(missing)}){hint}")
    run = state.get("run")
    if run is None:
        if need_identity:
            raise RunFolderError(f"{name} predates checkpoint identity (written by an older gradlab), so it cannot "
                                 "be told from another run's: pass --overwrite to start again")
    elif not isinstance(run, dict) or not {"format", "settings", "seed"} <= set(run):
        raise RunFolderError(f"{name} is damaged (its run identity is unreadable){hint}")
    elif not isinstance(run["format"], int) or run["format"] > CHECKPOINT_FORMAT:
        raise RunFolderError(f"{name} was written by a newer gradlab (checkpoint format {run['format']!r}, this "
                             f"gradlab reads {CHECKPOINT_FORMAT}); update gradlab")
    elif cfg is not None and (run["seed"], run["settings"]) != (cfg.seed, settings_hash(cfg)):
        raise RunFolderError(f"{name} belongs to another run (seed {run['seed']}, settings {run['settings']}), not "
                             f"this one (seed {cfg.seed}, settings {settings_hash(cfg)}){hint}")
    if phase is not None and state["phase"] != phase:
        raise RunFolderError(f"{name} holds phase {state['phase']!r}, not phase {phase}{hint}")
    return state


def load_checkpoint(path: Path, cfg=None, phase: int | None = None, keys=PHASE_KEYS) -> dict:
    """A checkpoint to resume ``cfg``'s run from (identity required)."""
    return read_checkpoint(path, cfg, phase, keys, need_identity=True,
                           hint="; the run cannot be resumed from it: pass --overwrite to start again")


def resume_point(folder: Path, cfg=None) -> tuple[dict | None, dict | None]:
    """(state after the last finished phase, state inside the phase after it), either may be None; every
    checkpoint read must be ``cfg``'s run's."""
    checkpoints = Path(folder) / "checkpoints"
    phases = sorted(int(p.stem.split("_")[1]) for p in checkpoints.glob("phase_*.pt") if p.stem.split("_")[1].isdigit())
    last = load_checkpoint(checkpoints / f"phase_{phases[-1]}.pt", cfg, phases[-1]) if phases else None
    mid = None
    if (checkpoints / MID_PHASE).is_file():
        mid = load_checkpoint(checkpoints / MID_PHASE, cfg, keys=MID_KEYS)
        if mid["phase"] != (last["phase"] + 1 if last else 0):      # stale: its phase has finished since
            mid = None
    return last, mid


# ------------------------------------------------------------------------------------- the plan
class ResumePlan:
    """What ``gradlab.run(..., resume=True)`` found in the folder and how it goes on."""

    def __init__(self, folder: Path, finished: bool = False, last: dict | None = None, mid: dict | None = None):
        self.folder, self.finished, self.last, self.mid = folder, finished, last, mid
        self.in_place = not finished

    def describe(self) -> str:
        if self.mid is not None:
            return f"phase {self.mid['phase']}, after epoch {self.mid['epoch']}"
        if self.last is not None:
            return f"after phase {self.last['phase']}"
        return "the start (no checkpoint had been written)"

    def check_machine(self, device_type: str, precision: str) -> None:
        """The run goes on in the device kind and precision it started with (``device`` and ``precision``
        auto may resolve otherwise on another machine), or a one-line error."""
        from gradlab.runfolder import RunFolderError

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
        import pandas as pd

        from gradlab.probes import ProbeLog

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
                restore_within_phase(trainer_, writer, mid)
                return mid["epoch"] + 1
            return first, within
        return resume


def plan_resume(out: Path, cfg) -> ResumePlan | None:
    """None when ``out`` holds nothing yet (a fresh run, with a warning); else the plan, or a one-line error
    saying why the folder cannot be resumed with these settings."""
    from gradlab.config import ConfigError, RunConfig
    from gradlab.records import RunFolderWarning
    from gradlab.runfolder import LOCK_NAME, RunFolderError, describe_holder, lock_holder

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"out: {str(out)!r} exists and is not a folder")
    if not out.is_dir() or not any(p.name != LOCK_NAME for p in out.iterdir()):
        warnings.warn(f"nothing to resume in {str(out)!r}: starting a fresh run", RunFolderWarning, stacklevel=3)
        return None
    holder = lock_holder(out)
    if holder is not None and not holder.get("stale"):
        raise RunFolderError(f"resume: {str(out)!r} is in use by a gradlab run ({describe_holder(holder)}); "
                             "wait for it to finish")
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
        raise RunFolderError(f"resume: the run in {str(out)!r} {status}; resuming would repeat it: change the "
                             "settings and pass --overwrite")
    if not stored.checkpoints:
        raise RunFolderError(f"resume: the run in {str(out)!r} was started with checkpoints off, so it cannot be "
                             "resumed; pass --overwrite to start again")
    last, mid = resume_point(out, stored)       # checked against the stored settings (written with the checkpoints)
    return ResumePlan(out, last=last, mid=mid)


def differing_settings(stored, wanted) -> list[str]:
    """'field: stored X, asked Y' for every setting (that changes the numbers) that differs."""
    import yaml

    a = yaml.safe_load(yaml.safe_dump(stored.to_dict()))
    b = yaml.safe_load(yaml.safe_dump(wanted.to_dict()))
    return [f"{key}: stored {a.get(key)!r}, asked {b.get(key)!r}" for key in sorted(set(a) | set(b))
            if key not in NOT_COMPARED and a.get(key) != b.get(key)]
