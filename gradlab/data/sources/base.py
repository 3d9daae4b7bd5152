"""What every source returns: labelled uint8 image sets and the facts a scenario needs about them."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class DataError(ValueError):
    """Bad or missing data; the message names the path/field and the expected layout."""


# ----------------------------------------------------------------------------------------------
# Image sets
# ----------------------------------------------------------------------------------------------
class ImageSet:
    """A labelled set of uint8 images; ``labels`` are the ORIGINAL int64 labels."""

    labels: np.ndarray

    def __len__(self) -> int:
        return int(len(self.labels))

    def images(self, indices: np.ndarray) -> np.ndarray:
        """uint8 array (len(indices), H, W, C), in the order given."""
        raise NotImplementedError

    def _check_indices(self, indices) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.ndim != 1:
            idx = idx.reshape(-1)
        if idx.size == 0:
            return idx.astype(np.int64)
        if not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"indices must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64)
        n = len(self)
        if idx.min() < -n or idx.max() >= n:
            raise IndexError(f"index out of range for an image set of size {n}")
        return np.where(idx < 0, idx + n, idx)


class ArrayImageSet(ImageSet):
    """Images held in memory as a uint8 (N, H, W, C) array."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        images = np.asarray(images)
        labels = np.asarray(labels, dtype=np.int64)
        if images.dtype != np.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {labels.shape}")
        self._images = images
        self.labels = labels

    def images(self, indices: np.ndarray) -> np.ndarray:
        idx = self._check_indices(indices)
        return self._images[idx]


# ----------------------------------------------------------------------------------------------
# Source description
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """A loaded dataset: train/test image sets plus normalisation and augmentation facts."""

    name: str
    num_classes: int
    image_shape: tuple[int, int, int]  # (H, W, C)
    train: ImageSet
    test: ImageSet
    mean: tuple[float, ...]  # per channel, pixels scaled to [0, 1]
    std: tuple[float, ...]
    flip: bool  # horizontal flip is a valid augmentation
    pad: int  # padding for random-crop augmentation


@dataclass(frozen=True)
class SourceInfo:
    """Static facts about a source, available without loading anything."""

    name: str
    num_classes: int
    image_shape: tuple[int, int, int]
    needs_root: bool
    description: str
    layout: str  # expected on-disk layout ("" if none)


