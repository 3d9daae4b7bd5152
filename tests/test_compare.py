"""`gradlab compare`: one run per method on identical settings, a table, markdown and a figure."""
import pandas as pd
import pytest

import gradlab
from gradlab.cli import main
from gradlab.errors import ConfigError
from gradlab.experiments.compare import COLUMNS, compare, comparison_configs

SMALL = dict(scenario="digits", tasks=3, imbalance=10, epochs=2, batch_size=32, memory=5, checkpoints=False)


def test_compare_writes_a_table_that_matches_the_runs(tmp_path):
    table = compare(["finetune", "dgr"], out=tmp_path / "cmp", cache_dir=tmp_path / "cache", **SMALL)
    assert list(table.method) == ["finetune", "dgr"]
    for _, row in table.iterrows():
        runs = [gradlab.load_run(p) for p in (tmp_path / "cache").iterdir()]
        record = next(r for r in runs if r.config.method == row.method)
        for key in COLUMNS:
            expected = record.summary[key]
            assert (pd.isna(row[key]) and expected is None) or row[key] == pytest.approx(expected)
        assert record.config.tasks == 3 and record.config.seed == 0
    csv = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert list(csv.method) == ["finetune", "dgr"]
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| `dgr` |" in md and "| `finetune` |" in md and "scenario digits" in md and "base even" in md
    aia = table.set_index("method").average_incremental_accuracy
    assert f"{100 * aia['dgr']:.1f}" in md
    curves = pd.read_csv(tmp_path / "cmp" / "accuracy_curves.csv")
    assert set(curves.label) == {"finetune", "dgr"} and set(curves.phase) == {0, 1, 2}
    assert (tmp_path / "cmp" / "accuracy_curves.png").stat().st_size > 0


def test_every_method_gets_the_same_settings():
    configs = comparison_configs(["finetune", "dgr"], method_args={"dgr": {"distillation": "kd"}}, **SMALL)
    a, b = (cfg.to_dict() for cfg in configs.values())
    differ = {k for k in a if a[k] != b[k]}
    assert differ == {"method", "method_args"}
    assert configs["dgr"].method_args == {"distillation": "kd"}


def test_bad_methods_fail_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="methods:.*nope"):
        compare(["finetune", "nope"], out=tmp_path / "a", cache_dir=tmp_path / "c", **SMALL)
    with pytest.raises(ConfigError, match="methods: give at least one"):
        compare([], out=tmp_path / "a", cache_dir=tmp_path / "c", **SMALL)
    with pytest.raises(ConfigError, match="method_args.distillation"):
        compare(["dgr"], method_args={"dgr": {"distillation": "x"}}, out=tmp_path / "a", cache_dir=tmp_path / "c",
                **SMALL)
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_cli_compare(tmp_path, capsys):
    args = ["compare", "--methods", "finetune,ce", "--scenario", "digits", "--tasks", "3", "--imbalance", "10",
            "--epochs", "1", "--batch-size", "32", "--memory", "5", "--quiet",
            "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| `ce` |" in printed and "comparison.csv" in printed
    assert main(["compare", "--methods", "zzz", "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


def test_all_expands_to_every_registered_method_with_dgr_last():
    from gradlab.experiments.compare import expand_methods
    from gradlab.methods import METHODS

    every = expand_methods(["all"])
    assert sorted(every) == sorted(METHODS) and every[0] == "finetune" and every[-1] == "dgr"
    assert expand_methods(["dgr", "all"])[0] == "dgr" and len(expand_methods(["dgr", "all"])) == len(METHODS)
    configs = comparison_configs(["all"], method_args={"wa": {"clip": False}}, **SMALL)
    assert list(configs) == every and configs["wa"].method_args == {"clip": False}
    assert {cfg.scenario for cfg in configs.values()} == {"digits"}


def test_cli_compare_all_is_checked_before_running(tmp_path, capsys):
    # `all` expands before validation: a bad shared setting fails for the whole list, nothing written
    assert main(["compare", "--methods", "all", "--scenario", "digits", "--tasks", "0",
                 "--out", str(tmp_path / "o"), "--cache", str(tmp_path / "c")]) == 2
    assert "tasks" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_cli_compare_passes_method_args_to_one_method(tmp_path, capsys):
    common = ["--scenario", "digits", "--tasks", "3", "--imbalance", "10", "--epochs", "1", "--batch-size", "32",
              "--memory", "5", "--quiet", "--cache", str(tmp_path / "c")]
    assert main(["compare", "--methods", "ce,wa", "--method-arg", "wa:clip=false", "--method-arg", "wa:temperature=3",
                 "--out", str(tmp_path / "o"), *common]) == 0
    runs = {r.config.method: r for r in (gradlab.load_run(p) for p in (tmp_path / "c").iterdir())}
    assert runs["wa"].config.method_args == {"clip": False, "temperature": 3} and runs["ce"].config.method_args == {}
    capsys.readouterr()
    for bad, message in [("wa:clip", "METHOD:KEY=VALUE"), ("clip=false", "METHOD:KEY=VALUE"),
                         ("dgr:eta=2", "not among the compared methods"), ("wa:nope=1", "nope")]:
        assert main(["compare", "--methods", "ce,wa", "--method-arg", bad, "--out", str(tmp_path / "bad"),
                     *common]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_compare_over_seeds_on_ray_gives_mean_and_std(tmp_path):
    import ray

    try:
        table = compare(["ce", "dgr"], out=tmp_path / "cmp", cache_dir=tmp_path / "cache", seeds=[0, 1],
                        backend="ray", **SMALL)
    finally:
        ray.shutdown()
    runs = [gradlab.load_run(p) for p in (tmp_path / "cache").iterdir()]
    assert sorted((r.config.method, r.config.seed) for r in runs) == [("ce", 0), ("ce", 1), ("dgr", 0), ("dgr", 1)]
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "seeds 0, 1" in md
    for _, row in table.iterrows():
        values = pd.Series([r.summary["average_incremental_accuracy"] for r in runs if r.config.method == row.method])
        assert row.seeds == 2 and row.average_incremental_accuracy == pytest.approx(values.mean())
        assert row.average_incremental_accuracy_std == pytest.approx(values.std(ddof=1))
        assert f"| `{row.method}` | 2 | {100 * values.mean():.1f} ± {100 * values.std(ddof=1):.1f} |" in md
    curves = pd.read_csv(tmp_path / "cmp" / "accuracy_curves.csv")
    assert sorted(curves.seed.unique()) == [0, 1]
