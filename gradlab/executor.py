"""Run many configurations: reuse finished runs from a cache, train the rest in parallel processes.

``run_many`` is what ``gradlab figures`` uses (and what ``compare`` / sweeps can use). On the CPU every
run trains in its own worker process with ``threads`` torch threads (default 1), so a run's numbers do
not depend on how many runs share the machine or on its core count; on CUDA the runs go one after
another in this process. A run that fails never leaves a folder that looks finished (its
``summary.json`` is written last), and the other runs still finish before the error is raised.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import yaml

from gradlab.config import RunConfig
from gradlab.records import RunRecord
from gradlab.runfolder import RunFolderError

NOT_HASHED = ("out", "progress", "checkpoint_every")   # settings that do not change a run's numbers


def run_key(cfg: RunConfig) -> str:
    """A folder name for a run: method + a hash of every setting that changes its numbers."""
    values = {k: v for k, v in cfg.to_dict().items() if k not in NOT_HASHED}
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"{cfg.method}-{digest}"


def _same_settings(record: RunRecord, cfg: RunConfig) -> bool:
    stored = {k: v for k, v in record.config.to_dict().items() if k not in NOT_HASHED}
    wanted = {k: v for k, v in cfg.to_dict().items() if k not in NOT_HASHED}
    return yaml.safe_load(yaml.safe_dump(stored)) == yaml.safe_load(yaml.safe_dump(wanted))


def cached_record(cfg: RunConfig, cache_dir: str | Path) -> RunRecord | None:
    """The finished run with exactly these settings in ``cache_dir``, or None."""
    folder = Path(cache_dir) / run_key(cfg)
    if (folder / "summary.json").is_file():
        try:
            record = RunRecord(folder)
        except RunFolderError:           # damaged: trained again (overwrite keeps nothing broken)
            return None
        if record.complete and _same_settings(record, cfg):
            return record
    return None


def cached_run(cfg: RunConfig, cache_dir: str | Path = "runs/cache", progress: bool = False,
               callbacks=()) -> RunRecord:
    """Load the finished run with exactly these settings from ``cache_dir``, or train it there (here)."""
    import gradlab

    record = cached_record(cfg, cache_dir)
    if record is not None:
        return record
    folder = Path(cache_dir) / run_key(cfg)
    return gradlab.run(cfg, callbacks=callbacks, overwrite=True, out=str(folder), progress=progress)


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _train(cfg_dict: dict, folder: str) -> tuple[str, float]:
    """Worker body: one run into ``folder``; returns (folder, seconds)."""
    import gradlab

    start = time.perf_counter()
    gradlab.run(cfg_dict, overwrite=True, out=folder, progress=False)
    return folder, time.perf_counter() - start


def default_workers(n_runs: int) -> int:
    """One worker per available core, at most one per run."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, n_runs))


def run_many(configs: dict[str, RunConfig], cache_dir: str | Path = "runs/cache", workers: int | None = None,
             threads: int = 1, log=None) -> dict[str, RunRecord]:
    """Records for ``configs`` ({name: RunConfig}): cached ones loaded, the others trained.

    Identical settings under several names train once. ``log`` (default: print to stderr) receives
    one progress line per finished run, with the elapsed time and an estimate of what is left.
    """
    log = log if log is not None else (lambda line: print(line, file=sys.stderr, flush=True))
    keys = {name: run_key(cfg) for name, cfg in configs.items()}
    by_key: dict[str, RunConfig] = {}
    names_of: dict[str, list[str]] = {}
    for name, cfg in configs.items():
        by_key.setdefault(keys[name], cfg)
        names_of.setdefault(keys[name], []).append(name)
    done: dict[str, RunRecord] = {}
    for key, cfg in by_key.items():
        record = cached_record(cfg, cache_dir)
        if record is not None:
            done[key] = record
    todo = [key for key in by_key if key not in done]
    if todo:
        log(f"{len(by_key)} distinct runs: {len(done)} cached, {len(todo)} to train")
    on_cpu = all(by_key[k].device != "cuda" for k in todo)
    workers = default_workers(len(todo)) if workers is None else max(1, int(workers))
    start, errors = time.perf_counter(), []

    def finished(key: str, seconds: float) -> None:
        done[key] = RunRecord(Path(cache_dir) / key)
        count = sum(1 for k in todo if k in done)
        elapsed = time.perf_counter() - start
        left = elapsed / count * (len(todo) - count)
        acc = done[key].summary.get("average_incremental_accuracy")
        log(f"[{count}/{len(todo)}] {names_of[key][0]} ({key}): {seconds:.0f} s"
            + (f", avg. inc. acc. {100 * acc:.1f} %" if acc is not None else "")
            + f" | {elapsed:.0f} s elapsed, ~{left:.0f} s left")

    if todo and (workers == 1 or not on_cpu):
        import torch

        before = torch.get_num_threads()
        if on_cpu:
            torch.set_num_threads(threads)      # the same numbers as in a worker process
        try:
            for key in todo:
                try:
                    _, seconds = _train(by_key[key].to_dict(), str(Path(cache_dir) / key))
                    finished(key, seconds)
                except Exception as err:  # noqa: BLE001 - reported with the run's name below
                    errors.append((key, err))
        finally:
            torch.set_num_threads(before)
    elif todo:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                 initargs=(threads,)) as pool:
            pending = {pool.submit(_train, by_key[k].to_dict(), str(Path(cache_dir) / k)): k for k in todo}
            while pending:
                ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in ready:
                    key = pending.pop(future)
                    try:
                        finished(key, future.result()[1])
                    except Exception as err:  # noqa: BLE001
                        errors.append((key, err))
    if errors:
        key, err = errors[0]
        raise RuntimeError(f"{len(errors)} of {len(todo)} runs failed; first: {names_of[key][0]} ({key}): "
                           f"{type(err).__name__}: {err}") from err
    return {name: done[keys[name]] for name in configs}
