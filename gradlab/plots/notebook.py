"""Helpers that keep the notebooks thin and honest.

- :func:`figure_runs` - the runs behind one of the paper's figures, exactly as ``gradlab figures``
  (``make figures``) plans them, loaded from its cache or trained there, with the per-seed table;
- :func:`show` - a plotly figure *and* a static PNG of the same data, so that the notebook still shows
  the plot where no JavaScript runs (``jupyter nbconvert --to html``, GitHub's viewer);
  :func:`to_matplotlib` draws any simple plotly figure (bars, lines, markers, heatmaps, subplots and
  facets) with matplotlib for that purpose;
- findings (:func:`fig2_finding`, :func:`fig5_finding`, :func:`weight_norm_finding`,
  :func:`forgetting_count_finding`, :func:`reweighting_finding`) - Markdown sentences *generated from the
  numbers a notebook computed*, never copied from the paper: which run forgot least and by how much,
  whether the newest task's rows grew, and whether that agrees with the paper's claim
  (:mod:`gradlab.verdicts`). Each returns a :class:`Finding` that renders as Markdown and keeps its
  numbers in ``numbers``.

Paper = He & Zhu, "Gradient Reweighting: Towards Imbalanced Class-Incremental Learning", CVPR 2024.
"""
from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gradlab import verdicts as V
from gradlab.plots import tables

PLOTLY_MIME = "application/vnd.plotly.v1+json"
SETTING_ROWS = ["scenario", "order", "imbalance", "max_per_class", "tasks", "memory", "method", "method_args",
                "model", "epochs", "batch_size", "precision", "device"]


# ---------------------------------------------------------------------- runs
@dataclass
class FigureRuns:
    """The runs of one figure: ``plan`` {key: {seed: RunConfig}}, ``records`` {key: {seed: RunRecord}},
    ``table`` (the per-seed table behind the figure, as in ``figures/*.csv``)."""

    name: str
    plan: dict
    records: dict
    table: pd.DataFrame
    cache_dir: str = "runs/cache"
    trained: list = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return sorted({seed for runs in self.plan.values() for seed in runs})

    def settings(self) -> pd.DataFrame:
        """The settings of every run (one column per legend label; seeds in the last row)."""
        columns = {}
        for key, runs in self.plan.items():
            cfg = runs[min(runs)].to_dict()
            label = key if isinstance(key, str) else " · ".join(f"{k:g}" if isinstance(k, float) else str(k)
                                                               for k in key)
            columns[label] = {**{row: cfg[row] for row in SETTING_ROWS}, "seeds": sorted(runs)}
        return pd.DataFrame(columns)

    def by_seed(self) -> dict:
        """{seed: {key: RunRecord}}, what :func:`tables.per_seed` takes."""
        return {seed: {key: runs[seed] for key, runs in self.records.items()} for seed in self.seeds}


def figure_runs(name: str, quick: bool = True, scenario: str = "fashion_mnist", device: str = "auto",
                seeds=(0, 1, 2), cache_dir: str | Path = "runs/cache", workers: int | None = None,
                **overrides) -> FigureRuns:
    """The runs ``gradlab figures`` makes for figure ``name`` (same settings, same cache keys): finished
    ones load from ``cache_dir`` at once, the others train there (in parallel worker processes, one
    progress line per finished run). ``overrides`` (e.g. ``epochs=1``) change every run."""
    from gradlab.executor import cached_record, run_many
    from gradlab.figures import figure_plan, figure_tables

    plan = figure_plan(name, quick, scenario, device, seeds=list(seeds), **overrides)
    configs = {(name, key, seed): cfg for key, runs in plan.items() for seed, cfg in runs.items()}
    missing = sorted({f"{key if isinstance(key, str) else ' '.join(map(str, key))} seed {seed}"
                      for (_, key, seed), cfg in configs.items() if cached_record(cfg, cache_dir) is None})
    if missing:
        print(f"{len(configs) - len(missing)} of {len(configs)} runs are in {str(cache_dir)!r}; "
              f"training {len(missing)} (they are cached for next time): {', '.join(missing)}", flush=True)
    named = {" ".join(map(str, [name, *(key if isinstance(key, tuple) else [key]), "seed", seed])): cfg
             for (name, key, seed), cfg in configs.items()}
    by_name = run_many(named, cache_dir, workers=workers, log=lambda line: print(line, flush=True))
    flat = dict(zip(configs, by_name.values()))
    records = {key: {seed: flat[(name, key, seed)] for seed in runs} for key, runs in plan.items()}
    table = figure_tables({name: plan}, flat)[name]
    return FigureRuns(name, plan, records, table, str(cache_dir), missing)


def run_cached(configs: dict, cache_dir: str | Path = "runs/cache", workers: int | None = None) -> dict:
    """{label: RunRecord} for {label: RunConfig}: from ``cache_dir`` where finished, else trained there."""
    from gradlab.executor import run_many

    return run_many(configs, cache_dir, workers=workers, log=lambda line: print(line, flush=True))


def seed_mean(table: pd.DataFrame, by, values) -> pd.DataFrame:
    """Mean over seeds of ``values`` grouped by ``by``, with the original column names (a single-seed table)."""
    if "seed" not in table.columns:
        return table
    agg = tables.aggregate(table, by, values)
    return agg.rename(columns={f"{v}_mean": v for v in values})[list(by) + list(values)]


def mean_matrix(records_by_seed: dict, kind: str = "accuracy") -> pd.DataFrame:
    """The mean over seeds of :func:`tables.phase_task_matrix` ({seed: RunRecord} -> phase x task)."""
    import warnings

    frames = [tables.phase_task_matrix(record, kind) for record in records_by_seed.values()]
    stacked = np.stack([f.to_numpy(float) for f in frames])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)    # undefined cells (u > t) stay NaN
        mean = np.nanmean(stacked, axis=0)
    return pd.DataFrame(mean, index=frames[0].index, columns=frames[0].columns)


def stats_frame(stats: dict, percent=(), digits: int = 3) -> pd.DataFrame:
    """A {label: {quantity: Stat}} dict from :mod:`gradlab.verdicts` as a table: ``<quantity> mean``,
    ``<quantity> std`` per label (quantities in ``percent`` scaled to %), and the number of seeds."""
    rows = {}
    for label, quantities in stats.items():
        row = {}
        for name, stat in quantities.items():
            scale, unit = (100.0, " (%)") if name in percent else (1.0, "")
            row[f"{name} mean{unit}"] = round(stat.mean * scale, digits)
            row[f"{name} std{unit}"] = round(stat.std * scale, digits)
        row["seeds"] = max(stat.n for stat in quantities.values())
        rows[str(label)] = row
    return pd.DataFrame(rows).T


# ---------------------------------------------------------------------- static copies of plotly figures
def _plain(text) -> str:
    """Plotly's HTML-ish text as plain text: <sub>x</sub> -> _x, <br> -> space, other tags dropped."""
    if text is None:
        return ""
    text = re.sub(r"<sub>(.*?)</sub>", r"_\1", str(text))
    text = re.sub(r"<br\s*/?>", " ", text)
    return re.sub(r"<[^>]+>", "", text)


def _axis(layout, name: str):
    """Layout axis object for a trace's axis reference: 'x' -> layout.xaxis, 'y3' -> layout.yaxis3."""
    return layout[f"{name[0]}axis{name[1:]}"]


def _values(seq):
    return [] if seq is None else list(seq)


def _colour(value, index: int):
    from plotly.colors import qualitative

    if isinstance(value, str):
        return value
    return qualitative.Plotly[index % len(qualitative.Plotly)]


def to_matplotlib(fig, width: float = 10.0, dpi: int = 100):
    """A static matplotlib copy of a simple plotly figure: every Bar, Scatter and Heatmap trace drawn on
    an axes placed where the plotly subplot (or facet) sits, with its titles, axis titles, error bars
    and a legend of the named traces. Enough for gradlab's figures; not a general plotly renderer."""
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

    layout = fig.layout
    traces = [t for t in fig.data if isinstance(t, (go.Bar, go.Scatter, go.Scattergl, go.Heatmap))]
    index_of = {id(t): i for i, t in enumerate(fig.data)}
    pairs = list(dict.fromkeys((t.xaxis or "x", t.yaxis or "y") for t in traces)) or [("x", "y")]
    height = max(2.8, min(12.0, (layout.height or 400) / 100))
    names = [t.name for t in traces if t.name and t.showlegend is not False and not isinstance(t, go.Heatmap)]
    legend = len(set(names)) >= 2 or (len(names) == 1 and layout.showlegend)
    left, right, bottom, top = 0.08, (0.78 if legend else 0.97), 0.16, (0.86 if layout.title.text else 0.92)
    out = Figure(figsize=(width, height), dpi=dpi)
    domains = {pair: (_axis(layout, pair[0]).domain or (0, 1), _axis(layout, pair[1]).domain or (0, 1))
               for pair in pairs}
    xshrink = 0.88 if len({d[0] for d in domains.values()}) > 1 else 1.0    # room between facets
    yshrink = 0.80 if len({d[1] for d in domains.values()}) > 1 else 1.0
    axes = {}
    for pair, (xd, yd) in domains.items():
        rect = [left + xd[0] * (right - left), bottom + yd[0] * (top - bottom),
                (xd[1] - xd[0]) * (right - left) * xshrink, (yd[1] - yd[0]) * (top - bottom) * yshrink]
        axes[pair] = out.add_axes(rect)
    barmode = layout.barmode or "group"
    handles: dict = {}
    titles: tuple = ({}, {})          # axis title -> axes, for x and y
    for (xname, yname), ax in axes.items():
        here = [t for t in traces if (t.xaxis or "x", t.yaxis or "y") == (xname, yname)]
        bars = [t for t in here if isinstance(t, go.Bar)]
        xs_all = [x for t in here if not isinstance(t, go.Heatmap) for x in _values(t.x)]
        categorical = any(isinstance(x, str) for x in xs_all)
        cats = list(dict.fromkeys(str(x) for x in xs_all)) if categorical else []
        position = {c: i for i, c in enumerate(cats)}
        stack: dict = {}
        for i, trace in enumerate(here):
            index = index_of[id(trace)]
            if isinstance(trace, go.Heatmap):
                _draw_heatmap(out, ax, trace, _axis(layout, yname))
                continue
            xs = [position[str(x)] for x in _values(trace.x)] if categorical else \
                np.asarray(_values(trace.x), dtype=float)
            ys = np.asarray([np.nan if y is None else y for y in _values(trace.y)], dtype=float)
            err = trace.error_y.array if trace.error_y is not None and trace.error_y.array is not None else None
            err = None if err is None else np.asarray([np.nan if e is None else e for e in err], float)
            if isinstance(trace, go.Bar):
                marker = trace.marker
                colour = _colour(marker.color, index)
                hatch = "//" if marker.pattern is not None and marker.pattern.shape else None
                alpha = marker.opacity if isinstance(marker.opacity, (int, float)) else 1.0
                xs = np.asarray(xs, dtype=float)
                if barmode == "group" and len(bars) > 1:
                    k, width_bar = bars.index(trace), 0.8 / len(bars)
                    xs, base = xs - 0.4 + width_bar * (k + 0.5), 0.0
                else:
                    width_bar = 0.8
                    base = np.array([stack.get(x, 0.0) for x in xs]) if barmode in ("stack", "relative") else 0.0
                    for x, y in zip(xs, ys):
                        stack[x] = stack.get(x, 0.0) + (0.0 if np.isnan(y) else y)
                artist = ax.bar(xs, ys, width=width_bar, bottom=base, color=colour, alpha=alpha, hatch=hatch,
                                edgecolor="black", linewidth=0.3)
                if err is not None:
                    ax.errorbar(xs, ys + base, yerr=err, fmt="none", ecolor="black", elinewidth=0.7, capsize=1.5)
            else:
                mode = trace.mode or "lines+markers"
                colour = _colour(trace.line.color if trace.line is not None and trace.line.color else
                                 trace.marker.color, index)
                style = ("-" if "lines" in mode else "") + ("o" if "markers" in mode else "")
                artist = ax.errorbar(xs, ys, yerr=err, fmt=style or "o", color=colour, markersize=4,
                                     capsize=2 if err is not None else 0, alpha=0.9)
            name = _plain(trace.name)
            if name and trace.showlegend is not False and name not in handles:
                handles[name] = artist
        if categorical:
            step = max(1, int(np.ceil(len(cats) / 24)))
            shown = cats[::step]
            crowded = len(shown) * 0.3 > ax.get_position().width * width     # inches of tick text vs axes
            ax.set_xticks(range(len(cats))[::step], shown, fontsize=7, rotation=90 if crowded else 0)
        for which, (obj, scale) in enumerate(((_axis(layout, xname), ax.set_xscale),
                                              (_axis(layout, yname), ax.set_yscale))):
            if obj.title is not None and obj.title.text:
                titles[which].setdefault(_plain(obj.title.text), []).append(ax)
            if obj.type == "log":
                scale("log")
        if not any(isinstance(t, go.Heatmap) for t in here):
            ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    _share_limits(layout, axes)
    for which, by_text in enumerate(titles):     # one figure-wide label when several axes share it
        for text, with_it in by_text.items():
            if len(with_it) > 1 and len(by_text) == 1:
                (out.supxlabel if which == 0 else out.supylabel)(text, fontsize=8)
            else:
                for ax in with_it:
                    (ax.set_xlabel if which == 0 else ax.set_ylabel)(text, fontsize=8)
    for note in layout.annotations or ():
        if note.xref == "paper" and note.yref == "paper" and note.text:
            out.text(left + note.x * (right - left), bottom + note.y * (top - bottom), _plain(note.text),
                     ha=note.xanchor if note.xanchor in ("left", "right", "center") else "center",
                     va={"middle": "center"}.get(note.yanchor, note.yanchor or "bottom"),
                     rotation=note.textangle if isinstance(note.textangle, (int, float)) else 0, fontsize=8)
    if layout.title.text:
        out.suptitle(_plain(layout.title.text), fontsize=11)
    if legend and handles:
        title = layout.legend.title.text if layout.legend.title is not None else None
        out.legend(list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(right + 0.01, 0.5),
                   fontsize=8, title=_plain(title) or None, title_fontsize=8)
    return out


def _draw_heatmap(out, ax, trace, yaxis) -> None:
    z = np.asarray([[np.nan if v is None else v for v in row] for row in trace.z], dtype=float)
    image = ax.imshow(np.ma.masked_invalid(z), aspect="auto", cmap="viridis")
    ax.set_xticks(range(z.shape[1]), [str(x) for x in _values(trace.x)] or range(z.shape[1]), fontsize=7)
    ax.set_yticks(range(z.shape[0]), [str(y) for y in _values(trace.y)] or range(z.shape[0]), fontsize=7)
    match = re.search(r"%\{z:([^}]*)\}", trace.texttemplate or "")
    if match:
        spec = match.group(1)
        for (i, j), value in np.ndenumerate(z):
            if np.isfinite(value):
                ax.text(j, i, format(value, spec), ha="center", va="center", fontsize=7, color="white")
    if yaxis.autorange != "reversed":
        ax.invert_yaxis()
    out.colorbar(image, ax=ax, fraction=0.05)


def _share_limits(layout, axes: dict) -> None:
    """Axes that plotly links (``matches``) get the union of their limits, as plotly draws them."""
    for which in (0, 1):
        groups: dict = {}
        for pair, ax in axes.items():
            name = pair[which]
            obj = _axis(layout, name)
            groups.setdefault(obj.matches or name, []).append(ax)
        for group in groups.values():
            if len(group) > 1:
                get = (lambda a: a.get_xlim()) if which == 0 else (lambda a: a.get_ylim())
                lows, highs = zip(*(get(a) for a in group))
                for a in group:
                    (a.set_xlim if which == 0 else a.set_ylim)(min(lows), max(highs))


def png_bytes(figure, dpi: int = 100) -> bytes:
    """A matplotlib Figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def plotly_bundle(fig) -> dict:
    """The plotly figure as a display bundle: plotly's JSON (drawn by JupyterLab, VS Code) and a one-line
    text/plain (what a viewer without plotly shows: it points at the static copy below)."""
    import plotly.io as pio

    bundle = pio.renderers["plotly_mimetype"].to_mimebundle(fig.to_dict())
    title = _plain(fig.layout.title.text) or "figure"
    bundle["text/plain"] = f"[interactive plotly figure: {title}; its static copy (PNG) follows]"
    return bundle


def show(fig, static=None, dpi: int = 100) -> None:
    """Display the plotly figure ``fig`` and, beside it, a static PNG of the same data: ``static`` (a
    matplotlib Figure drawn from the same table, e.g. from :mod:`gradlab.plots.paper`), else
    :func:`to_matplotlib` of ``fig``. Viewers without JavaScript show the PNG."""
    from IPython.display import display

    if static is None:
        static = to_matplotlib(fig)
    display(plotly_bundle(fig), raw=True)
    title = _plain(fig.layout.title.text) or "figure"
    display({"image/png": base64.b64encode(png_bytes(static, dpi)).decode("ascii"),
             "text/plain": f"<static copy of: {title}>"}, raw=True)


# ---------------------------------------------------------------------- findings
@dataclass
class Finding:
    """Markdown generated from computed numbers (``numbers``); renders as Markdown in a notebook."""

    text: str
    numbers: dict = field(default_factory=dict)

    def _repr_markdown_(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


def _fmt(stat: V.Stat, scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
    if stat.n <= 1:
        return f"{stat.mean * scale:.{digits}f}{unit}"
    return f"{stat.mean * scale:.{digits}f} ± {stat.std * scale:.{digits}f}{unit}"


def _seeds(n: int) -> str:
    if n <= 1:
        return "one seed, so no spread: treat every comparison as anecdotal"
    return f"mean ± std over {n} seeds"


def _apart(a: V.Stat, b: V.Stat | float) -> str:
    if min(a.n, b.n if isinstance(b, V.Stat) else 2) <= 1:
        return "one seed, no spread to judge it by"
    return ("the spreads (± 1 std) do not overlap" if V.above(a, b) != V.UNSURE
            else "the spreads overlap: within seed noise")


VERDICT_NOTE = ("reproduced = every comparison holds with the ± 1 std spreads apart; not reproduced = some "
                "comparison goes the other way with the spreads apart; inconclusive = otherwise")


def _verdict_lines(rows) -> list[str]:
    lines = [""]
    for row in rows:
        lines.append(f"**The paper reports:** {row.claim} **Verdict on these runs: {row.verdict}** ({VERDICT_NOTE}).")
        lines.append("")
    return lines


def _direction(stat: V.Stat, threshold: float, above_word: str, below_word: str, neither: str) -> str:
    return {V.YES: above_word, V.NO: below_word, V.UNSURE: neither}[V.above(stat, threshold)]


def fig2_finding(table: pd.DataFrame) -> Finding:
    """What the per-seed Figure 2 table shows: Spearman's ρ(training count, gradient) over the new
    classes and the old / new ratio of mean gradients (:func:`verdicts.fig2_stats`), and the verdict."""
    table = table if "seed" in table.columns else table.assign(seed=0)
    s = V.fig2_stats(table)
    rho, ratio = s["spearman"], s["old_new_ratio"]
    n = rho.n
    lines = [f"**What these runs show** ({_seeds(n)}):", ""]
    lines.append(f"- Spearman's ρ between a new class's training count and its mean CE row gradient: "
                 f"**{_fmt(rho)}**: " + _direction(rho, 0.0, "classes with more images get larger gradients",
                                                   "classes with more images get smaller gradients",
                                                   "no clear ordering by training count") + ".")
    if np.isfinite(ratio.mean):
        lines.append(f"- Old classes' mean gradient / new classes', averaged over the incremental phases: "
                     f"**{_fmt(ratio)}**: " + _direction(ratio, 1.0, "old classes get larger gradients than new ones",
                                                         "old classes get smaller gradients than new ones",
                                                         "not clearly different from the new ones") + ".")
    lines += _verdict_lines([V.fig2_verdict(table)])
    return Finding("\n".join(lines), {"spearman": rho, "old_new_ratio": ratio})


def fig5_finding(table: pd.DataFrame, ours: str = "DAKD", baseline: str = "KD", verdict: bool = True) -> Finding:
    """What a (per-seed) forgetting table shows: the run that forgot least and most (forgetting averaged
    over the incremental steps, :func:`verdicts.fig5_stats`), ``ours`` against ``baseline`` and by how
    much, the best average incremental accuracy; with ``verdict`` the paper's Figure 5 claim and its
    verdict (:func:`verdicts.fig5_verdict`)."""
    table = table if "seed" in table.columns else table.assign(seed=0)
    s = V.fig5_stats(table)
    forgetting = {label: v["forgetting"] for label, v in s.items()}
    aia = {label: v["aia"] for label, v in s.items()}
    n = max(stat.n for stat in forgetting.values())
    steps = int(table["phase"].nunique())
    lowest = min(forgetting, key=lambda label: forgetting[label].mean)
    highest = max(forgetting, key=lambda label: forgetting[label].mean)
    best = max(aia, key=lambda label: aia[label].mean)
    lines = [f"**What these runs show** (forgetting averaged over the {steps} incremental steps; {_seeds(n)}):", ""]
    lines.append(f"- lowest forgetting: **{lowest}**, {_fmt(forgetting[lowest], 100, 1, ' %')}; "
                 f"highest: **{highest}**, {_fmt(forgetting[highest], 100, 1, ' %')}.")
    numbers = {"forgetting": forgetting, "aia": aia, "lowest": lowest, "highest": highest, "best_accuracy": best}
    if ours in forgetting and baseline in forgetting:
        a, b = forgetting[ours], forgetting[baseline]
        gap = round(100 * (a.mean - b.mean), 1)
        detail = (f"({ours} {_fmt(a, 100, 1, ' %')}, {baseline} {_fmt(b, 100, 1, ' %')}; {_apart(a, b)})")
        if gap == 0:
            lines.append(f"- {ours} forgot the same as {baseline} on average {detail}.")
        else:
            lines.append(f"- {ours} forgot {abs(gap):.1f} percentage points {'more' if gap > 0 else 'less'} "
                         f"than {baseline} {detail}.")
        numbers["gap_points"] = gap
    lines.append(f"- highest average incremental accuracy: **{best}**, {_fmt(aia[best], 100, 1, ' %')}.")
    if verdict:
        lines += _verdict_lines([V.fig5_verdict(table, ours)])
    return Finding("\n".join(lines), numbers)


def weight_norm_finding(table: pd.DataFrame) -> Finding:
    """What the (per-seed) weight-norm table shows, per run: the newest task's mean row norm over the
    earlier tasks', Spearman's ρ(training count, norm) and the spread (CV) of the norms
    (:func:`verdicts.weight_norm_stats`); the paper's claims and verdicts."""
    table = table if "seed" in table.columns else table.assign(seed=0)
    s = V.weight_norm_stats(table)
    n = max(v["new_old_ratio"].n for v in s.values())
    lines = [f"**What these runs show** (after the last phase; {_seeds(n)}):", ""]
    for label, v in s.items():
        ratio, rho = v["new_old_ratio"], v["spearman"]
        lines.append(f"- Under **{label}** the newest task's rows average **{_fmt(ratio)} ×** the rows of the "
                     f"earlier tasks: " + _direction(ratio, 1.0, "larger", "smaller",
                                                     "neither clearly larger nor smaller") +
                     f"; ρ(training count, row norm) {_fmt(rho)}: " +
                     _direction(rho, 0.0, "head classes have larger rows", "head classes have smaller rows",
                                "no clear ordering by training count") + ".")
    cv = {label: v["cv"] for label, v in s.items()}
    level = min(cv, key=lambda label: cv[label].mean)
    lines.append("- Spread of the row norms (CV = std / mean, lower = more level): "
                 + ", ".join(f"{label} {_fmt(stat)}" for label, stat in cv.items())
                 + f"; the most level rows: **{level}**.")
    rows = V.weight_norm_verdicts(table) if {"CE", "DGR"} <= set(s) else []
    lines += _verdict_lines(rows)
    return Finding("\n".join(lines), {"stats": s, "most_level": level})


def forgetting_count_finding(table: pd.DataFrame) -> Finding:
    """Do head classes forget more? From :func:`tables.class_forgetting` rows (with ``label`` and
    optionally ``seed`` columns): per label Spearman's ρ(training count, forgetting) and the mean
    forgetting per shot group (many / medium / few)."""
    table = table if "label" in table.columns else table.assign(label="run")
    table = table if "seed" in table.columns else table.assign(seed=0)
    lines, numbers = [], {}
    n = int(table.groupby("label")["seed"].nunique().max())
    lines.append(f"**What these runs show** (each old class after the last phase; {_seeds(n)}):")
    lines.append("")
    for label, part in table.groupby("label", sort=False):
        rho = V.Stat.of([V._spearman(run["train_count"], run["forgetting"]) for _, run in part.groupby("seed")])
        groups = part.groupby("shot_group")["forgetting"].mean()
        groups = groups.reindex([g for g in ("many", "medium", "few") if g in groups.index])
        worst = str(groups.idxmax()) if len(groups) and groups.notna().any() else "n/a"
        numbers[str(label)] = {"spearman": rho, "by_group": groups.to_dict(), "most_forgetting_group": worst}
        by_group = ", ".join(f"{g} {100 * v:.1f} %" for g, v in groups.items())
        lines.append(f"- **{label}**: ρ(training count, forgetting) {_fmt(rho)}: " +
                     _direction(rho, 0.0, "classes that had more images forgot more",
                                "classes that had more images forgot less", "no clear relation") +
                     f"; mean forgetting by shot group: {by_group}; most forgetting: **{worst}**.")
    return Finding("\n".join(lines), numbers)


def reweighting_finding(before: pd.DataFrame, after: pd.DataFrame) -> Finding:
    """DGR's rewrite, from :func:`tables.gradient_magnitudes` of one DGR run before (``grad_ce``) and after
    (``grad_ce_reweighted``): the spread (CV) of the row gradients within the old and within the new
    classes, and the old / new ratio of their means, averaged over the phases."""
    def spreads(table):
        out = {}
        for group in ("new", "old"):
            cvs = [part["value"].std(ddof=0) / part["value"].mean()
                   for _, part in table[table["group"] == group].groupby("phase") if len(part) > 1]
            out[group] = float(np.mean(cvs)) if cvs else float("nan")
        ratios = [part[part["group"] == "old"]["value"].mean() / part[part["group"] == "new"]["value"].mean()
                  for phase, part in table.groupby("phase") if phase > 0]
        out["old_new_ratio"] = float(np.mean(ratios)) if ratios else float("nan")
        return out

    b, a = spreads(before), spreads(after)
    lines = ["**What this run shows** (one seed; averaged over the phases):", ""]
    for group, name in (("new", "new classes"), ("old", "old classes")):
        if np.isfinite(b[group]) and np.isfinite(a[group]):
            verb = "falls" if a[group] < b[group] else ("rises" if a[group] > b[group] else "stays")
            lines.append(f"- spread (CV) of the row gradients within the {name}: {b[group]:.2f} before the rewrite, "
                         f"{a[group]:.2f} after: it {verb}.")
    if np.isfinite(b["old_new_ratio"]) and np.isfinite(a["old_new_ratio"]):
        lines.append(f"- old / new mean row gradient: {b['old_new_ratio']:.2f} before, {a['old_new_ratio']:.2f} after.")
    return Finding("\n".join(lines), {"before": b, "after": a})


__all__ = ["Finding", "FigureRuns", "fig2_finding", "fig5_finding", "figure_runs", "forgetting_count_finding",
           "mean_matrix", "plotly_bundle", "png_bytes", "reweighting_finding", "run_cached", "seed_mean", "show",
           "stats_frame", "to_matplotlib", "weight_norm_finding"]
