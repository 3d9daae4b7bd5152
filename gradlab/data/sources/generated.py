"""Offline sources: scikit-learn's handwritten digits (real, 8x8) and a lazy generated 32x32 set."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from gradlab.data.sources.base import ArrayImageSet, ImageSet, Source, SourceInfo

DIGITS_INFO = SourceInfo(
    "digits", 10, (8, 8, 1), False,
    "scikit-learn's handwritten digits (1 797 8x8 grey images, 10 classes), shipped offline; "
    "50 test images per class, the rest for training.",
    "", model="small", recipe={"epochs": 10, "batch_size": 32}, train_per_class=130, test_per_class=50)
SYNTHETIC_INFO = SourceInfo(
    "synthetic", 100, (32, 32, 3), False,
    "Generated 32x32 RGB images, 100 confusable classes (500 train / 100 test per class), rendered "
    "lazily: not a real data set; the fast stand-in for tests and for the structure of the 100-class "
    "CIFAR-100 protocol.",
    "", train_per_class=500, test_per_class=100)


# ----------------------------------------------------------------------------------------------
# scikit-learn digits
# ----------------------------------------------------------------------------------------------
DIGITS_TEST_PER_CLASS = 50


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # (N, 8, 8, 1)
    labels = bunch.target.astype(np.int64)
    rs = np.random.RandomState(0)  # one stream, classes visited in ascending order
    test_idx = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        test_idx.append(rs.permutation(idx)[:DIGITS_TEST_PER_CLASS])
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[np.concatenate(test_idx)] = True
    train_idx, test_idx = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    parts = (images[train_idx], labels[train_idx], images[test_idx], labels[test_idx])
    for arr in parts:  # cached and shared between calls
        arr.setflags(write=False)
    return parts


def load_digits(root=None, download: bool = False) -> Source:
    x_tr, y_tr, x_te, y_te = _digits_arrays()
    pixels = x_tr.astype(np.float64) / 255.0
    mean, std = float(pixels.mean()), float(pixels.std())
    return Source("digits", 10, (8, 8, 1), ArrayImageSet(x_tr, y_tr), ArrayImageSet(x_te, y_te),
                  mean=(mean,), std=(std,), flip=False, pad=1)


# ----------------------------------------------------------------------------------------------
# Synthetic (lazy, deterministic)
# ----------------------------------------------------------------------------------------------
SYNTH_SEED = 20240229
SYNTH_CLASSES = 100
SYNTH_SHIFT = 4  # max translation in pixels
_SPLIT_IDS = {"train": 1, "test": 2}
# Per-channel mean/std of the 50 000 synthetic train images (pixels in [0, 1]); computed once with
# ``_synthetic_stats()`` and hard-coded so that loading stays lazy.
SYNTHETIC_MEAN = (0.3347, 0.3077, 0.3021)
SYNTHETIC_STD = (0.2123, 0.1937, 0.1989)
_PALETTE = np.array([[1.0, 0.15, 0.1], [0.1, 0.8, 0.2], [0.15, 0.3, 1.0], [1.0, 0.85, 0.1],
                     [0.9, 0.2, 0.9], [0.1, 0.9, 0.9], [1.0, 0.55, 0.1], [0.85, 0.85, 0.85]], dtype=np.float32)
_NOISE_BANKS, _NOISE_SIZE = 16, 160
_U64 = np.uint64


def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (uint64 arrays, wrapping arithmetic)."""
    z = z ^ (z >> _U64(30))
    z = z * _U64(0xBF58476D1CE4E5B9)
    z = z ^ (z >> _U64(27))
    z = z * _U64(0x94D049BB133111EB)
    return z ^ (z >> _U64(31))


def _sample_uniforms(split_id: int, indices: np.ndarray, k: int) -> np.ndarray:
    """(len(indices), k) uniforms in [0, 1) that depend only on (seed, split, index, field)."""
    with np.errstate(over="ignore"):
        key = _mix64(np.array([SYNTH_SEED * 1_000_003 + split_id], dtype=_U64))
        z = indices.astype(_U64)[:, None] * _U64(0x9E3779B97F4A7C15) + key
        z = _mix64(z + np.arange(k, dtype=_U64)[None, :] * _U64(0xD1B54A32D192ED03))
        z = _mix64(z)
    return (z >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))


@lru_cache(maxsize=1)
def _synthetic_tables() -> tuple[np.ndarray, np.ndarray]:
    """Class prototypes (C, 3, 32+2s, 32+2s) and a noise bank (B, 3, S, S); fixed by SYNTH_SEED."""
    rng = np.random.default_rng(SYNTH_SEED)
    size = 32 + 2 * SYNTH_SHIFT
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) - SYNTH_SHIFT
    spots = np.array([6.0, 11.0, 16.0, 21.0, 26.0], dtype=np.float32)  # shared blob positions
    protos = np.zeros((SYNTH_CLASSES, 3, size, size), dtype=np.float32)
    for c in range(SYNTH_CLASSES):
        for _ in range(3):
            cy, cx = rng.choice(spots, 2)
            sigma = rng.choice([2.0, 3.0, 4.5])
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))
            protos[c] += 0.7 * _PALETTE[rng.integers(len(_PALETTE))][:, None, None] * blob
        theta = rng.integers(6) * np.pi / 6
        freq = rng.choice([1 / 4, 1 / 6, 1 / 9])
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)))
        protos[c] += 0.3 * _PALETTE[rng.integers(len(_PALETTE))][:, None, None] * wave
    noise = rng.standard_normal((_NOISE_BANKS, 3, _NOISE_SIZE, _NOISE_SIZE), dtype=np.float32)
    smooth = noise.copy()  # add a low-frequency component (3x3 box blur, twice)
    for _ in range(2):
        smooth = sum(np.roll(np.roll(smooth, dy, 2), dx, 3) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 3.0
    noise = (0.8 * noise + 0.6 * smooth).astype(np.float32)
    protos.setflags(write=False)
    noise.setflags(write=False)
    return protos, noise


def render_synthetic(split_id: int, indices: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Render synthetic images -> uint8 (n, 32, 32, 3); each depends only on (split, index, class)."""
    protos, noise = _synthetic_tables()
    proto_win = sliding_window_view(protos, (32, 32), axis=(2, 3))  # (C, 3, 2s+1, 2s+1, 32, 32)
    noise_win = sliding_window_view(noise, (32, 32), axis=(2, 3))
    n_shift, n_off = 2 * SYNTH_SHIFT + 1, _NOISE_SIZE - 32 + 1
    out = np.empty((len(indices), 32, 32, 3), dtype=np.uint8)
    for start in range(0, len(indices), 2048):
        idx, cls = indices[start:start + 2048], classes[start:start + 2048]
        u = _sample_uniforms(split_id, idx, 16)
        col = lambda j, m: np.minimum((u[:, j] * m).astype(np.int64), m - 1)  # noqa: E731
        other = (cls + 1 + col(2, SYNTH_CLASSES - 1)) % SYNTH_CLASSES
        own = proto_win[cls, :, col(0, n_shift), col(1, n_shift)]  # (n, 3, 32, 32)
        mix = proto_win[other, :, col(3, n_shift), col(4, n_shift)]
        w = (0.1 + 0.2 * u[:, 5]).astype(np.float32)[:, None, None, None]
        contrast = (0.8 + 0.4 * u[:, 6]).astype(np.float32)[:, None, None, None]
        bg = (0.3 * u[:, 7:10]).astype(np.float32)[:, :, None, None]
        sigma = (0.04 + 0.06 * u[:, 10]).astype(np.float32)[:, None, None, None]
        eps = noise_win[col(11, _NOISE_BANKS), :, col(12, n_off), col(13, n_off)]
        img = bg + contrast * ((1 - w) * own + w * mix) + sigma * eps
        flip = u[:, 14] < 0.5
        img[flip] = img[flip, :, :, ::-1]
        img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
        out[start:start + len(idx)] = img.transpose(0, 2, 3, 1)
    return out


class SyntheticImageSet(ImageSet):
    """Lazy synthetic split: ``images(indices)`` renders only the requested images."""

    def __init__(self, split: str, per_class: int):
        if split not in _SPLIT_IDS:
            raise ValueError(f"split must be one of {sorted(_SPLIT_IDS)}, got {split!r}")
        self.split = split
        self.labels = np.repeat(np.arange(SYNTH_CLASSES, dtype=np.int64), per_class)
        self.labels.setflags(write=False)

    def images(self, indices: np.ndarray) -> np.ndarray:
        idx = self._check_indices(indices)
        return render_synthetic(_SPLIT_IDS[self.split], idx, self.labels[idx])


def _synthetic_stats() -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean/std of all synthetic train images (used once to fill SYNTHETIC_MEAN/STD)."""
    train = SyntheticImageSet("train", per_class=500)
    x = train.images(np.arange(len(train))).astype(np.float64) / 255.0
    mean, std = x.mean((0, 1, 2)), x.std((0, 1, 2))
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def load_synthetic(root=None, download: bool = False) -> Source:
    return Source("synthetic", 100, (32, 32, 3),
                  SyntheticImageSet("train", per_class=500), SyntheticImageSet("test", per_class=100),
                  mean=SYNTHETIC_MEAN, std=SYNTHETIC_STD, flip=True, pad=4)
