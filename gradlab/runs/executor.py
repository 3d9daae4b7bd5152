"""Run many configurations: reuse finished runs from a cache, train the rest in parallel processes.

``run_many`` is what ``gradlab figures`` uses (and what ``compare`` / sweeps can use). On the CPU every
run trains in its own worker process with ``threads`` torch threads (default 1), so a run's numbers do
not depend on how many runs share the machine or on its core count; on CUDA the runs go one after
another in this process. A run that fails never leaves a folder that looks finished (its
``summary.json`` is written last), and the other runs still finish before the error is raised.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import torch

from gradlab.checks import check_folder, check_int
from gradlab.config import RunConfig
from gradlab.errors import (
    ConfigError,
    RunFolderError,
    RunFolderInUse,
    RunFolderStopped,
    RunFolderWarning,
    SettingWarning,
)
from gradlab.runs import placement, runner
from gradlab.runs.checkpoints import NOT_COMPARED, settings_hash
from gradlab.runs.estimate import duration, estimate_seconds
from gradlab.runs.logs import check_loggers, replay
from gradlab.runs.records import RunRecord
from gradlab.runs.resume import differing_settings

NOT_HASHED = NOT_COMPARED          # settings that do not change a run's numbers (out, progress, checkpoint_every)


def run_key(cfg: RunConfig) -> str:
    """A folder name for a run: method + a hash of every setting that changes its numbers."""
    return f"{cfg.method}-{settings_hash(cfg)}"       # NOT_HASHED left out (gradlab.runs.resume.settings_hash)


def _same_settings(record: RunRecord, cfg: RunConfig) -> bool:
    return not differing_settings(record.config, cfg)


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
    record = cached_record(cfg, cache_dir)
    if record is not None:
        return record
    folder = Path(cache_dir) / run_key(cfg)
    return runner.run(cfg, callbacks=callbacks, overwrite=True, out=str(folder), progress=progress)


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # an idle worker ignores Ctrl-C (no traceback)


def _interrupt_once(signum, frame):
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # a second Ctrl-C must not cut the run's clean-up
    raise KeyboardInterrupt


def _pool_train(cfg_dict: dict, folder: str) -> tuple[str, float]:
    """:func:`train_into` in a pool worker: Ctrl-C stops the run cleanly (its folder released, resumable)."""
    signal.signal(signal.SIGINT, _interrupt_once)
    try:
        return train_into(cfg_dict, folder)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_pool(pool: ProcessPoolExecutor, pending) -> None:
    """Ctrl-C in the parent: no new runs; the running ones get SIGINT and are awaited (60 s, then ended)."""
    for future in pending:
        future.cancel()
    processes = list((pool._processes or {}).values())
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, signal.SIGINT)
    if wait(pending, timeout=60).not_done:
        for process in processes:
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def train_into(cfg_dict: dict, folder: str) -> tuple[str, float]:
    """One run into ``folder``, resuming what an interrupted run left there; returns (folder, seconds).
    A folder that cannot be resumed (damaged, or another gradlab version's) is trained again from scratch."""
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():          # a new run has nothing to resume: no need to say so here
            warnings.filterwarnings("ignore", "nothing to resume", RunFolderWarning)
            runner.run(cfg_dict, resume=True, out=folder, progress=False)
    except (RunFolderInUse, RunFolderStopped):
        raise                                    # another run's folder, or a stopped run that would repeat
    except RunFolderError:
        runner.run(cfg_dict, overwrite=True, out=folder, progress=False)
    return folder, time.perf_counter() - start


def _ray_train(cfg_dict: dict, folder: str, threads: int, cwd: str) -> tuple[str, float, dict]:
    """Ray task body: this machine's threads for the run, relative paths as the driver sees them, the device as
    the run's config picks it among the GPUs Ray gave the task (CUDA_VISIBLE_DEVICES); returns (folder, seconds,
    where it ran: :func:`gradlab.runs.placement.task_placement`)."""
    start = time.time()
    if os.path.isdir(cwd):
        os.chdir(cwd)
    torch.set_num_threads(threads)
    return (*train_into(cfg_dict, folder), placement.task_placement(start))


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_workers(n_runs: int, threads: int = 1) -> int:
    """As many workers as fit ``threads`` torch threads each on the available cores (no oversubscription),
    at least one, at most one per run."""
    return max(1, min(available_cores() // max(1, threads), n_runs))


def one_line(err: BaseException) -> str:
    """An error as one line; a Ray task error is reported by its cause."""
    cause = getattr(err, "cause", None) or err
    return " ".join(f"{type(cause).__name__}: {cause}".split())


def run_many(configs: dict[str, RunConfig], cache_dir: str | Path = "runs/cache", workers: int | None = None,
             threads: int = 1, log=None, backend: str = "local", address: str | None = None,
             gpus_per_run: float = 0.0, errors: dict | None = None, confirm=None,
             placements: dict | None = None) -> dict[str, RunRecord]:
    """Records for ``configs`` ({name: RunConfig}): cached ones loaded, unfinished ones resumed, the others trained.

    Identical settings under several names train once. ``backend``: ``local`` (worker processes on this
    machine, or this process on CUDA) or ``ray`` (tasks of ``threads`` CPUs and ``gpus_per_run`` GPUs on a
    local Ray runtime, or on the cluster at ``address``; a fraction below 1 shares a GPU, N >= 2 trains each run
    with DDP on N processes: :mod:`gradlab.runs.placement`). ``log`` (default: stderr) gets one line per finished
    run. A failed run does not stop the others; then, with ``errors`` (a dict), its one-line error is stored
    there under each of its names and its name is left out of the result; without, the first is raised.
    Before training, ``log`` gets the number of runs and their estimated time (:mod:`gradlab.runs.estimate`), and
    ``confirm(seconds)`` (None: not estimated, on a Ray cluster), when given, may stop the start by raising.
    With ``placements`` (a dict), where each run trained on Ray is stored there under its names
    (:func:`~gradlab.runs.placement.task_placement`: pid, node, GPU ids, resources, start and end times).
    """
    check_folder("cache_dir", cache_dir)
    if workers is not None:
        check_int("workers", workers, 1, 4096)
    check_int("threads", threads, 1, 4096)
    gpus_per_run = placement.check_gpus_per_run(gpus_per_run, backend)
    if not isinstance(configs, dict) or not all(isinstance(c, RunConfig) for c in configs.values()):
        raise ConfigError("configs must be a mapping {name: RunConfig}")
    log = log if log is not None else (lambda line: print(line, file=sys.stderr, flush=True))
    check_loggers({kind for cfg in configs.values() for kind in cfg.log})
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
    workers = default_workers(len(todo), threads) if workers is None else workers
    on_cuda = any(by_key[k].device == "cuda" for k in todo) and backend == "local"
    parallel, at_once = 1 if on_cuda else workers, ""
    if todo and backend == "ray":               # Ray started first: how many runs its GPUs and CPUs hold at once
        parallel, cluster_gpus, cluster_cpus = placement.ray_capacity(_start_ray(address), gpus_per_run, threads)
        at_once = placement.placement_text(min(parallel, len(todo)), gpus_per_run, threads, cluster_gpus,
                                           cluster_cpus)
    if todo:
        seconds = None if backend == "ray" and address else estimate_seconds([by_key[k] for k in todo], parallel,
                                                                             threads)
        at_once = at_once or (f"{min(parallel, len(todo))} at a time" if seconds is not None else "")
        log(f"{len(by_key)} distinct runs: {len(done)} finished before, {len(todo)} to train"
            + (f", {at_once}" if at_once else "")
            + (f": about {duration(seconds)} (estimated)" if seconds is not None else ""))
        if confirm is not None:
            confirm(seconds)
    tally = _Tally(todo, names_of, cache_dir, parallel, log)
    folders = {key: str(Path(cache_dir) / key) for key in todo}
    busy, cores = min(workers, len(todo)), available_cores()
    if todo and backend == "local" and busy * threads > cores:
        warnings.warn(f"workers x threads = {busy} x {threads} is more than the {cores} cores available; runs "
                      "will compete for them (slower than fewer workers)", SettingWarning, stacklevel=2)
    if todo and backend == "ray":
        _run_on_ray(todo, by_key, folders, threads, gpus_per_run, tally.finished, tally.fail)
    elif todo and (workers == 1 or any(by_key[k].device == "cuda" for k in todo)):
        _run_here(todo, by_key, folders, threads, tally)
    elif todo:
        _run_in_pool(todo, by_key, folders, workers, threads, tally)
    done.update(tally.done)
    failed = tally.failed
    if failed and errors is None:
        key = next(iter(failed))
        raise RuntimeError(f"{len(failed)} of {len(todo)} runs failed; first: {names_of[key][0]} ({key}): {failed[key]}")
    for key, message in failed.items():
        for name in names_of[key]:
            errors[name] = message
    if placements is not None:
        placements.update({name: where for key, where in tally.where.items() for name in names_of[key]})
    for name, cfg in configs.items():          # runs that did not log while training (cached): from their record
        if cfg.log and keys[name] in done:
            replay(done[keys[name]], cfg)
    return {name: done[keys[name]] for name in configs if keys[name] in done}


class _Tally:
    """The runs finished and failed so far, each told to ``log`` in one line with the time left."""

    def __init__(self, todo: list, names_of: dict, cache_dir, parallel: int, log):
        self.todo, self.names_of, self.cache_dir, self.parallel, self.log = todo, names_of, cache_dir, parallel, log
        self.done: dict[str, RunRecord] = {}
        self.failed: dict[str, str] = {}
        self.where: dict[str, dict] = {}            # Ray: where each run trained
        self.start, self.run_times = time.perf_counter(), []

    def count(self) -> int:
        return sum(1 for k in self.todo if k in self.done or k in self.failed)

    def finished(self, key: str, seconds: float, where: dict | None = None) -> None:
        self.done[key] = RunRecord(Path(self.cache_dir) / key)
        if where is not None:
            self.where[key] = where
        gpus = f" on GPU {','.join(where['gpu_ids'])}" if where and where.get("gpu_ids") else ""
        count, todo = self.count(), len(self.todo)
        elapsed = time.perf_counter() - self.start
        self.run_times.append(seconds)  # left: the mean run so far, for each run still to go, `parallel` at a time
        left = sum(self.run_times) / len(self.run_times) * (todo - count) / max(1, min(self.parallel, todo - count))
        acc = self.done[key].summary.get("average_incremental_accuracy")
        self.log(f"[{count}/{todo}] {self.names_of[key][0]} ({key}): {seconds:.0f} s{gpus}"
                 + (f", avg. inc. acc. {100 * acc:.1f} %" if acc is not None else "")
                 + f" | {elapsed:.0f} s elapsed, ~{left:.0f} s left")

    def fail(self, key: str, err: BaseException) -> None:
        self.failed[key] = one_line(err)
        self.log(f"[{self.count()}/{len(self.todo)}] {self.names_of[key][0]} ({key}) FAILED: {self.failed[key]}")


def _run_here(todo, by_key, folders, threads, tally: _Tally) -> None:
    """One run after another in this process (one worker, or runs on CUDA)."""
    before = torch.get_num_threads()
    if all(by_key[k].device != "cuda" for k in todo):
        torch.set_num_threads(threads)      # the same numbers as in a worker process
    try:
        for key in todo:
            try:
                tally.finished(key, train_into(by_key[key].to_dict(), folders[key])[1])
            except Exception as err:  # noqa: BLE001 - reported with the run's name
                tally.fail(key, err)
    finally:
        torch.set_num_threads(before)


def _run_in_pool(todo, by_key, folders, workers, threads, tally: _Tally) -> None:
    """``workers`` spawned processes of ``threads`` torch threads each, results taken as they finish."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads,)) as pool:
        pending = {pool.submit(_pool_train, by_key[k].to_dict(), folders[k]): k for k in todo}
        try:
            while pending:
                ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in ready:
                    key = pending.pop(future)
                    try:
                        tally.finished(key, future.result()[1])
                    except Exception as err:  # noqa: BLE001
                        tally.fail(key, err)
        except KeyboardInterrupt:
            _stop_pool(pool, pending)
            raise


def _ask_for_token_auth() -> None:
    """A new local Ray runtime gets token authentication, Ray's default, asked for explicitly (RAY_AUTH_MODE=token, as
    Ray's docs say) so that Ray does not warn on every sweep that it chose it; a RAY_AUTH_MODE set by the user wins.
    Ray reads the variable when imported, so its settings are re-read here, as Ray does when it turns auth on."""
    if "RAY_AUTH_MODE" not in os.environ:
        from ray._raylet import Config

        os.environ["RAY_AUTH_MODE"] = "token"
        Config.initialize("")


def _start_ray(address: str | None):
    """Ray, connected to the cluster at ``address`` or to a local runtime on this machine's cores (started here
    unless one runs in this process already)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray backend needs Ray: pip install 'ray>=2.9' (or use the local backend)") from None
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            _ask_for_token_auth()
            ray.init(num_cpus=available_cores(), include_dashboard=False, log_to_driver=False)
    return ray


def _run_on_ray(todo, by_key, folders, threads, gpus_per_run, finished, fail) -> None:
    """One Ray task per run (``threads`` CPUs and ``gpus_per_run`` GPUs; N >= 2 GPUs: DDP on N processes of
    ``threads`` CPUs each), results taken as they finish. A GPU task's worker process serves that task alone.
    Ctrl-C cancels the tasks (their runs stop cleanly, resumable) and waits for them up to 60 s."""
    import ray

    ranks = placement.ddp_ranks(gpus_per_run)
    options = {"num_cpus": threads * ranks, "num_gpus": gpus_per_run, "max_retries": 0}
    if gpus_per_run:
        options["max_calls"] = 1                 # a fresh process per GPU run: no CUDA context or state shared
    if ranks > 1:
        task = ray.remote(**options)(placement.ddp_train)
        pending = {task.remote(by_key[k].to_dict(), folders[k], ranks, threads, os.getcwd()): k for k in todo}
    else:
        task = ray.remote(**options)(_ray_train)
        pending = {task.remote(by_key[k].to_dict(), folders[k], threads, os.getcwd()): k for k in todo}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            key = pending.pop(ready[0])
            try:
                finished(key, *ray.get(ready[0])[1:])
            except Exception as err:  # noqa: BLE001 - a failed run is reported, the others go on
                fail(key, err)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref)
        if pending:
            ray.wait(list(pending), num_returns=len(pending), timeout=60)
        raise
