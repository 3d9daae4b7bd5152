"""The notebooks run top to bottom, show something at once and tell the truth.

Each notebook is executed once (a module fixture) with nbclient in a fresh ``python3`` kernel whose working
folder is a temp folder (runs and caches land there); its ``parameters`` cell keeps its knobs and gets tiny
settings appended (digits, 1 epoch, one or two seeds, one worker). The tests then check the executed
notebook: no errors, the expected outputs, every figure ONE output holding the plotly figure and its PNG (what
viewers without JavaScript show; also through ``nbconvert --to html``), the tour's first picture before any
training, and that the statements notebooks 02 and 03 generate about their runs match those runs' numbers,
recomputed here from the runs the notebook cached. The committed notebooks must carry no outputs. The
explorer's own tests are in ``test_explorer.py``.
"""
from __future__ import annotations

import base64
import copy
import io
import json
import re
import time
from pathlib import Path

import nbformat
import numpy as np
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
TABLES_DIR = str(ROOT / "figures" / "tables")      # the committed results tables (notebooks 00 and 02 read them)
TINY = {
    "00_tour.ipynb": {"scenario": "digits", "overrides": {"epochs": 1}, "device": "cpu", "cache_dir": "runs/cache",
                      "workers": 1, "tables_dir": TABLES_DIR},
    "01_gradient_magnitudes.ipynb": {**FIGURE_TINY, "seeds": [0]},
    "02_imbalanced_forgetting.ipynb": {**FIGURE_TINY, "tables_dir": TABLES_DIR},
    "03_classifier_bias.ipynb": FIGURE_TINY,
    "04_explorer.ipynb": {"scenario": "digits", "epochs": 1, "tasks": 3, "memory": 5, "seed": 1,
                          "method_args": "distillation=kd", "run_now": True, "runs_dir": "runs"},
    "05_your_own_method.ipynb": {"scenario": "digits", "seeds": [0, 1], "overrides": {"epochs": 1}, "device": "cpu",
                                 "cache_dir": "runs/cache", "workers": 1},
}
# mime types a notebook's executed outputs must contain (in cells or in the explorer's Output widgets)
EXPECTED = {
    "00_tour.ipynb": {PLOTLY, PNG, MARKDOWN},
    "01_gradient_magnitudes.ipynb": {PLOTLY, PNG, MARKDOWN},
    "02_imbalanced_forgetting.ipynb": {PLOTLY, PNG, MARKDOWN},
    "03_classifier_bias.ipynb": {PLOTLY, PNG, MARKDOWN},
    "04_explorer.ipynb": {PLOTLY, WIDGET, PNG},
    "05_your_own_method.ipynb": {PLOTLY, PNG, MARKDOWN},
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
    if path.name.startswith(("00", "01", "02", "03", "05")):
        assert params["quick"] is True and params["cache_dir"] == "../runs/cache" and params["device"] == "auto"
        assert params["overrides"] == {} and params.get("workers", None) is None
    if path.name.startswith(("01", "02", "03", "05")):
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


def figure_outputs(nb) -> list[tuple[int, dict]]:
    """(cell index, data) of every cell output that shows a figure (plotly or an image)."""
    return [(i, out["data"]) for i, outs in cell_outputs(nb) for out in outs
            if any(m in out.get("data", {}) for m in (PLOTLY, PNG, "image/jpeg", "image/svg+xml"))]


def plotly_title(data: dict) -> str:
    return (data[PLOTLY].get("layout", {}).get("title") or {}).get("text") or ""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_figure_is_one_output_in_both_forms(path, executed):
    """Every figure is ONE cell output holding the plotly figure (JupyterLab draws it) and a PNG of that same
    figure (what nbconvert --to html and GitHub show), never two twins; no figure lives in widget state (gone
    after a reload); the PNG is the plotly figure drawn by to_matplotlib (same view, same colours)."""
    import matplotlib.image as mpimg
    import plotly.graph_objects as go

    from gradlab.plots.static import png_bytes, to_matplotlib

    nb, _ = executed(path.name)
    figures = figure_outputs(nb)
    assert figures, f"{path.name} shows no figure"
    titles = []
    for index, data in figures:
        assert PLOTLY in data and PNG in data, f"{path.name} cell {index}: a figure output with only {sorted(data)}"
        assert is_png(data[PNG])
        assert "text/html" not in data, f"cell {index}: a plotly output with text/html needs JavaScript"
        assert len(data.get("text/plain", "")) < 300, f"cell {index}: the figure's text is a dump"
        titles.append(plotly_title(data))
        assert titles[-1], f"{path.name} cell {index}: a figure without a title"
        fig = go.Figure({key: data[PLOTLY][key] for key in ("data", "layout")})
        shown = mpimg.imread(io.BytesIO(base64.b64decode(data[PNG])), format="png")
        redrawn = mpimg.imread(io.BytesIO(png_bytes(to_matplotlib(fig))), format="png")
        assert shown.shape == redrawn.shape and np.abs(shown - redrawn).mean() < 0.01, \
            f"{path.name} cell {index}: the PNG is not the plotly figure {titles[-1]!r}"
    assert len(titles) == len(set(titles)), f"{path.name} shows a figure twice: {titles}"
    assert not any(m in out.get("data", {}) for out in widget_outputs(nb) for m in (PLOTLY, PNG)), \
        f"{path.name} keeps a figure in widget state"


def test_static_html_export_shows_every_figure(executed):
    """``jupyter nbconvert --to html`` of an executed notebook: one <img> PNG per figure, no plotly JSON needed."""
    from nbconvert import HTMLExporter

    nb, _ = executed("02_imbalanced_forgetting.ipynb")
    html, _ = HTMLExporter().from_notebook_node(nb)
    figures = figure_outputs(nb)
    assert len(figures) >= 4
    for index, data in figures:
        assert "data:image/png;base64," + data[PNG].strip()[:200] in html, f"cell {index}: its PNG is not in the HTML"


# ---------------------------------------------------------------------- the tour draws before it trains
TRAINING = re.compile(r"\b(run_cached|run_many|cached_run|figure_runs|run_plans|explorer)\s*\(|gradlab\.run\s*\(")


def test_tour_draws_before_it_trains(executed, tmp_path):
    """The tour's first picture needs no run: it is in the first code cell after the parameters, no cell up
    to it calls a training function, and executed alone (fresh kernel and folder) those cells draw it and
    leave no run behind. The runs train later, in one cell, under a progress bar that reaches its end."""
    nb, _ = executed("00_tour.ipynb")
    first = figure_outputs(nb)[0][0]
    code = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    assert first == code[1], "the first figure should come right after the parameters cell"
    training = [i for i in code if TRAINING.search(nb.cells[i].source)]
    assert len(training) == 1 and first < training[0], f"training cells {training}, first figure in cell {first}"
    progress = "\n".join(o.get("data", {}).get("text/plain", "") for o in nb.cells[training[0]].outputs)
    bar = re.search(r"training (\d+) run\(s\) \|[█·]+\| (\d+)/(\d+) phases", progress)
    assert bar and bar.group(2) == bar.group(3), f"no finished progress bar in the training cell:\n{progress}"

    prefix = with_parameters(nbformat.read(NOTEBOOK_DIR / "00_tour.ipynb", as_version=4), TINY["00_tour.ipynb"])
    prefix.cells = prefix.cells[:first + 1]
    notebook_client(prefix, tmp_path).execute()
    assert figure_outputs(prefix) and figure_outputs(prefix)[0][0] == first
    assert not (tmp_path / "runs").exists(), "the cells before the first figure trained (or cached) a run"


def test_explorer_notebook_keeps_its_figures_as_cell_outputs(executed):
    """04: the explorer's figures are regular outputs of the explorer's cell (saved with the notebook, there
    after a reload), titled with the run's method, not contents of Output widgets."""
    nb, _ = executed("04_explorer.ipynb")
    cell = next(c for c in nb.cells if c.cell_type == "code" and any(WIDGET in o.get("data", {}) for o in c.outputs))
    titles = [plotly_title(o["data"]) for o in cell.outputs if PLOTLY in o.get("data", {})]
    assert len(titles) == 3, titles
    method = TINY["04_explorer.ipynb"]["method_args"]
    assert sum(t.startswith(f"dgr ({method}): ") for t in titles) == 2, titles
    assert any("Last run:** dgr" in o.get("data", {}).get(MARKDOWN, "") for o in cell.outputs)


# ---------------------------------------------------------------------- the generated statements
def fig_records(name: str, folder: Path, seeds) -> dict:
    """{seed: {label: RunRecord}} of figure ``name`` with the TINY settings, from the notebook's cache
    (every run must be there: the notebook made it)."""
    from gradlab.experiments.paper_figures import figure_plan
    from gradlab.runs.executor import cached_record

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
    from gradlab.analysis import tables, verdicts

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
    from gradlab.analysis import tables, verdicts

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


def test_05_trains_the_plugin_method_in_workers_and_reports_its_numbers(executed):
    """Notebook 05 writes its method to a plugin file, trains it in worker processes over the seeds next to CE
    and DGR, and its generated comparison states the means the cached runs hold."""
    from gradlab.runs.records import RunRecord

    nb, folder = executed("05_your_own_method.ipynb")
    assert "class LogitAdjusted(gradlab.Method)" in (folder / "my_logit_adjustment.py").read_text()
    records = [RunRecord(p.parent) for p in (folder / "runs" / "cache").glob("*/summary.json")]
    by_method: dict = {}
    for record in records:
        by_method.setdefault(record.config.method, {})[record.config.seed] = record
    assert set(by_method) == {"ce", "logit-adjusted", "dgr"}
    assert all(sorted(runs) == TINY["05_your_own_method.ipynb"]["seeds"] for runs in by_method.values())
    ours = by_method["logit-adjusted"]
    plugin = str((folder / "my_logit_adjustment.py").resolve())
    assert all(r.config.plugins == [plugin] and r.config.scenario == "digits" for r in ours.values())
    assert not any(r.config.plugins for m in ("ce", "dgr") for r in by_method[m].values())
    assert {len(r.probes[r.probes["term"] == "grad_ce"]) > 0 for r in ours.values()} == {True}
    texts = markdown_outputs(nb)
    mean = np.mean([r.summary["average_incremental_accuracy"] for r in ours.values()])
    m = one(r"average incremental accuracy: logit-adjusted \*\*([\d.]+) ± [\d.]+ %\*\*", texts)
    assert float(m.group(1)) == pytest.approx(100 * mean, abs=0.051)
    assert one(r"What the probes show", texts) and "**logit-adjusted**" in "\n".join(texts)


def test_00_and_02_read_the_committed_forgetting_table(executed):
    """Where the tour and notebook 02 talk about imbalanced forgetting they show the results tables' numbers and
    verdicts, recomputed here from the committed CSV."""
    import pandas as pd

    from gradlab.analysis import claims

    table = pd.read_csv(Path(TABLES_DIR) / "imbalanced_forgetting.csv")
    rows = claims.forgetting_verdicts(table)
    assert rows
    for name in ("00_tour.ipynb", "02_imbalanced_forgetting.ipynb"):
        text = "\n".join(markdown_outputs(executed(name)[0]))
        assert "**The results tables** (`imbalanced_forgetting.csv`, mean ± std over 3 seeds)" in text
        for row in rows:
            assert f"| {row.figure} | {row.claim} | {row.ours} | **{row.verdict}** |" in text
