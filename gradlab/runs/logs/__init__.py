"""Loggers: TensorBoard, Weights & Biases and CSV as trainer callbacks (``--log tensorboard,csv,wandb``,
``log:`` in YAML, ``gradlab.run(..., log=[...])``).

They write into ``log_dir`` (default ``<run folder>/logs``): TensorBoard's event files at its top, ``csv/``
and ``wandb/`` below; ``compare`` and ``sweep`` give every run ``<out>/logs/<method>/seed_<k>`` (or
``<log_dir>/...``), so ``tensorboard --logdir <out>/logs`` shows the runs side by side, grouped by method and
seed. A logger never changes a number of the run: it reads the losses the step computed, the probes' rows
and the metrics the record holds. A run served from the cache is replayed from its record
(:func:`replay`: everything but the per-step losses and throughput, which a record does not keep).
"""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

from gradlab.config import LOGGERS as LOGGER_NAMES
from gradlab.errors import ConfigError
from gradlab.probes.log import ProbeLog
from gradlab.runs.logs.base import SUMMARY_KEYS, RunLogger, RunSnapshot, SharedSignals, phase_signals
from gradlab.runs.logs.csv_files import CsvLogger
from gradlab.runs.logs.tensorboard import TensorBoardLogger
from gradlab.runs.logs.wandb_run import WandbLogger, wandb_mode

LOGGERS: dict[str, type[RunLogger]] = {"tensorboard": TensorBoardLogger, "csv": CsvLogger, "wandb": WandbLogger}
PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb"}      # what each logger needs installed


def check_loggers(names) -> None:
    """Every named logger's package is importable: else one line saying what to install (before training)."""
    for name in names:
        package = PACKAGES.get(name)
        if package and importlib.util.find_spec(package) is None:
            raise ConfigError(f"log: {name!r} needs the {package} package, which is not installed: "
                              f"pip install {package}")


def run_log_dir(cfg, run_folder: Path) -> Path:
    """Where a run's loggers write: ``cfg.log_dir``, or ``<run folder>/logs``."""
    return Path(cfg.log_dir) if cfg.log_dir else Path(run_folder) / "logs"


def build_loggers(cfg, log_dir: Path, probe_log=None, extra_summary: dict | None = None,
                  shared: SharedSignals | None = None, resumed: bool = False) -> list[RunLogger]:
    """The loggers ``cfg.log`` names, all writing into ``log_dir``; named ``<method>-s<seed>``, grouped by method,
    sharing one :class:`SharedSignals`. ``resumed``: the run goes on from a checkpoint, so its loggers add to
    what the interrupted part wrote instead of starting the folder afresh."""
    shared = shared if shared is not None else SharedSignals()
    loggers = [LOGGERS[kind](log_dir, name=f"{cfg.method}-s{cfg.seed}", group=cfg.method, probe_log=probe_log,
                             extra_summary=extra_summary, shared=shared) for kind in cfg.log]
    for logger in loggers:
        logger.resumed = resumed
    return loggers


def grouped_log_dirs(configs: dict, root) -> dict:
    """``configs`` ({name: RunConfig}) with every run that logs writing to ``<root>/<method>[/<field>_<value>...]/
    seed_<k>`` (the fields that differ between the runs, e.g. a sweep's memory; ``<root>``: the run's own
    ``log_dir`` when it has one, else ``root``): one folder for TensorBoard, grouped by method and seed."""
    dicts = {name: cfg.to_dict() for name, cfg in configs.items()}
    skip = {"method", "seed", "out", "log_dir", "progress", "plugins"}

    def varying(method: str) -> list[str]:          # the fields that differ between this method's runs
        same = [d for d in dicts.values() if d["method"] == method]
        return [k for k in same[0] if k not in skip
                and len({json.dumps(d[k], sort_keys=True, default=str) for d in same}) > 1]

    grouped = {}
    for name, cfg in configs.items():
        if cfg.log:
            values = dicts[name]
            parts = [values["method"], *(f"{k}_{_slug(values[k])}" for k in varying(values["method"])), f"seed_{values['seed']}"]
            cfg = type(cfg).from_dict({**values, "log_dir": str(Path(cfg.log_dir or root).joinpath(*parts))})
        grouped[name] = cfg
    return grouped


def _slug(value) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list)) else str(value)
    return re.sub(r"[^A-Za-z0-9.=+-]+", "_", text).strip("_") or "none"


def has_logs(log_dir: Path) -> bool:
    """Whether a log folder already holds something (a replay then leaves it alone)."""
    return Path(log_dir).is_dir() and any(Path(log_dir).iterdir())


def replay(record, cfg=None) -> list[str]:
    """Write a finished run's record through the loggers of ``cfg`` (default: the record's config) into
    ``cfg.log_dir`` (default ``<record>/logs``): the probes' rows, every phase's metrics and the summary, as the
    live loggers wrote them; per-step losses and throughput are not in a record and stay out. Returns the
    loggers written; a log folder that already holds files is left alone (returns [])."""
    cfg = cfg if cfg is not None else record.config
    log_dir = run_log_dir(cfg, record.path)
    if not cfg.log or has_logs(log_dir):
        return []
    check_loggers(cfg.log)
    log_dir.mkdir(parents=True, exist_ok=True)
    probes = ProbeLog.from_frame(record.probes) if len(record.probes) else ProbeLog()
    loggers = build_loggers(cfg, log_dir)
    metrics = record.metrics
    for logger in loggers:
        try:
            logger.open(cfg.to_dict())
            for phase in sorted(int(p) for p in metrics.phase.unique()):
                chunks = [c for c in probes.chunks() if c[0] == phase]
                if chunks:
                    logger.probe_rows(chunks, 0)
                seen = int(record.classes.loc[record.classes.task <= phase, "class"].max()) + 1
                logger.phase_metrics(phase, *phase_signals(metrics, phase, seen))
            logger.summary({k: float(v) for k, v in record.summary.items() if k in SUMMARY_KEYS
                            and isinstance(v, (int, float)) and not isinstance(v, bool)})
        finally:
            logger.close()
    return list(cfg.log)


__all__ = ["LOGGERS", "LOGGER_NAMES", "CsvLogger", "RunLogger", "RunSnapshot", "SharedSignals", "TensorBoardLogger", "WandbLogger",
           "build_loggers", "check_loggers", "grouped_log_dirs", "has_logs", "replay", "run_log_dir", "wandb_mode"]
