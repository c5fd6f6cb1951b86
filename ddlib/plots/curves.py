"""Figures of values over steps or epochs: one line per named series."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ddlib.plots.style import colours_for

__all__ = ["curves_figure"]


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
                                     name=f"{name} (mean of {smooth})", line=dict(color=colour, width=2.5)))
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, height=420,
                      yaxis_type="log" if log_y else "linear",
                      margin=dict(l=60, r=10, t=50 if title else 10, b=50), plot_bgcolor="white")
    fig.update_xaxes(showgrid=True, gridcolor="#eee")
    fig.update_yaxes(showgrid=True, gridcolor="#eee")
    return fig
