"""The notebooks run top to bottom, and the explorer's logic works without a browser.

Each notebook is executed with nbclient in a fresh ``python3`` kernel whose working folder is a temp
folder (runs and caches land there); its ``parameters`` cell keeps its knobs and gets tiny settings
appended (digits, 1 epoch). The committed notebooks must carry no outputs.
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
PLOTLY = "application/vnd.plotly.v1+json"
PNG = "image/png"
WIDGET = "application/vnd.jupyter.widget-view+json"

FIGURE_TINY = {"scenario": "digits", "quick": True, "overrides": {"epochs": 1}, "device": "cpu",
               "cache_dir": "runs/cache"}
TINY = {
    "00_tour.ipynb": {"scenario": "digits", "epochs": 1, "memory": 5, "tasks": 3, "device": "cpu",
                      "runs_dir": "runs"},
    "01_gradient_magnitudes.ipynb": FIGURE_TINY,
    "02_imbalanced_forgetting.ipynb": FIGURE_TINY,
    "03_classifier_bias.ipynb": FIGURE_TINY,
    "04_explorer.ipynb": {"scenario": "digits", "epochs": 1, "tasks": 3, "run_now": True, "runs_dir": "runs"},
}
# mime types a notebook's executed outputs must contain (in cells or in the explorer's Output widgets)
EXPECTED = {
    "00_tour.ipynb": {PLOTLY},
    "01_gradient_magnitudes.ipynb": {PLOTLY, PNG},
    "02_imbalanced_forgetting.ipynb": {PLOTLY, PNG},
    "03_classifier_bias.ipynb": {PLOTLY, PNG},
    "04_explorer.ipynb": {PLOTLY, WIDGET},
}


def parameters_cell(nb) -> nbformat.NotebookNode:
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and "parameters" in code[0].metadata.get("tags", []), "first code cell must be tagged 'parameters'"
    return code[0]


def with_parameters(nb, values: dict):
    """A copy of ``nb`` whose parameters cell ends with ``name = value`` for every value (names must exist)."""
    nb = copy.deepcopy(nb)
    cell = parameters_cell(nb)
    defined: dict = {}
    exec(cell.source, {}, defined)  # noqa: S102  (our own notebook's literal assignments)
    missing = sorted(set(values) - set(defined))
    assert not missing, f"parameters cell lacks knobs {missing}; it defines {sorted(defined)}"
    cell.source += "\n\n# tiny settings for the test\n" + "\n".join(f"{k} = {v!r}" for k, v in values.items())
    return nb


def mime_types(nb) -> set[str]:
    """Every mime type in cell outputs and in the outputs stored in Output widgets' state."""
    found = set()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            found.update(out.get("data", {}))
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for model in state.values():
        for out in model.get("state", {}).get("outputs", []) or []:
            found.update(out.get("data", {}))
    return found


def text_of(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(json.dumps(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS] == sorted(TINY), "notebooks/ and the test's TINY table disagree"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    parameters_cell(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has outputs; clear them before committing"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count"
    assert "widgets" not in nb.metadata, f"{path.name} carries saved widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path):
    from nbclient import NotebookClient

    nb = with_parameters(nbformat.read(path, as_version=4), TINY[path.name])
    client = NotebookClient(nb, timeout=900, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and traceback, on the first error
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    found = mime_types(nb)
    assert EXPECTED[path.name] <= found, f"{path.name}: expected outputs {EXPECTED[path.name] - found} missing"
    assert "Traceback" not in text_of(nb)
    assert (tmp_path / "runs").is_dir(), "the notebook's runs should land in its working folder"
    if path.name == "04_explorer.ipynb":
        assert "RunRecord(" in text_of(nb), "run_now=True should leave a finished run in the explorer"


# ---------------------------------------------------------------------- the explorer, without a browser
def test_explorer_controls_map_to_a_config(tmp_path):
    from gradlab.widgets import config_from_controls, explorer

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
    from gradlab.widgets import explorer

    ex = explorer(scenario="digits", tasks=3, base=9, epochs=1, out_root=tmp_path)  # 9 base + 2 tasks > 10
    assert ex.run() is None
    assert ex.error and "ConfigError" in ex.error and "error" in ex.status.value
    assert ex.progress.bar_style == "danger" and not ex.run_button.disabled
    assert not any(tmp_path.iterdir()), "a bad setting must leave nothing behind"


def test_explorer_runs_and_draws(tmp_path):
    from gradlab.widgets import explorer

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
    """Cosine (LUCIR) and LSC (PODNet, SIR) heads have no bias, and PODNet / SIR classify with NCA, not CE:
    the explorer still draws all three panels, Figure 2 on the method's own classification loss."""
    from gradlab.plots import tables
    from gradlab.widgets import explorer

    ex = explorer(scenario="digits", method=method, tasks=2, epochs=1, memory=5, batch_size=32, device="cpu",
                  out_root=tmp_path)
    record = ex.run()
    assert record is not None and record.complete, ex.error
    assert set(ex.figures) == {"accuracy", "gradients", "weights"}
    term = tables.classification_term(record)
    assert term == ("grad_nca" if method in ("podnet", "sir", "podnet-2stage") else "grad_ce")
    assert f"L<sub>{term[5:]}</sub>" in ex.figures["gradients"].layout.yaxis.title.text
    norms = tables.weight_norms({"run": record})
    assert (norms.weight_norm > 0).all() and len(norms) == 10
    assert norms.bias_abs.isna().all() == (method in ("lucir", "podnet", "sir", "podnet-2stage"))
