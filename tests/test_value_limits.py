"""Every value is checked before it is used: numbers that do not fit a float, counts no run
could finish, keys that are not text, duplicate YAML keys, hostile YAML, labels that are not whole numbers,
API arguments of the wrong kind, and records that are not whole. Each case: one line, the package's own error."""
from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest

import gradlab
from gradlab.checks import load_yaml
from gradlab.cli import main
from gradlab.config import RunConfig
from gradlab.errors import ConfigError, DataError, GradlabError, RunFolderError, RunFolderWarning
from gradlab.scenario import Scenario

HUGE = "1" + "0" * 400                                   # a 401-digit integer: no float holds it
DIGITS = ["run", "--scenario", "digits", "--tasks", "2", "--epochs", "1", "--quiet"]
BOMB = "".join(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9 if prev else ['x'] * 9)}]\n"
               for prev, name in zip([None, "a", "b", "c", "d", "e", "f"], "abcdefg"))   # 9^7 values, 7 lines


FLAG_CASES = [
    (["--imbalance", HUGE], "imbalance"), (["--lr", HUGE], "lr"), (["--lr", "1e300"], "lr must be a number in"),
    (["--weight-decay", "1e300"], "weight_decay"), (["--method", "dgr", "--method-arg", f"eta={HUGE}"], "method_args.eta"),
    (["--method", "lucir", "--method-arg", f"cbf_lr={HUGE}"], "method_args.cbf_lr"),
    (["--method", "podnet", "--method-arg", f"margin={HUGE}"], "method_args.margin"),
    (["--seed", str(2 ** 40)], "seed must be an integer in [0, 4294967295]"),
    (["--epochs", str(10 ** 9)], "epochs must be an integer in [1, 10000]"),
    (["--batch-size", HUGE], "batch_size"), (["--memory", HUGE], "memory"),
    (["--loader-workers", "-1"], "loader_workers"),
]


@pytest.mark.parametrize("flags, names", FLAG_CASES, ids=[" ".join(f)[:40] for f, _ in FLAG_CASES])
def test_a_number_no_run_could_use_is_one_line(flags, names, tmp_path, cli, no_training):
    code, err = cli([*DIGITS, *flags, "--out", str(tmp_path / "run")])
    assert code == 2 and names in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert len(err) < 400 and not (tmp_path / "run").exists()


YAML_CASES = [
    ("scenario: digits\nepochs: 1\nepochs: 2\n", "key 'epochs' appears twice (line 3)"),
    ("scenario: digits\npresets: 5\n", "presets must be a preset name"),
    ("scenario: digits\n1: 2\n", "setting names must be text"),
    ("scenario: digits\nmethod: dgr\nmethod_args: {1: 2}\n", "method_args: setting names must be text"),
    (f"scenario: digits\nmethod_args:\n  {BOMB.replace(chr(10), chr(10) + '  ')}", "more than 100000 values"),
    ("scenario: digits\nx: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested more than 64 levels deep"),
    (f"scenario: digits\nimbalance: {HUGE}\n", "imbalance"),
]


@pytest.mark.parametrize("content, names", YAML_CASES, ids=[n for _, n in YAML_CASES])
def test_a_hostile_or_wrong_yaml_file_is_one_line(content, names, tmp_path, cli, no_training):
    path = tmp_path / "run.yaml"
    path.write_text(content)
    code, err = cli(["run", str(path), "--out", str(tmp_path / "run"), "--quiet"])   # the alias bomb used to hang
    assert code == 2 and names in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_sweep_files_and_method_args_use_the_same_limits(tmp_path, cli, no_training):
    sweep = tmp_path / "s.yaml"
    sweep.write_text("base: {scenario: digits}\nbase: {scenario: digits}\n")
    code, err = cli(["sweep", str(sweep), "--out", str(tmp_path / "o"), "--backend", "local"])
    assert code == 2 and "key 'base' appears twice" in err
    code, err = cli([*DIGITS, "--method", "dgr", "--method-arg", "eta=" + "[" * 1000 + "]" * 1000])
    assert code == 2 and "method-arg eta" in err and "Traceback" not in err
    assert load_yaml("a: &x 1\nb: *x\n", "small aliases are fine") == {"a": 1, "b": 1}


def test_resources_and_workers_are_checked(tmp_path, cli, no_training):
    sweep = tmp_path / "s.yaml"
    sweep.write_text("base: {scenario: digits, tasks: 2, epochs: 1}\ngrid: {seed: [0, 1]}\n")
    for flags, names in ((["--gpus-per-run", "inf"], "gpus_per_run"), (["--workers", "-5"], "workers"),
                         (["--cpus-per-run", "0"], "cpus_per_run")):
        code, err = cli(["sweep", str(sweep), "--out", str(tmp_path / "o"), "--backend", "local", *flags])
        assert code == 2 and names in err, (flags, err)
    assert not (tmp_path / "o").exists()
    from gradlab.experiments.sweep import run_sweep

    with pytest.raises(ConfigError, match="workers"):
        run_sweep(sweep, tmp_path / "o", backend="local", workers=0)


API_CASES = [
    (lambda t: gradlab.experiments.compare.compare(["finetune"], out=t / "c", workers=-1, scenario="digits"), "workers"),
    (lambda t: gradlab.experiments.compare.compare(["finetune"], out=t / "c", workers="two", scenario="digits"), "workers"),
    (lambda t: gradlab.experiments.compare.compare(["finetune"], out=t / "c", cache_dir=123, scenario="digits"), "cache_dir"),
    (lambda t: gradlab.experiments.compare.compare(["finetune"], out=None, scenario="digits"), "out"),
    (lambda t: gradlab.runs.executor.run_many({"a": 1}, t / "c"), "configs"),
    (lambda t: Scenario("digits"), "source must be a loaded Source"),
    (lambda t: Scenario(None), "source must be a loaded Source"),
    (lambda t: Scenario.from_config(5), "cfg must be a RunConfig"),
    (lambda t: Scenario.from_config({"tasks": 2}), "scenario"),
    (lambda t: gradlab.run(scenario="digits", method_args={1: 2}, out=str(t / "r")), "setting names must be text"),
    (lambda t: gradlab.load_run(123), "path must be a run folder"),
    (lambda t: RunConfig.from_dict({"scenario": "digits", "presets": [1]}), "presets"),
]


@pytest.mark.parametrize("call, names", API_CASES, ids=[n for _, n in API_CASES])
def test_the_api_raises_its_own_one_line_errors(call, names, tmp_path, no_training):
    import gradlab.experiments.compare  # noqa: F401
    import gradlab.runs.executor  # noqa: F401

    with pytest.raises(GradlabError) as err:
        call(tmp_path)
    assert names in str(err.value) and "\n" not in str(err.value)


def test_one_base_error_and_a_scenario_from_a_mapping():
    from gradlab.errors import RunDiverged

    assert all(issubclass(cls, GradlabError) for cls in (ConfigError, DataError, RunFolderError, RunDiverged))
    scenario = Scenario.from_config({"scenario": "digits", "tasks": 2})
    assert scenario.num_tasks == 2


def test_cifar_labels_that_are_not_whole_numbers_are_refused(tmp_path, fake_cifar_root, cli, no_training):
    folder = tmp_path / "data" / "cifar-100-python"
    shutil.copytree(fake_cifar_root / "cifar-100-python", folder)
    with open(folder / "train", "rb") as f:
        content = pickle.load(f, encoding="bytes")
    content[b"fine_labels"] = [label + 0.5 for label in content[b"fine_labels"]]
    (folder / "train").write_bytes(pickle.dumps(content, protocol=2))
    code, err = cli(["run", "--scenario", "cifar100", "--data-root", str(tmp_path / "data"), "--epochs", "1",
                      "--out", str(tmp_path / "run")])
    assert code == 2 and "b'fine_labels' must be whole numbers" in err and "cifar-100-python/train" in err


def test_fashion_mnist_reads_its_data_root_so_no_warning_says_otherwise():
    assert RunConfig.from_dict({"scenario": "fashion_mnist", "data_root": "elsewhere"}).unused_settings() == []
    assert RunConfig.from_dict({"scenario": "digits", "data_root": "elsewhere"}).unused_settings()


# ------------------------------------------------------------------------------ records that are not whole
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "run"
    gradlab.run(scenario="digits", tasks=2, epochs=1, max_per_class=20, imbalance=10, memory=5, progress=False,
                out=str(out))
    return out


def _copy(finished, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(finished, target)
    return target


def test_a_summary_that_only_says_complete_is_not_a_complete_run(finished, tmp_path):
    run = _copy(finished, tmp_path)
    (run / "summary.json").write_text(json.dumps({"status": "complete"}))
    (run / "metrics.parquet").unlink()
    with pytest.warns(RunFolderWarning, match="not whole"):
        record = gradlab.load_run(run)
    assert record.status == "incomplete" and not record.complete
    assert "metrics.parquet" in record.missing and "summary.json key 'average_incremental_accuracy'" in record.missing
    assert record.accuracy_matrix().shape == (0, 2) and record.accuracy_curve().size == 0     # what exists: nothing
    assert record.forgetting_matrix().shape[0] == 0


def test_accessors_on_a_damaged_metrics_file_name_it(finished, tmp_path):
    run = _copy(finished, tmp_path)
    pd.DataFrame({"x": [1]}).to_parquet(run / "metrics.parquet")
    with pytest.warns(RunFolderWarning):
        record = gradlab.load_run(run)
    for accessor in (record.accuracy_matrix, record.accuracy_curve, record.forgetting_matrix):
        with pytest.raises(RunFolderError, match="metrics.parquet' is damaged"):
            accessor()


def test_a_whole_record_still_loads_complete(finished):
    record = gradlab.load_run(finished)
    assert record.complete and record.missing == [] and np.isfinite(record.accuracy_matrix()[-1]).all()


def test_a_corrupt_jpeg_found_by_loader_workers_names_the_file_and_list_line(tmp_path, capsys, cli):
    from gradlab.data.fake_trees import write_fake_ilsvrc

    root = write_fake_ilsvrc(tmp_path / "data", train_counts=[4] * 1000)
    lists = root / "ImageNetSubset"
    lists.mkdir()
    assert main(["data", "--scenario", "imagenet_subset", "--data-root", str(root), "--imbalance", "4",
                 "--write-lists", str(lists)]) == 0
    first = (lists / "train.txt").read_text().splitlines()[0].split()[0]
    image = first if first.startswith("/") else str(lists / first)
    open(image, "wb").write(b"\xff\xd8\xff not a jpeg any more")
    capsys.readouterr()
    code, err = cli(["run", "--scenario", "imagenet_subset", "--data-root", str(root), "--order", "ltio",
                      "--imbalance", "4", "--base", "50", "--tasks", "2", "--epochs", "1", "--batch-size", "64",
                      "--memory", "2", "--model", "small", "--val-fraction", "0", "--loader-workers", "2", "--quiet",
                      "--out", str(tmp_path / "run")])
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"cannot decode image {image}" in err and f"{lists / 'train.txt'}, line 1" in err


@pytest.mark.parametrize("method, key", [("bic", "bias_epochs"), ("lucir", "cbf_epochs"), ("eeil", "finetune_epochs"),
                                         ("eeil-2stage", "stage2_epochs")])
def test_stage_epochs_no_run_could_finish_are_refused(method, key, tmp_path, cli, no_training):
    code, err = cli([*DIGITS, "--method", method, "--method-arg", f"{key}={10 ** 9}", "--out", str(tmp_path / "r")])
    assert code == 2 and f"method_args.{key} must be an integer in [0, 10000]" in err
