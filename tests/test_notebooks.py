"""The notebooks run top to bottom and tell the truth, and the explorer's logic works without a browser.

Each notebook is executed once (a module fixture) with nbclient in a fresh ``python3`` kernel whose working
folder is a temp folder (runs and caches land there); its ``parameters`` cell keeps its knobs and gets tiny
settings appended (digits, 1 epoch, one or two seeds, one worker). The tests then check the executed
notebook: no errors, the expected outputs, a static PNG beside every plotly figure (what viewers without
JavaScript show; also through ``nbconvert --to html``), and that the statements notebooks 02 and 03
generate about their runs match those runs' numbers, recomputed here from the runs the notebook cached.
The committed notebooks must carry no outputs.
"""
from __future__ import annotations

import base64
import copy
import json
import re
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
PLOTLY = "application/vnd.plotly.v1+json"
PNG = "image/png"
MARKDOWN = "text/markdown"
WIDGET = "application/vnd.jupyter.widget-view+json"

# the figure notebooks: `make figures`' plan on digits, 1 epoch; two seeds where the text compares spreads
FIGURE_TINY = {"scenario": "digits", "quick": True, "seeds": [0, 1], "overrides": {"epochs": 1}, "device": "cpu",
               "cache_dir": "runs/cache", "workers": 1}
TINY = {
    "00_tour.ipynb": {"scenario": "digits", "overrides": {"epochs": 1}, "device": "cpu", "cache_dir": "runs/cache",
                      "workers": 1},
    "01_gradient_magnitudes.ipynb": {**FIGURE_TINY, "seeds": [0]},
    "02_imbalanced_forgetting.ipynb": FIGURE_TINY,
    "03_classifier_bias.ipynb": FIGURE_TINY,
    "04_explorer.ipynb": {"scenario": "digits", "epochs": 1, "tasks": 3, "memory": 5, "seed": 1,
                          "method_args": "distillation=kd", "run_now": True, "runs_dir": "runs"},
}
# mime types a notebook's executed outputs must contain (in cells or in the explorer's Output widgets)
EXPECTED = {
    "00_tour.ipynb": {PLOTLY, PNG, MARKDOWN},
    "01_gradient_magnitudes.ipynb": {PLOTLY, PNG, MARKDOWN},
    "02_imbalanced_forgetting.ipynb": {PLOTLY, PNG, MARKDOWN},
    "03_classifier_bias.ipynb": {PLOTLY, PNG, MARKDOWN},
    "04_explorer.ipynb": {PLOTLY, WIDGET, PNG},
}
# the real scenario every notebook starts on (the tests above swap in digits)
DEFAULT_SCENARIO = "fashion_mnist"


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


def parameters_of(nb) -> dict:
    defined: dict = {}
    exec(parameters_cell(nb).source, {}, defined)  # noqa: S102  (our own notebook's literal assignments)
    return defined


def cell_outputs(nb):
    """(cell index, outputs) of every code cell."""
    return [(i, c.get("outputs", [])) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def widget_outputs(nb) -> list:
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    return [out for model in state.values() for out in (model.get("state", {}).get("outputs", []) or [])]


def markdown_outputs(nb) -> list[str]:
    return [o["data"][MARKDOWN] for _, outs in cell_outputs(nb) for o in outs if MARKDOWN in o.get("data", {})]


def is_png(data: str) -> bool:
    return base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"


def sliced_polls(channel) -> None:
    """Make ``channel.get_msg(timeout)`` poll its socket in slices of at most a second.

    When a cell sends a burst of widget messages (the explorer's progress bar), nbclient's single long
    poll on a channel can miss the socket's wake-up and sit until the cell timeout although the reply
    is there (jupyter/nbclient#312); a fresh poll every second sees it at once."""
    import queue

    original = channel.get_msg

    async def get_msg(timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic()))
            try:
                return await original(timeout=step)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    channel.get_msg = get_msg


def notebook_client(nb, folder: Path):
    """An nbclient NotebookClient running ``nb`` in ``folder``, its channels polled in slices."""
    from nbclient import NotebookClient

    class Client(NotebookClient):
        async def async_start_new_kernel_client(self):
            kc = await super().async_start_new_kernel_client()
            sliced_polls(kc.shell_channel)
            sliced_polls(kc.iopub_channel)
            return kc

    return Client(nb, timeout=900, kernel_name="python3", allow_errors=False,
                  resources={"metadata": {"path": str(folder)}})


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """name -> (executed notebook, its working folder); each notebook runs once, with its TINY settings."""
    done: dict = {}

    def run(name: str):
        if name not in done:
            folder = tmp_path_factory.mktemp(name.removesuffix(".ipynb"))
            nb = with_parameters(nbformat.read(NOTEBOOK_DIR / name, as_version=4), TINY[name])
            client = notebook_client(nb, folder)
            start = time.perf_counter()
            client.execute()  # raises CellExecutionError, with the cell and traceback, on the first error
            print(f"{name}: {time.perf_counter() - start:.1f} s")
            done[name] = (nb, folder)
        return done[name]

    return run


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
def test_notebook_defaults_to_the_real_scenario(path):
    """Every notebook starts on Fashion-MNIST-LT; the figure notebooks use `make figures`' settings and cache."""
    params = parameters_of(nbformat.read(path, as_version=4))
    assert params["scenario"] == DEFAULT_SCENARIO
    if path.name.startswith(("00", "01", "02", "03")):
        assert params["quick"] is True and params["cache_dir"] == "../runs/cache" and params["device"] == "auto"
        assert params["overrides"] == {} and params.get("workers", None) is None
    if path.name.startswith(("01", "02", "03")):
        assert list(params["seeds"]) == [0, 1, 2]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, executed):
    nb, folder = executed(path.name)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    found = mime_types(nb)
    assert EXPECTED[path.name] <= found, f"{path.name}: expected outputs {EXPECTED[path.name] - found} missing"
    assert "Traceback" not in text_of(nb)
    assert (folder / "runs").is_dir(), "the notebook's runs should land in its working folder"
    if path.name == "04_explorer.ipynb":
        assert "RunRecord(" in text_of(nb), "run_now=True should leave a finished run in the explorer"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_static_png_beside_every_plotly_figure(path, executed):
    """Viewers without JavaScript (nbconvert --to html, GitHub) cannot draw plotly: each plotly output is
    followed by a PNG of the same data in its cell, and the plotly bundle itself carries no huge text."""
    nb, _ = executed(path.name)
    plotly_count = 0
    for index, outputs in cell_outputs(nb):
        for k, out in enumerate(outputs):
            data = out.get("data", {})
            if PLOTLY not in data:
                continue
            plotly_count += 1
            assert "text/html" not in data, f"cell {index}: a plotly output with text/html needs JavaScript"
            assert len(data.get("text/plain", "")) < 300, f"cell {index}: the plotly output's text is a dump"
            following = outputs[k + 1] if k + 1 < len(outputs) else {}
            assert PNG in following.get("data", {}), f"{path.name} cell {index}: plotly figure without a PNG beside it"
            assert is_png(following["data"][PNG])
    in_widgets = sum(PLOTLY in o.get("data", {}) for o in widget_outputs(nb))
    if in_widgets:   # the explorer: its panels live in widgets; the notebook shows static copies of them
        pngs = [o["data"][PNG] for _, outs in cell_outputs(nb) for o in outs if PNG in o.get("data", {})]
        assert len(pngs) >= in_widgets and all(is_png(p) for p in pngs)
    assert plotly_count + in_widgets > 0, f"{path.name} shows no plotly figure at all"


def test_static_html_export_shows_every_figure(executed):
    """``jupyter nbconvert --to html`` of an executed notebook: one <img> PNG per plotly figure (and more)."""
    from nbconvert import HTMLExporter

    nb, _ = executed("02_imbalanced_forgetting.ipynb")
    html, _ = HTMLExporter().from_notebook_node(nb)
    plotly_count = sum(PLOTLY in o.get("data", {}) for _, outs in cell_outputs(nb) for o in outs)
    assert plotly_count >= 2
    assert html.count("data:image/png;base64,") >= plotly_count + 1   # + the forgetting-vs-count figure
    assert "its static copy (PNG) follows" in html


def test_static_copy_draws_the_same_data():
    """notebook.to_matplotlib: every bar, point and heatmap cell of the plotly figure, on the facet it sits in."""
    import plotly.express as px

    from gradlab.plots import interactive, notebook

    frame = pd.DataFrame({"phase": [0, 0, 1, 1, 1], "class": [0, 1, 0, 1, 2], "images": [5, 3, 2, 2, 7],
                          "role": ["new", "new", "old", "old", "new"]})
    static = notebook.to_matplotlib(px.bar(frame, x="class", y="images", color="role", facet_col="phase"))
    drawn = [ax for ax in static.axes if ax.patches]
    assert len(drawn) == 2
    assert sorted(p.get_height() for ax in drawn for p in ax.patches) == sorted(frame.images)
    assert {t.get_text() for t in static.legends[0].get_texts()} == {"new", "old"}

    curves = pd.DataFrame({"label": ["a", "a", "b", "b"], "phase": [0, 1, 0, 1], "acc_all_seen": [0.5, 0.4, 0.6, 0.55],
                           "acc_task_mean": [0.5, 0.4, 0.6, 0.5]})
    static = notebook.to_matplotlib(interactive.accuracy_curves(curves))
    lines = sorted(tuple(np.round(line.get_ydata(), 6)) for line in static.axes[0].lines)
    assert lines == [(50.0, 40.0), (60.0, 55.0)]
    seeds = pd.concat([curves.assign(seed=0), curves.assign(seed=1, acc_all_seen=curves.acc_all_seen + 0.1)])
    fig = interactive.accuracy_curves(seeds)          # per-seed tables: the mean over seeds, ± std error bars
    assert len(fig.data) == 2 and "2 seeds" in fig.layout.title.text
    assert np.allclose(fig.data[0].y, [55.0, 45.0]) and np.allclose(fig.data[0].error_y.array, [7.0710678, 7.0710678])

    matrix = pd.DataFrame([[0.1, np.nan], [0.2, 0.3]], index=pd.RangeIndex(2, name="phase"),
                          columns=pd.RangeIndex(2, name="task"))
    static = notebook.to_matplotlib(interactive.heatmap(matrix, "m"))
    image = static.axes[0].images[0].get_array()
    assert np.allclose(image.filled(np.nan)[~image.mask], [10.0, 20.0, 30.0])
    assert notebook.png_bytes(static)[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------- the generated statements
def fig_records(name: str, folder: Path, seeds) -> dict:
    """{seed: {label: RunRecord}} of figure ``name`` with the TINY settings, from the notebook's cache
    (every run must be there: the notebook made it)."""
    from gradlab.executor import cached_record
    from gradlab.figures import figure_plan

    tiny = FIGURE_TINY
    plan = figure_plan(name, tiny["quick"], tiny["scenario"], tiny["device"], seeds=seeds, **tiny["overrides"])
    out: dict = {}
    for label, runs in plan.items():
        for seed, cfg in runs.items():
            record = cached_record(cfg, folder / tiny["cache_dir"])
            assert record is not None, f"{name} {label} seed {seed} is not in the notebook's cache"
            out.setdefault(seed, {})[label] = record
    return out


def mean_std(values) -> tuple[float, float]:
    values = np.asarray(values, float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def one(pattern: str, texts: list[str]):
    """The match of ``pattern`` in exactly one of ``texts``."""
    found = [m for t in texts for m in [re.search(pattern, t)] if m]
    assert len(found) == 1, f"expected one statement matching {pattern!r}, found {len(found)} in:\n" + "\n".join(texts)
    return found[0]


def test_02_statements_match_its_numbers(executed):
    """Notebook 02 names the variant that forgot least, DAKD against KD and the verdict: all as the runs say."""
    from gradlab import verdicts
    from gradlab.plots import tables

    nb, folder = executed("02_imbalanced_forgetting.ipynb")
    by_seed = fig_records("fig5", folder, FIGURE_TINY["seeds"])
    table = tables.per_seed(tables.forgetting_curves, by_seed)
    per_seed = table.groupby(["label", "seed"], sort=False)["forgetting"].mean()
    stats = {label: mean_std(part.to_numpy()) for label, part in per_seed.groupby(level=0, sort=False)}
    assert set(stats) == {"none", "KD", "feature", "DAKD"}
    texts = markdown_outputs(nb)

    m = one(r"lowest forgetting: \*\*(.+?)\*\*, ([\d.]+)", texts)
    low = min(stats.values(), key=lambda s: s[0])[0]
    assert abs(stats[m.group(1)][0] - low) < 1e-12, f"{m.group(1)} is not the variant that forgot least: {stats}"
    assert float(m.group(2)) == pytest.approx(100 * low, abs=0.051)
    m = one(r"highest: \*\*(.+?)\*\*, ([\d.]+)", texts)
    assert stats[m.group(1)][0] == pytest.approx(max(s[0] for s in stats.values()), abs=1e-12)

    gap = round(100 * (stats["DAKD"][0] - stats["KD"][0]), 1)
    m = one(r"DAKD forgot (?:([\d.]+) percentage points (more|less) than|the same as) KD", texts)
    if gap == 0:
        assert m.group(1) is None
    else:
        assert m.group(2) == ("more" if gap > 0 else "less"), f"DAKD - KD = {gap} points, the text says {m.group(0)!r}"
        assert float(m.group(1)) == pytest.approx(abs(gap), abs=0.051)

    m = one(r"Verdict on these runs: (reproduced|not reproduced|inconclusive)", texts)
    assert m.group(1) == verdicts.fig5_verdict(table).verdict
    dakd, kd = stats["DAKD"], stats["KD"]
    if dakd[0] - dakd[1] > kd[0] + kd[1]:     # DAKD forgot more than KD with the spreads apart
        assert m.group(1) == "not reproduced"


def test_03_statements_match_its_numbers(executed):
    """Notebook 03 says whether CE's newest rows are larger or smaller, and which method is most level, as
    the runs say (the old notebook claimed growth next to a ratio of 0.89)."""
    from gradlab import verdicts
    from gradlab.plots import tables

    nb, folder = executed("03_classifier_bias.ipynb")
    by_seed = fig_records("weight_norms", folder, FIGURE_TINY["seeds"])
    table = tables.per_seed(tables.weight_norms, by_seed)
    texts = markdown_outputs(nb)
    cvs = {}
    for label, part in table.groupby("label", sort=False):
        ratios, cv = [], []
        for _, run in part.groupby("seed"):
            last = run["task"].max()
            ratios.append(run[run.task == last].weight_norm.mean() / run[run.task < last].weight_norm.mean())
            cv.append(run.weight_norm.std(ddof=0) / run.weight_norm.mean())
        mean, std = mean_std(ratios)
        cvs[label] = mean_std(cv)[0]
        m = one(rf"Under \*\*{re.escape(label)}\*\* the newest task's rows average \*\*([\d.]+)(?: ± ([\d.]+))? ×\*\* "
                r"the rows of the earlier tasks: (larger|smaller|neither clearly larger nor smaller)", texts)
        assert float(m.group(1)) == pytest.approx(mean, abs=0.0051), f"{label}: ratio {mean:.4f}, text {m.group(0)!r}"
        assert float(m.group(2)) == pytest.approx(std, abs=0.0051)
        word = "larger" if mean - std > 1 else "smaller" if mean + std < 1 else "neither clearly larger nor smaller"
        assert m.group(3) == word, f"{label}: ratio {mean:.3f} ± {std:.3f}, the text says {m.group(3)!r}"
    m = one(r"the most level rows: \*\*(.+?)\*\*", texts)
    assert cvs[m.group(1)] == pytest.approx(min(cvs.values()), abs=1e-12)
    verdict_texts = re.findall(r"Verdict on these runs: (reproduced|not reproduced|inconclusive)", "\n".join(texts))
    assert verdict_texts == [v.verdict for v in verdicts.weight_norm_verdicts(table)]


def test_findings_say_what_the_numbers_say():
    """The generators on made-up tables where the paper's claims fail: the text must say so."""
    from gradlab.plots import notebook

    rows = []
    forgetting = {"none": 0.30, "KD": 0.10, "feature": 0.20, "DAKD": 0.15}   # DAKD forgets more than KD
    for label, level in forgetting.items():
        for seed, noise in enumerate((-0.004, 0.0, 0.004)):
            for phase in (1, 2, 3, 4):
                rows.append({"label": label, "seed": seed, "phase": phase, "forgetting": level + noise,
                             "accuracy": 0.5, "average_incremental_accuracy": 0.6 - level + noise})
    finding = notebook.fig5_finding(pd.DataFrame(rows))
    text = finding.text
    assert "lowest forgetting: **KD**, 10.0 ± 0.4 %" in text
    assert "highest: **none**" in text
    assert "DAKD forgot 5.0 percentage points more than KD" in text and "less than KD" not in text
    assert "highest average incremental accuracy: **KD**" in text
    assert "Verdict on these runs: not reproduced" in text
    assert finding._repr_markdown_() == text

    rows = []
    for label, new_norm in (("CE", 0.89), ("DGR", 1.30)):   # CE's newest rows are smaller, DGR's larger
        for seed, noise in enumerate((-0.01, 0.0, 0.01)):
            for cls in range(10):
                task = cls // 2
                rows.append({"label": label, "seed": seed, "class": cls, "task": task, "train_count": 100 - 9 * cls,
                             "weight_norm": new_norm + noise if task == 4 else 1.0 + 0.001 * noise * cls,
                             "bias_abs": 0.0})
    text = notebook.weight_norm_finding(pd.DataFrame(rows)).text
    ce_line = next(line for line in text.splitlines() if line.startswith("- Under **CE**"))
    assert "rows average **0.89 ± 0.01 ×** the rows of the earlier tasks: smaller" in ce_line
    assert "larger" not in ce_line.split(";")[0]
    assert ("Under **DGR** the newest task's rows average **1.30 ± 0.01 ×** the rows of the earlier tasks: "
            "larger") in text
    assert "Verdict on these runs: not reproduced" in text

    single = pd.DataFrame([r for r in rows if r["seed"] == 0]).drop(columns="seed")
    text = notebook.weight_norm_finding(single).text
    assert "one seed" in text and "±" not in text.split("Verdict")[0]


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
    """Cosine (LUCIR) and LSC (PODNet, SIR) heads have no bias, and SIR classifies with NCA, not CE (PODNet with
    CE, as LT-CIL ran it): the explorer still draws all three panels, Figure 2 on the method's own classification
    loss."""
    from gradlab.plots import tables
    from gradlab.widgets import explorer

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
    from gradlab.widgets import explorer

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
    from gradlab.widgets import config_from_controls, explorer, run_name

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
    assert run_name(RunConfig.from_dict({"scenario": "digits", "seed": 7, "max_per_class": 30})).endswith("-n30-s7")
    # a dict works too (explorer(method_args={...})), and is shown in the field as text
    ex2 = explorer(scenario="digits", method="dgr", method_args={"eta": 0, "distillation": "kd"}, out_root=tmp_path)
    assert ex2.controls["method_args"].value == "eta=0, distillation=kd"
    assert ex2.config()["method_args"] == {"eta": 0, "distillation": "kd"}


def test_parse_method_args():
    from gradlab import ConfigError
    from gradlab.widgets import format_method_args, parse_method_args

    assert parse_method_args("") == parse_method_args("  ") == parse_method_args(None) == {}
    assert parse_method_args("a=1 b=true, c=[1, 2],d='x y'  e=kd") == \
        {"a": 1, "b": True, "c": [1, 2], "d": "x y", "e": "kd"}
    assert parse_method_args("lambda_b = 0.5") == {"lambda_b": 0.5}
    args = {"eta": 0, "distillation": "kd", "milestones": [1, 2], "name": "a b", "flag": False}
    assert parse_method_args(format_method_args(args)) == args
    for bad, words in (("eta", ["method_args", "'eta'"]), ("eta=", ["method_args", "'eta'", "no value"]),
                       ("eta=1 eta=2", ["method_args", "twice"]), ("=3", ["method_args"]),
                       ("eta=[1,", ["method_args", "'eta'", "YAML"])):
        with pytest.raises(ConfigError) as err:
            parse_method_args(bad)
        message = str(err.value)
        assert all(w in message for w in words), message
        assert "\n" not in message


@pytest.mark.parametrize("text, words", [
    ("eta", ["method_args", "key=value"]),
    ("bogus=1", ["method_args", "bogus"]),
    ("distillation=nonsense", ["distillation", "nonsense"]),
    ("eta=[1,", ["method_args", "YAML"]),
])
def test_explorer_bad_method_args_show_one_line_in_the_status(text, words, tmp_path):
    from gradlab.widgets import explorer

    ex = explorer(scenario="digits", method="dgr", tasks=2, epochs=1, method_args=text, out_root=tmp_path)
    assert ex.run() is None
    assert ex.error.startswith("ConfigError: ") and all(w in ex.error for w in words), ex.error
    assert "\n" not in ex.error and "Traceback" not in ex.status.value and "<br" not in ex.status.value
    assert "error" in ex.status.value and ex.progress.bar_style == "danger" and not ex.run_button.disabled
    assert not any(tmp_path.iterdir()), "a bad setting must leave nothing behind"


def test_explorer_bad_seed_or_cap_name_the_field(tmp_path):
    from gradlab import ConfigError
    from gradlab.widgets import config_from_controls, explorer

    ex = explorer(scenario="digits", out_root=tmp_path)
    with pytest.raises(ConfigError, match="seed"):
        config_from_controls({**ex.values(), "seed": -1}, out_root=tmp_path)
    with pytest.raises(ConfigError, match="max_per_class"):
        config_from_controls({**ex.values(), "max_per_class": -5}, out_root=tmp_path)
    ex.controls["max_per_class"].value = 5000          # more than digits has: the status line says so
    assert ex.run() is None and "max_per_class" in ex.error and "\n" not in ex.error


def test_explorer_run_uses_seed_cap_and_args_and_draws_static_copies(tmp_path):
    from gradlab.widgets import explorer

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
