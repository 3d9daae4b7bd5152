"""Sweeps: expanding the file, a real Ray runtime (num_cpus=2) killed halfway and rerun, failures recorded."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from gradlab.errors import ConfigError
from gradlab.experiments.sweep import expand_sweep, seed_curves, sweep_records
from gradlab.plots.curves import accuracy_curves
from gradlab.runs.folder import lock_holder

SWEEP = """\
base: {scenario: digits, tasks: 3, epochs: 40, probes: []}
grid: {method: [ce, dgr], seed: [0, 1, 2]}
"""


def test_grid_and_list_expand_to_every_combination():
    configs, swept = expand_sweep({"base": {"scenario": "digits", "tasks": 3},
                                   "grid": {"method": ["ce", "dgr"], "seed": [0, 1]},
                                   "list": [{"memory": 10}, {"memory": 20, "imbalance": 10}]})
    assert swept == ["method", "seed", "memory", "imbalance"]
    assert len(configs) == 8
    assert {(c.method, c.seed, c.memory, c.rho) for c in configs.values()} == {
        (m, s, mem, rho) for m in ("ce", "dgr") for s in (0, 1) for mem, rho in ((10, 100.0), (20, 10.0))}
    assert all(c.scenario == "digits" and c.tasks == 3 for c in configs.values())


@pytest.mark.parametrize("spec, message", [
    ({"base": {}, "grid": {"seed": [0]}, "sweeps": 1}, "unknown key"),
    ({"grid": {"seed": []}}, "non-empty list"),
    ({"grid": {"seed": 3}}, "non-empty list"),
    ({"list": [1, 2]}, "list of mappings"),
    ({"base": {"out": "x"}}, "'out' is set by the sweep"),
    ({"base": {"scenario": "digits"}, "grid": {"lr": [0.1, -1]}}, r"run \(lr=-1\): .*lr must be"),
    ([1, 2], "mapping"),
])
def test_bad_sweep_files_name_the_problem(spec, message):
    with pytest.raises(ConfigError, match=message):
        expand_sweep(spec)


def _sweep(tmp_path, *flags):
    return subprocess.Popen([sys.executable, "-m", "gradlab.cli", "sweep", str(tmp_path / "sweep.yaml"),
                             "--out", str(tmp_path / "out"), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_ray_sweep_killed_halfway_reruns_only_what_did_not_finish(tmp_path):
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    runs = tmp_path / "out" / "runs"
    process = _sweep(tmp_path)                       # Ray by default: a real local runtime on this machine's 2 cores
    deadline = time.monotonic() + 400
    while len(list(runs.glob("*/summary.json"))) < 2:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    while any((h := lock_holder(folder)) and not h.get("stale") for folder in runs.iterdir()):
        assert time.monotonic() < deadline, "Ray's workers outlived the killed driver"
        time.sleep(0.1)                              # a task may finish its step after the driver died
    before = {p.parent.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in runs.glob("*/summary.json")}
    assert 2 <= len(before) < 6

    process = _sweep(tmp_path)
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    assert f"{len(before)} finished before, {6 - len(before)} to train" in stderr
    after = {p.parent.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in runs.glob("*/summary.json")}
    assert len(after) == 6 and all(after[name] == before[name] for name in before)     # not retrained
    table = pd.read_csv(tmp_path / "out" / "sweep.csv")
    assert len(table) == 6 and set(table.status) == {"complete"} and sorted(table.seed) == [0, 0, 1, 1, 2, 2]
    markdown = (tmp_path / "out" / "sweep.md").read_text()
    for method in ("ce", "dgr"):
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {method} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == "3" and "±" in cells[2] and "—" not in cells[2]
        mean = 100 * table[table.method == method].average_incremental_accuracy.mean()
        assert cells[2].startswith(f"{mean:.2f} ±")
    assert "average_forgetting" in markdown and "wall_time_s" in markdown

    records = sweep_records(tmp_path / "out")                  # what the notebook cell plots: seed bands
    assert sorted(records) == ["method=ce", "method=dgr"] and all(sorted(r) == [0, 1, 2] for r in records.values())
    curves = seed_curves(records)
    assert len(curves) == 2 * 3 * 3 and set(curves.phase) == {0, 1, 2}
    mean = curves[(curves.label == "method=dgr") & (curves.phase == 2)].acc_all_seen.mean()
    fig = accuracy_curves(curves)
    line = fig.axes[0].lines[1]
    assert "3 seeds" in line.get_label() and line.get_ydata()[-1] == pytest.approx(100 * mean)
    assert len(fig.axes[0].collections) == 2                   # one ± 1 std band per setting


def test_a_failed_run_is_recorded_and_the_others_finish(tmp_path):
    (tmp_path / "sweep.yaml").write_text("base: {scenario: digits, tasks: 2, epochs: 2, probes: [], log: [csv]}\n"
                                         "list: [{lr: 0.1}, {lr: 1.0e+30}]\n")
    process = _sweep(tmp_path, "--backend", "local", "--workers", "1")
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 1 and "FAILED" in stderr and "1 did not finish" in stdout
    table = pd.read_csv(tmp_path / "out" / "sweep.csv")
    assert table.set_index("lr").status.to_dict() == {0.1: "complete", 1e30: "diverged"}
    assert "diverged in phase" in table.set_index("lr").error[1e30]
    assert "Runs that did not finish" in (tmp_path / "out" / "sweep.md").read_text()
    logs = tmp_path / "out" / "logs" / "finetune"          # one log folder, the runs told apart by what differs
    assert sorted(p.name for p in logs.iterdir()) == ["lr_0.1", "lr_1e+30"]
    assert list(pd.read_csv(logs / "lr_0.1" / "seed_0" / "csv" / "phases.csv").phase.unique()) == [0, 1]
    assert (logs / "lr_1e+30" / "seed_0" / "csv" / "losses.csv").is_file()   # the diverged run's logs are kept


ROOT = Path(__file__).resolve().parent.parent


def test_readme_sweep_example_is_the_file_and_figure_5s_protocol_over_5_seeds():
    from gradlab.experiments.paper_figures import figure_plan

    readme = (ROOT / "docs" / "guide" / "runs.md").read_text()
    example = (ROOT / "sweeps" / "fig5_five_seeds.yaml").read_text()
    assert f"```yaml\n{example}```" in readme
    assert "gradlab sweep sweeps/fig5_five_seeds.yaml --out runs/sweep-fig5" in readme
    configs, swept = expand_sweep(yaml.safe_load(example))
    assert swept == ["method_args", "seed"] and len(configs) == 20
    ignore = ("out", "progress", "checkpoints")          # the sweep keeps checkpoints so its runs can resume
    plain = lambda cfg: json.dumps({k: v for k, v in cfg.to_dict().items() if k not in ignore}, sort_keys=True)  # noqa: E731
    plan = figure_plan("fig5", quick=True, seeds=range(5))
    assert sorted(map(plain, configs.values())) == sorted(plain(c) for runs in plan.values() for c in runs.values())


def test_readme_resume_commands_run_as_printed(tmp_path, monkeypatch, capsys):
    from gradlab.cli import main

    readme = (ROOT / "docs" / "guide" / "runs.md").read_text()
    section = readme[readme.index("**Resume.**"):readme.index("**Sweeps.**")]
    commands = [line.split()[1:] for line in section.splitlines() if line.startswith(".venv/bin/gradlab run ")]
    assert len(commands) == 2 and commands[1][-1] == "--resume"
    monkeypatch.chdir(tmp_path)
    assert main(commands[0]) == 0
    first = (tmp_path / "runs" / "long" / "summary.json").read_bytes()
    assert main(commands[1]) == 0                        # finished: nothing is retrained
    assert (tmp_path / "runs" / "long" / "summary.json").read_bytes() == first


def test_resources_no_node_has_are_refused_instead_of_waiting_for_ever(tmp_path):
    import ray

    from gradlab.experiments.sweep import run_sweep

    (tmp_path / "sweep.yaml").write_text("base: {scenario: digits, tasks: 2, epochs: 1}\ngrid: {seed: [0]}\n")
    try:
        with pytest.raises(ConfigError, match=r"gpus_per_run: 0.25 asked per run, but the Ray cluster has 0 GPU"):
            run_sweep(tmp_path / "sweep.yaml", tmp_path / "out", gpus_per_run=0.25)
        with pytest.raises(ConfigError, match=r"cpus_per_run: 64 asked per run"):
            run_sweep(tmp_path / "sweep.yaml", tmp_path / "out", cpus_per_run=64)
    finally:
        ray.shutdown()
    assert not list((tmp_path / "out").glob("runs/*/summary.json"))
