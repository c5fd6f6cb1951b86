"""Bar charts: patterns found per class (stacked), accuracy per evaluation backbone and mode, bytes stored."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from ddlib.plots.style import CONTEXT_GREY, PALETTE, colour_of, colours_for

__all__ = ["MODE_LABELS", "pattern_counts", "accuracy_figure", "bytes_figure"]

#: Legend names of classifier inheritance's evaluation modes (``ddlib.sfm.inherit.MODES``).
MODE_LABELS = {"probe": "new head (probe)", "ci": "classifier inheritance", "kd": "KD from inherited head"}


def pattern_counts(num_patterns: dict[int, int], singletons: dict[int, int], classes: Sequence[str],
                   title: str | None = None) -> go.Figure:
    """Bars per class: the patterns Infomap found, split into multi-image patterns and singletons."""
    cs = sorted(num_patterns)
    names = [classes[c] for c in cs]
    single = [singletons.get(c, 0) for c in cs]
    multi = [num_patterns[c] - s for c, s in zip(cs, single)]
    fig = go.Figure([go.Bar(x=names, y=multi, name="patterns of 2+ images", marker_color=PALETTE[0]),
                     go.Bar(x=names, y=single, name="singletons", marker_color=CONTEXT_GREY)])
    fig.update_layout(barmode="stack", title=title, yaxis_title="patterns found", height=400,
                      margin=dict(l=60, r=10, t=50 if title else 10, b=60))
    return fig


def accuracy_figure(rows: Sequence[Mapping[str, Any]], ceiling: float | None = None,
                    title: str = "Test accuracy by evaluation backbone") -> go.Figure:
    """Grouped bars: x = evaluation backbone (and set), one bar per mode in its colour (:func:`colour_of`),
    error bars = std over runs (%).

    ``rows``: dicts with ``eval_backbone``, ``mode``, ``acc``, ``acc_std`` and optionally ``set``;
    ``ceiling``: the golden head's accuracy on the distillation backbone (a dashed line).
    """
    sets = list(dict.fromkeys(r.get("set", "") for r in rows))
    fig = go.Figure()
    for mode in dict.fromkeys(r["mode"] for r in rows):
        sel = [r for r in rows if r["mode"] == mode]
        x = [[r.get("set", "") for r in sel], [r["eval_backbone"] for r in sel]] if len(sets) > 1 \
            else [r["eval_backbone"] for r in sel]
        fig.add_bar(name=MODE_LABELS.get(mode, mode), x=x, y=[100 * r["acc"] for r in sel], marker_color=colour_of(mode),
                    error_y=dict(type="data", array=[100 * r.get("acc_std", 0.0) for r in sel]),
                    hovertemplate="%{x}<br>%{y:.1f} %<extra>" + MODE_LABELS.get(mode, mode) + "</extra>")
    if ceiling is not None:
        fig.add_hline(y=100 * ceiling, line_dash="dash", annotation_text="golden head, full data",
                      annotation_position="top left")
    fig.update_layout(barmode="group", title=title, yaxis_title="test accuracy (%)", legend_title="mode",
                      height=450)
    return fig


def bytes_figure(sizes: Mapping[str, Mapping[str, int | None]],
                 title: str = "What each way of evaluating stores (bytes, log scale)") -> go.Figure:
    """Grouped bars on a log axis: per evaluation backbone, the bytes of each stored part."""
    parts = list(dict.fromkeys(k for v in sizes.values() for k in v))
    colours = colours_for(parts)
    fig = go.Figure()
    for part in parts:
        fig.add_bar(name=part, x=list(sizes), y=[sizes[b].get(part) for b in sizes], marker_color=colours[part],
                    hovertemplate="%{x}: %{y:,} bytes<extra>" + part + "</extra>")
    fig.update_layout(barmode="group", title=title, yaxis_type="log", yaxis_title="bytes", height=420)
    return fig
