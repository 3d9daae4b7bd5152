"""GPUs in a Ray sweep: the placement arithmetic, runs sharing a GPU (a real local Ray runtime declared with fake
GPUs; the runs themselves train on the CPU) in separate processes with the numbers they have alone, and one run
on two GPUs trained by torchrun on two processes (DDP, gloo on the CPU)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gradlab.config import RunConfig
from gradlab.errors import ConfigError
from gradlab.experiments.sweep import load_sweep, run_sweep
from gradlab.runs.executor import run_key, run_many
from gradlab.runs.folder import lock_holder
from gradlab.runs.placement import check_gpus_per_run, ddp_train, runs_at_once
from gradlab.runs.records import RunRecord

BASE = ("base: {scenario: digits, tasks: 2, imbalance: 10, epochs: 1, batch_size: 32, memory: 5, checkpoints: false, "
        "probes: [], method: ce, device: cpu}\n")


@pytest.fixture
def local_ray():
    """``start(num_gpus)``: a real local Ray runtime of 2 CPUs and that many declared (fake) GPUs, shut down after."""
    import ray

    def start(num_gpus: int):
        ray.init(num_cpus=2, num_gpus=num_gpus, include_dashboard=False, log_to_driver=False)
        return ray
    yield start
    ray.shutdown()


@pytest.mark.parametrize("gpus, cpus, cluster_gpus, cluster_cpus, expected", [
    (0.25, 1, 1, 8, 4),        # four runs share the GPU
    (0.25, 1, 1, 2, 2),        # ... but two CPUs hold two runs
    (0.25, 1, 2, 16, 8),
    (0.3, 1, 1, 16, 3),        # 3 x 0.3 fit on a GPU, a fourth would need 1.2
    (0.5, 2, 1, 3, 1),
    (0.25, 1, 0, 8, 0),        # no GPU: nothing fits
    (1, 1, 3, 8, 3),
    (2, 1, 2, 2, 1),           # DDP on 2 GPUs: 2 processes of 1 CPU
    (2, 2, 4, 6, 1),           # ... of 2 CPUs each: 4 CPUs per run
    (2, 1, 3, 64, 1),          # a third GPU holds no second run
    (0, 3, 0, 8, 2),           # CPU runs
])
def test_runs_at_once_is_the_smaller_of_the_gpu_and_cpu_limits(gpus, cpus, cluster_gpus, cluster_cpus, expected):
    assert runs_at_once(gpus, cpus, cluster_gpus, cluster_cpus) == expected


@pytest.mark.parametrize("value", [1.5, 2.5, -0.25, 1025, float("inf"), float("nan"), True, "0.5", 0.00001])
def test_a_gpu_share_ray_cannot_take_is_refused_in_one_line_before_any_run(tmp_path, value, cli, no_training):
    (tmp_path / "s.yaml").write_text(BASE + "grid: {seed: [0, 1]}\n")
    with pytest.raises(ConfigError, match=r"^gpus_per_run: .* is not allowed; give 0 \(CPU runs\), a fraction below "
                                          r"1 \(runs share a GPU.*\) or a whole number of GPUs") as err:
        run_sweep(tmp_path / "s.yaml", tmp_path / "out", gpus_per_run=value)
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists()
    assert [check_gpus_per_run(v) for v in (0, 0.25, 0.5, 1, 2.0, 8)] == [0, 0.25, 0.5, 1, 2, 8]
    if value == 1.5:
        code, stderr = cli(["sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "--gpus-per-run", "1.5"])
        assert code == 2 and stderr.startswith("gradlab: error: gpus_per_run: 1.5 is not allowed")
        assert len(stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_the_local_backend_refuses_a_gpu_share_and_points_at_ray(tmp_path, cli, no_training):
    (tmp_path / "s.yaml").write_text(BASE + "grid: {seed: [0, 1]}\n")
    code, stderr = cli(["sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"), "--backend", "local",
                        "--gpus-per-run", "0.25"])
    assert code == 2 and "gpus_per_run: 0.25" in stderr and "--backend ray" in stderr
    assert len(stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()
    configs, _ = load_sweep(tmp_path / "s.yaml")
    with pytest.raises(ConfigError, match="--backend ray"):
        run_many(configs, tmp_path / "cache", gpus_per_run=1, log=lambda line: None)


def most_at_once(intervals) -> int:
    """The largest number of (start, end) intervals that overlap at one instant."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda e: (e[0], e[1]))          # an end before a start at the same instant
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most


def test_runs_sharing_a_gpu_run_as_many_at_once_as_predicted_in_separate_processes(tmp_path, local_ray):
    (tmp_path / "s.yaml").write_text(BASE + "grid: {seed: [0, 1, 2, 3]}\n")
    local_ray(1)
    lines, where = [], {}
    table = run_sweep(tmp_path / "s.yaml", tmp_path / "out", gpus_per_run=0.25, cpus_per_run=1, log=lines.append,
                      placements=where)
    assert set(table.status) == {"complete"} and sorted(where) == [f"seed={s}" for s in range(4)]
    predicted = runs_at_once(0.25, 1, 1, 2)
    assert predicted == 2                                    # the 2 CPUs, not the GPU's 4 slots, are the limit
    assert "4 to train, 2 runs at once (1 GPU, 0.25 GPU per run; 2 CPUs, 1 CPU per run)" in lines[1], lines
    assert sum(" on GPU 0," in line for line in lines) == 4
    for task in where.values():                              # every run got a quarter of GPU 0 and one CPU
        assert task["gpu_ids"] == ["0"] and task["cuda_visible_devices"] == "0"
        assert task["resources"] == {"CPU": 1.0, "GPU": 0.25}
    assert most_at_once([(t["start"], t["end"]) for t in where.values()]) == predicted
    pids = {t["pid"] for t in where.values()}
    assert len(pids) == 4 and os.getpid() not in pids        # a fresh worker process for each run

    configs, _ = load_sweep(tmp_path / "s.yaml")             # the same runs, one after another in this process
    alone = run_many(configs, tmp_path / "alone", workers=1, threads=1, log=lambda line: None)
    for name, cfg in configs.items():
        shared = RunRecord(tmp_path / "out" / "runs" / run_key(cfg))
        assert shared.summary["device"] == "cpu" and shared.summary["threads"] == 1
        for metric in ("average_incremental_accuracy", "final_accuracy", "accuracy_per_phase", "average_forgetting"):
            assert shared.summary[metric] == alone[name].summary[metric], (name, metric)
        assert shared.metrics.equals(alone[name].metrics), name


def test_one_run_on_two_gpus_trains_on_two_ranks_and_a_failing_one_says_why(tmp_path, local_ray):
    """gpus_per_run 2: each run's task launches torchrun --nproc-per-node 2 (the DDP core: gloo on the CPU)."""
    (tmp_path / "s.yaml").write_text(BASE + "list: [{method: ce}, {method: lucir}]\n")    # lucir refuses ranks
    local_ray(2)
    lines, where = [], {}
    table = run_sweep(tmp_path / "s.yaml", tmp_path / "out", gpus_per_run=2, log=lines.append, placements=where)
    assert "2 to train, 1 run at once (2 GPUs, 2 GPUs per run: DDP on 2 processes; 2 CPUs, 2 CPUs per run" in lines[1]
    status = table.set_index("method").status.to_dict()
    record = RunRecord(table.set_index("method").folder["ce"])
    assert record.complete and record.summary["ranks"] == 2, record.summary
    assert record.summary["device"] == "cpu" and status == {"ce": "complete", "lucir": "failed"}
    assert where["method=ce"]["gpu_ids"] == ["0", "1"] and where["method=ce"]["resources"]["GPU"] == 2
    error = table.set_index("method").error["lucir"]
    assert "torchrun on 2 processes exited with 1: " in error and "cannot train on 2 ranks" in error
    assert "\n" not in error


def test_a_cancelled_ddp_task_stops_torchrun_and_its_ranks(tmp_path, local_ray):
    ray = local_ray(2)
    cfg = RunConfig.from_dict({"scenario": "digits", "tasks": 2, "epochs": 400, "checkpoints": False,
                               "method": "ce", "device": "cpu", "probes": []})
    folder = tmp_path / "run"
    task = ray.remote(num_cpus=2, num_gpus=2, max_retries=0)(ddp_train)
    ref = task.remote(cfg.to_dict(), str(folder), 2, 1, os.getcwd())
    deadline = time.monotonic() + 60
    while not (holder := lock_holder(folder)):               # rank 0 holds the run folder: training started
        assert time.monotonic() < deadline and not ray.wait([ref], timeout=0)[0]
        time.sleep(0.2)
    assert len(processes_with(str(folder))) == 3              # torchrun and its two ranks
    ray.cancel(ref)
    with pytest.raises((ray.exceptions.TaskCancelledError, ray.exceptions.RayTaskError)):
        ray.get(ref, timeout=60)
    while (holder := lock_holder(folder)) and not holder.get("stale"):
        assert time.monotonic() < deadline, f"rank 0 (pid {holder['pid']}) outlived its cancelled task"
        time.sleep(0.2)
    while launched := processes_with(str(folder)):            # torchrun and both ranks have --out FOLDER
        assert time.monotonic() < deadline, f"outlived their cancelled task: {launched}"
        time.sleep(0.2)
    assert not (folder / "summary.json").exists()


def processes_with(text: str) -> list[int]:
    """The live processes (not zombies) whose command line holds ``text``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            state = Path(f"/proc/{entry}/stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, ValueError, IndexError):
            continue
        if text in cmdline and state not in ("Z", "X"):
            found.append(int(entry))
    return found
