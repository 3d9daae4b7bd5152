"""Static copies of plotly figures, so that a notebook still shows its plots where no JavaScript runs
(``jupyter nbconvert --to html``, GitHub's viewer): :func:`show` displays a plotly figure and, beside it,
a PNG of the same data; :func:`to_matplotlib` draws any simple plotly figure (bars, lines, markers,
heatmaps, subplots and facets) with matplotlib for that purpose.
"""
from __future__ import annotations

import base64
import io
import re

import numpy as np

PLOTLY_MIME = "application/vnd.plotly.v1+json"


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
