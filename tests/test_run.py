"""End-to-end runs on the offline scenarios: they learn, write every record, and reproduce."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

import gradlab
from gradlab.cli import main
from gradlab.training.trainer import Callback

DIGITS = dict(scenario="digits", tasks=3, imbalance=10, epochs=6, batch_size=32, memory=10, progress=False)
SYNTH = dict(scenario="synthetic", base=10, tasks=3, imbalance=10, max_per_class=100, model="small", epochs=6,
             batch_size=32, memory=20, progress=False)


class EventLog(Callback):
    def __init__(self):
        self.events = []

    def __getattribute__(self, name):
        if name in gradlab.training.trainer.EVENTS:
            return lambda ctx: self.events.append((name, ctx.phase))
        return object.__getattribute__(self, name)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    log = EventLog()
    record = gradlab.run(out=str(tmp_path_factory.mktemp("runs") / "digits"), callbacks=[log], **DIGITS)
    return record, log


def test_digits_run_learns_and_writes_every_record(digits_run):
    record, _ = digits_run
    for name in ("config.yaml", "classes.parquet", "metrics.parquet", "summary.json",
                 "checkpoints/phase_0.pt", "checkpoints/phase_1.pt", "checkpoints/phase_2.pt"):
        assert (record.path / name).is_file(), name
    assert not list(record.path.glob("**/*.tmp"))              # atomic writes leave no temp files
    s = record.summary
    assert s["complete"] and s["task_sizes"] == [4, 3, 3]
    assert s["final_accuracy"] > 0.3                           # chance over 10 classes is 0.1
    assert 0 <= s["average_forgetting"] <= 1
    acc = record.accuracy_matrix()
    assert acc.shape == (3, 3) and np.isnan(acc[0, 1:]).all() and not np.isnan(acc[2]).any()
    curve = record.accuracy_curve()
    assert np.isclose(s["average_incremental_accuracy"], curve.mean())
    assert np.isclose(s["final_accuracy"], curve[-1])
    f = record.forgetting_matrix()
    assert np.isclose(f[2, 0], np.nanmax(acc[:2, 0]) - acc[2, 0])
    assert np.isclose(s["average_forgetting"], np.nanmean(f[2]))
    assert record.class_accuracy_matrix().shape == (3, 10)
    assert record.config.scenario == "digits" and record.config.memory == 10


def test_metrics_table_is_tidy(digits_run):
    m = digits_run[0].metrics
    assert list(m.columns) == ["phase", "task", "class", "metric", "value"]
    assert {"class_acc", "task_acc", "acc_all_seen", "acc_task_mean", "forgetting_task",
            "forgetting_class"} <= set(m.metric)
    acc = m[m.metric.isin(["class_acc", "task_acc", "acc_all_seen"])].value
    assert acc.between(0, 1).all()
    # class-weighted A_t equals the class accuracies weighted by test images (balanced test: plain mean)
    last = m[(m.metric == "class_acc") & (m.phase == 2)].value.mean()
    assert np.isclose(last, m[(m.metric == "acc_all_seen") & (m.phase == 2)].value.item())


def test_checkpoint_reloads_model_and_memory(digits_run):
    record, _ = digits_run
    state = record.checkpoint(2)
    assert state["phase"] == 2 and state["head_task_sizes"] == [4, 3, 3]
    assert state["model"]["head.weight"].shape[0] == 10
    counts = [len(v) for v in state["memory"]["indices"]]
    assert len(counts) == 10 and max(counts) == 10


def test_events_fire_in_order(digits_run):
    events = digits_run[1].events
    names = [e for e, _ in events]
    assert names[0] == "before_run" and names[-1] == "after_run"
    for phase in range(3):
        phase_events = [e for e, p in events if p == phase and e != "after_run"]
        firsts = [phase_events.index(e) for e in ("before_task", "before_epoch", "before_backward",
                                                  "after_backward", "after_step", "after_epoch")]
        assert firsts == sorted(firsts)
        assert phase_events[-2:] == ["after_task", "after_eval"]
        assert phase_events.count("after_epoch") == DIGITS["epochs"]


def test_same_seed_same_numbers_other_seed_differs(tmp_path, digits_run):
    again = gradlab.run(out=str(tmp_path / "again"), checkpoints=False, **DIGITS)
    pd.testing.assert_frame_equal(again.metrics, digits_run[0].metrics)
    other = gradlab.run(out=str(tmp_path / "other"), checkpoints=False, **{**DIGITS, "seed": 1})
    assert not np.array_equal(other.metrics.value.to_numpy(), again.metrics.value.to_numpy())


def test_without_memory_finetuning_forgets_catastrophically(tmp_path, digits_run):
    no_memory = gradlab.run(out=str(tmp_path / "nomem"), checkpoints=False, **{**DIGITS, "memory": 0})
    assert no_memory.accuracy_matrix()[2, 0] < 0.1            # the base task is wiped out
    assert no_memory.summary["average_forgetting"] > 0.5
    assert digits_run[0].summary["average_forgetting"] < no_memory.summary["average_forgetting"]


def test_synthetic_run_beats_chance(tmp_path):
    record = gradlab.run(out=str(tmp_path / "synth"), checkpoints=False, **SYNTH)
    acc = record.accuracy_curve()
    seen = np.cumsum(record.summary["task_sizes"])
    assert (acc > 2.0 / seen).all(), (acc, 1.0 / seen)     # at least twice chance after every phase
    assert np.nanmax(record.forgetting_matrix("class")) > 0  # some class lost accuracy it once had


def test_cli_run_and_info(tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["run", "--scenario", "digits", "--tasks", "2", "--epochs", "1", "--memory", "5",
                 "--out", str(out), "--quiet", "--checkpoints", "false"])
    assert code == 0
    text = capsys.readouterr().out
    assert "average incremental accuracy" in text
    assert json.loads((out / "summary.json").read_text())["complete"]
    assert not (out / "checkpoints").exists()
    code = main(["run", "--scenario", "digits", "--tasks", "2", "--epochs", "1", "--out", str(out), "--quiet"])
    assert code == 2                                           # exists: refuse without --overwrite
    assert main(["run", "--scenario", "digits", "--tasks", "2", "--epochs", "1", "--out", str(out), "--quiet",
                 "--overwrite"]) == 0
    assert main(["info"]) == 0
    info = capsys.readouterr().out
    assert "finetune" in info and "synthetic" in info and "cifar100" in info and "lfh" in info


def test_cifar_run_on_fake_files(tmp_path, fake_cifar_root):
    record = gradlab.run(scenario="cifar100", data_root=str(fake_cifar_root), base=50, tasks=2,
                         max_per_class=20, imbalance=10, model="small", epochs=1, memory=2, progress=False,
                         checkpoints=False, val_fraction=0.0, out=str(tmp_path / "cifar"))
    assert record.summary["task_sizes"] == [50, 50]
    assert record.classes.train_count.max() == 20 and record.classes.original_label.iloc[0] == 68


def test_bf16_autocast_runs_on_cpu(tmp_path):
    record = gradlab.run(out=str(tmp_path / "bf16"), precision="bf16", checkpoints=False,
                         **{**DIGITS, "epochs": 1, "tasks": 2})
    assert record.summary["complete"] and torch.isfinite(torch.tensor(record.summary["final_accuracy"]))


def test_summary_records_training_and_evaluation_throughput(tmp_path):
    class Count:
        train = evaluated = 0

        def after_step(self, ctx):
            Count.train += len(ctx.batch.y)

        def after_eval(self, ctx):
            Count.evaluated += int(ctx.scenario.test_counts[: ctx.num_seen].sum())

    record = gradlab.run(out=str(tmp_path / "r"), checkpoints=False, callbacks=[Count()],
                         **{**DIGITS, "epochs": 2, "tasks": 3})
    s = record.summary
    train_s, eval_s = Count.train / s["train_images_per_s"], Count.evaluated / s["eval_images_per_s"]
    assert Count.train > 0 and Count.evaluated == sum(record.classes.test_count[: sum(s["task_sizes"][:k + 1])].sum()
                                                      for k in range(3))
    assert 0 < train_s and 0 < eval_s and train_s + eval_s <= s["wall_time_s"] * 1.01     # parts of the run's time
