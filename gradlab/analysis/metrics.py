"""Metrics on class-incremental accuracy matrices (pure numpy, no torch).

Conventions (as the official DGR / FACIL code logs them; see the README's Metrics section):

- Phases are rows ``t = 0 .. P-1``; tasks ``u`` or classes ``c`` are columns.
- ``NaN`` means "not defined": a class/task not seen yet, or a quantity with no
  earlier value to compare against.
- All accuracies and forgettings are fractions in [0, 1], never percent.
- Accuracy is task-agnostic top-1: argmax over all classes seen so far.
"""

from __future__ import annotations

import numpy as np

SHOT_GROUPS = ("many", "medium", "few")


# ----------------------------------------------------------------------------- helpers
def _as_matrix(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (phases, columns) array, got shape {a.shape}")
    return a


def _as_vector(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array, got shape {a.shape}")
    return a


def _check_correct_total(correct, total) -> tuple[np.ndarray, np.ndarray]:
    correct = _as_matrix(correct, "correct")
    total = _as_vector(total, "total")
    if correct.shape[1] != total.shape[0]:
        raise ValueError(
            f"correct has {correct.shape[1]} classes (columns) but total has {total.shape[0]}"
        )
    if np.any(total < 0) or np.any(~np.isfinite(total)):
        raise ValueError("total must hold finite, non-negative test-image counts")
    return correct, total


def _row_nanmean(a: np.ndarray) -> np.ndarray:
    """Mean of the non-NaN entries of each row; NaN for a row with none (no warning)."""
    defined = ~np.isnan(a)
    n = defined.sum(axis=1)
    s = np.where(defined, a, 0.0).sum(axis=1)
    out = np.full(a.shape[0], np.nan)
    np.divide(s, n, out=out, where=n > 0)
    return out


# ----------------------------------------------------------------------------- accuracy
def class_accuracy(correct: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Per-class accuracy ``class_acc[t, c] = correct[t, c] / total[c]``.

    ``correct`` is (P, C) with NaN where class c was not seen yet at phase t;
    ``total`` is (C,) test images per class. NaN stays NaN; a class with no test
    images is NaN too. Returns (P, C).
    """
    correct, total = _check_correct_total(correct, total)
    out = np.full(correct.shape, np.nan)
    np.divide(correct, total[None, :], out=out, where=total[None, :] > 0)
    return out


def task_accuracy(
    correct: np.ndarray, total: np.ndarray, class_task: np.ndarray, num_tasks: int
) -> np.ndarray:
    """Task accuracy matrix ``acc[t, u]`` (the official code's ``acc_tag``).

    ``acc[t, u] = sum_{c in u} correct[t, c] / sum_{c in u} total[c]``: top-1 on
    task u's test images after phase t. NaN where ``u > t`` (unseen), where any of
    u's classes has NaN at phase t, or where u has no test images. Shape (P, T).
    """
    correct, total = _check_correct_total(correct, total)
    class_task = np.asarray(class_task)
    if class_task.shape != total.shape:
        raise ValueError(
            f"class_task must have shape {total.shape} (one task id per class), got {class_task.shape}"
        )
    if not np.issubdtype(class_task.dtype, np.integer):
        raise ValueError(f"class_task must hold integer task ids, got dtype {class_task.dtype}")
    if int(num_tasks) != num_tasks or num_tasks < 1:
        raise ValueError(f"num_tasks must be a positive integer, got {num_tasks!r}")
    if class_task.size and (class_task.min() < 0 or class_task.max() >= num_tasks):
        raise ValueError(f"class_task ids must lie in [0, {num_tasks - 1}] (num_tasks={num_tasks})")

    num_phases = correct.shape[0]
    member = np.zeros((correct.shape[1], num_tasks))  # one-hot class -> task, (C, T)
    member[np.arange(class_task.size), class_task] = 1.0
    unseen = np.isnan(correct)
    hits = np.where(unseen, 0.0, correct) @ member  # (P, T)
    images = total @ member  # (T,)
    any_unseen = (unseen.astype(np.float64) @ member) > 0  # (P, T)

    acc = np.full((num_phases, num_tasks), np.nan)
    np.divide(hits, images[None, :], out=acc, where=images[None, :] > 0)
    later_task = np.arange(num_tasks)[None, :] > np.arange(num_phases)[:, None]
    acc[any_unseen | later_task] = np.nan
    return acc


def accuracy_all_seen(correct: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Class-weighted accuracy ``A_t`` over all seen test images (the README's Metrics section).

    ``A_t = sum_{c seen at t} correct[t, c] / sum_{c seen at t} total[c]``; with
    balanced test sets this equals the official code's ``wavg_accs_tag``. NaN for
    a phase with nothing seen. Returns (P,).
    """
    correct, total = _check_correct_total(correct, total)
    seen = ~np.isnan(correct)
    hits = np.where(seen, correct, 0.0).sum(axis=1)
    images = np.where(seen, total[None, :], 0.0).sum(axis=1)
    out = np.full(correct.shape[0], np.nan)
    np.divide(hits, images, out=out, where=images > 0)
    return out


def accuracy_task_mean(acc_task: np.ndarray) -> np.ndarray:
    """Unweighted mean over seen tasks, ``(1/(t+1)) sum_{u<=t} acc[t, u]``.

    This is ``avg_accs_tag`` printed by the official DGR / LT-CIL code. Mean over the defined entries of each row; NaN if none. (P,).
    """
    return _row_nanmean(_as_matrix(acc_task, "acc_task"))


def average_incremental_accuracy(acc_per_phase: np.ndarray) -> float:
    """Average incremental accuracy ``(1/P) sum_t A_t``, base phase included (He & Zhu confirm this definition).

    A NaN phase makes the result NaN (a missing phase is not silently skipped).
    """
    a = _as_vector(acc_per_phase, "acc_per_phase")
    if a.size == 0:
        raise ValueError("acc_per_phase is empty: need at least one phase")
    return float(a.mean())


# ----------------------------------------------------------------------------- forgetting
def forgetting(acc: np.ndarray) -> np.ndarray:
    """FACIL / Chaudhry (GEM-style) forgetting for a (P, K) matrix (K = tasks or classes).

    ``f[t, k] = max_{t' < t, acc[t', k] defined} acc[t', k] - acc[t, k]``, defined
    only where ``acc[t, k]`` is defined and k was seen at some earlier phase; NaN
    otherwise (so row 0 is all NaN). FACIL / Chaudhry et al. (ECCV 2018).
    """
    acc = _as_matrix(acc, "acc")
    f = np.full(acc.shape, np.nan)
    if acc.shape[0] < 2:
        return f
    best_so_far = np.fmax.accumulate(acc, axis=0)  # fmax ignores NaN; all-NaN prefix stays NaN
    f[1:] = best_so_far[:-1] - acc[1:]  # NaN propagates from either side
    return f


def average_forgetting(f: np.ndarray) -> np.ndarray:
    """Average forgetting per phase: mean of the defined entries of each row of ``f``.

    For a task matrix this is ``mean_{u<t} f[t, u]`` (FACIL). NaN where a row has
    no defined entry (always phase 0). Returns (P,).
    """
    return _row_nanmean(_as_matrix(f, "f"))


def backward_transfer(acc_task: np.ndarray) -> float:
    """Backward transfer (Lopez-Paz & Ranzato, NeurIPS 2017).

    ``BWT = (1/(T-1)) sum_{u < T-1} (acc[T-1, u] - acc[u, u])`` for a square (T, T)
    task matrix. Negative means forgetting. NaN if T == 1.
    """
    acc = _as_matrix(acc_task, "acc_task")
    num_tasks = acc.shape[0]
    if acc.shape[1] != num_tasks or num_tasks == 0:
        raise ValueError(f"acc_task must be a non-empty square (T, T) task matrix, got shape {acc.shape}")
    if num_tasks == 1:
        return float("nan")
    earlier = np.arange(num_tasks - 1)
    return float(np.mean(acc[-1, earlier] - acc[earlier, earlier]))


# ----------------------------------------------------------------------------- shot groups
def shot_groups(train_counts: np.ndarray, many: int = 100, few: int = 20) -> np.ndarray:
    """Many / medium / few-shot label per class (the README's Metrics section).

    ``'many'`` if count > many, ``'few'`` if count < few, else ``'medium'``
    (so with the defaults 20 and 100 are both medium). The count is the class's
    training count in its own phase. Returns an object array of str, shape (C,).
    """
    counts = _as_vector(train_counts, "train_counts")
    if np.any(counts < 0) or np.any(~np.isfinite(counts)):
        raise ValueError("train_counts must be finite and non-negative")
    if few > many:
        raise ValueError(f"few ({few}) must not exceed many ({many})")
    labels = np.full(counts.shape, "medium", dtype=object)
    labels[counts > many] = "many"
    labels[counts < few] = "few"
    return labels


def group_accuracy(class_acc_row: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Mean class accuracy per shot group, over the classes defined (non-NaN) in the row.

    Keys ``'many'``, ``'medium'``, ``'few'``; NaN for a group with no defined class.
    ``groups`` is the output of :func:`shot_groups`.
    """
    row = _as_vector(class_acc_row, "class_acc_row")
    groups = np.asarray(groups, dtype=object)
    if groups.shape != row.shape:
        raise ValueError(f"groups must have shape {row.shape} (one label per class), got {groups.shape}")
    unknown = set(groups.tolist()) - set(SHOT_GROUPS)
    if unknown:
        raise ValueError(f"groups has labels {sorted(map(str, unknown))}; allowed: {list(SHOT_GROUPS)}")
    out = {}
    for name in SHOT_GROUPS:
        values = row[(groups == name) & ~np.isnan(row)]
        out[name] = float(values.mean()) if values.size else float("nan")
    return out
