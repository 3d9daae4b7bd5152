"""Tidy pandas tables behind every figure, computed from :class:`gradlab.runs.records.RunRecord` s.

The CSV written next to each figure is exactly one of these tables. Quantities follow the DGR paper
(He & Zhu, "Gradient Reweighting: Towards Imbalanced Class-Incremental Learning", CVPR 2024) and
the README's Metrics section: accuracies and forgettings are fractions in [0, 1]; forgetting is FACIL's
f[t, u] = max_{t'<t} acc[t', u] - acc[t, u].
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

GRADIENT_COLUMNS = ["phase", "class", "task", "train_count", "group", "rank", "value"]
FORGETTING_COLUMNS = ["label", "phase", "forgetting", "accuracy", "average_incremental_accuracy"]
WEIGHT_COLUMNS = ["label", "class", "task", "train_count", "weight_norm", "bias_abs"]
ACCURACY_COLUMNS = ["label", "phase", "acc_all_seen", "acc_task_mean"]
CLASS_FORGETTING_COLUMNS = ["class", "task", "train_count", "shot_group", "forgetting"]


# ---------------------------------------------------------------------- helpers
def _classes(record) -> pd.DataFrame:
    classes = record.classes
    if classes is None or not len(classes):
        raise ValueError(f"run {str(record.path)!r} has no classes.parquet")
    return classes


def _probe_terms(record) -> list[str]:
    probes = record.probes
    if probes is None or not len(probes) or "term" not in probes:
        return []
    return sorted(str(t) for t in pd.unique(probes["term"].astype(str)))


# the classification loss whose row gradients Figure 2 shows: CE for most methods (PODNet too, as LT-CIL ran it),
# NCA for SIR and for PODNet with lt_cil_nca false
CLASSIFICATION_TERMS = ("grad_ce", "grad_nca")


def classification_term(record) -> str:
    """The probe term of the run's classification loss (``grad_ce``, or ``grad_nca`` for SIR / PODNet with NCA)."""
    available = _probe_terms(record)
    for term in CLASSIFICATION_TERMS:
        if term in available:
            return term
    raise ValueError(f"run {str(record.path)!r} has no classification-loss gradients ({list(CLASSIFICATION_TERMS)}); "
                     f"available terms: {available if available else 'none (probes were off?)'}")


def _probe_rows(record, terms) -> pd.DataFrame:
    """Rows of ``record.probes`` whose term is in ``terms``; ValueError naming a missing term."""
    available = _probe_terms(record)
    for term in terms:
        if term not in available:
            raise ValueError(
                f"probe term {term!r} is not in run {str(record.path)!r}; available terms: "
                f"{available if available else 'none (probes were off?)'}")
    probes = record.probes
    rows = probes[probes["term"].astype(str).isin(list(terms))].copy()
    rows["term"] = rows["term"].astype(str)
    return rows


def _metric(record, name: str) -> pd.DataFrame:
    metrics = record.metrics
    if metrics is None or not len(metrics):
        raise ValueError(f"run {str(record.path)!r} has no metrics.parquet")
    rows = metrics[metrics["metric"].astype(str) == name]
    if not len(rows):
        names = sorted(pd.unique(metrics["metric"].astype(str)))
        raise ValueError(f"metric {name!r} is not in run {str(record.path)!r}; available metrics: {names}")
    return rows


def _curve(record, name: str, required: bool = True) -> pd.Series:
    """A per-phase metric (task and class NA) as a Series indexed by phase (empty if not required
    and absent, e.g. forgetting while only the base phase has finished)."""
    if not required and len(record.metrics) and not (record.metrics["metric"].astype(str) == name).any():
        return pd.Series([], index=pd.Index([], dtype=int), dtype=float)
    rows = _metric(record, name)
    return rows.set_index(rows["phase"].astype(int))["value"].astype(float).sort_index()


def _check_records(records) -> Mapping:
    if not isinstance(records, Mapping):
        raise TypeError("records must be a mapping {label: RunRecord}")
    if not records:
        raise ValueError("records is empty: need at least one {label: RunRecord}")
    return records


# ---------------------------------------------------------------------- tables
def gradient_magnitudes(record, term: str = "grad_ce") -> pd.DataFrame:
    """Per-class classifier-row gradient norm ||grad_{W_j} term|| in every phase (paper Figure 2).

    For each phase and each class seen in it (task <= phase), ``value`` is the mean over that
    phase's epoch rows (probes with ``step == -1``, ``epoch >= 0``) of the term's row norm.
    ``group`` is "old" for classes of earlier tasks, "new" for the phase's own task; ``rank`` is
    the head -> tail position within the class's task (descending train count, ties by class id).
    Columns: phase, class, task, train_count, group, rank, value; sorted by phase, task, rank.
    """
    rows = _probe_rows(record, [term])
    rows = rows[(rows["step"] == -1) & (rows["epoch"] >= 0)]
    if not len(rows):
        raise ValueError(f"probe term {term!r} has no per-epoch rows (step == -1, epoch >= 0) "
                         f"in run {str(record.path)!r}")
    means = rows.groupby(["phase", "class"], as_index=False)["value"].mean()
    classes = _classes(record)[["class", "task", "train_count"]].copy()
    classes = classes.sort_values(["task", "train_count", "class"], ascending=[True, False, True])
    classes["rank"] = classes.groupby("task").cumcount()
    table = means.merge(classes, on="class", how="inner")
    table = table[table["task"] <= table["phase"]].copy()
    table["group"] = np.where(table["task"] < table["phase"], "old", "new")
    table = table.sort_values(["phase", "task", "rank"]).reset_index(drop=True)
    for col in ("phase", "class", "task", "train_count", "rank"):
        table[col] = table[col].astype(int)
    table["value"] = table["value"].astype(float)
    return table[GRADIENT_COLUMNS]


def forgetting_curves(records: Mapping) -> pd.DataFrame:
    """Average task forgetting (FACIL, ``avg_forgetting_task``) at every incremental phase t >= 1
    (paper Figure 5), with the class-weighted accuracy A_t (``acc_all_seen``) and the run's
    average incremental accuracy. Columns: label, phase, forgetting, accuracy,
    average_incremental_accuracy.
    """
    frames = []
    for label, record in _check_records(records).items():
        forgetting = _curve(record, "avg_forgetting_task", required=False)
        accuracy = _curve(record, "acc_all_seen")
        forgetting = forgetting[forgetting.index >= 1]
        aia = record.summary.get("average_incremental_accuracy")
        if aia is None:  # unfinished run: mean of the phases recorded so far
            aia = float(accuracy.mean()) if len(accuracy) else float("nan")
        frames.append(pd.DataFrame({
            "label": str(label), "phase": forgetting.index.to_numpy(int),
            "forgetting": forgetting.to_numpy(float),
            "accuracy": accuracy.reindex(forgetting.index).to_numpy(float),
            "average_incremental_accuracy": float(aia)}))
    return pd.concat(frames, ignore_index=True)[FORGETTING_COLUMNS]


def weight_norms(records: Mapping, phase: int | None = None) -> pd.DataFrame:
    """Per-class classifier weight norm ||W_j||_2 and bias |b_j| at the end of ``phase``
    (probes with ``epoch == -1``; default: each run's last phase). Columns: label, class, task,
    train_count, weight_norm, bias_abs (NaN for heads without a bias: LUCIR's cosine head, PODNet's LSC).
    """
    frames = []
    for label, record in _check_records(records).items():
        has_bias = "bias_abs" in _probe_terms(record)
        rows = _probe_rows(record, ["weight_norm", "bias_abs"] if has_bias else ["weight_norm"])
        rows = rows[rows["epoch"] == -1]
        if not len(rows):
            raise ValueError(f"run {str(record.path)!r} has no phase-end (epoch == -1) weight rows")
        at = int(rows["phase"].max()) if phase is None else int(phase)
        rows = rows[rows["phase"] == at]
        if not len(rows):
            raise ValueError(f"run {str(record.path)!r} has no phase-end weight rows for phase {at}; "
                             f"phases: {sorted(pd.unique(record.probes['phase']).tolist())}")
        wide = rows.pivot_table(index="class", columns="term", values="value", aggfunc="mean")
        wide = wide.reindex(columns=["weight_norm", "bias_abs"]).reset_index()
        classes = _classes(record)[["class", "task", "train_count"]]
        wide = wide.merge(classes, on="class", how="left")
        wide.insert(0, "label", str(label))
        frames.append(wide.sort_values("class"))
    table = pd.concat(frames, ignore_index=True)
    table.columns.name = None
    for col in ("class", "task", "train_count"):
        table[col] = table[col].astype(int)
    return table[WEIGHT_COLUMNS]


def accuracy_curves(records: Mapping) -> pd.DataFrame:
    """Accuracy after every phase, both ways: class-weighted A_t over all seen test images
    (``acc_all_seen``) and the unweighted mean over tasks (``acc_task_mean``, the official DGR
    code's number). Columns: label, phase, acc_all_seen, acc_task_mean.
    """
    frames = []
    for label, record in _check_records(records).items():
        weighted, unweighted = _curve(record, "acc_all_seen"), _curve(record, "acc_task_mean")
        index = weighted.index.union(unweighted.index)
        frames.append(pd.DataFrame({"label": str(label), "phase": index.to_numpy(int),
                                    "acc_all_seen": weighted.reindex(index).to_numpy(float),
                                    "acc_task_mean": unweighted.reindex(index).to_numpy(float)}))
    return pd.concat(frames, ignore_index=True)[ACCURACY_COLUMNS]


def class_forgetting(record) -> pd.DataFrame:
    """Per-class forgetting f[T-1, c] = max_{t<T-1} acc[t, c] - acc[T-1, c] after the last phase
    (metric ``forgetting_class``), for the classes of tasks before the last, with each class's
    training count and many/medium/few shot group. Columns: class, task, train_count, shot_group,
    forgetting.
    """
    rows = _metric(record, "forgetting_class")
    last = int(record.metrics["phase"].max())
    rows = rows[rows["phase"] == last][["class", "value"]].rename(columns={"value": "forgetting"})
    rows = rows.astype({"class": int})
    classes = _classes(record)[["class", "task", "train_count", "shot_group"]]
    table = classes.merge(rows, on="class", how="inner")
    table = table[table["task"] < last].sort_values("class").reset_index(drop=True)
    table["shot_group"] = table["shot_group"].astype(str)
    return table[CLASS_FORGETTING_COLUMNS]


def phase_task_matrix(record, kind: str = "accuracy") -> pd.DataFrame:
    """acc[t, u] (``kind="accuracy"``) or FACIL forgetting f[t, u] (``kind="forgetting"``) as a
    DataFrame: index ``phase``, columns ``task``; NaN where undefined (u > t, or f at u == t).
    """
    if kind == "accuracy":
        matrix = record.accuracy_matrix()
    elif kind == "forgetting":
        matrix = record.forgetting_matrix()
    else:
        raise ValueError(f"kind must be 'accuracy' or 'forgetting', got {kind!r}")
    return pd.DataFrame(matrix, index=pd.RangeIndex(matrix.shape[0], name="phase"),
                        columns=pd.RangeIndex(matrix.shape[1], name="task"))


def check_table(table: pd.DataFrame, columns) -> pd.DataFrame:
    """A plot's input: the tidy table with these columns and at least one row (clear error otherwise)."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks columns {missing}; expected {list(columns)}")
    if not len(table):
        raise ValueError("table is empty: nothing to plot")
    return table


# ---------------------------------------------------------------------- several seeds
def per_seed(builder, records_by_seed: Mapping, **kwargs) -> pd.DataFrame:
    """``builder`` (one of the tables above) applied to each seed's record(s), stacked with a ``seed``
    column (after ``label`` where there is one, else first): one row per seed and per row of the single-seed table (the CSVs
    behind the multi-seed figures). ``records_by_seed``: {seed: RunRecord or {label: RunRecord}}."""
    if not isinstance(records_by_seed, Mapping) or not records_by_seed:
        raise ValueError("records_by_seed must be a non-empty mapping {seed: record(s)}")
    frames = []
    for seed, records in records_by_seed.items():
        frame = builder(records, **kwargs)
        frame.insert(1 if frame.columns[0] == "label" else 0, "seed", int(seed))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


FIG4_COLUMNS = ["label", "method", "factor", "setting", "seed", "phase", "acc_all_seen", "acc_task_mean",
                "average_incremental_accuracy"]


def accuracy_by_setting(records: Mapping) -> pd.DataFrame:
    """Figure 4's table: accuracy after every phase for runs keyed by (label, factor, setting, seed),
    where ``factor`` names the setting that varies ("memory" or "imbalance"). Columns: label, method,
    factor, setting, seed, phase, acc_all_seen, acc_task_mean, average_incremental_accuracy."""
    frames = []
    for (label, factor, setting, seed), record in _check_records(records).items():
        curves = accuracy_curves({label: record})
        curves.insert(1, "method", record.config.method)
        curves.insert(2, "factor", str(factor))
        curves.insert(3, "setting", float(setting))
        curves.insert(4, "seed", int(seed))
        curves["average_incremental_accuracy"] = float(record.summary.get("average_incremental_accuracy",
                                                                           curves["acc_all_seen"].mean()))
        frames.append(curves)
    return pd.concat(frames, ignore_index=True)[FIG4_COLUMNS]
