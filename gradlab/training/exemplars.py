"""Exemplar memory for class-incremental learning, stored as sample indices.

The memory never holds images: it keeps, per class, a *priority list* of indices
into the scenario's training set. The first entries matter most, so a smaller
budget is met by keeping a prefix (iCaRL's reduction). Selection is iCaRL herding
(the official DGR default) or seeded random.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

SELECTIONS = ("herding", "random")


def herding_order(features: torch.Tensor, m: int) -> torch.Tensor:
    """iCaRL herding order of the rows of ``features`` (Rebuffi et al., CVPR 2017), as the official DGR code runs it.

    Each row is L2-normalised to ``f_i``; ``mu`` is the mean of the normalised rows
    (not re-normalised). Greedy: at step k (0-based) pick the unselected i that
    minimises ``|| mu - (f_i + sum_{s in S} f_s) / (k + 1) ||``; ties go to the
    lowest index. Returns a CPU LongTensor of ``min(m, N)`` row positions in pick order.
    """
    if not isinstance(features, torch.Tensor) or features.ndim != 2:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"features must be a 2-D (N, d) tensor, got {shape}")
    if isinstance(m, bool) or int(m) != m or m < 0:
        raise ValueError(f"m must be a non-negative integer, got {m!r}")
    num = features.shape[0]
    steps = min(int(m), num)
    if steps == 0:
        return torch.empty(0, dtype=torch.long)

    f = torch.nn.functional.normalize(features.detach().to(torch.float64), p=2, dim=1)
    mu = f.mean(dim=0)
    picked_sum = torch.zeros_like(mu)
    taken = torch.zeros(num, dtype=torch.bool, device=f.device)
    order = torch.empty(steps, dtype=torch.long, device=f.device)
    for k in range(steps):
        candidate_means = (picked_sum[None, :] + f) / (k + 1)  # (N, d): mean if i were added
        dist = torch.linalg.vector_norm(mu[None, :] - candidate_means, dim=1)
        dist = dist.masked_fill(taken, float("inf"))
        i = torch.argmin(dist)  # first minimal value on ties -> lowest index
        order[k] = i
        taken[i] = True
        picked_sum = picked_sum + f[i]
    return order.cpu()


def _check_int(value, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class ExemplarMemory:
    """Per-class exemplar indices with a per-class or a fixed-total budget.

    - ``per_class``: each class keeps ``min(per_class, N_c)`` exemplars; the total
      grows with the classes (official DGR default: 20).
      ``per_class=0`` means no memory.
    - ``total``: fixed total budget instead (``per_class`` is then ignored); each
      seen class gets ``total // classes_seen`` and old classes shrink to the
      prefix of their priority list (iCaRL).
    - ``selection``: ``"herding"`` (needs features) or ``"random"`` (seeded with
      ``np.random.default_rng([seed, phase, class])``).
    """

    def __init__(
        self,
        per_class: int = 20,
        total: int | None = None,
        selection: str = "herding",
        seed: int = 0,
    ) -> None:
        self.per_class = _check_int(per_class, "per_class")
        self.total = None if total is None else _check_int(total, "total")
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {list(SELECTIONS)}, got {selection!r}")
        self.selection = selection
        self.seed = _check_int(seed, "seed")
        self._store: dict[int, np.ndarray] = {}  # class -> int64 indices, priority order

    # ------------------------------------------------------------------ budget
    def budget_per_class(self, num_classes: int | None = None) -> int:
        """Per-class budget with ``num_classes`` seen (default: the classes stored now)."""
        if self.total is None:
            return self.per_class
        n = len(self._store) if num_classes is None else num_classes
        return self.total // n if n > 0 else self.total

    # ------------------------------------------------------------------ update
    def update(
        self,
        new_classes: dict[int, np.ndarray],
        features_fn: Callable[[np.ndarray], torch.Tensor] | None = None,
        phase: int = 0,
    ) -> None:
        """Add the classes just learned, then (with ``total``) shrink the old ones.

        ``new_classes`` maps class -> candidate indices into the train set.
        ``features_fn(indices) -> (len, d)`` penultimate features (eval mode, test
        transform, as the official DGR code does) is required for herding. Each new class keeps
        ``min(budget, N_c)`` indices in priority order.
        """
        if not isinstance(new_classes, dict):
            raise ValueError(f"new_classes must be a dict class -> indices, got {type(new_classes).__name__}")
        phase = _check_int(phase, "phase")
        candidates: dict[int, np.ndarray] = {}
        for c, idx in new_classes.items():
            c = _check_int(c, "class id")
            if c in self._store or c in candidates:
                raise ValueError(f"class {c} is already in memory; each class is added once")
            idx = np.asarray(idx)
            if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
                raise ValueError(f"indices of class {c} must be a 1-D integer array, got {idx.dtype} {idx.shape}")
            candidates[c] = idx.astype(np.int64)

        budget = self.budget_per_class(len(self._store) + len(candidates))
        for c in sorted(candidates):
            self._store[c] = self._select(c, candidates[c], budget, features_fn, phase)
        if self.total is not None:  # iCaRL reduction: keep the head of each priority list
            for c in self._store:
                self._store[c] = self._store[c][:budget]

    def _select(self, c, idx, budget, features_fn, phase) -> np.ndarray:
        keep = min(budget, idx.size)
        if keep == 0:
            return np.empty(0, dtype=np.int64)
        if self.selection == "random":
            rng = np.random.default_rng([self.seed, phase, c])
            return idx[rng.permutation(idx.size)[:keep]]
        if features_fn is None:
            raise ValueError("features_fn is required for selection='herding'")
        feats = features_fn(idx)
        if not isinstance(feats, torch.Tensor) or feats.ndim != 2 or feats.shape[0] != idx.size:
            got = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
            raise ValueError(f"features_fn must return a ({idx.size}, d) tensor for class {c}, got {got}")
        return idx[herding_order(feats, keep).numpy()]

    # ------------------------------------------------------------------ access
    def indices(self) -> np.ndarray:
        """All stored indices (int64): classes ascending, priority order within each."""
        if not self._store:
            return np.empty(0, dtype=np.int64)
        return np.concatenate([self._store[c] for c in sorted(self._store)]).astype(np.int64)

    def for_class(self, c: int) -> np.ndarray:
        """Stored indices of class ``c`` in priority order (a copy)."""
        if c not in self._store:
            raise KeyError(f"class {c} is not in memory; classes: {self.classes}")
        return self._store[c].copy()

    def counts(self) -> dict[int, int]:
        """Exemplars per class (classes added with budget 0 count 0)."""
        return {c: int(self._store[c].size) for c in sorted(self._store)}

    @property
    def classes(self) -> list[int]:
        """Classes added so far, ascending (including any with 0 exemplars)."""
        return sorted(self._store)

    def __len__(self) -> int:
        return int(sum(v.size for v in self._store.values()))

    def __repr__(self) -> str:
        budget = f"total={self.total}" if self.total is not None else f"per_class={self.per_class}"
        return f"ExemplarMemory({budget}, selection={self.selection!r}, classes={len(self._store)}, size={len(self)})"

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Settings and indices as plain python ints/lists/str (``torch.load(weights_only=True)`` safe)."""
        return {
            "per_class": self.per_class,
            "total": self.total,
            "selection": self.selection,
            "seed": self.seed,
            "classes": [int(c) for c in sorted(self._store)],
            "indices": [[int(i) for i in self._store[c]] for c in sorted(self._store)],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore settings and indices saved by :meth:`state_dict`."""
        required = {"per_class", "total", "selection", "seed", "classes", "indices"}
        missing = required - set(state)
        if missing:
            raise ValueError(f"memory state is missing keys {sorted(missing)}")
        if len(state["classes"]) != len(state["indices"]):
            raise ValueError("memory state: 'classes' and 'indices' have different lengths")
        restored = ExemplarMemory(state["per_class"], state["total"], state["selection"], state["seed"])
        self.per_class, self.total = restored.per_class, restored.total
        self.selection, self.seed = restored.selection, restored.seed
        self._store = {
            int(c): np.asarray(idx, dtype=np.int64).reshape(-1)
            for c, idx in zip(state["classes"], state["indices"])
        }
