"""gradlab.plots: tables equal independent computations from real runs; figures show those tables."""
import shutil

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from matplotlib.figure import Figure

import gradlab
from gradlab.analysis import tables
from gradlab.analysis.seeds import mean_std
from gradlab.plots import curves as figures
from gradlab.plots import interactive, palette, paper
from gradlab.plots.static import to_matplotlib

METHODS = ("ce", "dgr")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real 3-task runs on long-tailed digits (plain CE + memory, DGR + DAKD), all probes on."""
    root = tmp_path_factory.mktemp("plots")
    return {m: gradlab.run(scenario="digits", tasks=3, imbalance=10, epochs=2, batch_size=32, memory=5,
                           progress=False, checkpoints=False, method=m, out=str(root / m)) for m in METHODS}


def _probe_mean(record, term, phase, cls):
    """Hand-computed Figure 2 value: mean of the epoch rows of one term for one class in one phase."""
    p = record.probes
    values = [v for ph, ep, st, c, t, v in zip(p.phase, p.epoch, p.step, p["class"], p.term.astype(str), p.value)
              if ph == phase and ep >= 0 and st == -1 and c == cls and t == term]
    assert values, (term, phase, cls)
    return float(np.mean(values))


def _assert_png_pdf(paths):
    png, pdf = paths
    assert png.suffix == ".png" and pdf.suffix == ".pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 1000


# ---------------------------------------------------------------------- tables
@pytest.mark.parametrize("method,term", [("ce", "grad_ce"), ("dgr", "grad_ce"), ("dgr", "grad_kd")])
def test_gradient_magnitudes_equal_hand_means_groups_and_ranks(runs, method, term):
    record = runs[method]
    table = tables.gradient_magnitudes(record, term=term)
    assert list(table.columns) == ["phase", "class", "task", "train_count", "group", "rank", "value"]
    classes = record.classes.set_index("class")
    for row in table.itertuples(index=False):
        assert row.value == pytest.approx(_probe_mean(record, term, row.phase, row[1]), rel=1e-12)
        assert row.task == classes.loc[row[1], "task"] and row.train_count == classes.loc[row[1], "train_count"]
        assert row.task <= row.phase
        assert row.group == ("old" if row.task < row.phase else "new")
    for phase, frame in table.groupby("phase"):
        # every class seen in that phase is there, once
        assert sorted(frame["class"]) == sorted(classes.index[classes.task <= phase])
        for _, part in frame.groupby("task"):
            assert list(part["rank"]) == list(range(len(part)))              # sorted by rank
            counts, ids = part["train_count"].to_numpy(), part["class"].to_numpy()
            assert all(counts[i] > counts[i + 1] or (counts[i] == counts[i + 1] and ids[i] < ids[i + 1])
                       for i in range(len(part) - 1))                        # head -> tail, ties by id
    assert list(table.sort_values(["phase", "task", "rank"]).index) == list(table.index)
    if term == "grad_ce":
        assert set(table.phase) == {0, 1, 2} and set(table.group) == {"old", "new"}
        assert len(table) == 4 + 7 + 10


def test_gradient_magnitudes_missing_term_names_it(runs, tmp_path):
    with pytest.raises(ValueError, match=r"'grad_kd'.*grad_ce"):
        tables.gradient_magnitudes(runs["ce"], term="grad_kd")          # plain CE has no KD term
    no_probes = tmp_path / "no_probes"
    shutil.copytree(runs["ce"].path, no_probes)
    (no_probes / "probes.parquet").unlink()
    record = gradlab.load_run(no_probes)
    with pytest.raises(ValueError, match=r"'grad_ce'.*probes were off"):
        tables.gradient_magnitudes(record)
    with pytest.raises(ValueError, match="weight_norm"):
        tables.weight_norms({"x": record})


def test_forgetting_curves_are_facil_average_forgetting(runs):
    table = tables.forgetting_curves(runs)
    assert list(table.columns) == ["label", "phase", "forgetting", "accuracy", "average_incremental_accuracy"]
    assert list(table.label.unique()) == list(METHODS)
    for label, record in runs.items():
        frame = table[table.label == label]
        assert list(frame.phase) == [1, 2]
        acc = record.accuracy_matrix()                                   # independent FACIL forgetting
        for t, f in zip(frame.phase, frame.forgetting):
            expected = np.mean([np.nanmax(acc[:t, u]) - acc[t, u] for u in range(t)])
            assert f == pytest.approx(expected, abs=1e-12)
        assert np.allclose(frame.accuracy, record.accuracy_curve(weighted=True)[1:])
        assert (frame.average_incremental_accuracy == record.summary["average_incremental_accuracy"]).all()
        assert frame.forgetting.iloc[-1] == pytest.approx(record.summary["average_forgetting"])


def test_weight_norms_phase_end_rows(runs):
    table = tables.weight_norms(runs)
    assert list(table.columns) == ["label", "class", "task", "train_count", "weight_norm", "bias_abs"]
    for label, record in runs.items():
        frame = table[table.label == label].set_index("class")
        p = record.probes
        end = p[(p.epoch == -1) & (p.phase == 2)]
        for term in ("weight_norm", "bias_abs"):
            rows = end[end.term.astype(str) == term].set_index("class").value.sort_index()
            assert list(rows.index) == list(range(10)) and np.allclose(frame.loc[rows.index, term], rows)
        assert (frame.train_count == record.classes.set_index("class").train_count).all()
    first = tables.weight_norms({"ce": runs["ce"]}, phase=0)
    assert sorted(first["class"]) == [0, 1, 2, 3] and (first.task == 0).all()
    assert not np.allclose(first.weight_norm, table[(table.label == "ce") & (table["class"] < 4)].weight_norm)


def test_accuracy_curves_both_variants(runs):
    table = tables.accuracy_curves(runs)
    for label, record in runs.items():
        frame = table[table.label == label].sort_values("phase")
        assert list(frame.phase) == [0, 1, 2]
        assert np.allclose(frame.acc_all_seen, record.summary["accuracy_per_phase"])
        assert np.allclose(frame.acc_task_mean, np.nanmean(record.accuracy_matrix(), axis=1))


def test_class_forgetting_and_phase_task_matrix(runs):
    record = runs["ce"]
    table = tables.class_forgetting(record)
    acc = record.class_accuracy_matrix()
    old = record.classes[record.classes.task < 2]
    assert list(table["class"]) == list(old["class"]) and list(table.shot_group) == list(old.shot_group)
    for row in table.itertuples(index=False):
        assert row.forgetting == pytest.approx(np.nanmax(acc[:2, row[0]]) - acc[2, row[0]], abs=1e-12)
    for kind, matrix in (("accuracy", record.accuracy_matrix()), ("forgetting", record.forgetting_matrix())):
        frame = tables.phase_task_matrix(record, kind)
        assert frame.index.name == "phase" and frame.columns.name == "task" and frame.shape == (3, 3)
        np.testing.assert_array_equal(frame.to_numpy(), matrix)
    with pytest.raises(ValueError, match="kind"):
        tables.phase_task_matrix(record, "bwt")


# ---------------------------------------------------------------------- static figures
def test_fig2_bars_per_class_old_hatched_and_files(runs, tmp_path):
    table = tables.gradient_magnitudes(runs["ce"])
    fig = figures.fig2(table)
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3 + 1                                    # a panel per phase + the count scatter
    for ax, (phase, frame) in zip(axes, table.groupby("phase")):
        bars = ax.patches
        assert len(bars) == len(frame)
        assert np.allclose([b.get_height() for b in bars], frame.value)
        assert [t.get_text() for t in ax.get_xticklabels()] == [str(c) for c in frame["class"]]
        assert [b.get_hatch() == "//" for b in bars] == list(frame.group == "old")
    new = table[table.group == "new"]
    scatter = axes[-1]
    assert scatter.get_xscale() == "log"
    assert sorted(map(tuple, scatter.collections[-1].get_offsets())) == \
        sorted(zip(new.train_count.astype(float), new.value))
    paths = figures.save(fig, tmp_path / "sub" / "fig2")
    assert paths == [tmp_path / "sub" / "fig2.png", tmp_path / "sub" / "fig2.pdf"]
    _assert_png_pdf(paths)


def test_multi_seed_figures_show_means_and_spreads(runs, tmp_path):
    """Two 'seeds' (the two runs' tables, relabelled): bars / lines are the means, error bars the stds."""
    gm = tables.per_seed(tables.gradient_magnitudes, {0: runs["ce"], 1: runs["dgr"]})
    assert set(gm.seed) == {0, 1} and len(gm) == 2 * len(tables.gradient_magnitudes(runs["ce"]))
    agg = mean_std(gm, ["phase", "class"], ["value"])
    fig = figures.fig2(gm)
    ax = fig.axes[2]                                              # phase 2: every class
    expected = agg[agg.phase == 2].set_index("class").value_mean
    heights = [b.get_height() for b in ax.patches]
    labels = [int(t.get_text()) for t in ax.get_xticklabels()]
    assert np.allclose(heights, expected.loc[labels].to_numpy())
    assert "mean ± std over 2 seeds" in fig._suptitle.get_text()
    fc = tables.per_seed(tables.forgetting_curves, {0: runs, 1: runs})
    ax = figures.fig5(fc).axes[0]
    assert len(ax.get_lines()) == 2 and len(ax.collections) == 2         # a band per label
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    aia = 100 * runs["dgr"].summary["average_incremental_accuracy"]
    assert f"dgr (ACC {aia:.1f} ± 0.0%)" in legend
    wn = tables.per_seed(tables.weight_norms, {0: runs, 1: runs})
    rel = paper.relative_norms(wn)
    assert np.allclose(rel.groupby(["label", "seed"]).relative_norm.mean(), 1.0)
    _assert_png_pdf(figures.save(figures.weight_norms(wn), tmp_path / "wn"))


def test_fig4_panel_per_setting_line_per_method(runs, tmp_path):
    records = {(label, factor, setting, seed): record for label, record in (("CE", runs["ce"]), ("DGR", runs["dgr"]))
               for factor, setting in (("memory", 5), ("memory", 10), ("imbalance", 10)) for seed in (0, 1)}
    table = tables.accuracy_by_setting(records)
    assert list(table.columns) == tables.FIG4_COLUMNS and len(table) == 2 * 3 * 2 * 3
    fig = figures.fig4(table)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["memory 5 / class", "memory 10 / class", "ρ = 10"]
    for ax in visible:
        ce, dgr = ax.get_lines()
        assert np.allclose(ce.get_ydata(), 100 * tables.accuracy_curves({"x": runs["ce"]}).acc_all_seen)
        assert dgr.get_color() != ce.get_color() and dgr.get_marker() != ce.get_marker()
    _assert_png_pdf(figures.save(fig, tmp_path / "fig4"))


def test_thin_ticks_never_crowd():
    fig = Figure()
    ax = fig.subplots()
    paper.thin_ticks(ax, list(range(100)), [str(i) for i in range(100)], max_ticks=24)
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert len(labels) <= 24 and labels[:2] == ["0", "5"]


def test_fig5_one_line_per_label_with_acc_legend(runs, tmp_path):
    table = tables.forgetting_curves(runs)
    fig = figures.fig5(table)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == len(runs)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    for label, record in runs.items():
        aia = 100 * record.summary["average_incremental_accuracy"]
        assert f"{label} (ACC {aia:.1f}%)" in texts
    for line, label in zip(ax.get_lines(), runs):
        assert np.allclose(line.get_ydata(), 100 * table[table.label == label].forgetting)
    _assert_png_pdf(figures.save(fig, tmp_path / "fig5"))
    assert len(figures.fig5(runs).axes[0].get_lines()) == 2        # a records mapping works too


def test_weight_norms_accuracy_heatmap_scatter_figures(runs, tmp_path):
    wn = tables.weight_norms(runs)
    fig = figures.weight_norms(wn)
    per_task, per_class = fig.axes[:2]
    rel = paper.relative_norms(wn)
    task_lines = [line for line in per_task.get_lines() if len(line.get_xdata()) == 3]
    assert len(task_lines) == len(METHODS)
    for line, label in zip(task_lines, METHODS):
        expected = rel[rel.label == label].groupby("task").relative_norm.mean()
        assert np.allclose(line.get_ydata(), expected.to_numpy())
    assert per_class.get_xscale() == "log"
    legend = [t.get_text() for t in per_class.get_legend().get_texts()]
    assert all(any(text.startswith(f"{label} (ρ_s = ") for text in legend) for label in METHODS)
    _assert_png_pdf(figures.save(fig, tmp_path / "weight_norms"))

    fig = figures.accuracy_curves(tables.accuracy_curves(runs))
    assert len(fig.axes) == 2 and all(len(ax.get_lines()) == len(runs) for ax in fig.axes)
    many = pd.concat([tables.accuracy_curves(runs).assign(label=f"m{i}-" + tables.accuracy_curves(runs).label)
                      for i in range(4)])                                   # > 6 lines: legend moves outside
    fig = figures.accuracy_curves(many)
    legend = fig.axes[-1].get_legend()
    assert len(legend.get_texts()) == 4 * len(runs) > 6 and fig.axes[0].get_legend() is None
    styles = {(line.get_color(), line.get_linestyle(), line.get_marker()) for line in fig.axes[0].get_lines()}
    assert len(styles) == 4 * len(runs)                                       # every line tells itself apart

    matrix = tables.phase_task_matrix(runs["dgr"])
    fig = figures.heatmap(matrix, "accuracy")
    annotations = [t.get_text() for t in fig.axes[0].texts]
    assert len(annotations) == 6 and f"{100 * matrix.iloc[2, 1]:.1f}" in annotations  # lower triangle only
    _assert_png_pdf(figures.save(fig, tmp_path / "heatmap"))

    cf = tables.class_forgetting(runs["ce"])
    fig = figures.forgetting_vs_count(cf)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    assert len(offsets) == len(cf)
    assert sorted(map(tuple, offsets)) == sorted(zip(cf.train_count.astype(float), cf.forgetting))
    assert {t.get_text() for t in ax.get_legend().get_texts()} == set(cf.shot_group)


def test_figures_reject_bad_tables(runs):
    with pytest.raises(ValueError, match="value"):
        figures.fig2(tables.gradient_magnitudes(runs["ce"]).drop(columns="value"))
    with pytest.raises(ValueError, match="empty"):
        figures.fig5(tables.forgetting_curves(runs).iloc[:0])


# ---------------------------------------------------------------------- interactive
def test_interactive_figures_one_trace_per_label(runs):
    labels = list(METHODS)
    fc = tables.forgetting_curves(runs)
    fig = interactive.forgetting_curves(fc)
    assert isinstance(fig, go.Figure) and len(fig.data) == len(labels)
    for trace, label in zip(fig.data, labels):
        assert trace.name.startswith(f"{label} (ACC ")
        assert np.allclose(trace.y, 100 * fc[fc.label == label].forgetting)

    table = tables.accuracy_curves(runs)
    fig = interactive.accuracy_curves(table)
    assert [t.name for t in fig.data] == labels
    for trace, label in zip(fig.data, labels):
        assert np.allclose(trace.y, 100 * table[table.label == label].acc_all_seen)
    fig = interactive.accuracy_curves(tables.accuracy_curves(runs), metric="acc_task_mean")
    assert np.allclose(fig.data[1].y, 100 * np.nanmean(runs["dgr"].accuracy_matrix(), axis=1))
    fig = interactive.accuracy_curves(table, metric="both")             # two panels, one legend entry per run
    assert len(fig.data) == 4 and [t.name for t in fig.data if t.showlegend] == labels

    # weight norms: the view `gradlab figures` draws (relative to the run's mean row): per task, then per class
    wn = tables.weight_norms(runs)
    rel = paper.relative_norms(wn)
    fig = interactive.weight_norms(wn)
    per_task = [t for t in fig.data if t.showlegend is not False]
    per_class = [t for t in fig.data if t.showlegend is False]
    assert [t.name for t in per_task] == labels and [t.name for t in per_class] == labels
    for left, right, label in zip(per_task, per_class, labels):
        assert np.allclose(left.y, rel[rel.label == label].groupby("task").relative_norm.mean())
        assert np.allclose(right.y, rel[rel.label == label].sort_values("class").relative_norm)
    assert fig.layout.xaxis2.type == "log"

    gm = tables.gradient_magnitudes(runs["dgr"])
    fig = interactive.gradient_magnitudes(gm)
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 1 + 2 + 3                                        # one bar trace per (phase, task)
    assert sum(len(t.y) for t in bars) == len(gm)
    assert sorted(t.name for t in fig.data if t.showlegend) == ["task 0", "task 1", "task 2"]
    new = gm[gm.group == "new"]                                          # + the count panel: new classes
    assert sorted(x for t in fig.data if t.type == "scatter" for x in t.x) == sorted(new.train_count)

    matrix = tables.phase_task_matrix(runs["ce"], "forgetting")
    fig = interactive.heatmap(matrix, "forgetting")
    assert len(fig.data) == 1 and fig.layout.title.text == "forgetting"
    np.testing.assert_allclose(np.asarray(fig.data[0].z, dtype=float), 100 * matrix.to_numpy())
    with pytest.raises(ValueError, match="lacks columns"):
        interactive.forgetting_curves(fc.drop(columns="forgetting"))


# ---------------------------------------------------------------------- one palette, readable labels
def _line_colours(ax) -> set:
    from matplotlib.colors import to_hex

    return {to_hex(line.get_color()) for line in ax.get_lines() if len(line.get_xdata()) > 1}


def test_one_colour_per_run_in_plotly_and_matplotlib(runs):
    """A run's colour comes from gradlab.plots.palette: the same in every plotly figure, in the PNG drawn from
    it, and in the matplotlib figures of `gradlab figures`."""
    from matplotlib.colors import to_hex

    named = {"CE": runs["ce"], "DGR + DAKD": runs["dgr"]}
    want = {"CE": palette.color("CE"), "DGR + DAKD": palette.color("DGR + DAKD")}
    assert want["CE"] != want["DGR + DAKD"]
    accuracy, forgetting = tables.accuracy_curves(named), tables.forgetting_curves(named)
    for fig in (interactive.accuracy_curves(accuracy), interactive.forgetting_curves(forgetting),
                interactive.weight_norms(tables.weight_norms(named))):
        for trace in fig.data:
            label = trace.legendgroup or trace.name
            label = next(k for k in want if label == k or label.startswith(k + " (ACC"))
            colour = trace.line.color if trace.mode and "lines" in trace.mode else trace.marker.color
            assert colour == want[label], (fig.layout.title.text, trace.name, colour)
        static = to_matplotlib(fig)                                        # the PNG of the same figure
        assert _line_colours(static.axes[0]) == set(want.values())
    assert _line_colours(figures.fig5(forgetting).axes[0]) == set(want.values())
    assert _line_colours(figures.accuracy_curves(accuracy).axes[0]) == set(want.values())
    # bars by task: the same task colour in plotly, in its PNG and in the paper's Figure 2
    gm = tables.gradient_magnitudes(runs["ce"])
    fig = interactive.gradient_magnitudes(gm)
    plotly_colours = {t.marker.color for t in fig.data if t.type == "bar"}
    assert plotly_colours == {palette.task_color(t) for t in range(3)}
    static_colours = {to_hex(p.get_facecolor()[:3]) for ax in to_matplotlib(fig).axes for p in ax.patches}
    paper_colours = {to_hex(p.get_facecolor()[:3]) for ax in figures.fig2(gm).axes for p in ax.patches}
    assert static_colours == plotly_colours == paper_colours
    # the explorer's run labels take their method's colour (DGR + KD for dgr with distillation=kd)
    assert palette.color("dgr (distillation=kd) · digits lt ρ=10 · m=5 e=1 seed 0") == palette.color("DGR + KD")
    assert palette.color("ce · digits lt ρ=10 · m=5 e=1 seed 0") == palette.color("CE")
    assert palette.color("some other run") == palette.color("some other run")       # stable, not by position
    two = palette.styles(["ce · seed 0", "ce · seed 1"])                 # one method twice: dashes tell them apart
    assert two["ce · seed 0"][0] == two["ce · seed 1"][0] and two["ce · seed 0"][1] != two["ce · seed 1"][1]


def test_axis_and_facet_titles_are_readable(runs):
    """No raw ‖W_j‖₂ or W_j in an axis title; facets share one x title instead of one each."""
    fig = interactive.weight_norms(tables.weight_norms(runs))
    assert "<sub>j</sub>" in fig.layout.yaxis.title.text and "W_j" not in fig.layout.yaxis.title.text
    static = to_matplotlib(fig)
    assert any("$_{j}$" in ax.get_ylabel() for ax in static.axes)              # mathtext in the PNG
    fig = interactive.gradient_magnitudes(tables.gradient_magnitudes(runs["ce"]))
    for text in (fig.layout.yaxis.title.text, *(a.text for a in fig.layout.annotations)):
        assert "W_j" not in text
    bar_axes = {t.xaxis for t in fig.data if t.type == "bar"}
    assert all(not fig.layout[f"xaxis{name[1:]}"].title.text for name in bar_axes)
    shared = [a for a in fig.layout.annotations if a.name == "xtitle"]
    assert len(shared) == 1 and shared[0].text.startswith("class")
    assert [t.get_text() for t in to_matplotlib(fig).texts if t.get_text().startswith("class")] == [shared[0].text]
