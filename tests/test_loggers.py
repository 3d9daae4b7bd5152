"""TensorBoard / W&B / CSV loggers: what they write, read back with TensorBoard's event reader, W&B's own
record format and pandas, equals the run's record (metrics.parquet, probes.parquet, summary.json) and the
losses the trainer computed; logging changes no number; sweeps and compare share one log folder."""
import json
import struct
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import gradlab
from gradlab.errors import ConfigError, RunInterrupted
from gradlab.runs import logs
from gradlab.runs.logs.wandb_run import wandb_mode

TINY = dict(scenario="digits", method="dgr", tasks=3, epochs=2, progress=False, checkpoints=False)


class LossTape:
    """The trainer's own loss of every step (the truth the logged losses must equal)."""

    def __init__(self):
        self.total = []

    def after_step(self, ctx):
        self.total.append(ctx.loss.item())


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """One tiny DGR run with all three loggers (W&B offline because no login is configured)."""
    root = tmp_path_factory.mktemp("logged")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(root))                      # no netrc, no W&B settings: the default is offline
        for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_PROJECT"):
            mp.delenv(var, raising=False)
        tape = LossTape()
        record = gradlab.run(**TINY, out=str(root / "run"), log=["tensorboard", "csv", "wandb"], callbacks=[tape])
    return record, tape, root / "run" / "logs"


def scalars(log_dir) -> dict:
    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    events.Reload()
    return {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}, events


def metric(record, name) -> pd.Series:
    rows = record.metrics[record.metrics.metric == name]
    return pd.Series(rows.value.to_numpy(), index=rows.phase.to_numpy())


def test_tensorboard_event_files_equal_the_record(logged):
    record, tape, log_dir = logged
    tags, events = scalars(log_dir)
    for name in ("acc_all_seen", "avg_forgetting_task", "acc_task_mean"):
        truth = metric(record, name)
        assert sorted(tags[f"phase/{name}"]) == sorted(truth.index)
        np.testing.assert_allclose([tags[f"phase/{name}"][p] for p in truth.index], truth.to_numpy(), rtol=1e-6)
    acc = record.class_accuracy_matrix()
    for k in range(acc.shape[1]):
        seen = np.flatnonzero(~np.isnan(acc[:, k]))
        np.testing.assert_allclose([tags[f"class_acc/class_{k:03d}"][p] for p in seen], acc[seen, k], rtol=1e-6)
    norms = record.probes[(record.probes.term == "weight_norm") & (record.probes.epoch == -1)]
    for (phase, k), value in norms.set_index(["phase", "class"]).value.items():
        assert tags[f"weight_norm/class_{k:03d}"][phase] == pytest.approx(value, rel=1e-6)
    grads = record.probes[record.probes.term == "grad_ce"]
    last = grads[grads.epoch == grads.groupby("phase").epoch.transform("max")]
    for (phase, k), value in last.set_index(["phase", "class"]).value.items():
        assert tags[f"grad_ce/class_{k:03d}"][phase] == pytest.approx(value, rel=1e-6)
    total = tags["loss/total"]
    assert sorted(total) == list(range(len(tape.total)))            # every step, on the global step axis
    np.testing.assert_allclose([total[s] for s in range(len(tape.total))], tape.total, rtol=1e-6)
    assert tags["summary/average_incremental_accuracy"][0] == pytest.approx(
        record.summary["average_incremental_accuracy"], rel=1e-6)
    assert tags["throughput/train_images_per_s"] and min(tags["throughput/train_images_per_s"].values()) > 0
    assert len(events.Histograms("hist/grad_ce")) == TINY["tasks"] * TINY["epochs"]
    tensors = events.Tags()["tensors"]
    assert "config/text_summary" in tensors or "config" in tensors
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(events.PluginTagToContent("hparams"))


def test_csv_files_equal_the_record_exactly(logged):
    record, tape, log_dir = logged
    folder = log_dir / "csv"
    phases = pd.read_csv(folder / "phases.csv")
    for name, rows in phases.groupby("metric"):
        truth = metric(record, name)
        assert list(rows.phase) == list(truth.index) and list(rows.value) == list(truth.to_numpy()), name
    classes = pd.read_csv(folder / "classes.csv")
    got = classes[classes.metric == "class_acc"].pivot(index="phase", columns="class", values="value").to_numpy()
    np.testing.assert_array_equal(got, record.class_accuracy_matrix())
    probes = pd.read_csv(folder / "probes.csv")
    expected = record.probes.astype({"term": str}).reset_index(drop=True)
    pd.testing.assert_frame_equal(probes[expected.columns.tolist()], expected, check_dtype=False)
    losses = pd.read_csv(folder / "losses.csv")
    total = losses[losses.term == "total"].sort_values("step")
    assert list(total.value) == tape.total                          # repr floats: exact
    parts = losses[losses.term != "total"].groupby("step").value.sum()
    np.testing.assert_allclose(parts.to_numpy(), total.value.to_numpy(), rtol=1e-5)
    summary = dict(pd.read_csv(folder / "summary.csv").values)
    assert summary["final_accuracy"] == record.summary["final_accuracy"]
    throughput = pd.read_csv(folder / "throughput.csv")
    assert len(throughput) == TINY["tasks"] * TINY["epochs"] and (throughput.images_per_s > 0).all()


def wandb_records(run_file):
    """The records of a W&B ``.wandb`` file (LevelDB-style log: 7-byte header, 32 KiB blocks of
    crc32 / length / type framed chunks), parsed with W&B's own protobuf schema."""
    from wandb.proto import wandb_internal_pb2 as pb

    raw, pos, block, buffer = run_file.read_bytes(), 7, 32768, b""
    assert raw[:4] == b":W&B"
    while pos + 7 <= len(raw):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos:pos + 7])
        data, pos = raw[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            break
        buffer = data if kind in (1, 2) else buffer + data
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buffer)
            yield record


def test_wandb_offline_run_equals_the_record(logged):
    record, tape, log_dir = logged
    runs = list((log_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1                                              # offline: no login configured
    history, config, summary = [], {}, {}
    for item in wandb_records(runs[0]):
        kind = item.WhichOneof("record_type")
        if kind == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in item.history.item})
        elif kind == "run":
            config = {u.key: json.loads(u.value_json) for u in item.run.config.update}
            assert item.run.run_group == "dgr" and item.run.display_name == "dgr-s0"
        elif kind == "summary":
            summary.update({u.key or "/".join(u.nested_key): json.loads(u.value_json) for u in item.summary.update})
    assert config["method"] == "dgr" and config["tasks"] == TINY["tasks"]
    acc = {row["phase"]: row["phase/acc_all_seen"] for row in history if "phase/acc_all_seen" in row}
    truth = metric(record, "acc_all_seen")
    assert acc == dict(zip(truth.index.tolist(), truth.tolist()))      # JSON floats: exact
    total = [row["loss/total"] for row in sorted(history, key=lambda r: r.get("global_step", -1)) if "loss/total" in row]
    np.testing.assert_allclose(total, tape.total, rtol=1e-12)
    weights = {(row["phase"], k): row[f"weight_norm/class_{k:03d}"] for row in history if "phase" in row
               for k in range(10) if f"weight_norm/class_{k:03d}" in row}
    norms = record.probes[(record.probes.term == "weight_norm") & (record.probes.epoch == -1)]
    assert weights == {(int(p), int(k)): pytest.approx(v, rel=1e-12) for p, k, v in
                       zip(norms.phase, norms["class"], norms.value)}
    assert summary["summary/average_incremental_accuracy"] == record.summary["average_incremental_accuracy"]


def test_logging_changes_no_number(logged, tmp_path):
    record, _, _ = logged
    plain = gradlab.run(**TINY, out=str(tmp_path / "plain"))
    pd.testing.assert_frame_equal(plain.metrics, record.metrics)
    pd.testing.assert_frame_equal(plain.probes, record.probes)
    assert plain.summary["average_incremental_accuracy"] == record.summary["average_incremental_accuracy"]
    assert not (tmp_path / "plain" / "logs").exists()


def test_wandb_is_offline_without_a_login_and_online_with_one(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("WANDB_MODE", "WANDB_API_KEY", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    assert wandb_mode() == "offline"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password abc\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode() == "disabled"


def test_compare_puts_every_run_in_one_log_folder_and_replays_cached_runs(tmp_path):
    from gradlab.experiments.compare import compare

    settings = dict(scenario="digits", tasks=2, epochs=1, workers=1, log=["tensorboard", "csv"])
    compare(["finetune", "dgr"], out=tmp_path / "a", cache_dir=tmp_path / "cache", seeds=[0, 1], **settings)
    for method in ("finetune", "dgr"):
        for seed in (0, 1):
            assert list((tmp_path / "a" / "logs" / method / f"seed_{seed}").glob("events.out.tfevents.*"))
    compare(["dgr"], out=tmp_path / "b", cache_dir=tmp_path / "cache", seeds=[1], **settings)   # from the cache
    replayed = tmp_path / "b" / "logs" / "dgr" / "seed_1"
    tags, _ = scalars(replayed)
    record = gradlab.load_run(next(p for p in (tmp_path / "cache").iterdir() if p.name.startswith("dgr")
                                   and gradlab.load_run(p).config.seed == 1))
    truth = metric(record, "acc_all_seen")
    np.testing.assert_allclose([tags["phase/acc_all_seen"][p] for p in truth.index], truth.to_numpy(), rtol=1e-6)
    assert "loss/total" not in tags                      # a record keeps no per-step losses: none are made up
    assert logs.replay(record, record.config) == []      # (the record's own config logs nothing)


def test_sweep_log_folders_tell_runs_apart_by_what_differs():
    from gradlab.config import RunConfig

    configs = {f"m{m} s{s}": RunConfig.from_dict(dict(scenario="digits", method="dgr", memory=m, seed=s,
                                                      log=["csv"])) for m in (5, 10) for s in (0, 1)}
    grouped = logs.grouped_log_dirs(configs, "out/logs")
    assert grouped["m5 s1"].log_dir == "out/logs/dgr/memory_5/seed_1"
    assert len({c.log_dir for c in grouped.values()}) == 4


def test_bad_log_settings_fail_before_training(tmp_path, monkeypatch):
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"log must be a list drawn from \['tensorboard', 'csv', 'wandb'\]"):
        gradlab.run(**TINY, out=str(out), log=["tensorbord"])
    with pytest.raises(ConfigError, match="log_dir is set but log is empty"):
        gradlab.run(**TINY, out=str(out), log_dir=str(tmp_path / "logs"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="log_dir: .* exists and is not a folder"):
        gradlab.run(**TINY, out=str(out), log=["csv"], log_dir=str(tmp_path / "file"))
    real = logs.importlib.util.find_spec
    monkeypatch.setattr(logs.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name))
    with pytest.raises(ConfigError, match="'wandb' needs the wandb package, which is not installed: pip install wandb"):
        gradlab.run(**TINY, out=str(out), log=["csv", "wandb"])
    assert not out.exists()
    assert gradlab.RunConfig.from_dict({**TINY, "log": "csv,tensorboard"}).log == ["csv", "tensorboard"]


def test_an_interrupted_run_keeps_its_logs_flushed(tmp_path):
    class StopInPhaseOne:
        def before_task(self, ctx):
            if ctx.phase == 1:
                raise KeyboardInterrupt

    with pytest.raises(RunInterrupted):
        gradlab.run(**TINY, out=str(tmp_path / "run"), log=["tensorboard", "csv"], callbacks=[StopInPhaseOne()])
    tags, _ = scalars(tmp_path / "run" / "logs")
    assert list(tags["phase/acc_all_seen"]) == [0]                    # phase 0 was evaluated and is there
    assert list(pd.read_csv(tmp_path / "run" / "logs" / "csv" / "phases.csv").phase.unique()) == [0]


def test_steps_with_different_loss_terms_are_logged_apart():
    class Collect(logs.RunLogger):
        def __init__(self):
            super().__init__()
            self.got = []

        def losses(self, phase, epoch, steps, values):
            self.got.append((steps.tolist(), {t: v.tolist() for t, v in values.items()}))

    logger = Collect()
    batch = SimpleNamespace(y=torch.zeros(4))
    for step, losses in enumerate(({"ce": 1.0}, {"ce": 2.0, "kd": 0.5}, {"ce": 3.0})):
        tensors = {k: torch.tensor(v) for k, v in losses.items()}
        logger.after_step(SimpleNamespace(losses=tensors, loss=sum(tensors.values()), batch=batch, batch_images=4,
                                          phase=1, step=step))
    logger._flush_losses(SimpleNamespace(phase=1, epoch=0))
    assert logger.got == [([0, 2], {"ce": [1.0, 3.0], "total": [1.0, 3.0]}),
                          ([1], {"ce": [2.0], "kd": [0.5], "total": [2.5]})]


def test_the_config_knows_every_logger():
    from gradlab.config import LOGGERS

    assert tuple(logs.LOGGERS) == LOGGERS


def test_a_resumed_run_adds_to_its_logs(tmp_path):
    class StopInPhaseTwo:
        def before_task(self, ctx):
            if ctx.phase == 2:
                raise KeyboardInterrupt

    settings = {**TINY, "checkpoints": True, "out": str(tmp_path / "run"), "log": ["tensorboard", "csv"]}
    with pytest.raises(RunInterrupted):
        gradlab.run(**settings, callbacks=[StopInPhaseTwo()])
    record = gradlab.run(**settings, resume=True)
    phases = pd.read_csv(tmp_path / "run" / "logs" / "csv" / "phases.csv")
    truth = metric(record, "acc_all_seen")
    assert list(phases[phases.metric == "acc_all_seen"].value) == list(truth.to_numpy())    # phases 0, 1 and 2
    tags, _ = scalars(tmp_path / "run" / "logs")
    assert sorted(tags["phase/acc_all_seen"]) == [0, 1, 2]
