"""The first hour of a new user: defaults that learn per scenario, a scenario that must be named, commands
that say what they cost before they start, one worker per core, outputs under runs/, readable CLI output."""
import re
import warnings
from pathlib import Path

import pytest

from gradlab.cli import build_parser, main
from gradlab.config import QUICK_START, RunConfig
from gradlab.errors import ConfigError, SettingWarning
from gradlab.runs.estimate import confirm_start, duration, estimate_seconds, train_images
from gradlab.runs.executor import available_cores
from gradlab.scenario import Scenario

TINY = ["--scenario", "digits", "--tasks", "2", "--epochs", "1", "--max-per-class", "20", "--imbalance", "10",
        "--memory", "5", "--quiet"]


# ---------------------------------------------------------------------------------------- default recipes
def test_each_scenario_fills_its_own_recipe_and_the_saved_config_says_what_ran():
    fm = RunConfig.from_dict({"scenario": "fashion_mnist"})
    assert (fm.epochs, fm.batch_size, fm.weight_decay, fm.milestones()) == (20, 32, 5e-4, [10, 15])
    assert fm.to_dict()["epochs"] == 20 and "small CNN" in fm.recipe_text()
    cifar = RunConfig.from_dict({"scenario": "cifar100"})
    assert (cifar.epochs, cifar.batch_size, cifar.milestones()) == (160, 128, [80, 120])
    subset = RunConfig.from_dict({"scenario": "imagenet_subset"})
    assert (subset.epochs, subset.weight_decay, subset.milestones()) == (90, 1e-4, [30, 60])
    own = RunConfig.from_dict({"scenario": "imagenet_subset", "epochs": 10})     # the recipe's steps are its own
    assert own.milestones() == [5, 8] and own.weight_decay == 1e-4
    assert RunConfig.from_dict({"scenario": "fashion_mnist", "batch_size": 64}).batch_size == 64
    paper = RunConfig.from_dict({"scenario": "fashion_mnist", "presets": ["paper"]})     # one preset away
    assert (paper.epochs, paper.batch_size, paper.val_fraction) == (160, 128, 0.1)
    again = RunConfig.from_dict(fm.to_dict())
    assert again == fm


def test_info_and_run_help_show_the_recipes(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "default recipe: small CNN, 20 epochs per task of batch 32" in out
    assert "default recipe: ResNet-18, 90 epochs per task of batch 128, SGD lr 0.1 (/10 after epochs 30, 60)" in out
    rows = [line for line in out.splitlines() if re.match(r"  \S", line)]
    starts = {len(line) - len(line[2:].split(maxsplit=1)[1]) for line in rows}
    assert len(rows) > 20 and len(starts) == 1                   # one column for every name, long or short
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = capsys.readouterr().out
    assert "fashion_mnist   small CNN, 20 epochs per task of batch 32" in help_text and QUICK_START in help_text


# ---------------------------------------------------------------------------------------- no scenario
def test_no_scenario_is_an_error_that_says_what_to_choose(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="scenario: none given.*fashion_mnist.*quick start"):
        RunConfig().validate()
    assert main(["run"]) == 2
    assert "scenario" in capsys.readouterr().err and not (tmp_path / "runs").exists()
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    assert main(["run", str(empty)]) == 2
    assert "is empty" in capsys.readouterr().err
    assert RunConfig.from_yaml(empty, {"scenario": "digits"}).epochs == 10          # flags fill an empty file
    assert main(["sweep", str(empty), "--out", str(tmp_path / "sw")]) == 2
    assert "the sweep is empty" in capsys.readouterr().err and not (tmp_path / "sw").exists()
    assert main(["run", "--method", "dgr"]) == 2
    assert QUICK_START in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- CLI output
def test_run_prints_its_recipe_percentages_and_where_its_record_is(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", *TINY[:-1], "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "digits · finetune: small CNN, 1 epochs per task of batch 32" in captured.err
    assert re.search(r"average forgetting: \d+\.\d %", captured.out), captured.out
    assert re.search(r"final accuracy: \d+\.\d %", captured.out)
    assert f"record: {out}" in captured.out


# ---------------------------------------------------------------------------------------- workers
def test_compare_runs_one_per_core_and_keeps_loader_workers_a_run_setting(tmp_path, monkeypatch):
    import gradlab.experiments.compare

    seen = {}

    class Stop(Exception):
        pass

    def fake_run_many(configs, cache_dir, workers=None, **kwargs):
        seen["workers"], seen["configs"] = workers, configs
        raise Stop            # before anything trains

    monkeypatch.setattr(gradlab.experiments.compare, "run_many", fake_run_many)
    with pytest.raises(Stop):
        main(["compare", "--methods", "finetune,dgr", *TINY, "--out", str(tmp_path / "c"), "--loader-workers", "3"])
    assert seen["workers"] is None                                   # run_many picks one per core
    assert {cfg.loader_workers for cfg in seen["configs"].values()} == {3}
    with pytest.raises(Stop):
        main(["compare", "--methods", "finetune", *TINY, "--out", str(tmp_path / "c"), "--workers", "1"])
    assert seen["workers"] == 1
    assert main(["compare", "--methods", "finetune", *TINY, "--workers", "0"]) == 2


def test_compare_with_defaults_starts_as_many_runs_as_cores_without_a_warning(tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SettingWarning)
        code = main(["compare", "--methods", "finetune,ce,kd", *TINY[:-1], "--out", str(tmp_path / "c"),
                     "--cache", str(tmp_path / "cache")])
    assert code == 0
    err = capsys.readouterr().err
    assert f"3 to train, {min(3, available_cores())} at a time" in err and "warning" not in err


def test_workers_of_old_configs_are_loader_workers():
    cfg = RunConfig.from_dict({"scenario": "imagenet_subset", "workers": 2})
    assert cfg.loader_workers == 2 and "workers" not in cfg.to_dict()


# ---------------------------------------------------------------------------------------- cost first
def test_train_images_counts_what_the_trainer_sees():
    cfg = RunConfig.from_dict({"scenario": "synthetic", "tasks": 4, "epochs": 3, "memory": 7, "seed": 1})
    scenario = Scenario.from_config(cfg)
    counts = scenario.train_counts
    expected, seen = 0, []
    for task in scenario.tasks:
        memory = sum(min(int(counts[c]), cfg.memory) for c in seen)
        expected += cfg.epochs * (len(task.train_indices) + memory)
        seen += list(task.classes)
    train, tests = train_images(cfg)
    assert train == expected
    assert tests == sum(100 * (i + 1) * 25 for i in range(4))


def test_estimates_share_runs_among_workers():
    cfg = RunConfig.from_dict({"scenario": "digits", "tasks": 2, "epochs": 1, "max_per_class": 20, "imbalance": 10})
    one = estimate_seconds([cfg], 1)
    four_alone, four_pair = estimate_seconds([cfg] * 4, 1), estimate_seconds([cfg] * 4, 2)
    assert one > 0 and four_alone == pytest.approx(4 * one) and four_pair == pytest.approx(2 * one)
    assert (duration(30), duration(600), duration(3 * 3600)) == ("30 s", "10 min", "3.0 h")


def test_confirm_asks_on_a_terminal_and_states_the_estimate_elsewhere():
    said = []
    confirm_start(5000, long=False, yes=False, ask=lambda q: "n", interactive=True)             # short: no question
    confirm_start(5000, long=True, yes=True, ask=lambda q: "n", interactive=True)              # --yes
    confirm_start(5000, long=True, yes=False, ask=lambda q: "y", interactive=True)
    with pytest.raises(ConfigError, match="--yes"):
        confirm_start(5000, long=True, yes=False, ask=lambda q: "", interactive=True)
    confirm_start(5000, long=True, yes=False, interactive=False, say=said.append)
    assert said and "about 83 min" in said[0] and "starting" in said[0]


def test_figures_say_protocol_runs_and_time_first_and_write_under_runs(tmp_path, capsys, monkeypatch):
    ns = build_parser().parse_args(["figures"])
    assert ns.out == "runs/figures" and ns.yes is False
    assert build_parser().parse_args(["sweep", "s.yaml"]).out is None
    from gradlab.experiments.sweep import default_sweep_out

    assert default_sweep_out("sweeps/fig5_five_seeds.yaml") == Path("runs/sweeps/fig5_five_seeds")
    monkeypatch.chdir(tmp_path)
    assert main(["figures", "--quick", "--scenario", "digits", "--only", "fig2", "--seeds", "0", "--epochs", "1"]) == 0
    err = capsys.readouterr().err
    first = err.splitlines()[:2]
    assert "the quick protocol on digits over seeds 0: small CNN, 1 epochs per task of batch 32" in first[0]
    assert re.search(r"1 distinct runs: 0 finished before, 1 to train, 1 at a time: about \d+ s \(estimated\)", first[1])
    assert (tmp_path / "runs" / "figures" / "fig2_gradient_magnitudes.png").is_file()
