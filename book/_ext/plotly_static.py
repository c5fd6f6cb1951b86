"""plotly.js once for the whole site: ``_static/plotly.min.js``, loaded by the pages that draw a figure.

The book's renderer (``ddlib.plots.style.BookRenderer``) writes each figure without plotly.js, so a page
weighs what its figures' data weigh, not 4.8 MB more. This extension copies the plotly.js that the installed
plotly package bundles (the version the figures were written for) into the site's ``_static`` folder when
the build ends, and adds ``<script src="_static/plotly.min.js">`` to the head of every page whose body holds
a plotly figure (``plotly-graph-div``); a browser then fetches it once for the whole site and draws offline.

Each figure's output also carries plotly's own mime type (``application/vnd.plotly.v1+json``, for JupyterLab
and VS Code), which myst-nb does not know and warns about (a failure under ``-W``) even though it renders the
figure's ``text/html`` beside it. That one warning is dropped; any other unknown mime type still fails the build.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

NAME = "plotly.min.js"
PLOTLY_MIME = "application/vnd.plotly.v1+json"


class _KnownPlotlyMime(logging.Filter):
    """Drops myst-nb's "skipping unknown output mime type: application/vnd.plotly.v1+json" (the figure is drawn
    from its text/html); placed before Sphinx's own filters, so it is not counted as a warning either."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (getattr(record, "subtype", "") == "unknown_mime_type" and PLOTLY_MIME in record.getMessage())


def plotly_js_source() -> Path:
    """The plotly.min.js bundled with the installed plotly package."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / NAME


def _add_to_figure_pages(app, pagename, templatename, context, doctree) -> None:  # noqa: ANN001 - Sphinx's signature
    if "plotly-graph-div" in context.get("body", ""):
        app.add_js_file(NAME, priority=200)  # this page only (Sphinx resets the list per page); before the body's scripts


def _copy(app, exception) -> None:  # noqa: ANN001
    if exception is None and app.builder.format == "html":
        static = Path(app.outdir) / "_static"
        static.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(plotly_js_source(), static / NAME)


def setup(app):  # noqa: ANN001, ANN201
    for handler in logging.getLogger("sphinx").handlers:  # Sphinx sets its handlers up before loading extensions
        if not any(isinstance(f, _KnownPlotlyMime) for f in handler.filters):
            handler.filters.insert(0, _KnownPlotlyMime())
    app.connect("html-page-context", _add_to_figure_pages)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
