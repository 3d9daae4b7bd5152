"""The paper-figure pipeline: which runs each figure needs, shared runs, the cache, the files, early errors."""
import pandas as pd
import pytest

from gradlab.analysis import verdicts
from gradlab.cli import main
from gradlab.data.sources import fashion_mnist
from gradlab.errors import ConfigError, DataError
from gradlab.experiments.paper_figures import FIGURES, cached_run, figure_configs, figure_plan, make_figures, run_key
from gradlab.runs import runner

TINY = dict(scenario="digits", epochs=1, batch_size=32, max_per_class=100)


def test_quick_figure_runs_follow_the_short_protocol_and_share_runs():
    fig2 = figure_plan("fig2")
    assert list(fig2) == ["CE"] and sorted(fig2["CE"]) == [0, 1, 2]               # three seeds by default
    cfg = fig2["CE"][1]
    assert (cfg.scenario, cfg.method, cfg.memory, cfg.tasks, cfg.order, cfg.rho, cfg.seed) == \
        ("fashion_mnist", "ce", 20, 5, "lt", 100, 1)
    assert (cfg.max_per_class, cfg.model, cfg.epochs, cfg.precision, cfg.channels_last) == (1000, "small", 20, "bf16", True)
    assert "gradients" in cfg.probes
    fig5 = figure_plan("fig5")
    assert list(fig5) == ["none", "KD", "feature", "DAKD"]
    assert [runs[0].method_args["distillation"] for runs in fig5.values()] == ["none", "kd", "feature", "dakd"]
    norms = figure_plan("weight_norms")
    assert list(norms) == ["CE", "DGR", "BiC", "WA"]
    fig4 = figure_plan("fig4")
    assert len(fig4) == 12 and {(k[1], k[2]) for k in fig4} == \
        {("memory", 10), ("memory", 20), ("memory", 50), ("imbalance", 10), ("imbalance", 50), ("imbalance", 100)}
    assert fig4[("CE", "memory", 50)][2].memory == 50 and fig4[("DGR", "imbalance", 10)][2].rho == 10
    for seed in (0, 1, 2):      # one run serves several figures when the settings are the same
        assert run_key(norms["CE"][seed]) == run_key(fig2["CE"][seed]) == run_key(fig4[("CE", "memory", 20)][seed])
        assert run_key(norms["DGR"][seed]) == run_key(fig5["DAKD"][seed]) == \
            run_key(fig4[("DGR", "imbalance", 100)][seed])
    keys = {run_key(cfg) for name in FIGURES for runs in figure_plan(name).values() for cfg in runs.values()}
    assert len(keys) == 3 * (1 + 4 + 2 + 8)                                       # 45 distinct runs


def test_full_and_paper_settings_are_one_flag_away():
    full = figure_plan("fig5", quick=False)["DAKD"][0]
    assert (full.scenario, full.epochs, full.batch_size, full.val_fraction, full.augment, full.max_per_class) == \
        ("fashion_mnist", 160, 128, 0.1, "resized_crop", None)
    paper = figure_configs("fig5", quick=False, scenario="cifar100", device="cuda")["DAKD"]
    assert (paper.epochs, paper.batch_size, paper.val_fraction, paper.augment, paper.split) == \
        (160, 128, 0.1, "resized_crop", "lfh")
    assert figure_configs("fig2", quick=False, scenario="cifar100")["CE"].tasks == 3
    assert figure_configs("fig2", epochs=1)["CE"].epochs == 1
    assert list(figure_configs("fig4"))[:2] == ["CE · memory 10", "DGR · memory 10"]


def test_bad_figure_settings_are_rejected_by_name():
    with pytest.raises(ConfigError, match="figure must be one of"):
        figure_plan("fig9")
    with pytest.raises(ConfigError, match="only:.*fig9"):
        make_figures(only=["fig9"])
    with pytest.raises(ConfigError, match="seeds"):
        figure_plan("fig2", seeds=[])
    with pytest.raises(ConfigError, match="seeds"):
        figure_plan("fig2", seeds=[0, -1])
    with pytest.raises(ConfigError, match="scenario must be one of"):
        figure_plan("fig2", scenario="mnist")


def test_cached_run_is_reused_and_a_changed_setting_is_not(tmp_path, monkeypatch):
    cfg = figure_configs("fig2", **TINY)["CE"]
    first = cached_run(cfg, tmp_path)
    assert first.complete and first.path.parent == tmp_path
    calls = []
    real_run = runner.run
    monkeypatch.setattr(runner, "run", lambda *a, **k: calls.append(k) or real_run(*a, **k))
    again = cached_run(cfg, tmp_path)
    assert calls == [] and again.path == first.path
    assert again.summary["average_incremental_accuracy"] == first.summary["average_incremental_accuracy"]
    changed = figure_configs("fig2", seed=1, **TINY)["CE"]
    other = cached_run(changed, tmp_path)
    assert len(calls) == 1 and other.path != first.path


def test_make_figures_two_seeds_in_worker_processes(tmp_path):
    out, cache = tmp_path / "figs", tmp_path / "cache"
    written = make_figures(out=out, cache_dir=cache, seeds=[0, 1], workers=2, **TINY)
    assert sorted(written) == ["README", "fig2", "fig4", "fig5", "weight_norms"]
    for stem in ("fig2_gradient_magnitudes", "fig5_forgetting", "weight_norms", "fig4_memory_imbalance"):
        for suffix in (".png", ".pdf", ".csv"):
            path = out / f"{stem}{suffix}"
            assert path.is_file() and path.stat().st_size > 0, path
    assert not [p for p in out.iterdir() if p.name.startswith(".")]     # no temp files left behind
    fig2 = pd.read_csv(out / "fig2_gradient_magnitudes.csv")
    assert set(fig2.seed) == {0, 1} and set(fig2.group) == {"old", "new"}
    assert len(fig2[fig2.seed == 0]) == len(fig2[fig2.seed == 1])      # one row per seed
    fig5 = pd.read_csv(out / "fig5_forgetting.csv")
    assert set(fig5.label) == {"none", "KD", "feature", "DAKD"} and set(fig5.seed) == {0, 1}
    norms = pd.read_csv(out / "weight_norms.csv")
    assert set(norms.label) == {"CE", "DGR", "BiC", "WA"} and (norms.weight_norm > 0).all()
    fig4 = pd.read_csv(out / "fig4_memory_imbalance.csv")
    assert set(zip(fig4.factor, fig4.setting)) == {("memory", 10), ("memory", 20), ("memory", 50),
                                                   ("imbalance", 10), ("imbalance", 50), ("imbalance", 100)}
    # shared runs: the DGR curve at memory 20 is the DAKD run of Figure 5, seed for seed
    shared = fig4[(fig4.factor == "memory") & (fig4.setting == 20) & (fig4.label == "DGR")]
    dakd = fig5[fig5.label == "DAKD"].groupby("seed").average_incremental_accuracy.first()
    assert shared.groupby("seed").average_incremental_accuracy.first().to_dict() == pytest.approx(dakd.to_dict())
    assert len(list(cache.iterdir())) == 2 * (1 + 4 + 2 + 8)            # distinct runs only
    # the verdict table in the README is the one the CSVs give
    readme = (out / "README.md").read_text()
    rows = [verdicts.fig2_verdict(fig2), *verdicts.weight_norm_verdicts(norms), verdicts.fig5_verdict(fig5),
            verdicts.fig4_verdict(fig4)]
    assert verdicts.markdown(rows) in readme
    assert "scikit-learn's handwritten digits" in readme and "| DAKD | dgr |" in readme
    assert "30 distinct runs, 30 trained here and 0 reused" in readme
    again = make_figures(out=out, cache_dir=cache, seeds=[0, 1], workers=2, only=["fig5"], **TINY)
    text = again["README"][0].read_text()                                 # 4 variants x 2 seeds, all cached
    assert "8 distinct runs, 0 trained here and 8 reused from the cache" in text


def test_missing_dataset_fails_before_any_run(tmp_path, monkeypatch):
    out = tmp_path / "figs"
    with pytest.raises(DataError, match="cifar"):
        make_figures(out=out, scenario="cifar100", cache_dir=tmp_path / "cache", data_root=str(tmp_path / "none"))
    monkeypatch.setattr(fashion_mnist, "DEBIAN_FOLDER", tmp_path / "no-debian")
    monkeypatch.setattr(fashion_mnist.shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="Fashion-MNIST not found.*apt-get install dataset-fashion-mnist"):
        make_figures(out=out, cache_dir=tmp_path / "cache", data_root=str(tmp_path / "none"))
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_out_must_be_a_folder(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="out:"):
        make_figures(out=target, cache_dir=tmp_path / "cache", **TINY)


def test_cli_figures(tmp_path, capsys):
    code = main(["figures", "--quick", "--scenario", "digits", "--epochs", "1", "--only", "fig2", "--seeds", "0",
                 "--workers", "1", "--out", str(tmp_path / "f"), "--cache", str(tmp_path / "c")])
    assert code == 0
    assert (tmp_path / "f" / "fig2_gradient_magnitudes.png").is_file()
    captured = capsys.readouterr()
    assert "fig2_gradient_magnitudes.csv" in captured.out
    assert "[1/1] fig2 CE seed 0" in captured.err                        # progress, one line per run
    assert main(["figures", "--only", "nope", "--out", str(tmp_path / "g")]) == 2
    assert main(["figures", "--workers", "0", "--out", str(tmp_path / "g")]) == 2
    assert not (tmp_path / "g").exists()
    with pytest.raises(SystemExit):
        main(["figures", "--seeds", "a,b"])


def test_readme_verdicts_are_the_committed_figures_verdicts():
    """The verdict table at the top of the README's figures section is figures/README.md's, which is the
    one the committed CSVs give."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    table = readme.split("<!-- verdicts:begin -->\n")[1].split("\n<!-- verdicts:end -->")[0].strip()
    figures_readme = (root / "figures" / "README.md").read_text()
    assert table in figures_readme
    csv = {name: pd.read_csv(root / "figures" / f"{stem}.csv") for name, stem in
           (("fig2", "fig2_gradient_magnitudes"), ("fig5", "fig5_forgetting"), ("weight_norms", "weight_norms"),
            ("fig4", "fig4_memory_imbalance"))}
    rows = [verdicts.fig2_verdict(csv["fig2"]), *verdicts.weight_norm_verdicts(csv["weight_norms"]),
            verdicts.fig5_verdict(csv["fig5"]), verdicts.fig4_verdict(csv["fig4"])]
    assert verdicts.markdown(rows) == table
    assert set(csv["fig2"].seed) == {0, 1, 2} and set(csv["fig4"].seed) == {0, 1, 2}
