"""Bad input fails before training, names the field and the allowed values, and writes nothing."""
from pathlib import Path

import pytest

from gradlab.cli import main
from gradlab.config import RunConfig
from gradlab.errors import ConfigError


def run_cli(capsys, *args):
    code = main(["run", "--scenario", "synthetic", *args, "--quiet"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args, words", [
    (["--imbalance", "0.5"], ["imbalance", ">= 1"]),
    (["--base", "100", "--tasks", "3"], ["base", "1..99"]),
    (["--tasks", "101"], ["tasks", "1..100"]),
    (["--base", "95", "--tasks", "10"], ["base/tasks", "5 classes", "9 incremental tasks"]),
    (["--memory", "-1"], ["memory", "in [0, 100000000]"]),
    (["--method", "nope"], ["method", "finetune"]),
    (["--scenario", "imagenet"], ["scenario", "cifar100", "digits", "synthetic"]),
    (["--order", "random"], ["order", "lt", "ltio", "conv"]),
    (["--order", "conv", "--imbalance", "10"], ["conv", "imbalance"]),
    (["--epochs", "0"], ["epochs", "in [1, 10000]"]),
    (["--device", "tpu"], ["device", "auto", "cpu", "cuda"]),
    (["--val-fraction", "1.5"], ["val_fraction", "[0, 1)"]),
    (["--preset", "fast"], ["preset", "paper", "quick"]),
    (["--method-arg", "gamma=2"], ["method_args", "gamma", "finetune"]),
])
def test_bad_flags_are_rejected_before_training(tmp_path, capsys, args, words):
    out = tmp_path / "run"
    code, err = run_cli(capsys, "--scenario", "synthetic", *args, "--out", str(out))
    assert code == 2
    for word in words:
        assert word in err, (word, err)
    assert not out.exists()


def test_missing_cifar_folder_names_the_expected_layout(tmp_path, capsys):
    out = tmp_path / "run"
    code, err = run_cli(capsys, "--scenario", "cifar100", "--data-root", str(tmp_path / "nodata"), "--out", str(out))
    assert code == 2
    assert "cifar-100-python" in err and "--download" in err
    assert not out.exists()


def test_unwritable_out_dir(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, err = run_cli(capsys, "--out", str(blocker / "run"))
    assert code == 2 and "out" in err and "not a folder" in err
    if Path("/proc").is_dir():  # root may write anywhere except a read-only file system
        code, err = run_cli(capsys, "--out", "/proc/gradlab-run")
        assert code == 2 and "cannot write" in err


def test_existing_run_folder_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    code, err = run_cli(capsys, "--out", str(out))
    assert code == 2 and "--overwrite" in err
    assert (out / "keep.txt").exists()


def test_yaml_unknown_key_and_bad_yaml(tmp_path, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("scenario: digits\nlearning_rate: 0.1\n")
    code, err = main(["run", str(cfg), "--quiet"]), capsys.readouterr().err
    assert code == 2 and "learning_rate" in err and "allowed keys" in err
    cfg.write_text("scenario: [digits\n")
    code, err = main(["run", str(cfg), "--quiet"]), capsys.readouterr().err
    assert code == 2 and "not valid YAML" in err


def test_yaml_values_and_flag_override(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("scenario: digits\ntasks: 3\nepochs: 4\npresets: [paper]\n")
    cfg = RunConfig.from_yaml(path, {"epochs": 2})
    assert (cfg.scenario, cfg.tasks, cfg.epochs) == ("digits", 3, 2)   # flag beats YAML
    assert cfg.val_fraction == 0.1 and cfg.augment == "resized_crop"    # preset fills the rest
    assert RunConfig.from_yaml(path).epochs == 4                         # YAML beats preset
    again = tmp_path / "again.yaml"
    again.write_text(cfg.to_yaml())
    assert RunConfig.from_yaml(again) == cfg


def test_defaults_and_derived_values():
    cfg = RunConfig(scenario="synthetic").validate()
    assert cfg.rho == 100 and RunConfig(order="conv").rho == 1
    assert (cfg.epochs, cfg.batch_size, cfg.weight_decay) == (160, 128, 5e-4)      # synthetic: the paper's recipe
    assert RunConfig(epochs=160).milestones() == [80, 120]
    assert RunConfig(epochs=2).milestones() == [1, 2]
    assert RunConfig(scenario="cifar100", split="lfs").split_base_tasks(100) == (5, 20)
    assert RunConfig(scenario="cifar100", split="lfh").split_base_tasks(100) == (50, 6)
    with pytest.raises(ConfigError, match="lr_milestones"):
        RunConfig(scenario="synthetic", epochs=10, lr_milestones=[20]).validate()
