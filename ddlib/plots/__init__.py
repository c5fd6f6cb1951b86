"""Plotly figures and tables the chapters show, one module per kind of figure:

- :mod:`~ddlib.plots.images`: image grids (class by class, a pattern's nearest, centre and margin picks);
- :mod:`~ddlib.plots.embeddings`: points in 2-D (UMAP/PCA projections with thumbnails, flows in a PCA);
- :mod:`~ddlib.plots.curves`: values over steps or epochs;
- :mod:`~ddlib.plots.bars`: bar charts (patterns per class, accuracy per backbone and mode, bytes stored);
- :mod:`~ddlib.plots.tables`: DataFrames (class balance, the cost of distillation runs, :class:`WholeTable`:
  a frame never cut short on the page);
- :mod:`~ddlib.plots.style`: the book's renderer and pandas' display options (both set on import, see
  there: every frame prints whole, :class:`WholeTable` or not) and the palette: one colour per method for
  the whole book (:data:`METHOD_COLOURS`, :func:`colour_of`).

Chapters call ``plots.NAME`` (every public name is re-exported here). The package sits low: it imports
``ddlib.utils`` and nothing else of ddlib (never ``bps``, ``sfm`` or ``book``); what a figure needs from a
method (e.g. the flows of :func:`flow_pca_figure`) is passed in.
"""
from __future__ import annotations

from ddlib.plots.bars import MODE_LABELS, accuracy_figure, bytes_figure, grouped_bars, pattern_counts
from ddlib.plots.curves import curves_figure, lines_figure
from ddlib.plots.embeddings import (HOVER_THUMBNAIL_JS, PATTERN_COLOURS, embedding_scatter, flow_pca_figure,
                                    largest_groups, pca_basis, project_2d, thin)
from ddlib.plots.images import centre_margin_grid, class_samples, image_grid, pattern_grid, png_data_uri, to_uint8
from ddlib.plots.style import (CONTEXT_GREY, METHOD_COLOURS, PALETTE, BookRenderer, canonical, colour_of, colours_for,
                               show_tables_in_full)
from ddlib.plots.tables import WholeTable, class_balance, run_costs, whole_table

__all__ = ["MODE_LABELS", "METHOD_COLOURS", "PALETTE", "CONTEXT_GREY", "PATTERN_COLOURS", "HOVER_THUMBNAIL_JS",
           "BookRenderer", "accuracy_figure", "bytes_figure", "canonical", "centre_margin_grid", "class_balance",
           "class_samples", "colour_of", "colours_for", "curves_figure", "run_costs", "embedding_scatter",
           "flow_pca_figure", "grouped_bars", "image_grid", "lines_figure", "largest_groups", "pattern_counts", "pattern_grid", "pca_basis",
           "png_data_uri", "project_2d", "show_tables_in_full", "thin", "to_uint8", "WholeTable", "whole_table"]
