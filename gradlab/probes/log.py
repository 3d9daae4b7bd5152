"""The tidy table probes write into."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

COLUMNS = ["phase", "epoch", "step", "class", "term", "value"]


class ProbeLog:
    """Rows (phase, epoch, step, class, term, value), collected as per-class vectors and turned into a
    DataFrame on demand."""

    def __init__(self):
        self._chunks: list[tuple[int, int, int, str, np.ndarray]] = []

    def add(self, phase: int, epoch: int, step: int, term: str, values) -> None:
        """One value per class 0..len(values)-1."""
        if isinstance(values, torch.Tensor):
            values = values.detach().float().cpu().numpy()
        self._chunks.append((phase, epoch, step, term, np.asarray(values, dtype=np.float64)))

    def __len__(self) -> int:
        return sum(len(chunk[4]) for chunk in self._chunks)

    @property
    def num_chunks(self) -> int:
        """How many per-class vectors were added (a logger reads the new ones with :meth:`chunks`)."""
        return len(self._chunks)

    def chunks(self, start: int = 0) -> list[tuple[int, int, int, str, np.ndarray]]:
        """The vectors added from the ``start``-th on, as (phase, epoch, step, term, values)."""
        return self._chunks[start:]

    def truncate(self, rows: int) -> None:
        """Keep the first ``rows`` rows (a resumed run drops what was logged after its checkpoint)."""
        kept, total = [], 0
        for chunk in self._chunks:
            if total + len(chunk[4]) > rows:
                break
            kept.append(chunk)
            total += len(chunk[4])
        self._chunks = kept

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> "ProbeLog":
        """The log a ``frame()`` came from (``probes.parquet`` read back), chunk by chunk."""
        log = cls()
        classes = frame["class"].to_numpy() if len(frame) else np.empty(0, dtype=np.int64)
        starts = np.flatnonzero(classes == 0)              # every chunk is one vector: classes 0, 1, ..., n-1
        values = frame["value"].to_numpy(np.float64) if len(frame) else classes
        for start, end in zip(starts, [*starts[1:], len(frame)]):
            row = frame.iloc[start]
            log._chunks.append((int(row.phase), int(row.epoch), int(row.step), str(row.term), values[start:end].copy()))
        return log

    def frame(self) -> pd.DataFrame:
        if not self._chunks:
            return pd.DataFrame({c: pd.Series(dtype="int64" if c not in ("term", "value") else
                                              ("object" if c == "term" else "float64")) for c in COLUMNS})
        sizes = [len(chunk[4]) for chunk in self._chunks]
        frame = pd.DataFrame({
            "phase": np.repeat([c[0] for c in self._chunks], sizes),
            "epoch": np.repeat([c[1] for c in self._chunks], sizes),
            "step": np.repeat([c[2] for c in self._chunks], sizes),
            "class": np.concatenate([np.arange(n) for n in sizes]),
            "term": np.repeat([c[3] for c in self._chunks], sizes),
            "value": np.concatenate([c[4] for c in self._chunks]),
        })
        frame["term"] = frame["term"].astype("category")
        return frame
