"""Small-image data held on the device as one uint8 tensor, augmented a whole batch at a time.

As in airbench: no DataLoader, no per-sample Python. A step draws indices, gathers, and augments
with tensor ops. All randomness comes from a CPU ``torch.Generator`` so that the same seed gives the
same batches and the same augmentations on CPU and GPU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

# Evaluation batch size per device (test passes, herding features, validation losses). On the CPU, with freed
# memory kept (gradlab.training.host_memory), batches up to 256 of 32x32 images keep every activation map under glibc's
# 32 MiB mmap limit (512 x 16 x 32 x 32 floats is 32 MiB: mapped and page-faulted afresh each time); whole DGR
# runs on one core were 7 % faster with 512 than with 64 on 28x28 images (benchmarks/system_time.py) and 256
# was the fastest batch on 32x32 (benchmarks/eval_batch.py). In NHWC the logits are bit-identical for any batch
# size (tests/test_speed_settings.py). GPUs want large batches.
EVAL_BATCH = {"cpu": 256, "cuda": 512}

AUGMENTATIONS = ("crop_flip", "resized_crop", "none")


@dataclass
class Batch:
    """One mini-batch: normalised images (B, C, H, W), class positions, and indices into the image set."""

    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor


class DeviceImages:
    """uint8 images (N, C, H, W) and labels on ``device``, with batched augmentation.

    ``augment``: ``crop_flip`` (zero-pad by ``pad``, random crop back, random horizontal flip when
    ``flip``), ``resized_crop`` (the official DGR / FACIL CIFAR recipe: Pad(4) then
    RandomResizedCrop(scale 0.08-1, ratio 3/4-4/3) then flip), or ``none``.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean, std, device="cpu",
                 augment: str = "crop_flip", pad: int = 4, flip: bool = True):
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
        self.device = torch.device(device)
        self.images = torch.as_tensor(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(self.device)
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        channels = self.images.shape[1]
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, channels, 1, 1)
        self.augment, self.pad, self.flip = augment, pad, flip

    def __len__(self) -> int:
        return len(self.labels)

    # ------------------------------------------------------------------ iteration
    def train_batches(self, indices: np.ndarray, batch_size: int, generator: torch.Generator,
                      shuffle: bool = True) -> Iterator[Batch]:
        """Shuffled, augmented batches over ``indices`` (the last batch may be smaller); ``shuffle=False``
        keeps the order of ``indices`` (a sampler that lays out its batches itself, e.g. class-aware)."""
        indices = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        order = indices[torch.randperm(len(indices), generator=generator)] if shuffle else indices
        for start in range(0, len(order), batch_size):
            idx = self.to_device(order[start:start + batch_size])
            x = self.augmented(idx, generator)
            yield Batch(x=x, y=self.labels[idx], idx=idx)

    def eval_batches(self, indices: np.ndarray, batch_size: int | None = None) -> Iterator[Batch]:
        """Batches over ``indices`` in order, without augmentation (``EVAL_BATCH`` for the device by default)."""
        batch_size = batch_size or EVAL_BATCH.get(self.device.type, EVAL_BATCH["cpu"])
        indices = torch.as_tensor(np.asarray(indices), dtype=torch.long).to(self.device)
        for start in range(0, len(indices), batch_size):
            idx = indices[start:start + batch_size]
            yield Batch(x=self.normalise(self.images[idx]), y=self.labels[idx], idx=idx)

    def to_device(self, t: torch.Tensor) -> torch.Tensor:
        """A tensor drawn on the host (indices, crop offsets) on the device without a host sync: on a GPU, copied
        from pinned memory asynchronously (a plain copy would wait for the GPU to finish its queue)."""
        if self.device.type == "cuda":
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    # ------------------------------------------------------------------ transforms
    def normalise(self, x_uint8: torch.Tensor) -> torch.Tensor:
        return (x_uint8.float().div_(255.0) - self.mean) / self.std

    def augmented(self, idx: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = self.images[idx.to(self.device)]
        if self.augment == "crop_flip":
            return self.normalise(self._crop_flip(x, generator))
        if self.augment == "resized_crop":
            return self._resized_crop(x, generator)
        return self.normalise(x)

    def _flips(self, n: int, generator: torch.Generator) -> torch.Tensor:
        if not self.flip:
            return torch.zeros(n, dtype=torch.bool)
        return torch.rand(n, generator=generator) < 0.5

    def _crop_flip(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random crop of the zero-padded batch plus horizontal flips, by one gather."""
        n, _, h, w = x.shape
        p = self.pad
        top = torch.randint(0, 2 * p + 1, (n,), generator=generator)
        left = torch.randint(0, 2 * p + 1, (n,), generator=generator)
        flipped = self._flips(n, generator)
        rows = top[:, None] + torch.arange(h)
        col_steps = torch.where(flipped[:, None], torch.arange(w - 1, -1, -1), torch.arange(w))
        cols = left[:, None] + col_steps
        rows, cols = self.to_device(rows), self.to_device(cols)
        padded = F.pad(x, (p, p, p, p)) if p else x
        batch = torch.arange(n, device=x.device)[:, None, None]
        out = padded[batch, :, rows[:, :, None], cols[:, None, :]]     # (n, h, w, c)
        return out.permute(0, 3, 1, 2)

    def _resized_crop(self, x: torch.Tensor, generator: torch.Generator, attempts: int = 10) -> torch.Tensor:
        """Pad, then torchvision's RandomResizedCrop semantics (10 tries, else the whole image) and flips,
        batched with one bilinear ``grid_sample``; takes uint8 and returns normalised floats."""
        n, _, h, w = x.shape
        p = self.pad
        x = self.normalise(F.pad(x, (p, p, p, p)) if p else x)   # black padding, as Pad(4) on the image
        size_h, size_w = h + 2 * p, w + 2 * p
        top, left, ch, cw = batch_crop_boxes(n, size_h, size_w, generator, attempts)
        flipped = self._flips(n, generator)
        # output pixel i samples source coordinate left + (i + 0.5) * cw / w - 0.5 (pixel units)
        grid_x = left[:, None] + (torch.arange(w) + 0.5)[None] * (cw / w)[:, None]
        grid_x = torch.where(flipped[:, None], grid_x.flip(1), grid_x)
        grid_y = top[:, None] + (torch.arange(h) + 0.5)[None] * (ch / h)[:, None]
        gx = (2 * grid_x / size_w - 1)[:, None, :].expand(n, h, w)
        gy = (2 * grid_y / size_h - 1)[:, :, None].expand(n, h, w)
        grid = self.to_device(torch.stack([gx, gy], dim=-1).float())
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def batch_crop_boxes(n: int, size_h: int, size_w: int, generator: torch.Generator, attempts: int = 10):
    """(top, left, h, w) float tensors of ``n`` RandomResizedCrop boxes, torchvision's sampling (scale 0.08-1,
    ratio 3/4-4/3, the first of ``attempts`` tries that fits, else the whole image), drawn for the batch at once."""
    area = size_h * size_w
    target = area * (0.08 + (1.0 - 0.08) * torch.rand(n, attempts, generator=generator))
    log_lo, log_hi = math.log(3 / 4), math.log(4 / 3)
    ratio = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(n, attempts, generator=generator))
    cw = torch.round(torch.sqrt(target * ratio))
    ch = torch.round(torch.sqrt(target / ratio))
    ok = (cw > 0) & (cw <= size_w) & (ch > 0) & (ch <= size_h)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
    pick = first.clamp(min=0)
    cw = torch.where(first >= 0, cw[torch.arange(n), pick], torch.full((n,), float(size_w)))
    ch = torch.where(first >= 0, ch[torch.arange(n), pick], torch.full((n,), float(size_h)))
    u_top, u_left = torch.rand(n, generator=generator), torch.rand(n, generator=generator)
    top = torch.floor(u_top * (size_h - ch + 1))
    left = torch.floor(u_left * (size_w - cw + 1))
    return top, left, ch, cw
