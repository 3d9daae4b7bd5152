"""Live view: ``gradlab.run(live=True)`` and the explorer redraw the accuracy and per-class gradient panels
after every phase while the run trains, from the same logger signals as TensorBoard / W&B / CSV."""
from __future__ import annotations

import base64

import nbformat
import numpy as np
import pytest
from test_notebooks import PLOTLY, PNG, is_png, notebook_client

import gradlab
from gradlab.errors import ConfigError
from gradlab.notebook import live as L

TINY = dict(scenario="digits", method="dgr", tasks=3, epochs=1, progress=False, checkpoints=False)


def test_live_view_draws_after_every_phase_while_the_run_trains(tmp_path):
    seen = []

    def follow(snapshot):
        seen.append((int(snapshot.metrics.phase.max()), sorted(snapshot.probes.phase.unique().tolist()),
                     (tmp_path / "run" / "summary.json").exists()))

    view = L.LiveView(on_phase=follow)
    record = gradlab.run(**TINY, out=str(tmp_path / "run"), callbacks=[view])
    assert [s[0] for s in seen] == [0, 1, 2] and view.phases == [0, 1, 2]
    assert [s[1] for s in seen] == [[0], [0, 1], [0, 1, 2]]          # that phase's probe rows are there too
    assert not any(s[2] for s in seen), "each panel update happens while the run is still training"
    assert set(view.figures) == {"accuracy", "gradients"}
    points = view.figures["accuracy"].data[0].y
    assert list(points) == pytest.approx((100 * record.accuracy_curve()).tolist())   # percent, as the record says


def test_run_live_outside_a_notebook_prints_a_line_per_phase(tmp_path, capsys):
    gradlab.run(**TINY, out=str(tmp_path / "run"), live=True)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("phase ")]
    assert [line.split(":")[0] for line in lines] == ["phase 1/3", "phase 2/3", "phase 3/3"]
    with pytest.raises(ConfigError, match="live must be true or false"):
        gradlab.run(**TINY, out=str(tmp_path / "other"), live="yes")


def test_live_view_updates_its_outputs_in_place_in_a_kernel(tmp_path, monkeypatch):
    updates = []

    class Handle:
        def __init__(self, name):
            self.name = name

        def update(self, bundle, raw=False):
            if PLOTLY in bundle:
                updates.append((self.name, bundle[PLOTLY]["layout"]["title"]["text"], is_png(bundle[PNG])))

    import IPython.display

    shown = []
    monkeypatch.setattr(L, "in_kernel", lambda: True)
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: shown.append(Handle(len(shown))) or shown[-1])
    gradlab.run(**TINY, out=str(tmp_path / "run"), live=True)
    assert len(shown) == 2                                              # two outputs, made once
    assert [u[0] for u in updates] == [0, 1] * 3 and all(u[2] for u in updates)   # both redrawn every phase
    assert "accuracy after every phase so far" in updates[0][1] and "CE gradient" in updates[1][1]


def test_explorer_panels_follow_the_run_phase_by_phase(tmp_path):
    from gradlab.notebook.explorer import explorer

    ex = explorer(scenario="digits", method="dgr", tasks=3, epochs=1, memory=5, device="cpu", out_root=tmp_path)
    drawn = []
    redraw = ex.update_panels

    def spy():
        redraw()
        drawn.append((len(ex.figures["accuracy"].data[0].x), ex.summary().split(":**")[0]))

    ex.update_panels = spy
    assert ex.run() is not None, ex.error
    assert drawn == [(1, "**Running"), (2, "**Running"), (3, "**Running"), (3, "**Last run")]


def test_run_live_in_a_real_notebook_kernel(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "import gradlab\nr = gradlab.run(scenario='digits', method='dgr', tasks=3, epochs=1, progress=False, "
        "checkpoints=False, out='runs/live', live=True)")]
    notebook_client(nb, tmp_path).execute()
    figures = [o for o in nb.cells[0].outputs if PLOTLY in o.get("data", {})]
    assert len(figures) == 2 and all(is_png(o["data"][PNG]) for o in figures)
    x = figures[0]["data"][PLOTLY]["data"][0]["x"]           # plotly's JSON packs arrays as base64 (bdata)
    phases = np.frombuffer(base64.b64decode(x["bdata"]), x["dtype"]) if isinstance(x, dict) else np.asarray(x)
    assert len(phases) == 3, "the last redraw shows all three phases"
