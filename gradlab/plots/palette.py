"""One palette for every figure, plotly and matplotlib alike: a run (method / series) keeps its colour in
every figure of gradlab, so "DGR + DAKD" is the same red in the tour, in Figure 5, in the weight norms and
in the explorer.

- :func:`color` - the colour of a legend label: the figure labels (``CE``, ``DGR + DAKD``, Figure 5's
  distillation variants ``none`` / ``KD`` / ``feature`` / ``DAKD``, which are DGR runs), else the method
  the label names (a sweep's "method=dgr", or first, as the explorer's "dgr (distillation=kd) · ..."), else a
  stable hash of the label;
- :func:`styles` - colour, dash and marker per label of one figure: labels sharing a colour (two runs of
  one method) get different dashes and markers;
- :func:`task_color`, :data:`GROUP_COLORS` (old / new classes), :data:`SHOT_COLORS` (many / medium / few).

Colours are hex strings, which plotly and matplotlib both take.
"""
from __future__ import annotations

import colorsys
import hashlib
import re

BLUE, ORANGE, GREEN, RED, PURPLE = "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"
BROWN, PINK, GREY, OLIVE, CYAN = "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"
TAB10 = (BLUE, ORANGE, GREEN, RED, PURPLE, BROWN, PINK, GREY, OLIVE, CYAN)
# for labels that name no known run: darker shades, apart from the named runs' colours
EXTRA = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354")

#: the figures' legend labels -> colour (the same run under any of its labels gets one colour)
LABEL_COLORS = {
    "CE": BLUE, "CE + KD": ORANGE, "DGR": RED, "DGR + DAKD": RED, "DGR + KD": PURPLE, "BiC": BROWN, "WA": PINK,
    # Figure 5: DGR with four distillation losses (DAKD = the DGR run above)
    "none": GREY, "KD": PURPLE, "feature": GREEN, "DAKD": RED,
}
#: method names (gradlab.list_methods()) -> colour
METHOD_COLORS = {
    "ce": BLUE, "finetune": "#aec7e8", "kd": ORANGE, "dgr": RED, "dgr-no-dakd": PURPLE, "gr": OLIVE, "bic": BROWN,
    "wa": PINK, "lucir": CYAN, "lucir-2stage": CYAN, "podnet": "#393b79", "podnet-2stage": "#393b79",
    "icarl": "#637939", "eeil": "#8c6d31", "eeil-2stage": "#8c6d31", "sir": "#7b4173",
}
#: DGR by its ``distillation`` method argument
DGR_DISTILLATION = {"dakd": RED, "kd": PURPLE, "feature": GREEN, "none": GREY}
GROUP_COLORS = {"new": BLUE, "old": GREY}
SHOT_COLORS = {"many": BLUE, "medium": ORANGE, "few": RED}

PLOTLY_DASHES = ("solid", "dash", "dot", "dashdot", "longdash")
MPL_DASHES = {"solid": "-", "dash": "--", "dot": ":", "dashdot": "-.", "longdash": (0, (8, 3))}
PLOTLY_MARKERS = ("circle", "square", "diamond", "triangle-up", "triangle-down", "cross", "x", "star")
MPL_MARKERS = {"circle": "o", "square": "s", "diamond": "D", "triangle-up": "^", "triangle-down": "v",
               "cross": "P", "x": "X", "star": "*"}


def color(label) -> str:
    """The colour of one legend label (see the module's docstring for the rules)."""
    text = str(label).strip()
    if text in LABEL_COLORS:
        return LABEL_COLORS[text]
    match = re.search(r"\bmethod\s*=\s*([A-Za-z0-9_-]+)", text) or re.match(r"([A-Za-z0-9_-]+)", text)
    method = match.group(1).lower() if match else ""
    if method == "dgr":
        distillation = re.search(r"distillation\s*=\s*([A-Za-z]+)", text)
        if distillation and distillation.group(1).lower() in DGR_DISTILLATION:
            return DGR_DISTILLATION[distillation.group(1).lower()]
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    digest = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    return EXTRA[digest % len(EXTRA)]


def styles(labels) -> dict:
    """{label: (colour, plotly dash, plotly marker)} for the labels of one figure: a marker per label (apart
    in greyscale too); labels with the same colour (two runs of one method) also get different dashes."""
    out, seen = {}, {}
    for i, label in enumerate(dict.fromkeys(labels)):
        colour = color(label)
        k = seen.get(colour, 0)
        seen[colour] = k + 1
        out[label] = (colour, PLOTLY_DASHES[k % len(PLOTLY_DASHES)], PLOTLY_MARKERS[i % len(PLOTLY_MARKERS)])
    return out


def mpl_styles(labels) -> dict:
    """:func:`styles` for matplotlib: {label: (colour, marker, linestyle)}."""
    return {label: (c, MPL_MARKERS[m], MPL_DASHES[d]) for label, (c, d, m) in styles(labels).items()}


def task_color(task: int, num_tasks: int = 10) -> str:
    """Task ``task``'s colour (the tab10 colours; more than 10 tasks: evenly spaced hues)."""
    if num_tasks <= len(TAB10):
        return TAB10[int(task) % len(TAB10)]

    r, g, b = colorsys.hls_to_rgb((int(task) / num_tasks) % 1.0, 0.5, 0.65)
    return "#{:02x}{:02x}{:02x}".format(round(255 * r), round(255 * g), round(255 * b))


__all__ = ["GROUP_COLORS", "LABEL_COLORS", "METHOD_COLORS", "SHOT_COLORS", "color", "mpl_styles", "styles",
           "task_color"]
