"""Settings that decide speed: the NHWC layout (auto: on for CPU runs), threads per run without
oversubscription, and the benchmark's device patch of the official code."""
import importlib.util
import warnings
from pathlib import Path

import pytest
import torch

import gradlab
from gradlab.cli import build_parser
from gradlab.config import RunConfig
from gradlab.errors import ConfigError, SettingWarning
from gradlab.runs import executor
from gradlab.runs.runner import uses_channels_last

DIGITS = dict(scenario="digits", tasks=2, imbalance=10, epochs=1, batch_size=32, memory=5, checkpoints=False,
              progress=False, method="ce")


def test_channels_last_auto_is_on_for_cpu_runs_and_off_elsewhere():
    auto = RunConfig.from_dict({**DIGITS})
    assert auto.channels_last is None
    assert uses_channels_last(auto, torch.device("cpu")) is True
    assert uses_channels_last(auto, torch.device("cuda")) is False
    off = RunConfig.from_dict({**DIGITS, "channels_last": False})
    assert uses_channels_last(off, torch.device("cpu")) is False
    with pytest.raises(ConfigError, match="channels_last must be true, false or null"):
        RunConfig.from_dict({**DIGITS, "channels_last": "sometimes"})


def test_cli_channels_last_accepts_auto():
    parser = build_parser()
    assert parser.parse_args(["run", "--channels-last", "auto"]).channels_last is None
    assert parser.parse_args(["run", "--channels-last", "false"]).channels_last is False


def test_summary_records_the_layout_and_threads_and_nhwc_changes_only_rounding(tmp_path):
    auto = gradlab.run(out=str(tmp_path / "auto"), **DIGITS)
    nchw = gradlab.run(out=str(tmp_path / "nchw"), channels_last=False, **DIGITS)
    assert auto.summary["channels_last"] is True and nchw.summary["channels_last"] is False
    assert auto.summary["threads"] == torch.get_num_threads()
    a, b = auto.summary["average_incremental_accuracy"], nchw.summary["average_incremental_accuracy"]
    assert abs(a - b) < 0.05                 # the same network; the layouts differ in float rounding only


def test_default_workers_leave_no_core_oversubscribed(monkeypatch):
    monkeypatch.setattr(executor, "available_cores", lambda: 8)
    assert executor.default_workers(100) == 8
    assert executor.default_workers(100, threads=2) == 4
    assert executor.default_workers(100, threads=3) == 2
    assert executor.default_workers(3, threads=2) == 3
    assert executor.default_workers(100, threads=16) == 1


def test_more_workers_x_threads_than_cores_is_warned(tmp_path, monkeypatch):
    monkeypatch.setattr(executor, "available_cores", lambda: 1)
    cfg = RunConfig.from_dict({**DIGITS, "seed": 0})
    with pytest.warns(SettingWarning, match=r"workers x threads = 1 x 2 is more than the 1 cores"):
        executor.run_many({"x": cfg}, tmp_path, workers=1, threads=2, log=lambda line: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SettingWarning)       # fits: nothing said
        executor.run_many({"x": cfg}, tmp_path / "again", workers=1, threads=1, log=lambda line: None)


def _vs_official():
    path = Path(__file__).parents[1] / "benchmarks" / "vs_official.py"
    spec = importlib.util.spec_from_file_location("vs_official", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_patches_only_cuda_calls_in_a_copy(tmp_path, capsys):
    checkout = tmp_path / "imbalanced_cil"
    (checkout / "src" / "approach").mkdir(parents=True)
    (checkout / "src" / "main_incremental.py").write_text("x = 1\n")
    original = "w = torch.FloatTensor(p).cuda()\nv = q.cuda()  # .cuda\n"
    (checkout / "src" / "approach" / "DGR.py").write_text(original)
    copy = _vs_official().patched_official(checkout, tmp_path / "work")
    assert (copy / "approach" / "DGR.py").read_text() == original.replace(".cuda()", ".cpu()")
    assert (checkout / "src" / "approach" / "DGR.py").read_text() == original          # the checkout untouched
    assert "approach/DGR.py (2)" in capsys.readouterr().out


def test_benchmark_refuses_a_folder_that_is_not_the_official_checkout(tmp_path):
    with pytest.raises(SystemExit, match="not a checkout of JiangpengHe/imbalanced_cil"):
        _vs_official().patched_official(tmp_path, tmp_path / "work")


def test_cpu_runs_keep_freed_memory_and_the_setting_takes(tmp_path, monkeypatch):
    from gradlab.runs import runner
    from gradlab.training import host_memory

    calls = []
    monkeypatch.setattr(runner, "keep_freed_memory", lambda: calls.append(1) or True)
    gradlab.run(out=str(tmp_path / "r"), **DIGITS)
    assert calls == [1]                                       # once, when the CPU run builds its context
    monkeypatch.setattr(host_memory, "_done", None)
    assert host_memory.keep_freed_memory() is True           # glibc (Linux) accepts both thresholds
    monkeypatch.setattr(host_memory.ctypes, "CDLL", lambda name: (_ for _ in ()).throw(OSError("no libc")))
    monkeypatch.setattr(host_memory, "_done", None)
    assert host_memory.keep_freed_memory() is False          # no glibc: malloc is left alone, nothing fails


def test_evaluation_batch_size_changes_no_number(tmp_path, monkeypatch):
    from gradlab.data import device_data

    runs = {}
    for size in (256, 7):
        monkeypatch.setitem(device_data.EVAL_BATCH, "cpu", size)
        runs[size] = gradlab.run(out=str(tmp_path / str(size)), **{**DIGITS, "method": "dgr", "tasks": 3})
    assert runs[256].metrics.equals(runs[7].metrics)      # test accuracy per class and phase, herding picks alike
    assert runs[256].summary["average_incremental_accuracy"] == runs[7].summary["average_incremental_accuracy"]


def test_benchmark_leaves_the_official_code_alone_for_cuda(tmp_path, capsys):
    checkout = tmp_path / "imbalanced_cil"
    (checkout / "src").mkdir(parents=True)
    (checkout / "src" / "main_incremental.py").write_text("x = torch.ones(1).cuda()\n")
    copy = _vs_official().patched_official(checkout, tmp_path / "work", "cuda")
    assert (copy / "main_incremental.py").read_text() == "x = torch.ones(1).cuda()\n"
    assert "device patch: none" in capsys.readouterr().out


def test_benchmark_ratios_are_speed_ups_paired_by_round(capsys):
    row = lambda train, wall: {"train 1": train, "train 2": train, "eval": 100.0, "wall": wall, "val": 0.0, "sys": 1.0}
    results = {"official": [row(100.0, 100.0), row(100.0, 120.0)],
               "gradlab fp32": [row(150.0, 50.0), row(120.0, 80.0)]}
    _vs_official().report(results, "official", phases=2)
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("gradlab fp32") and "/" in l)
    assert line.split()[2:5] == ["1.20", "/", "1.35"]           # train 1: 150/100 and 120/100, median 1.35
    assert "1.50 / 1.75 / 2.00" in line                          # wall: 100/50 and 120/80 (official over gradlab)
    assert "goal wall >= 1.5x at fp32: median 1.750x met" in out
    assert "goal train 2 >= 1.3x at fp32: median 1.350x met" in out
