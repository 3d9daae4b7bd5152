"""Users' code without forking gradlab: a method and a probe in a file outside the package, loaded with
``--plugin`` / ``plugins:`` / ``plugins=[...]`` and by an installed package's ``gradlab.plugins`` entry point,
train through the API, ``run``, ``compare`` (worker processes) and ``sweep`` (Ray), with the probe recorded."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import gradlab
from gradlab import plugins as plugin_loader
from gradlab.errors import ConfigError
from gradlab.methods import METHODS
from gradlab.probes import PROBES


def _plugin_from_docs() -> str:
    """The plugin file printed in docs/extending.md (its first python block): the page's example is what runs."""
    docs = Path(__file__).resolve().parents[1] / "docs"
    block = re.search(r"```python\n(.*?)```", (docs / "extending.md").read_text(), re.S).group(1)
    assert block == (docs / "examples" / "my_methods.py").read_text()       # the page shows the shipped file
    return block


PLUGIN = _plugin_from_docs()
TINY = ["--scenario", "digits", "--tasks", "2", "--epochs", "2", "--quiet"]


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    path = tmp_path_factory.mktemp("plugin") / "my_methods.py"
    path.write_text(PLUGIN)
    yield path
    METHODS.pop("balanced-softmax", None)
    PROBES.pop("mean-logit", None)


def _gradlab(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "gradlab", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=env)


def test_the_python_api_trains_a_plugin_method_with_a_plugin_probe(plugin, tmp_path):
    record = gradlab.run(scenario="digits", tasks=2, epochs=2, method="balanced-softmax", method_args={"tau": 1.0},
                         probes=["mean-logit", "accuracy"], plugins=[str(plugin)], progress=False,
                         out=str(tmp_path / "run"))
    assert record.complete and record.summary["final_accuracy"] > 0.3          # learns (chance: 1 in 10)
    rows = record.probes[record.probes["term"] == "mean_logit"]
    assert sorted(rows["epoch"].unique()) == [0, 1] and set(rows["phase"]) == {0, 1}
    assert record.config.plugins == [str(plugin)]
    with pytest.raises(ConfigError, match="method_args.tau must be a number >= 0, got -1"):
        gradlab.run(scenario="digits", method="balanced-softmax", method_args={"tau": -1}, plugins=[str(plugin)])


def test_run_info_and_compare_in_worker_processes_load_the_plugin(plugin, tmp_path):
    info = _gradlab("info", "--plugin", plugin)
    assert info.returncode == 0 and "balanced-softmax" in info.stdout and "tau=1.0: a number >= 0" in info.stdout
    run = _gradlab("run", "--plugin", plugin, "--method", "balanced-softmax", "--probes", "mean-logit", *TINY,
                   "--out", tmp_path / "run")
    assert run.returncode == 0, run.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["method"] == "balanced-softmax"
    compare = _gradlab("compare", "--plugin", plugin, "--methods", "finetune,balanced-softmax", *TINY,
                       "--workers", "2", "--out", tmp_path / "compare", "--cache", tmp_path / "cache")
    assert compare.returncode == 0, compare.stderr
    assert "balanced-softmax" in (tmp_path / "compare" / "comparison.md").read_text()


def test_a_sweep_on_ray_imports_the_plugin_in_its_workers(plugin, tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"base: {{scenario: digits, tasks: 2, epochs: 1, method: balanced-softmax, plugins: [{plugin}],"
                     " probes: [mean-logit]}\ngrid: {seed: [0, 1]}\n")
    result = _gradlab("sweep", sweep, "--out", tmp_path / "out", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "balanced-softmax" in (tmp_path / "out" / "sweep.csv").read_text()


@pytest.mark.parametrize("content, words", [
    (None, ["is not a file"]),
    ("raise ImportError('no torch_scatter here')", ["failed to import (ImportError)", "torch_scatter"]),
    ("import gradlab\n@gradlab.register_method\nclass D(gradlab.Method):\n    name = 'dgr'\n"
     "    def losses(self, batch, out):\n        return {}\n", ["the name 'dgr' is taken by gradlab.methods.dgr.DGR"]),
    ("import gradlab\n@gradlab.register_method\nclass NoLoss(gradlab.Method):\n    name = 'no-loss'\n",
     ["does not define losses(batch, out)"]),
    ("import gradlab\ngradlab.register_probe('weights', gradlab.Probe)\n", ["the name 'weights' is taken"]),
], ids=["missing", "import-error", "name-clash", "no-losses", "probe-clash"])
def test_a_broken_plugin_is_one_line_before_training(content, words, tmp_path):
    path = tmp_path / "bad_plugin.py"
    if content is not None:
        path.write_text(content)
    result = _gradlab("run", "--plugin", path, *TINY, "--out", tmp_path / "run")
    assert result.returncode == 2 and all(w in result.stderr for w in words), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_an_installed_package_registers_itself_through_its_entry_point(tmp_path):
    package = tmp_path / "src"
    (package / "gradlab_extra").mkdir(parents=True)
    (package / "gradlab_extra" / "__init__.py").write_text(PLUGIN.replace("balanced-softmax", "installed-bsm"))
    (package / "pyproject.toml").write_text(textwrap.dedent('''
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "gradlab-extra"
        version = "0.0.1"

        [project.entry-points."gradlab.plugins"]
        extra = "gradlab_extra"

        [tool.setuptools]
        packages = ["gradlab_extra"]
    '''))
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--target", str(target), str(package)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    assert list(target.glob("gradlab_extra-*.dist-info/entry_points.txt"))
    env = {**__import__("os").environ, "PYTHONPATH": str(target)}
    info = _gradlab("info", env=env)                                   # no flag: the entry point is enough
    assert info.returncode == 0 and "installed-bsm" in info.stdout, info.stderr
    run = _gradlab("run", "--method", "installed-bsm", *TINY, "--out", tmp_path / "run", env=env)
    assert run.returncode == 0, run.stderr


def test_plugins_load_once_and_bad_specs_are_refused():
    with pytest.raises(ConfigError, match="plugins must be a list"):
        plugin_loader.load_plugins("my_methods.py")
    with pytest.raises(ConfigError, match="'no_such_module_here' failed to import"):
        plugin_loader.load_plugins(["no_such_module_here"])
    assert plugin_loader.load_plugins(["json"]) == ["json"] == plugin_loader.load_plugins(["json"])


# ---------------------------------------------------------------------------------------------- your own data
DATA_PLUGIN = Path(__file__).resolve().parents[1] / "docs" / "examples" / "my_data.py"


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """sklearn's digits as the example's arrays file (uint8 8x8 images, labels 0..9)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.images * 16).clip(0, 255).astype("uint8"), digits.target
    root = tmp_path_factory.mktemp("my_data")
    import numpy as np

    np.savez(root / "my_data.npz", x_train=x[:1400], y_train=y[:1400], x_test=x[1400:], y_test=y[1400:])
    return root


def test_a_plugin_scenario_trains_with_per_class_records_in_workers(data_root, tmp_path):
    common = ["--plugin", DATA_PLUGIN, "--scenario", "my-data", "--data-root", data_root, "--tasks", "5"]
    data = _gradlab("data", *common)
    common.append("--quiet")
    assert data.returncode == 0 and "Scenario(my-data, order=lt, rho=100" in data.stdout, data.stderr
    run = _gradlab("run", *common, "--method", "dgr", "--order", "ltio", "--out", tmp_path / "run")
    assert run.returncode == 0, run.stderr
    record = gradlab.load_run(tmp_path / "run")
    assert record.complete and record.summary["final_accuracy"] > 0.3
    assert len(record.classes) == 10 and record.classes["train_count"].max() > 10 * record.classes["train_count"].min()
    compare = _gradlab("compare", *common, "--methods", "finetune,dgr", "--workers", "2",
                       "--out", tmp_path / "compare", "--cache", tmp_path / "cache")
    assert compare.returncode == 0, compare.stderr


def test_a_plugin_scenario_s_missing_data_and_a_taken_name_are_one_line(tmp_path):
    result = _gradlab("run", "--plugin", DATA_PLUGIN, "--scenario", "my-data", "--data-root", tmp_path / "none",
                      "--quiet", "--out", tmp_path / "run")
    assert result.returncode == 2 and "my_data.npz is missing" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
    clash = tmp_path / "clash.py"
    clash.write_text("import gradlab\ninfo = gradlab.SourceInfo('digits', 10, (8, 8, 1), False, 'mine', '')\n"
                     "gradlab.register_scenario(info, lambda root, download: None)\n")
    result = _gradlab("run", "--plugin", clash, "--scenario", "digits", "--quiet", "--out", tmp_path / "run2")
    assert result.returncode == 2 and "the name 'digits' is taken" in result.stderr, result.stderr


def test_an_edited_plugin_is_a_different_run_for_the_cache(plugin, tmp_path):
    """The cache key covers the plugin's source, not its path: an edited method trains again, a copy of the same
    file elsewhere finds the cached run."""
    from gradlab.runs.executor import run_key

    def key(path):
        return run_key(gradlab.RunConfig(scenario="digits", method="balanced-softmax", plugins=[str(path)]))

    copy = tmp_path / "elsewhere" / "my_methods.py"
    copy.parent.mkdir()
    copy.write_text(plugin.read_text())
    assert key(copy) == key(plugin)
    copy.write_text(plugin.read_text() + "\n# tau now means something else\n")
    assert key(copy) != key(plugin)
    assert run_key(gradlab.RunConfig(scenario="digits")) == run_key(gradlab.RunConfig(scenario="digits", plugins=[]))


def test_a_record_stays_readable_where_its_plugin_is_missing(plugin, tmp_path):
    """A run folder trained with a plugin, read where the plugin file is gone (a colleague's machine): the record
    loads with its settings, with a warning that training it again needs the plugin."""
    import shutil

    own = tmp_path / "my_methods.py"
    shutil.copy(plugin, own)
    record = gradlab.run(scenario="digits", tasks=2, epochs=1, method="balanced-softmax", plugins=[str(own)],
                         progress=False, out=str(tmp_path / "run"))
    own.unlink()
    code = ("import json, warnings, gradlab\n"
            "with warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n"
            f"    r = gradlab.load_run({str(tmp_path / 'run')!r})\n"
            "print(json.dumps([r.config.method, r.config.plugins, r.summary['final_accuracy'],\n"
            "                  list(r.accuracy_matrix().shape), [str(w.message) for w in caught]]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    method, plugins, final, shape, caught = json.loads(done.stdout)
    assert (method, plugins, shape) == ("balanced-softmax", [str(own.resolve())], [2, 2])
    assert final == record.summary["final_accuracy"]
    assert any("is not a file" in w and "training or resuming it needs the plugin" in w for w in caught)
