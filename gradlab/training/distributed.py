"""One run on several processes: data-parallel training with the numbers of a 1-process run.

``torchrun --nproc-per-node N -m gradlab run ...`` starts N processes (ranks); each builds the same run from the
same seed. What keeps them one run, written out here rather than hidden in ``DistributedDataParallel`` (whose
hooks do not see the gradients an extra stage takes with ``torch.autograd.grad``, nor DGR's own statistics):

- every rank draws the same global batch (same generator) and trains on its contiguous slice of it
  (:meth:`Ranks.take`); a global batch with fewer images than ranks is taken whole by every rank;
- after ``backward`` every gradient is weighted by the rank's share of the global batch, n_r / n, and summed
  over ranks in one all-reduce (:meth:`Ranks.sync_gradients`). For a loss that is a mean over the batch's
  images, sum_r (n_r / n) grad mean_r = grad mean_global: the optimizer sees the 1-process gradient. The loss
  values ride in the same all-reduce, so the divergence guard, the epoch loss and the loggers see global values;
- per-class classifier-row gradients (DGR's Phi, alpha, r, beta; the gradient probe) are reduced the same way
  before use (:meth:`Ranks.reduce_weighted`, from :mod:`gradlab.training.row_gradients`);
- parameters and buffers are broadcast from rank 0 when a phase starts (after the head has grown and the method
  has prepared it), BatchNorm buffers at every epoch's end; the memory is selected on rank 0 and sent to all;
- evaluation is split across ranks and its counts summed;
- ``sync_bn``: BatchNorm layers normalise with the global batch's statistics (:class:`GlobalBatchNorm`, on CPU
  with gloo and on GPUs with NCCL), which makes N ranks train exactly like one process.

A method declares that its losses are means over a batch's images with ``distributed = True``; others refuse.
"""
from __future__ import annotations

import atexit
import os
from dataclasses import replace
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from gradlab.errors import ConfigError


class Ranks:
    """This process's place in the run: ``rank`` of ``world``; with ``world == 1`` every method is a no-op."""

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0):
        self.rank, self.world, self.local_rank = rank, world, local_rank
        self.weight = 1.0          # this rank's share of the current global batch (set by :meth:`take`)
        self.images = 0            # the current global batch's images (set by :meth:`take`)

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes the run folder, logs and shows progress."""
        return self.rank == 0

    def __repr__(self) -> str:
        return f"Ranks(rank={self.rank}, world={self.world})"

    # ------------------------------------------------------------------ slicing
    def shard(self, n: int) -> slice:
        """This rank's contiguous part of ``n`` items (sizes differ by at most one)."""
        return slice(n * self.rank // self.world, n * (self.rank + 1) // self.world)

    def take(self, batch):
        """This rank's slice of a global batch, remembering its share n_r / n for the gradient sum."""
        if not self.active:
            return batch
        n = self.images = len(batch.y)
        if n < self.world:                 # too few images to split: every rank takes all, each counts 1/N
            self.weight = 1.0 / self.world
            return batch
        part = self.shard(n)
        self.weight = (part.stop - part.start) / n
        return replace(batch, x=batch.x[part], y=batch.y[part], idx=batch.idx[part])

    # ------------------------------------------------------------------ reductions
    def reduce_weighted(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """sum_r weight_r * t_r for each tensor, in one all-reduce (float32); the inputs are left alone."""
        if not self.active or not tensors:
            return tensors
        flat = torch.cat([t.detach().float().reshape(-1) for t in tensors]) * self.weight
        dist.all_reduce(flat)
        out, start = [], 0
        for t in tensors:
            out.append(flat[start:start + t.numel()].view(t.shape))
            start += t.numel()
        return out

    def sync_gradients(self, params, values: torch.Tensor | None = None) -> torch.Tensor | None:
        """Every ``.grad`` of ``params`` (and ``values``, e.g. the step's loss terms) replaced by its weighted sum
        over ranks: one all-reduce per step. Returns the reduced ``values``."""
        if not self.active:
            return values
        grads = [p.grad for p in params if p.grad is not None]
        extra = [] if values is None else [values]
        reduced = self.reduce_weighted(grads + extra)
        for g, r in zip(grads, reduced):
            g.copy_(r)
        return reduced[-1] if values is not None else None

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """In-place sum over ranks (counts)."""
        if self.active:
            dist.all_reduce(tensor)
        return tensor

    # ------------------------------------------------------------------ sharing rank 0's state
    def broadcast_module(self, module: nn.Module, buffers_only: bool = False) -> None:
        """Rank 0's parameters (unless ``buffers_only``) and buffers on every rank."""
        if not self.active:
            return
        tensors = list(module.buffers()) if buffers_only else [*module.parameters(), *module.buffers()]
        with torch.no_grad():
            for dtype in dict.fromkeys(t.dtype for t in tensors):       # one broadcast per dtype
                group = [t for t in tensors if t.dtype == dtype]
                flat = torch.cat([t.detach().reshape(-1) for t in group])
                dist.broadcast(flat, src=0)
                start = 0
                for t in group:
                    t.copy_(flat[start:start + t.numel()].view_as(t))
                    start += t.numel()

    def broadcast_object(self, obj):
        """Rank 0's ``obj`` (picklable) on every rank."""
        if not self.active:
            return obj
        box = [obj if self.main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def agree(self, error: BaseException | None) -> None:
        """Every rank raises when any rank failed a check (so none waits for ever in a collective): the own error,
        or a one-line :class:`ConfigError` saying which rank refused and why."""
        if not self.active:
            if error is not None:
                raise error
            return
        messages = [None] * self.world
        dist.all_gather_object(messages, None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error
        failed = [(r, m) for r, m in enumerate(messages) if m is not None]
        if failed:
            rank, message = failed[0]
            raise ConfigError(f"rank {rank} refused the run: {message}")

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


SINGLE = Ranks()


def join_ranks(device: torch.device) -> tuple[Ranks, torch.device]:
    """The ranks torchrun started (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``), joined into one process group
    (NCCL on GPUs, gloo on CPU), and this rank's device (``cuda:LOCAL_RANK`` on GPUs). A plain process gets one
    rank and keeps ``device``."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return SINGLE, device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(f"torchrun started {world} ranks but this node has {torch.cuda.device_count()} GPU(s) "
                              f"for local rank {local}; use --nproc-per-node <= the GPUs, or device cpu")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        timeout = timedelta(seconds=float(os.environ.get("GRADLAB_DDP_TIMEOUT", "1800")))
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world,
                                timeout=timeout, **kwargs)
        atexit.register(_leave)          # kept for the process's further runs: torchrun cannot join a group twice
    return Ranks(rank, world, local), device


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def check_method_runs_on_ranks(method, ranks: Ranks) -> None:
    """A method trains on several ranks only when it declares ``distributed = True`` (its losses are means over
    the images of a batch, so the weighted gradient sum is the 1-process gradient); otherwise a one-line error."""
    if not ranks.active:
        return
    allowed = getattr(method, "distributed", None)
    if allowed is not True:
        reason = allowed if isinstance(allowed, str) else ("it does not declare that its losses are means over a "
                                                           "batch's images (a method that does sets distributed = True)")
        raise ConfigError(f"method {method.name!r} cannot train on {ranks.world} ranks: {reason}; run it in one "
                          "process (plain `gradlab run`)")


# ---------------------------------------------------------------------- BatchNorm over the global batch
class _SumOverRanks(torch.autograd.Function):
    """y = sum over ranks of x; the gradient of x is the sum over ranks of y's gradient (each rank's loss
    depends on y)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch (all ranks): the per-channel sum and sum
    of squares (shifted by the running mean, for precision) and the count are summed over ranks in one
    differentiable all-reduce, so the backward pass sums their gradients too. Eval mode, or one rank: plain
    BatchNorm. Works with gloo (CPU) and NCCL (GPU), any input rank (N, C, ...)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        shape = (1, -1) + (1,) * (x.dim() - 2)
        dims = [0, *range(2, x.dim())]
        xf = x.float()
        shift = (self.running_mean.detach().float() if self.track_running_stats
                 else torch.zeros(x.shape[1], device=x.device))
        d = xf - shift.view(shape)
        count = torch.full((1,), float(x.numel() // x.shape[1]), device=x.device)
        totals = _SumOverRanks.apply(torch.cat([d.sum(dims), (d * d).sum(dims), count]))
        c = x.shape[1]
        n = totals[-1]
        mean_d = totals[:c] / n
        var = (totals[c:2 * c] / n - mean_d * mean_d).clamp_min(0.0)
        mean = mean_d + shift
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var.detach() * n / (n - 1).clamp_min(1.0)
                self.running_mean.mul_(1 - factor).add_(mean.detach() * factor)
                self.running_var.mul_(1 - factor).add_(unbiased * factor)
        y = (xf - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.float().view(shape) + self.bias.float().view(shape)
        return y.to(x.dtype)


def global_batch_norm(module: nn.Module) -> nn.Module:
    """``module`` with every BatchNorm layer replaced by a :class:`GlobalBatchNorm` holding its parameters and
    buffers (the state-dict keys stay the same)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        new.load_state_dict(module.state_dict())
        held = [*module.parameters(), *module.buffers()]
        if held:
            new.to(held[0].device)                   # where the layer it replaces was
        new.train(module.training)
        if module.affine:
            new.weight.requires_grad_(module.weight.requires_grad)
            new.bias.requires_grad_(module.bias.requires_grad)
        return new
    for name, child in module.named_children():
        setattr(module, name, global_batch_norm(child))
    return module


def shard_indices(ranks: Ranks, indices: np.ndarray) -> np.ndarray:
    """This rank's contiguous part of an index list (evaluation)."""
    return indices[ranks.shard(len(indices))] if ranks.active else indices
