"""Bar charts: patterns found per class (stacked), grouped bars of a table (a value per category and group, in
facets), accuracy per evaluation backbone and mode, bytes stored."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from ddlib.plots.style import CONTEXT_GREY, PALETTE, colour_of, colours_for

__all__ = ["MODE_LABELS", "pattern_counts", "accuracy_figure", "bytes_figure", "grouped_bars"]

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
                    title: str = "Test accuracy by evaluation backbone",
                    ceiling_label: str = "golden head, all training images") -> go.Figure:
    """Grouped bars: x = evaluation backbone (and set), one bar per mode in its colour (:func:`colour_of`),
    error bars = std over runs (%).

    ``rows``: dicts with ``eval_backbone``, ``mode``, ``acc``, ``acc_std`` and optionally ``set``;
    ``ceiling``: the golden head's accuracy on the distillation backbone (a dashed line), labelled
    ``ceiling_label`` (say what it learned from: a subsample is not "all training images").
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
        fig.add_hline(y=100 * ceiling, line_dash="dash", annotation_text=ceiling_label,
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


def grouped_bars(rows: Sequence[Mapping[str, Any]], x: str, y: str, group: str, *, title: str | None = None,
                 yaxis: str = "", facet: str | None = None, facet_titles: Mapping[Any, str] | None = None,
                 y_range: tuple[float, float] | None = None, hline: float | None = None, group_title: str = "",
                 height: int = 400) -> go.Figure:
    """Grouped bars of a long table: one bar per ``group`` value at each ``x`` category, height ``y``.

    ``rows``: mappings (or a DataFrame's records) with the ``x``, ``y`` and ``group`` fields (and ``facet``);
    categories and groups keep their first-seen order. ``facet``: one panel per value, stacked (each its own
    y axis; ``facet_titles`` names them), so the figure stays as wide as the column. ``hline``: a dotted line
    at that height. Chapter 2's centre shares (x = method, group = IPC) and coverage (facet = metric)."""
    from plotly.subplots import make_subplots

    rows = [dict(r) for r in (rows.to_dict("records") if hasattr(rows, "to_dict") else rows)]
    facets = list(dict.fromkeys(r[facet] for r in rows)) if facet else [None]
    titles = [str((facet_titles or {}).get(f, f)) for f in facets] if facet else None
    fig = make_subplots(rows=len(facets), cols=1, subplot_titles=titles, vertical_spacing=0.12 if facet else 0.0)
    groups = list(dict.fromkeys(r[group] for r in rows))
    colours = colours_for(groups)  # a method in its colour in every chapter
    for i, f in enumerate(facets):
        for g in groups:
            sel = [r for r in rows if r[group] == g and (facet is None or r[facet] == f)]
            fig.add_trace(go.Bar(x=[r[x] for r in sel], y=[r[y] for r in sel], name=str(g), legendgroup=str(g),
                                 showlegend=i == 0, marker_color=colours[g],
                                 hovertemplate="%{x}: %{y:.3g}<extra>" + f"{group_title} {g}".strip() + "</extra>"),
                          row=i + 1, col=1)
        fig.update_yaxes(title_text=yaxis, range=list(y_range) if y_range else None, row=i + 1, col=1)
        if hline is not None:
            fig.add_hline(y=hline, line_dash="dot", line_color="#555", row=i + 1, col=1)
    fig.update_layout(barmode="group", title=title, height=height * len(facets) if facet else height,
                      legend_title_text=group_title, margin=dict(l=60, r=10, t=60 if title else 30, b=40))
    return fig
