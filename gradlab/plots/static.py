"""One notebook output per figure, interactive and static at once.

:func:`show` displays a plotly figure as ONE output carrying two forms of the same figure: plotly's JSON
(``application/vnd.plotly.v1+json``, drawn by JupyterLab / VS Code) and a PNG (``image/png``, what
``jupyter nbconvert --to html`` and GitHub show). The PNG is :func:`to_matplotlib` of the plotly figure
itself, so both forms show the same view with the same colours. :func:`to_matplotlib` draws the simple
figures gradlab makes (bars, lines, markers, images, heatmaps, subplots and facets) with matplotlib.
"""
from __future__ import annotations

import base64
import io
import re

import numpy as np

from gradlab.plots.palette import MPL_DASHES, MPL_MARKERS, TAB10

PLOTLY_MIME = "application/vnd.plotly.v1+json"
PNG_MIME = "image/png"


def _plain(text) -> str:
    """Plotly's HTML-ish text for matplotlib: <sub>x</sub> -> mathtext subscript, <br> -> new line, other
    tags dropped."""
    if text is None:
        return ""
    text = str(text).replace("$", r"\$")
    text = re.sub(r"<sub>(.*?)</sub>", lambda m: "$_{" + m.group(1).replace("_", r"\_") + "}$", text)
    text = re.sub(r"<sup>(.*?)</sup>", lambda m: "$^{" + m.group(1).replace("_", r"\_") + "}$", text)
    text = re.sub(r"<br\s*/?>", "\n", text)
    return re.sub(r"<[^>]+>", "", text)


def _title_text(fig) -> str:
    """The figure's title as plain text (no tags, no mathtext): for text/plain."""
    text = re.sub(r"<[^>]+>", "", str(fig.layout.title.text or ""))
    return " ".join(text.split()) or "figure"


def _axis(layout, name: str):
    """Layout axis object for a trace's axis reference: 'x' -> layout.xaxis, 'y3' -> layout.yaxis3."""
    return layout[f"{name[0]}axis{name[1:]}"]


def _values(seq):
    """A trace's data as a list, also where it is plotly's typed-array JSON ({"bdata", "dtype", "shape"})."""
    if seq is None:
        return []
    if isinstance(seq, dict) and "bdata" in seq:
        array = np.frombuffer(base64.b64decode(seq["bdata"]), dtype=np.dtype(seq["dtype"]))
        if seq.get("shape"):
            array = array.reshape([int(n) for n in str(seq["shape"]).split(",")])
        return list(array)
    return list(seq)


def _colour(value, index: int):
    if isinstance(value, str):
        return value
    return TAB10[index % len(TAB10)]


def _layout_box(layout, legend: bool):
    """Figure fractions (left, right, bottom, top) of the plotting area."""
    names = {note.name for note in layout.annotations or ()}
    left = 0.11 if "ytitle" in names else 0.08
    bottom = 0.2 if "xtitle" in names else 0.16
    return left, (0.78 if legend else 0.97), bottom, (0.86 if layout.title.text else 0.92)


def to_matplotlib(fig, width: float = 10.0, dpi: int = 100):
    """A static matplotlib copy of a simple plotly figure: every Bar, Scatter, Heatmap and Image trace
    drawn on an axes placed where the plotly subplot (or facet) sits, with its colours, dashes, markers,
    titles, axis titles, error bars, log axes and a legend of the named traces."""
    import plotly.graph_objects as go
    from matplotlib.figure import Figure

    layout = fig.layout
    kinds = (go.Bar, go.Scatter, go.Scattergl, go.Heatmap, go.Image)
    traces = [t for t in fig.data if isinstance(t, kinds)]
    index_of = {id(t): i for i, t in enumerate(fig.data)}
    pairs = list(dict.fromkeys((t.xaxis or "x", t.yaxis or "y") for t in traces)) or [("x", "y")]
    height = max(2.8, min(12.0, (layout.height or 400) / 100))
    names = [t.name for t in traces if t.name and t.showlegend is not False and not isinstance(t, (go.Heatmap, go.Image))]
    legend = len(set(names)) >= 2 or (len(names) == 1 and bool(layout.showlegend))
    box = _layout_box(layout, legend)
    out = Figure(figsize=(width, height), dpi=dpi)
    axes = _place_axes(out, layout, pairs, box)
    handles: dict = {}
    titles: tuple = ({}, {})          # axis title -> axes, for x and y
    for (xname, yname), ax in axes.items():
        here = [t for t in traces if (t.xaxis or "x", t.yaxis or "y") == (xname, yname)]
        _draw_panel(out, ax, here, layout, (xname, yname), index_of, handles, titles, width)
    _share_limits(layout, axes)
    for which, by_text in enumerate(titles):     # one figure-wide label when several axes share it
        for text, with_it in by_text.items():
            if len(with_it) > 1 and len(by_text) == 1:
                (out.supxlabel if which == 0 else out.supylabel)(text, fontsize=8)
            else:
                for ax in with_it:
                    (ax.set_xlabel if which == 0 else ax.set_ylabel)(text, fontsize=8)
    _annotations(out, layout, box)
    if layout.title.text:
        out.suptitle(_plain(layout.title.text), fontsize=11)
    if legend and handles:
        title = layout.legend.title.text if layout.legend.title is not None else None
        out.legend(list(handles.values()), list(handles), loc="center left", bbox_to_anchor=(box[1] + 0.01, 0.5),
                   fontsize=8, title=_plain(title) or None, title_fontsize=8)
    return out


def _place_axes(out, layout, pairs, box) -> dict:
    """An axes per (x axis, y axis) pair, where the plotly subplot sits inside ``box`` (left, right, bottom, top)."""
    left, right, bottom, top = box
    domains = {pair: (_axis(layout, pair[0]).domain or (0, 1), _axis(layout, pair[1]).domain or (0, 1))
               for pair in pairs}
    xshrink = 0.88 if len({d[0] for d in domains.values()}) > 1 else 1.0    # room between facets
    yshrink = 0.80 if len({d[1] for d in domains.values()}) > 1 else 1.0
    axes = {}
    for pair, (xd, yd) in domains.items():
        height_of = (yd[1] - yd[0]) * (top - bottom)       # shrunk from below: subplot titles stay on top
        rect = [left + xd[0] * (right - left), bottom + yd[0] * (top - bottom) + height_of * (1 - yshrink),
                (xd[1] - xd[0]) * (right - left) * xshrink, height_of * yshrink]
        axes[pair] = out.add_axes(rect)
    return axes


def _draw_panel(out, ax, here, layout, names, index_of, handles, titles, width) -> None:
    """The traces of one subplot on ``ax``: images, heatmaps, bars and lines; its ticks, scales and titles."""
    import plotly.graph_objects as go
    from matplotlib.ticker import MultipleLocator

    xname, yname = names
    if any(isinstance(t, go.Image) for t in here):
        for trace in here:
            ax.imshow(np.asarray(_values(trace.z), dtype=np.uint8))
            ax.set_anchor("S")
        ax.set_axis_off()
        return
    bars = [t for t in here if isinstance(t, go.Bar)]
    xs_all = [x for t in here if not isinstance(t, go.Heatmap) for x in _values(t.x)]
    categorical = any(isinstance(x, str) for x in xs_all)
    cats = list(dict.fromkeys(str(x) for x in xs_all)) if categorical else []
    position = {c: i for i, c in enumerate(cats)}
    stack: dict = {}
    for trace in here:
        if isinstance(trace, go.Heatmap):
            _draw_heatmap(out, ax, trace, _axis(layout, yname))
            continue
        artist = _draw_series(ax, trace, index_of[id(trace)], categorical, position, bars, layout.barmode or "group",
                              stack)
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
        elif which == 0 and not categorical and isinstance(obj.dtick, (int, float)):
            ax.xaxis.set_major_locator(MultipleLocator(obj.dtick))
    if not any(isinstance(t, go.Heatmap) for t in here):
        ax.grid(alpha=0.3)
    ax.tick_params(labelsize=7)


def _draw_series(ax, trace, index, categorical, position, bars, barmode, stack):
    """One Bar or Scatter trace on ``ax``; returns the artist for the legend."""
    import plotly.graph_objects as go

    xs = [position[str(x)] for x in _values(trace.x)] if categorical else np.asarray(_values(trace.x), dtype=float)
    ys = np.asarray([np.nan if y is None else y for y in _values(trace.y)], dtype=float)
    err = trace.error_y.array if trace.error_y is not None and trace.error_y.array is not None else None
    err = None if err is None else np.asarray([np.nan if e is None else e for e in _values(err)], float)
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
        return artist
    mode = trace.mode or "lines+markers"
    line_colour = trace.line.color if trace.line is not None else None
    colour = _colour(line_colour if "lines" in mode and line_colour else trace.marker.color or line_colour, index)
    dash = MPL_DASHES.get(trace.line.dash if trace.line is not None and trace.line.dash else "solid", "-")
    symbol = trace.marker.symbol if isinstance(trace.marker.symbol, str) else "circle"
    alpha = trace.marker.opacity if isinstance(trace.marker.opacity, (int, float)) else 0.9
    return ax.errorbar(xs, ys, yerr=err, color=colour, linestyle=dash if "lines" in mode else "none",
                       marker=MPL_MARKERS.get(symbol, "o") if "markers" in mode else None, markersize=4,
                       capsize=2 if err is not None else 0, alpha=alpha)


def _annotations(out, layout, box) -> None:
    """Paper-referenced annotations (subplot titles, facet labels, shared axis titles) where plotly puts them."""
    left, right, bottom, top = box
    for note in layout.annotations or ():
        if note.xref != "paper" or note.yref != "paper" or not note.text:
            continue
        text = _plain(note.text)
        if note.name == "xtitle":
            out.text(left + note.x * (right - left), 0.02, text, ha="center", va="bottom", fontsize=8)
        elif note.name == "ytitle":
            out.text(0.01, bottom + note.y * (top - bottom), text, ha="left", va="center", rotation=90, fontsize=8)
        else:
            out.text(left + note.x * (right - left), bottom + note.y * (top - bottom), text,
                     ha=note.xanchor if note.xanchor in ("left", "right", "center") else "center",
                     va={"middle": "center"}.get(note.yanchor, note.yanchor or "bottom"),
                     rotation=-note.textangle if isinstance(note.textangle, (int, float)) else 0, fontsize=8)


def _draw_heatmap(out, ax, trace, yaxis) -> None:
    z = np.asarray([[np.nan if v is None else v for v in row] for row in _values(trace.z)], dtype=float)
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


def figure_bundle(fig, dpi: int = 100) -> dict:
    """The display bundle of one figure: plotly's JSON, a PNG of :func:`to_matplotlib` of the same figure,
    and a one-line text/plain (the title)."""
    import plotly.io as pio

    bundle = pio.renderers["plotly_mimetype"].to_mimebundle(fig.to_dict())
    bundle[PNG_MIME] = base64.b64encode(png_bytes(to_matplotlib(fig), dpi)).decode("ascii")
    bundle["text/plain"] = f"<figure: {_title_text(fig)}>"
    return bundle


def show(fig, dpi: int = 100, display_id=None):
    """Display the plotly figure ``fig`` as one output holding it and its PNG (:func:`figure_bundle`);
    returns the display handle when ``display_id`` is given (``True``: a new one)."""
    from IPython.display import display

    return display(figure_bundle(fig, dpi), raw=True, display_id=display_id)
