"""The explorer without a browser: its controls map to a RunConfig, errors land in the status line, runs
draw every figure titled with the run's method, and a run's summary and figures are regular cell outputs
(display handles) that a notebook keeps, not widget state that a reload loses."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from test_notebooks import PLOTLY, PNG, WIDGET, is_png, notebook_client


# ---------------------------------------------------------------------- the explorer, without a browser
def test_explorer_controls_map_to_a_config(tmp_path):
    from gradlab.notebook.explorer import config_from_controls, explorer

    ex = explorer(scenario="digits", method="ce", tasks=3, epochs=1, imbalance=20, batch_size=16,
                  out_root=tmp_path / "x")
    cfg = ex.config()
    assert (cfg["scenario"], cfg["method"], cfg["tasks"], cfg["epochs"], cfg["imbalance"]) == \
        ("digits", "ce", 3, 1, 20.0)
    assert cfg["batch_size"] == 16 and cfg["base"] is None and cfg["progress"] is False
    assert Path(cfg["out"]).parent == tmp_path / "x"
    ex.controls["order"].value = "conv"          # the balanced order forces rho = 1
    assert ex.controls["imbalance"].disabled and ex.config()["imbalance"] == 1.0
    values = {**ex.values(), "base": 4, "order": "ltio"}
    assert config_from_controls(values, out_root=tmp_path)["base"] == 4
    from gradlab.methods import list_methods

    assert set(ex.controls["method"].options) == set(list_methods())


def test_explorer_shows_errors_in_the_status_line(tmp_path):
    from gradlab.notebook.explorer import explorer

    ex = explorer(scenario="digits", tasks=3, base=9, epochs=1, out_root=tmp_path)  # 9 base + 2 tasks > 10
    assert ex.run() is None
    assert ex.error and "ConfigError" in ex.error and "error" in ex.status.value
    assert ex.progress.bar_style == "danger" and not ex.run_button.disabled
    assert not any(tmp_path.iterdir()), "a bad setting must leave nothing behind"


def test_explorer_runs_and_draws(tmp_path):
    from gradlab.notebook.explorer import explorer

    ex = explorer(scenario="digits", method="dgr", tasks=2, epochs=1, memory=5, batch_size=32,
                  device="cpu", out_root=tmp_path)
    steps = []
    ex.progress.observe(lambda change: steps.append(change["new"]), names="value")
    record = ex.run()
    assert record is not None and record.complete, ex.error
    assert ex.progress.value == ex.progress.max == 2 and steps[-1] == 2 and 1 in steps
    assert "done" in ex.status.value and ex.progress.bar_style == "success"
    assert set(ex.figures) == {"accuracy", "gradients", "weights"}
    ex.controls["method"].value = "ce"
    ex.run()
    assert len(ex.records) == 2 and len(ex.figures["accuracy"].data) >= 2


@pytest.mark.parametrize("method", ["lucir", "podnet", "sir", "podnet-2stage", "icarl", "bic"])
def test_explorer_draws_all_panels_for_every_head(method, tmp_path):
    """Cosine (LUCIR) and LSC (PODNet, SIR) heads have no bias, and SIR classifies with NCA, not CE (PODNet with
    CE, as LT-CIL ran it): the explorer still draws all three panels, Figure 2 on the method's own classification
    loss."""
    from gradlab.analysis import tables
    from gradlab.notebook.explorer import explorer

    ex = explorer(scenario="digits", method=method, tasks=2, epochs=1, memory=5, batch_size=32, device="cpu",
                  out_root=tmp_path)
    record = ex.run()
    assert record is not None and record.complete, ex.error
    assert set(ex.figures) == {"accuracy", "gradients", "weights"}
    term = tables.classification_term(record)
    assert term == ("grad_nca" if method == "sir" else "grad_ce")
    assert f"L<sub>{term[5:]}</sub>" in ex.figures["gradients"].layout.yaxis.title.text
    norms = tables.weight_norms({"run": record})
    assert (norms.weight_norm > 0).all() and len(norms) == 10
    assert norms.bias_abs.isna().all() == (method in ("lucir", "podnet", "sir", "podnet-2stage"))


# ---------------------------------------------------------------------- the new explorer controls
def test_explorer_defaults_to_fashion_mnist_and_keeps_digits(tmp_path):
    from gradlab.notebook.explorer import explorer

    ex = explorer(out_root=tmp_path)
    assert ex.controls["scenario"].value == "fashion_mnist"
    assert {"fashion_mnist", "digits"} <= set(ex.controls["scenario"].options)
    cfg = ex.config()
    assert (cfg["scenario"], cfg["max_per_class"], cfg["imbalance"], cfg["tasks"], cfg["memory"], cfg["seed"]) == \
        ("fashion_mnist", 1000, 100.0, 5, 20, 0)
    ex.controls["scenario"].value = "digits"          # the cap follows the scenario: digits has < 1000 per class
    assert ex.controls["max_per_class"].value == 0 and ex.config()["max_per_class"] is None


def test_explorer_seed_max_per_class_and_method_args(tmp_path):
    from gradlab.config import RunConfig
    from gradlab.notebook.explorer import config_from_controls, explorer

    ex = explorer(scenario="digits", method="dgr", seed=3, max_per_class=50, method_args="distillation=kd, eta=0.5",
                  out_root=tmp_path)
    assert set(ex.controls) >= {"seed", "max_per_class", "method_args"}
    cfg = ex.config()
    assert (cfg["seed"], cfg["max_per_class"], cfg["method_args"]) == (3, 50, {"distillation": "kd", "eta": 0.5})
    ex.controls["seed"].value = 4
    ex.controls["max_per_class"].value = 0                 # 0 = every image
    ex.controls["method_args"].value = "eta=0 distillation=dakd"
    cfg = ex.config()
    assert (cfg["seed"], cfg["max_per_class"], cfg["method_args"]) == (4, None, {"eta": 0, "distillation": "dakd"})
    # every control value is in the run's folder name: runs with other seeds / caps / args do not overwrite it
    folders = {config_from_controls({**ex.values(), **change}, out_root=tmp_path)["out"]
               for change in ({}, {"seed": 5}, {"max_per_class": 40}, {"method_args": "eta=1"}, {"method_args": ""})}
    assert len(folders) == 5 and all(Path(f).parent == tmp_path for f in folders)
    assert RunConfig.from_dict({"scenario": "digits", "seed": 7, "max_per_class": 30}).folder_name().endswith("-n30-s7")
    plain = RunConfig.from_dict({"scenario": "digits", "seed": 7})      # the default run folder: runs/<name>
    assert plain.folder_name() == "digits-finetune-lt-r100-beven-t5-m20-e10-s7", plain.folder_name()
    # a dict works too (explorer(method_args={...})), and is shown in the field as text
    ex2 = explorer(scenario="digits", method="dgr", method_args={"eta": 0, "distillation": "kd"}, out_root=tmp_path)
    assert ex2.controls["method_args"].value == "eta=0, distillation=kd"
    assert ex2.config()["method_args"] == {"eta": 0, "distillation": "kd"}


def test_parse_method_args():
    from gradlab.checks import format_method_args, parse_method_args
    from gradlab.errors import ConfigError

    assert parse_method_args("") == parse_method_args("  ") == parse_method_args(None) == {}
    assert parse_method_args("a=1 b=true, c=[1, 2],d='x y'  e=kd") == \
        {"a": 1, "b": True, "c": [1, 2], "d": "x y", "e": "kd"}
    assert parse_method_args("lambda_b = 0.5") == {"lambda_b": 0.5}
    args = {"eta": 0, "distillation": "kd", "milestones": [1, 2], "name": "a b", "flag": False}
    assert parse_method_args(format_method_args(args)) == args
    for bad, words in (("eta", ["method_args", "'eta'"]), ("eta=", ["method_args", "'eta'", "no value"]),
                       ("eta=1 eta=2", ["method_args", "twice"]), ("=3", ["method_args"]),
                       ("eta=[1,", ["method_args eta", "YAML"])):
        with pytest.raises(ConfigError) as err:
            parse_method_args(bad)
        message = str(err.value)
        assert all(w in message for w in words), message
        assert "\n" not in message
    assert parse_method_args(["a=1", "b=x, y"], "--method-arg") == {"a": 1, "b": "x, y"}   # the CLI: one pair each
    with pytest.raises(ConfigError, match="--method-arg: 'a' is given twice"):
        parse_method_args(["a=1", "a=2"], "--method-arg")


@pytest.mark.parametrize("text, words", [
    ("eta", ["method_args", "KEY=VALUE"]),
    ("bogus=1", ["method_args", "bogus"]),
    ("distillation=nonsense", ["distillation", "nonsense"]),
    ("eta=[1,", ["method_args", "YAML"]),
])
def test_explorer_bad_method_args_show_one_line_in_the_status(text, words, tmp_path):
    from gradlab.notebook.explorer import explorer

    ex = explorer(scenario="digits", method="dgr", tasks=2, epochs=1, method_args=text, out_root=tmp_path)
    assert ex.run() is None
    assert ex.error.startswith("ConfigError: ") and all(w in ex.error for w in words), ex.error
    assert "\n" not in ex.error and "Traceback" not in ex.status.value and "<br" not in ex.status.value
    assert "error" in ex.status.value and ex.progress.bar_style == "danger" and not ex.run_button.disabled
    assert not any(tmp_path.iterdir()), "a bad setting must leave nothing behind"


def test_explorer_bad_seed_or_cap_name_the_field(tmp_path):
    from gradlab.errors import ConfigError
    from gradlab.notebook.explorer import config_from_controls, explorer

    ex = explorer(scenario="digits", out_root=tmp_path)
    with pytest.raises(ConfigError, match="seed"):
        config_from_controls({**ex.values(), "seed": -1}, out_root=tmp_path)
    with pytest.raises(ConfigError, match="max_per_class"):
        config_from_controls({**ex.values(), "max_per_class": -5}, out_root=tmp_path)
    ex.controls["max_per_class"].value = 5000          # more than digits has: the status line says so
    assert ex.run() is None and "max_per_class" in ex.error and "\n" not in ex.error


def test_explorer_run_uses_seed_cap_and_args_and_titles_the_method(tmp_path):
    """A DGR run: the settings reach the run, and every figure, interactive and static, names DGR (the static
    gradient panel used to say "under CE" whatever the method)."""
    from gradlab.notebook.explorer import explorer

    ex = explorer(scenario="digits", method="dgr", tasks=2, epochs=1, memory=5, batch_size=32, device="cpu",
                  seed=2, max_per_class=60, imbalance=10, method_args="distillation=kd", out_root=tmp_path)
    record = ex.run()
    assert record is not None and record.complete, ex.error
    cfg = record.config
    assert (cfg.seed, cfg.max_per_class, cfg.method_args) == (2, 60, {"distillation": "kd"})
    assert int(record.classes.train_count.max()) == 60
    assert "distillation=kd" in next(iter(ex.records)) and "seed 2" in next(iter(ex.records))
    static = ex.static_figures()
    assert set(static) == {"accuracy", "gradients", "weights"}
    for name in ("gradients", "weights"):
        title = ex.figures[name].layout.title.text
        assert title.startswith("dgr (distillation=kd): ") and "CE)" not in title and "under CE" not in title
        assert static[name]._suptitle.get_text().startswith("dgr (distillation=kd): ")
        bundle = ex.bundle(name)
        assert {PLOTLY, PNG} <= set(bundle) and is_png(bundle[PNG]) and "dgr" in bundle["text/plain"]
    assert "Last run:** dgr (distillation=kd)" in ex.bundle("summary")["text/markdown"]


def test_explorer_keeps_its_last_result_as_cell_outputs(tmp_path):
    """Displayed, the explorer is followed by regular outputs (a summary, then one output per figure with the
    plotly form and its PNG); a later run (here from another cell, as the Run button does) redraws them in
    place through their display ids. Widget state vanishes on reload; these outputs are saved with the notebook."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
                    "from gradlab.notebook.explorer import explorer\n"
                    "ex = explorer(scenario='digits', method='ce', tasks=2, epochs=1, memory=5, device='cpu', "
                    "out_root='runs/explorer')\nex"),
                nbformat.v4.new_code_cell("ex.controls['method'].value = 'dgr'\nex.run()\nprint(ex.error)")]
    notebook_client(nb, tmp_path).execute()
    first, second = nb.cells[0].outputs, nb.cells[1].outputs
    assert WIDGET in first[0]["data"], "the widget comes first"
    regular = first[1:]
    assert len(regular) == 4 and not any(WIDGET in o["data"] for o in regular)
    assert "Last run:** dgr" in regular[0]["data"]["text/markdown"]
    titles = []
    for out in regular[1:]:
        assert {PLOTLY, PNG} <= set(out["data"]) and is_png(out["data"][PNG])
        titles.append(out["data"][PLOTLY]["layout"]["title"]["text"])
    assert titles[0].startswith("Accuracy after every phase")
    assert titles[1].startswith("dgr: ") and titles[2].startswith("dgr: ")
    assert not any(PNG in o.get("data", {}) or PLOTLY in o.get("data", {}) for o in second), \
        "the run redraws the explorer's outputs, it adds none where it was called"


def test_explorer_loads_plugins_and_trains_on_your_arrays(tmp_path):
    """``explorer(plugins=[...])``: the plugin's method is in the dropdown and trains; ``explorer(data=...)``
    starts on the arrays scenario."""
    import numpy as np
    from sklearn.datasets import load_digits

    import gradlab
    from gradlab.notebook.explorer import explorer

    plugin = tmp_path / "my_methods.py"
    plugin.write_text((Path(__file__).resolve().parents[1] / "docs" / "examples" / "my_methods.py").read_text())
    d = load_digits()
    x, y = (d.images * 16).clip(0, 255).astype(np.uint8), d.target
    data = gradlab.ArrayData(x[:1200], y[:1200], x[1200:], y[1200:])
    ex = explorer(plugins=[str(plugin)], data=data, method="balanced-softmax", tasks=2, epochs=2, model="small",
                  data_root=str(tmp_path / "data"), out_root=tmp_path / "runs")
    assert "balanced-softmax" in ex.controls["method"].options and ex.controls["scenario"].value == "arrays"
    assert "tau" in ex.method_help.value
    record = ex.run()
    assert ex.error is None and record.config.method == "balanced-softmax" and record.config.scenario == "arrays"
    assert record.summary["accuracy_per_phase"][0] > 0.4        # 5 classes in the first task (rho 100): chance 0.2
    assert Path(record.config.data_root).parent == tmp_path / "data" / "arrays"
