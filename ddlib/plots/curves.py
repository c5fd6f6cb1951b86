"""Figures of values over steps, epochs or IPCs: one line per named series, with error bars where given."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from ddlib.plots.style import colours_for

__all__ = ["curves_figure", "lines_figure"]


def curves_figure(series: Mapping[str, Sequence[float]], title: str | None = None, yaxis: str = "",
                  xaxis: str = "step", smooth: int = 1, log_y: bool = False, first: int = 0) -> go.Figure:
    """One line per entry of ``series`` (name -> one value per step), at x = ``first``, ``first`` + 1, …

    ``smooth`` > 1 draws each line faintly and adds its running mean over ``smooth`` values (x at the
    window's last value); ``log_y`` puts the y axis on a log scale. Chapter 3 plots optimisation steps
    (``xaxis="step"``, from 0); chapter 4 epochs (``xaxis="epoch", first=1``).
    """
    colours = colours_for(series)  # a method's series in its colour (ddlib.plots.style), others in order
    fig = go.Figure()
    for name, ys in series.items():
        y = np.asarray(ys, dtype=float)
        x = first + np.arange(len(y))
        colour = colours[name]
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=name, line=dict(color=colour, width=1),
                                 opacity=0.45 if smooth > 1 else 1.0))
        if smooth > 1 and len(y) >= smooth:
            k = np.ones(smooth) / smooth
            fig.add_trace(go.Scatter(x=x[smooth - 1:], y=np.convolve(y, k, mode="valid"), mode="lines",
                                     name=f"{name} (running mean of {smooth})", line=dict(color=colour, width=2.5)))
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, height=420,
                      yaxis_type="log" if log_y else "linear",
                      margin=dict(l=60, r=10, t=50 if title else 10, b=50), plot_bgcolor="white")
    fig.update_xaxes(showgrid=True, gridcolor="#eee")
    fig.update_yaxes(showgrid=True, gridcolor="#eee")
    return fig


def lines_figure(rows: Sequence[Mapping[str, Any]], x: str, y: str, group: str, *, error: str | None = None,
                 facet: str | None = None, facet_label: str = "", title: str | None = None, xaxis: str = "",
                 yaxis: str = "", log_x: bool = False, height: int = 420) -> go.Figure:
    """One line with markers per ``group`` value through the rows' (``x``, ``y``) points, x in increasing order.

    ``error``: a field holding each point's half-width (error bars: a 95 % interval's half, say). ``facet``: one
    panel per value, side by side when two, stacked beyond (each titled ``facet_label`` value); the x ticks are
    the x values themselves (budgets, IPCs), never a log axis's minor ticks. Chapter 2's accuracy against IPC
    and against student epochs."""
    from plotly.subplots import make_subplots

    rows = [dict(r) for r in (rows.to_dict("records") if hasattr(rows, "to_dict") else rows)]
    facets = list(dict.fromkeys(r[facet] for r in rows)) if facet else [None]
    cols = 2 if len(facets) == 2 else 1
    n_rows = 1 if cols == 2 else len(facets)
    fig = make_subplots(rows=n_rows, cols=cols, shared_yaxes=cols == 2, horizontal_spacing=0.06,
                        subplot_titles=[f"{facet_label} {f}".strip() for f in facets] if facet else None)
    groups = list(dict.fromkeys(r[group] for r in rows))
    colours = colours_for(groups)  # a method in its colour in every chapter
    for i, f in enumerate(facets):
        where = dict(row=1, col=i + 1) if cols == 2 else dict(row=i + 1, col=1)
        for g in groups:
            sel = sorted((r for r in rows if r[group] == g and (facet is None or r[facet] == f)), key=lambda r: r[x])
            fig.add_trace(go.Scatter(x=[r[x] for r in sel], y=[r[y] for r in sel], mode="lines+markers", name=str(g),
                                     legendgroup=str(g), showlegend=i == 0,
                                     line=dict(color=colours[g]),
                                     error_y=dict(type="data", array=[r[error] for r in sel]) if error else None),
                          **where)
        ticks = sorted({r[x] for r in rows if facet is None or r[facet] == f})
        fig.update_xaxes(type="log" if log_x else "linear", tickvals=ticks, title_text=xaxis, **where)
        fig.update_yaxes(title_text=yaxis if (cols == 1 or i == 0) else "", **where)
    fig.update_layout(title=title, height=height if cols == 2 else height * len(facets),
                      margin=dict(l=60, r=10, t=60 if title else 30, b=50), plot_bgcolor="white")
    fig.update_xaxes(showgrid=True, gridcolor="#eee")
    fig.update_yaxes(showgrid=True, gridcolor="#eee")
    return fig
