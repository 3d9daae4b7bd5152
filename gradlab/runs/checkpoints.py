"""The checkpoint format: what a checkpoint holds, writing it, and reading it back with its checks.

Two kinds of checkpoint, both read with ``torch.load(weights_only=True)``:

- ``checkpoints/phase_N.pt`` after phase N's evaluation: the model (its tensors, which parameters train,
  and the small plain attributes of its modules, e.g. a head's ``task_sizes``), the memory, the method's own
  state, the RNG states (torch and the trainer's data-order generator), the correct counts, the phase log
  and how many probe rows were written;
- ``checkpoints/mid_phase.pt`` at the end of every ``checkpoint_every``-th epoch inside a phase: the same,
  plus the optimizer, the lr schedule, the epoch and the step, and inside an extra stage (BiC's bias layer,
  ...) the stage's index, epoch, optimizer, schedule, random generators and losses so far (``"stage"``). It is
  removed once the phase's own checkpoint is written.

Every checkpoint also carries its run's identity, ``"run": {"format", "settings", "seed"}`` (the settings
hash is :func:`settings_hash`, the one in ``run_key``; the phase is the state's own ``"phase"``). Reading
refuses, in one line naming the file, a checkpoint of another run, of another phase, a damaged or incomplete
one, and (to resume) one without identity (written before format 1: it cannot be told from another run's).
"""
from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gradlab.errors import RunFolderError
from gradlab.files import atomic_write, plain
from gradlab.plugins import plugins_fingerprint

MID_PHASE = "mid_phase.pt"
CHECKPOINT_FORMAT = 1            # 1: checkpoints carry "run" (their run's identity); 0: before, none
NOT_COMPARED = ("out", "progress", "checkpoint_every", "plugins", "log", "log_dir")   # settings that do not change a run's numbers
ADDED_LATER = {"sync_bn": False}       # settings added after records existed, with the default they had implicitly
_PLAIN = (int, float, bool, str, type(None))
# what restoring reads from a phase checkpoint, and from a mid-phase one besides
PHASE_KEYS = ("phase", "model", "model_structure", "memory", "method", "correct", "epoch_losses", "phase_log",
              "probe_rows", "torch_rng", "generator")
MID_KEYS = PHASE_KEYS + ("epoch", "step", "optimizer", "schedule", "multistep", "current_phase_log")


def settings_hash(cfg) -> str:
    """12 hex digits over every setting that changes a run's numbers (``run_key`` is method-hash), with the
    plugins' source where the run has plugins (an edited method is a different run)."""
    values = {k: v for k, v in cfg.to_dict().items() if k not in NOT_COMPARED}
    for key, default in ADDED_LATER.items():       # hashed only when set: older records keep their keys
        if values.get(key) == default:
            values.pop(key, None)
    if cfg.plugins:
        values["plugin_source"] = plugins_fingerprint(cfg.plugins)
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
    """Beside ``state_dict()``: which parameters train, and the values attributes of every submodule
    (the sizes it has grown to)."""
    attrs = {}
    for name, module in model.named_modules():
        values = {k: _pack(v) for k, v in vars(module).items()
                 if not k.startswith("_") and k != "training" and _pack(v) is not None and not torch.is_tensor(v)}
        attrs[name] = values
    return {"requires_grad": {n: p.requires_grad for n, p in model.named_parameters()}, "attrs": attrs}


def load_model_state(model: nn.Module, tensors: dict, structure: dict) -> None:
    """Load into a freshly built model, growing parameters and parameter lists to the saved shapes first."""
    for name, values in structure["attrs"].items():
        module = model.get_submodule(name) if name else model
        for key, value in values.items():
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
    ctx, run = trainer.ctx, trainer.stage_run
    if run is not None and run.stage.commit is not None:
        run.stage.commit()                       # the stage's working copies into the model first
    structure = model_structure(ctx.model)
    if run is not None:                          # the flags the parameters go back to when the stage ends
        names = {id(p): n for n, p in ctx.model.named_parameters()}
        structure["requires_grad"].update({names[id(p)]: flag for p, flag in zip(run.params, run.flags)
                                           if id(p) in names})
    state = {
        "phase": ctx.phase, "model": ctx.model.state_dict(), "model_structure": structure,
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
                     current_phase_log=json.dumps(ctx.phase_log, default=plain),
                     stage=None if run is None else run.state(next_epoch=ctx.epoch - run.offset + 1))
    return state


def write_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` (from :func:`capture`, with ``"run"`` from :func:`run_identity`) atomically."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


# ------------------------------------------------------------------------------------- reading
def read_checkpoint(path: Path, cfg=None, phase: int | None = None, keys=("phase", "model"),
                    need_identity: bool = False, hint: str = "") -> dict:
    """The checkpoint at ``path``, or a one-line error naming the file: unreadable, lacking ``keys``, of
    another run than ``cfg``'s, of another ``phase``, or (``need_identity``) without identity."""
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


