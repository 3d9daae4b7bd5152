"""What every source returns: labelled uint8 image sets and the facts a scenario needs about them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gradlab.errors import DataError


def check_classes(path: Path, labels: np.ndarray, num_classes: int) -> None:
    """Every class 0..C-1 must have at least one image in the list."""
    missing = np.flatnonzero(np.bincount(labels, minlength=num_classes) == 0)
    if len(missing):
        raise DataError(f"{path}: no image of class(es) {missing[:10].tolist()}"
                        f"{' ...' if len(missing) > 10 else ''}; every label 0..{num_classes - 1} needs one")


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
    # how the long tail is cut (see gradlab.scenario): "label" = counts follow the ORIGINAL label and a
    # seed-0 draw picks the images (CIFAR-100-LT); "position" = counts follow the position in the class
    # order, the first n images in file order are kept (ImageNetSubset-LT)
    counts_by: str = "label"
    # class order of the lt / ltio / conv protocols: "icarl" (the fixed seed-1993 permutation) or "seeded"
    # (shuffled with the run seed, as the official code does for sources without a fixed order)
    class_order: str = "icarl"
    ltio_identity: bool = True  # ltio learns classes in label order (CIFAR) or in the icarl order (ImageNetSubset)
    holdout_quirk: bool = True  # the in-memory loaders' index-0 quirk (gradlab.data.holdout)
    class_names: tuple[str, ...] | None = None   # a name per ORIGINAL label, where the data carry them


# the recipe of the paper's ImageNetSubset / Food-101 / ImageNet-1k rows: 90 epochs, lr / 10 after 30 and 60,
# weight decay 1e-4 (batch 128, lr 0.1, momentum 0.9 as for CIFAR-100)
IMAGENET_RECIPE = {"epochs": 90, "lr_milestones": [30, 60], "weight_decay": 1e-4}
# short CPU recipes that learn on the small grey sources (the `make figures` quick protocol's optimisation)
SMALL_GREY_RECIPE = {"epochs": 20, "batch_size": 32}


@dataclass(frozen=True)
class SourceInfo:
    """Static facts about a source, available without loading anything."""

    name: str
    num_classes: int              # 0: read from the data (image_folder, arrays; see ``source_classes``)
    image_shape: tuple[int, int, int]
    needs_root: bool
    description: str
    layout: str  # expected on-disk layout ("" if none)
    val_fraction: float = 0.0     # the official per-class validation hold-out (0.1 where the DGR code has one)
    augment: str = "crop_flip"    # the official training augmentation (what ``augment: auto`` picks)
    model: str = "resnet32"       # what ``model: auto`` picks
    image_files: bool = False     # images are files read batch by batch (gradlab.data.file_data), not arrays
    # the default recipe: optimisation settings a run on this source takes when it leaves them unset (see
    # gradlab.config.PAPER_RECIPE for the rest); {} = the paper's CIFAR-100 recipe
    recipe: dict = field(default_factory=dict)
    train_per_class: int = 500    # nominal training / test images per class (for time estimates only)
    test_per_class: int = 100


