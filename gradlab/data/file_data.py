"""Image files (ImageNet, Food-101) read by a DataLoader with workers; the interface of
:class:`~gradlab.data.device_data.DeviceImages`, so the trainer does not care which one it gets.

Training batches: RandomResizedCrop to 224 (torchvision's sampling: scale 0.08-1, ratio 3/4-4/3, 10 tries,
else a centre crop; bilinear, antialiased) and a horizontal flip with probability 0.5. Evaluation batches:
the shorter side resized to 256, the central 224 x 224. Both normalised with the ImageNet statistics.
Files are decoded with torchvision's decoders: in the workers on CPU, or, when the run is on CUDA, the
workers only read the bytes and ``decode_jpeg`` decodes the whole batch on the GPU.

Every batch gets a seed drawn from the run's generator in the main process, and the workers draw that batch's
crops and flips from it: the same seed gives the same batches whatever the number of workers. Memory
exemplars are kept as indices into the file list, never as pixels.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from gradlab.data.device_data import Batch
from gradlab.data.sources.files import decode_image
from gradlab.errors import DataError

CROP_SCALE = (0.08, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)


def crop_box(height: int, width: int, generator: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a RandomResizedCrop, torchvision's sampling, drawn from ``generator``."""
    area = height * width
    log_ratio = (math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]))
    for _ in range(10):
        target = area * float(torch.empty(1).uniform_(*CROP_SCALE, generator=generator))
        ratio = math.exp(float(torch.empty(1).uniform_(*log_ratio, generator=generator)))
        w = int(round(math.sqrt(target * ratio)))
        h = int(round(math.sqrt(target / ratio)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return top, left, h, w
    in_ratio = width / height                     # fallback: the centre crop of the allowed ratio
    if in_ratio < CROP_RATIO[0]:
        w, h = width, int(round(width / CROP_RATIO[0]))
    elif in_ratio > CROP_RATIO[1]:
        h, w = height, int(round(height * CROP_RATIO[1]))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def train_view(image: torch.Tensor, generator: torch.Generator, size: int, flip: bool) -> torch.Tensor:
    """uint8 (3, H, W) -> uint8 (3, size, size): random resized crop, then a random flip."""
    from torchvision.transforms.v2 import functional as TF

    top, left, h, w = crop_box(image.shape[-2], image.shape[-1], generator)
    out = TF.resized_crop(image, top, left, h, w, [size, size], antialias=True)
    if flip and float(torch.rand(1, generator=generator)) < 0.5:
        out = out.flip(-1)
    return out


def test_view(image: torch.Tensor, size: int, resize: int) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF

    return TF.center_crop(TF.resize(image, [resize], antialias=True), [size, size])


class _BatchFiles(Dataset):
    """Item = one whole batch: (indices, seed, train?) -> (uint8 images or encoded bytes, indices, seed)."""

    def __init__(self, paths, size: int, resize: int, flip: bool, decode: bool):
        self.paths, self.size, self.resize, self.flip, self.decode = paths, size, resize, flip, decode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item):
        """Only plain Python objects cross between the processes (the batch as raw bytes through the pipe):
        tensors would be passed as shared-memory file descriptors, which stalled forked loaders in tests."""
        idx, seed, train = item
        if not self.decode:                        # the GPU path: the files' bytes only
            return [Path(self.paths[i]).read_bytes() for i in idx], idx, seed
        generator = torch.Generator().manual_seed(seed)
        try:
            views = [train_view(decode_image(self.paths[i]), generator, self.size, self.flip) if train
                     else test_view(decode_image(self.paths[i]), self.size, self.resize) for i in idx]
        except DataError as err:          # back to the main process as one line, not a worker traceback
            return (None, str(err)), idx, seed
        batch = torch.stack(views)
        return (batch.numpy().tobytes(), tuple(batch.shape)), idx, seed


class FileImages:
    """Labelled image files served as normalised batches on ``device`` (see the module docstring)."""

    def __init__(self, paths, labels: np.ndarray, mean, std, device="cpu", augment: str = "resized_crop",
                 flip: bool = True, size: int = 224, resize: int = 256, workers: int = 4, progress: bool = False,
                 decode_on: str | None = None):
        if augment not in ("resized_crop", "none"):
            raise ValueError(f"augment for image files must be 'resized_crop' or 'none', got {augment!r}")
        self.device = torch.device(device)
        self.paths = np.asarray(paths, dtype=object)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long).to(self.device)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.augment, self.flip, self.size, self.resize = augment, flip, size, resize
        self.workers, self.progress = workers, progress
        # "workers": decode in the DataLoader workers; "device": the workers read bytes, decode_jpeg decodes the
        # batch on ``device`` (the default on CUDA; on CPU it is the same code path, used by the tests)
        self.decode_on = decode_on or ("device" if self.device.type == "cuda" else "workers")
        if self.decode_on not in ("workers", "device"):
            raise ValueError(f"decode_on must be 'workers' or 'device', got {decode_on!r}")
        self.files = _BatchFiles(self.paths, size, resize, flip, decode=self.decode_on == "workers")

    def __len__(self) -> int:
        return len(self.paths)

    def normalise(self, x_uint8: torch.Tensor) -> torch.Tensor:
        return (x_uint8.to(self.device, non_blocking=True).float().div_(255.0) - self.mean) / self.std

    # ------------------------------------------------------------------ iteration
    def train_batches(self, indices: np.ndarray, batch_size: int, generator: torch.Generator,
                      shuffle: bool = True) -> Iterator[Batch]:
        indices = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        order = indices[torch.randperm(len(indices), generator=generator)] if shuffle else indices
        chunks = list(order.split(batch_size))
        seeds = torch.randint(0, 2 ** 62, (len(chunks),), generator=generator).tolist()
        yield from self._batches(chunks, seeds, train=self.augment == "resized_crop", desc="train batches")

    def eval_batches(self, indices: np.ndarray, batch_size: int = 256) -> Iterator[Batch]:
        chunks = list(torch.as_tensor(np.asarray(indices), dtype=torch.long).split(batch_size))
        yield from self._batches(chunks, [0] * len(chunks), train=False, desc="eval batches")

    def _batches(self, chunks, seeds, train: bool, desc: str) -> Iterator[Batch]:
        items = [(idx.tolist(), seed, train) for idx, seed in zip(chunks, seeds)]
        workers = min(self.workers, len(items)) if len(items) > 1 else 0     # one batch: no processes to start
        loader = DataLoader(self.files, batch_size=None, sampler=items, num_workers=workers,
                            persistent_workers=False)
        for content, idx, seed in tqdm(loader, total=len(items), desc=desc, leave=False,
                                       disable=not self.progress or len(items) < 20):
            if content[0] is None:
                raise DataError(content[1])
            if self.decode_on == "device":
                x = self._decode_on_device(content, seed, train)
            else:
                x = torch.frombuffer(bytearray(content[0]), dtype=torch.uint8).view(content[1])
            idx = torch.as_tensor(idx, dtype=torch.long, device=self.device)
            yield Batch(x=self.normalise(x), y=self.labels[idx], idx=idx)

    def _decode_on_device(self, encoded, seed: int, train: bool) -> torch.Tensor:
        """Decode a batch of JPEG bytes with ``decode_jpeg`` on the device (the GPU), then crop there."""
        from torchvision.io import ImageReadMode, decode_jpeg

        encoded = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in encoded]
        images = decode_jpeg(encoded, mode=ImageReadMode.RGB, device=self.device)
        generator = torch.Generator().manual_seed(seed)
        views = [train_view(image, generator, self.size, self.flip) if train
                 else test_view(image, self.size, self.resize) for image in images]
        return torch.stack(views)
