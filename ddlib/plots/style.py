"""What every figure shares: the book's plotly renderer, the palette, and how tables print.

**The renderer.** Importing :mod:`ddlib.plots` (which imports this module) sets plotly's renderer
(:class:`BookRenderer`): each figure's ``text/html`` is a ``<div>`` and the script that draws it, *without*
plotly.js, which the book serves once for the whole site (``_static/plotly.min.js``, copied from the
installed plotly package at build time by ``book/_ext/plotly_static.py`` and loaded by the pages that hold
a figure). In an interactive session (``$PLOTLY_RENDERER`` unset) the renderer is ``"book"``, whose output
also keeps plotly's own mime type (``application/vnd.plotly.v1+json``), which JupyterLab, VS Code and
nteract draw themselves. Where ``$PLOTLY_RENDERER`` is ``"notebook"`` (the Makefile, ``python -m ddlib
book`` and the tests set it: the book's builds and the tests' executions) it is ``"book_page"``, the
``text/html`` alone: what the page shows, and nothing that differs between two runs of the same figure
(the plotly JSON holds every float of the figure, e.g. a timing in its hover data, which the outputs' checks
mask only in text). Any other ``$PLOTLY_RENDERER`` is used as it is. Chapters just call ``fig.show()``.

**The palette.** One colour per method across the whole book (:data:`METHOD_COLOURS`): the coreset
selectors and BPS, the synthesis methods and their real-image baselines, and the ways of evaluating a
synthetic set. Every figure function of :mod:`ddlib.plots` colours a series with :func:`colour_of`, and
plotly express figures the chapters draw (``px.line(..., color="method")``) get the same colours through
``px.defaults.color_discrete_map`` (:class:`MethodColourMap`, which also knows the labels the chapters
use: ``"k-center"``, ``"random real"``, ``"new head (probe)"``, ...). Other categories (an IPC, a metric, a
method's variant such as ``"bps (centre share 0)"``) take :data:`PALETTE`, in order.

**Tables.** pandas prints every row and column of a DataFrame (no ``...`` truncation): a table in the
book is read in full or folded by the chapter, never cut by pandas. Wide tables wrap their headers and
text cells in the page (``book/_vendor/ddlib.css``).

Figures set a height only, never a width: plotly then fills the width of what holds it (the book's
text column, a notebook's output area) and follows it when the window changes, so no figure is
laid out wider than the column and clipped. Facets wrap (two per row) rather than squeeze.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.io as pio
from plotly.io._base_renderers import MimetypeRenderer

__all__ = ["METHOD_COLOURS", "ALIASES", "PALETTE", "CONTEXT_GREY", "canonical", "colour_of", "colours_for",
           "MethodColourMap", "PLOTLY_JS_NAME", "BookRenderer", "show_tables_in_full"]

#: One colour per method, for every figure of the book (keys: :func:`canonical` names).
METHOD_COLOURS: dict[str, str] = {
    # Balanced Pattern Selection and the coreset baselines (chapters 2 and 5)
    "bps": "#d62728",            # red
    "random": "#7f7f7f",         # grey
    "herding": "#ff7f0e",        # orange
    "kcenter": "#2ca02c",        # green
    "forgetting": "#9467bd",     # purple
    "centroids": "#8c564b",      # brown
    # Statistical Flow Matching, its reference, and the real-image baselines (chapters 3 to 5)
    "sfm": "#1f77b4",            # blue
    "lgm": "#17becf",            # cyan
    "random-real": "#525252",    # dark grey: real images at random, as "random"
    "centroid-real": "#e377c2",  # pink
    # the ways of evaluating a synthetic set (chapters 4 and 5)
    "probe": "#bcbd22",          # olive
    "ci": "#393b79",             # indigo
    "kd": "#8c6d31",             # ochre
}

#: Labels the chapters and figures use for the methods above (lower case, spaces and underscores as hyphens).
ALIASES: dict[str, str] = {
    "k-center": "kcenter", "k-centre": "kcenter", "kcentre": "kcenter", "k-center-greedy": "kcenter",
    "centroid": "centroids", "k-means-centroids": "centroids",
    "el2n": "forgetting",
    "balanced-pattern-selection": "bps",
    "statistical-flow-matching": "sfm",
    "real-random": "random-real", "random-real-images": "random-real",
    "centroids-real": "centroid-real", "real-centroids": "centroid-real", "centroid-real-images": "centroid-real",
    "centre-nearest-real-images": "centroid-real", "centroid-nearest-real-images": "centroid-real",
    "new-head": "probe", "new-head-(probe)": "probe", "linear-probe": "probe",
    "classifier-inheritance": "ci", "inherited-head": "ci",
    "kd-from-inherited-head": "kd", "knowledge-distillation": "kd",
}

#: Colours of series that are not methods (an IPC, a metric, a loss), in order: a family of its own
#: (blue-green to yellow) so that they do not read as a method.
PALETTE = ("#21918c", "#440154", "#3b528b", "#5ec962", "#31688e", "#35b779", "#90d743", "#fde725")

#: The colour of points or series shown for context only (the patterns beyond the largest ones).
CONTEXT_GREY = "#c8c8c8"

def canonical(name: object) -> str | None:
    """The key of :data:`METHOD_COLOURS` that ``name`` names (``"K-Center"``, ``"random real"``, ``"new head
    (probe)"``), or None when it names no method. A variant (``"bps (centre share 0)"``, ``"SFM (chunked)"``)
    names no method: it is drawn beside its method, so it must not take the method's colour."""
    if not isinstance(name, str):
        return None
    text = re.sub(r"[\s_]+", "-", name.strip().lower())
    if text in METHOD_COLOURS:
        return text
    return ALIASES.get(text)


def colour_of(name: object, i: int = 0) -> str:
    """The book's colour of the series ``name``: its method's (:data:`METHOD_COLOURS`), else the ``i``-th
    colour of :data:`PALETTE`."""
    key = canonical(name)
    return METHOD_COLOURS[key] if key is not None else PALETTE[i % len(PALETTE)]


def colours_for(names: Iterable[object]) -> dict[object, str]:
    """Each name's colour (:func:`colour_of`); the names that are no method take :data:`PALETTE` in order."""
    out, others = {}, 0
    for name in names:
        if name in out:
            continue
        if canonical(name) is None:
            out[name] = PALETTE[others % len(PALETTE)]
            others += 1
        else:
            out[name] = colour_of(name)
    return out


class MethodColourMap(dict):
    """``px.defaults.color_discrete_map``: every method label (:func:`canonical`) has its colour; plotly
    express adds the other categories to the map as it meets them (from :data:`PALETTE`, counted from the
    first category that is no method, because :meth:`__len__` counts only those)."""

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or canonical(key) is not None

    def __getitem__(self, key: object) -> str:
        if dict.__contains__(self, key):
            return dict.__getitem__(self, key)
        c = canonical(key)
        if c is None:
            raise KeyError(key)
        return METHOD_COLOURS[c]

    def get(self, key: object, default: Any = None) -> Any:
        return self[key] if key in self else default

    def copy(self) -> MethodColourMap:  # plotly express copies the map for every figure
        return MethodColourMap(dict(self))


# ----------------------------------------------------------------------------- the renderer
#: What the book serves once for the site (``book/_ext/plotly_static.py`` copies plotly's bundled file there)
PLOTLY_JS_NAME = "plotly.min.js"


class BookRenderer(MimetypeRenderer):
    """A figure as ``text/html`` without plotly.js (the page loads the site's one copy), plus plotly's own
    mime type (JupyterLab, VS Code) when ``plotly_mime``. ``post_script`` (JavaScript run after the figure is
    drawn, ``{plot_id}`` its div's id) and ``config`` are plotly's ``fig.show(post_script=…, config=…)``."""

    def __init__(self, config: Mapping[str, Any] | None = None, post_script: str | list[str] | None = None,
                 default_height: int = 525, plotly_mime: bool = True) -> None:
        self.config = dict(config) if config else {}
        self.post_script = post_script
        self.default_height = default_height
        self.plotly_mime = plotly_mime

    def to_mimebundle(self, fig_dict: dict) -> dict:
        from plotly.io import to_html, to_json

        post = self.post_script if isinstance(self.post_script, (list, tuple)) or self.post_script is None \
            else [self.post_script]
        html = to_html(fig_dict, config={"responsive": True, **self.config}, include_plotlyjs=False,
                       include_mathjax=False, post_script=list(post) if post else None, full_html=False,
                       default_width="100%", default_height=self.default_height, validate=False)
        if not self.plotly_mime:
            return {"text/html": html}
        mime = json.loads(to_json(fig_dict, validate=False, remove_uids=False))
        if self.config:
            mime["config"] = self.config
        return {"text/html": html, "application/vnd.plotly.v1+json": mime}


pio.renderers["book"] = BookRenderer()
# the book's pages: no plotly toolbar, which covered the figures' titles on hover (a reader still zooms by
# dragging and resets by double-clicking); Jupyter keeps it
pio.renderers["book_page"] = BookRenderer(config={"displayModeBar": False}, plotly_mime=False)
_asked = os.environ.get("PLOTLY_RENDERER")
pio.renderers.default = "book" if _asked is None else "book_page" if _asked == "notebook" else _asked

# plotly express: every method its colour, other categories the palette
px.defaults.color_discrete_map = MethodColourMap()
px.defaults.color_discrete_sequence = list(PALETTE)


# ----------------------------------------------------------------------------- tables
def show_tables_in_full() -> None:
    """pandas prints every row and column and the whole of each cell (called on import of :mod:`ddlib.plots`)."""
    pd.set_option("display.max_rows", None)
    pd.set_option("display.max_columns", None)
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.width", None)  # text tables: as wide as they are (the page wraps them)


show_tables_in_full()
