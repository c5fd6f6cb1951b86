"""What every figure shares: the book's plotly renderer and the palette.

Importing :mod:`ddlib.plots` (which imports this module) sets plotly's renderer to ``"book"``: plotly's
``"notebook"`` renderer (plotly.js embedded in the output, so that Jupyter Book 1.x, which drops plotly's
own mime type, keeps the figures and they draw offline) without the MathJax script it loads from a CDN
into every figure (an error in an offline reader's console; the book serves MathJax itself).
``$PLOTLY_RENDERER`` naming any other renderer wins. Chapters just call ``fig.show()``.

Figures set a height only, never a width: plotly then fills the width of what holds it (the book's
text column, a notebook's output area) and follows it when the window changes, so no figure is
laid out wider than the column and clipped. Facets wrap (two per row) rather than squeeze.
"""
from __future__ import annotations

import os
import re

import plotly.io as pio
from plotly.io._base_renderers import NotebookRenderer

#: Line and marker colours of figures that draw several named series (plotly's first defaults, red second).
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")

_CDN_MATHJAX = re.compile(r'<script src="https://cdnjs\.cloudflare\.com/ajax/libs/mathjax/[^"]*"></script>')


class BookRenderer(NotebookRenderer):
    """plotly's ``notebook`` renderer (plotly.js embedded once) minus the CDN MathJax of every figure."""

    def to_mimebundle(self, fig_dict: dict) -> dict:
        bundle = super().to_mimebundle(fig_dict)
        bundle["text/html"] = _CDN_MATHJAX.sub("", bundle["text/html"])
        return bundle


pio.renderers["book"] = BookRenderer()
pio.renderers.default = ("book" if os.environ.get("PLOTLY_RENDERER", "notebook") == "notebook"
                         else os.environ["PLOTLY_RENDERER"])
