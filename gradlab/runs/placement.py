"""Where the runs of a Ray sweep train: several runs on one GPU, or one run on several GPUs.

``gpus_per_run`` is one of:

- ``0``: CPU runs, ``cpus_per_run`` CPUs (torch threads) each;
- a fraction below 1: runs share a GPU (0.25 packs four runs on each GPU). Ray gives each run's task one GPU
  in ``CUDA_VISIBLE_DEVICES``, so ``device: auto`` (or ``cuda``) trains on that GPU as ``cuda:0``; nothing here
  picks a device;
- a whole number N: N GPUs per run. With N >= 2 the task trains the run with PyTorch DDP on N processes
  (``torchrun --standalone --nproc-per-node N -m gradlab run ...``, :func:`ddp_train`), each with
  ``cpus_per_run`` torch threads, so the task holds N x ``cpus_per_run`` CPUs.

Every task is its own worker process (``max_calls=1`` with GPUs: a GPU run's CUDA context leaves with it), so
runs that share a GPU share no state. :func:`runs_at_once` is the arithmetic of how many runs fit at once.
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import yaml

from gradlab.config import RunConfig
from gradlab.errors import ConfigError, RunFolderError, RunFolderInUse, RunFolderStopped, RunFolderWarning
from gradlab.runs.resume import plan_resume

MAX_GPUS = 1024
UNIT = 10_000            # Ray counts resources in ten-thousandths: 0.3 GPU packs 3 runs on a GPU, never 4
ALLOWED = ("0 (CPU runs), a fraction below 1 (runs share a GPU: 0.25 packs four runs on one; at least 0.0001) or a "
           f"whole number of GPUs up to {MAX_GPUS} (2 or more: each run trains with DDP on that many)")


def check_gpus_per_run(value, backend: str = "ray") -> float:
    """``value`` as Ray takes it (a whole number as an int), or a one-line ConfigError naming what is allowed;
    the local backend takes no GPU share (its CUDA runs go one after another in the driver)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not (number and 0 <= value <= MAX_GPUS and (value < 1 and round(value * UNIT) > 0 or value == 0
                                                   or float(value).is_integer())):
        raise ConfigError(f"gpus_per_run: {value!r} is not allowed; give {ALLOWED}")
    if value and backend != "ray":
        raise ConfigError(f"gpus_per_run: {value:g} places runs on GPUs through Ray: use --backend ray (a local Ray "
                          "runtime on this machine); the local backend trains runs with device cuda one after "
                          "another on this machine's GPU")
    return int(value) if float(value).is_integer() else float(value)


def ddp_ranks(gpus_per_run: float) -> int:
    """The processes one run trains on: N for N >= 2 GPUs per run (DDP), else 1."""
    return int(gpus_per_run) if gpus_per_run >= 2 else 1


def runs_at_once(gpus_per_run: float, cpus_per_run: int, cluster_gpus: float, cluster_cpus: float) -> int:
    """How many runs a machine with ``cluster_gpus`` GPUs and ``cluster_cpus`` CPUs holds at once: the smaller of
    its GPU and CPU limits. A fraction f < 1 of a GPU packs floor(1 / f) runs on each whole GPU (Ray never splits
    one request over two GPUs); N GPUs per run fit floor(GPUs / N) runs; a run takes ``cpus_per_run`` CPUs for
    each of its processes (:func:`ddp_ranks`). E.g. ``runs_at_once(0.25, 1, 1, 8) == 4``."""
    cpus = max(1, round(cpus_per_run * ddp_ranks(gpus_per_run) * UNIT))
    by_cpu = round(cluster_cpus * UNIT) // cpus
    gpus = round(gpus_per_run * UNIT)
    if gpus == 0:
        by_gpu = math.inf
    elif gpus < UNIT:
        by_gpu = math.floor(cluster_gpus) * (UNIT // gpus)
    else:
        by_gpu = round(cluster_gpus * UNIT) // gpus
    return int(min(by_cpu, by_gpu))


def _count(n: float, what: str) -> str:
    return f"{n:g} {what}" + ("" if 0 < n <= 1 else "s")


def placement_text(at_once: int, gpus_per_run: float, cpus_per_run: int, cluster_gpus: float,
                   cluster_cpus: float) -> str:
    """E.g. "4 runs at once (1 GPU, 0.25 GPU per run; 4 CPUs, 1 CPU per run)"."""
    ranks = ddp_ranks(gpus_per_run)
    parts = []
    if gpus_per_run:
        ddp = f": DDP on {ranks} processes" if ranks > 1 else ""
        parts.append(f"{_count(cluster_gpus, 'GPU')}, {_count(gpus_per_run, 'GPU')} per run{ddp}")
    each = f", {cpus_per_run} per process" if ranks > 1 else ""
    parts.append(f"{_count(cluster_cpus, 'CPU')}, {_count(cpus_per_run * ranks, 'CPU')} per run{each}")
    return f"{_count(at_once, 'run')} at once ({'; '.join(parts)})"


def ray_capacity(ray, gpus_per_run: float, cpus_per_run: int) -> tuple[int, float, float]:
    """(runs at once on the Ray cluster, summed over its live nodes; its GPUs; its CPUs); a request no node can
    take is refused in one line (Ray would wait for ever)."""
    have = ray.cluster_resources()
    ranks = ddp_ranks(gpus_per_run)
    cpus = cpus_per_run * ranks
    for name, asked, key in (("cpus_per_run", cpus, "CPU"), ("gpus_per_run", gpus_per_run, "GPU")):
        if asked > have.get(key, 0):
            how = f" ({cpus_per_run} for each of its {ranks} processes)" if key == "CPU" and ranks > 1 else ""
            raise ConfigError(f"{name}: {asked:g} asked per run{how}, but the Ray cluster has {have.get(key, 0):g} "
                              f"{key}(s) in all; lower it (or add nodes that have them)")
    try:
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive", True)]
    except Exception:  # noqa: BLE001 - a client that cannot list nodes: the cluster as one machine
        nodes = [have]
    at_once = sum(runs_at_once(gpus_per_run, cpus_per_run, n.get("GPU", 0), n.get("CPU", 0)) for n in nodes)
    if at_once == 0:
        raise ConfigError(f"gpus_per_run: no node of the Ray cluster has {_count(gpus_per_run, 'GPU')} and "
                          f"{_count(cpus, 'CPU')} for one run (nodes: "
                          + ", ".join(f"{n.get('GPU', 0):g} GPUs/{n.get('CPU', 0):g} CPUs" for n in nodes)
                          + "); lower gpus_per_run or cpus_per_run")
    return at_once, have.get("GPU", 0), have.get("CPU", 0)


def task_placement(start: float) -> dict:
    """Where this Ray task runs: process, node, the GPUs Ray gave it, its resources, its start and end times."""
    import ray

    context = ray.get_runtime_context()
    try:
        gpu_ids = [str(i) for i in context.get_accelerator_ids().get("GPU", [])]
    except AttributeError:          # an older Ray
        gpu_ids = [str(i) for i in ray.get_gpu_ids()]
    return {"pid": os.getpid(), "node": context.get_node_id(), "gpu_ids": gpu_ids,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "resources": dict(context.get_assigned_resources()), "start": start, "end": time.time()}


# Linux: the launcher dies with the task's process (a killed Ray worker leaves no run behind), then becomes torchrun
_LAUNCH = ("import ctypes, os, signal, sys\n"
           "try:\n    ctypes.CDLL(None).prctl(1, signal.SIGTERM)\nexcept (AttributeError, OSError):\n    pass\n"
           "if os.getppid() != int(sys.argv[1]):\n    sys.exit(143)\n"
           "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n")


def ddp_command(config: str, folder: str, ranks: int, flags=()) -> list[str]:
    """``gradlab run`` of one run on ``ranks`` processes under torchrun (single node, its own rendezvous)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
            "-m", "gradlab", "run", config, "--out", folder, "--quiet", *flags]


def _mode(cfg_dict: dict, folder: str) -> list[str] | None:
    """The flags :func:`gradlab.runs.executor.train_into` would take: resume what the folder holds, train again
    a folder that cannot be resumed, refuse one in use or stopped; None: the run there is finished."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RunFolderWarning)
        try:
            plan = plan_resume(Path(folder), RunConfig.from_dict(dict(cfg_dict)))
        except (RunFolderInUse, RunFolderStopped):
            raise
        except RunFolderError:
            return ["--overwrite"]
    if plan is None:
        return []
    return None if plan.finished else ["--resume"]


def _stop(process: subprocess.Popen) -> None:
    """torchrun and its ranks (its process group): SIGTERM, then after 30 s SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tail(text: str, limit: int = 600) -> str:
    """The end of torchrun's stderr as one line: gradlab's own error line when a rank printed one."""
    lines = [" ".join(line.split()) for line in text.splitlines() if line.strip()]
    ours = [line[line.index("gradlab: "):] for line in lines if "gradlab: " in line]
    tail = ours[-1] if ours else " | ".join(lines[-3:])
    return tail if len(tail) <= limit else "..." + tail[-limit:]


def ddp_train(cfg_dict: dict, folder: str, ranks: int, threads: int, cwd: str) -> tuple[str, float, dict]:
    """Ray task body for N >= 2 GPUs per run: the run trained by ``torchrun`` on ``ranks`` processes (rank 0
    writes ``folder``, as :func:`~gradlab.runs.executor.train_into` would: resumed, or trained again when it
    cannot be). A failure is raised as one line with the end of torchrun's stderr; a cancelled task stops
    torchrun and its ranks. Returns (folder, seconds, :func:`task_placement`)."""
    start, begin = time.time(), time.perf_counter()
    if os.path.isdir(cwd):
        os.chdir(cwd)
    flags = _mode(cfg_dict, folder)
    if flags is None:
        return folder, time.perf_counter() - begin, task_placement(start)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory(prefix="gradlab-ddp-") as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(yaml.safe_dump({k: v for k, v in cfg_dict.items() if k != "out"}, sort_keys=False))
        with open(Path(tmp) / "stderr.txt", "w+") as err:
            command = [sys.executable, "-c", _LAUNCH, str(os.getpid()), *ddp_command(str(config), folder, ranks,
                                                                                     flags)[1:]]
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                       env=env, start_new_session=True)
            try:
                code = None
                while code is None:          # short waits: Ray's cancel raises KeyboardInterrupt between them
                    try:
                        code = process.wait(0.5)
                    except subprocess.TimeoutExpired:
                        pass
            except BaseException:            # Ray's cancel, the worker shutting down
                _stop(process)
                raise
            if code != 0:
                err.seek(0)
                raise RuntimeError(f"torchrun on {ranks} processes exited with {code}: {_tail(err.read())}")
    return folder, time.perf_counter() - begin, task_placement(start)
