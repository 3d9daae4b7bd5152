"""The paper-figure pipeline: which runs each figure needs, the run cache, the files, early errors."""
import pandas as pd
import pytest

import gradlab
from gradlab.cli import main
from gradlab.config import ConfigError
from gradlab.data.sources import DataError
from gradlab.figures import cached_run, figure_configs, make_figures, run_key

TINY = dict(scenario="digits", epochs=1, batch_size=32, max_per_class=100)


def test_figure_runs_follow_the_paper_settings():
    fig2 = figure_configs("fig2")
    assert list(fig2) == ["CE"]
    cfg = fig2["CE"]
    assert (cfg.method, cfg.memory, cfg.tasks, cfg.order, cfg.rho, cfg.seed) == ("ce", 20, 3, "lt", 100, 0)
    assert "gradients" in cfg.probes
    fig5 = figure_configs("fig5")
    assert list(fig5) == ["none", "KD", "feature", "DAKD"]
    assert [c.method_args["distillation"] for c in fig5.values()] == ["none", "kd", "feature", "dakd"]
    assert {c.method for c in fig5.values()} == {"dgr"}
    norms = figure_configs("weight_norms")
    assert {"CE", "DGR"} <= set(norms)
    # the DGR run of the weight-norm figure is the DAKD run of Figure 5: one cached run serves both
    assert run_key(norms["DGR"]) == run_key(fig5["DAKD"])
    assert run_key(norms["CE"]) != run_key(fig2["CE"])          # different task splits
    paper = figure_configs("fig5", quick=False, scenario="cifar100", device="cuda")["DAKD"]
    assert (paper.epochs, paper.batch_size, paper.val_fraction, paper.augment, paper.split) == \
        (160, 128, 0.1, "resized_crop", "lfh")
    assert figure_configs("fig2", epochs=1)["CE"].epochs == 1


def test_unknown_figure_is_rejected_by_name():
    with pytest.raises(ConfigError, match="figure must be one of"):
        figure_configs("fig9")
    with pytest.raises(ConfigError, match="only:.*fig9"):
        make_figures(only=["fig9"])


def test_cached_run_is_reused_and_a_changed_setting_is_not(tmp_path, monkeypatch):
    cfg = figure_configs("fig2", **TINY)["CE"]
    first = cached_run(cfg, tmp_path)
    assert first.complete and first.path.parent == tmp_path
    calls = []
    real_run = gradlab.run
    monkeypatch.setattr(gradlab, "run", lambda *a, **k: calls.append(k) or real_run(*a, **k))
    again = cached_run(cfg, tmp_path)
    assert calls == [] and again.path == first.path
    assert again.summary["average_incremental_accuracy"] == first.summary["average_incremental_accuracy"]
    changed = figure_configs("fig2", **{**TINY, "seed": 1})["CE"]
    other = cached_run(changed, tmp_path)
    assert len(calls) == 1 and other.path != first.path


def test_make_figures_writes_every_file_with_its_table(tmp_path):
    out = tmp_path / "figs"
    written = make_figures(out=out, cache_dir=tmp_path / "cache", **TINY)
    for stem in ("fig2_gradient_magnitudes", "fig5_forgetting", "weight_norms"):
        for suffix in (".png", ".pdf", ".csv"):
            path = out / f"{stem}{suffix}"
            assert path.is_file() and path.stat().st_size > 0, path
    fig2 = pd.read_csv(out / "fig2_gradient_magnitudes.csv")
    assert set(fig2.phase) == {0, 1, 2} and set(fig2.group) == {"old", "new"}
    fig5 = pd.read_csv(out / "fig5_forgetting.csv")
    assert set(fig5.label) == {"none", "KD", "feature", "DAKD"}
    norms = pd.read_csv(out / "weight_norms.csv")
    assert {"CE", "DGR"} <= set(norms.label) and (norms.weight_norm > 0).all()
    readme = (out / "README.md").read_text()
    assert "generated" in readme and "| DAKD | dgr |" in readme
    assert sorted(written) == ["README", "fig2", "fig5", "weight_norms"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]     # no temp files left behind
    # distinct runs: fig2's CE, four Figure-5 variants, the weight-norm runs but DGR (= Figure 5's DAKD, reused)
    expected = 1 + 4 + len(figure_configs("weight_norms")) - 1
    assert len(list((tmp_path / "cache").iterdir())) == expected


def test_missing_dataset_fails_before_any_run(tmp_path):
    out = tmp_path / "figs"
    with pytest.raises(DataError, match="cifar"):
        make_figures(out=out, scenario="cifar100", cache_dir=tmp_path / "cache", data_root=str(tmp_path / "none"))
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_out_must_be_a_folder(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="out:"):
        make_figures(out=target, cache_dir=tmp_path / "cache", **TINY)


def test_cli_figures(tmp_path, capsys):
    code = main(["figures", "--quick", "--scenario", "digits", "--epochs", "1", "--only", "fig2", "--quiet",
                 "--out", str(tmp_path / "f"), "--cache", str(tmp_path / "c")])
    assert code == 0
    assert (tmp_path / "f" / "fig2_gradient_magnitudes.png").is_file()
    assert "fig2_gradient_magnitudes.csv" in capsys.readouterr().out
    assert main(["figures", "--only", "nope", "--out", str(tmp_path / "g")]) == 2
    assert not (tmp_path / "g").exists()

