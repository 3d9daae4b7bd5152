"""Long-tail count profiles, class orders and task splits, as in the official DGR code
(JiangpengHe/imbalanced_cil, inherited from LT-CIL, Liu et al., ECCV 2022).

Everything here is a pure function of its arguments: no data is touched.
"""
from __future__ import annotations

import numpy as np

PROFILES = ("exp", "step")
ORDERS = ("lt", "ltio", "conv", "seeded")
ICARL_SEED = 1993


def long_tail_counts(n_max: int, num_classes: int, imbalance: float, profile: str = "exp") -> np.ndarray:
    """Training images per class, indexed by the class's ORIGINAL label (as in CIFAR-100-LT).

    ``exp``: n_c = int(n_max * (1/ρ)^(c / (C-1))), so ρ = 100 on CIFAR-100 gives 500, 477, ..., 5
    (total 10 847), exactly as ``IMBALANCECIFAR100`` of the official code.
    ``step``: the first half of the classes keep n_max, the second half int(n_max / ρ).
    ρ = ``imbalance`` = n_max / n_min; ρ = 1 is balanced.
    """
    if imbalance < 1:
        raise ValueError(f"imbalance must be >= 1 (n_max / n_min), got {imbalance}")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    factor = 1.0 / imbalance
    if profile == "exp":
        if num_classes == 1:
            return np.array([n_max], dtype=np.int64)
        return np.array([int(n_max * factor ** (c / (num_classes - 1.0))) for c in range(num_classes)],
                        dtype=np.int64)
    head = num_classes - num_classes // 2
    return np.array([n_max] * head + [int(n_max * factor)] * (num_classes - head), dtype=np.int64)


def class_order(order: str, num_classes: int, seed: int = 0) -> np.ndarray:
    """Original labels in the order they are learned (position i gets label ``order[i]``).

    ``lt`` and ``conv``: the fixed iCaRL permutation (``RandomState(1993)``; for 100 classes the
    familiar 68, 56, 78, 8, 23, ...), independent of the run seed, as in the official code.
    ``ltio``: identity, so with an ``exp`` profile head classes come first.
    ``seeded``: a permutation drawn from the run seed.
    """
    if order in ("lt", "conv"):
        return np.random.RandomState(ICARL_SEED).permutation(num_classes).astype(np.int64)
    if order == "ltio":
        return np.arange(num_classes, dtype=np.int64)
    if order == "seeded":
        return np.random.RandomState(seed).permutation(num_classes).astype(np.int64)
    raise ValueError(f"order must be one of {ORDERS}, got {order!r}")


def task_sizes(num_classes: int, tasks: int, base: int | None = None) -> list[int]:
    """Classes per task, base task included (the official DGR / FACIL task split).

    ``[B] + [(C-B)//(T-1)]*(T-1)``, the remainder ``(C-B) % (T-1)`` spread as +1 over tasks 1, 2, ....
    Without ``base`` the C classes are split evenly over the T tasks (remainder to the first tasks).
    """
    if tasks < 1:
        raise ValueError(f"tasks must be >= 1, got {tasks}")
    if tasks > num_classes:
        raise ValueError(f"tasks ({tasks}) cannot exceed the number of classes ({num_classes})")
    if base is None:
        sizes = [num_classes // tasks] * tasks
        for i in range(num_classes % tasks):
            sizes[i] += 1
        return sizes
    if tasks == 1:
        if base != num_classes:
            raise ValueError(f"with tasks=1 the base task holds every class: base must be {num_classes}, got {base}")
        return [base]
    if not 1 <= base < num_classes:
        raise ValueError(f"base must be in [1, {num_classes - 1}] for {num_classes} classes and tasks > 1, got {base}")
    rest = num_classes - base
    if rest < tasks - 1:
        raise ValueError(f"{rest} classes after the base task cannot fill {tasks - 1} incremental tasks")
    sizes = [base] + [rest // (tasks - 1)] * (tasks - 1)
    for i in range(rest % (tasks - 1)):
        sizes[1 + i] += 1
    return sizes
