"""Plotly figures of chapter 3 (statistical flow): flows in a 2-D PCA, curves over the steps, a cost table.

Kept beside the SFM code rather than in :mod:`ddlib.plots` (whose renderer setting they share by
importing it) so that the chapters' plot module stays small.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch

from ddlib import plots  # noqa: F401  (sets the plotly renderer)
from ddlib.sfm.stats import flows

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")


def pca_basis(features: torch.Tensor, k: int = 2) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(mean (D,), components (D, k), explained variance ratio (k,)) of ``features`` (N, D)."""
    x = features.double()
    mean = x.mean(0)
    _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
    var = s**2
    return mean.float(), vt[:k].t().float(), (var[:k] / var.sum()).numpy()


def flow_pca_figure(real_centres: torch.Tensor, synthetic: dict[str, torch.Tensor], classes: Sequence[str],
                    real_features: torch.Tensor | None = None, real_labels: torch.Tensor | None = None,
                    title: str | None = None) -> go.Figure:
    """Class centres and their flows (arrows from each centre to the mean of the other centres) in the
    2-D PCA of the real features: the real set and every synthetic set of ``synthetic`` (name -> class
    means (C, D)), each a legend entry that can be toggled; hover shows the class.

    The PCA is fitted on ``real_features`` when given (drawn faintly, coloured by class), else on
    the centres.
    """
    basis_src = real_features if real_features is not None else real_centres
    mean, comp, ratio = pca_basis(basis_src.float())

    def proj(z: torch.Tensor) -> np.ndarray:
        return ((z.float() - mean) @ comp).numpy()

    fig = go.Figure()
    if real_features is not None and real_labels is not None:
        xy = proj(real_features)
        fig.add_trace(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers", name="real features",
                                   marker=dict(size=3, color=real_labels.numpy(), colorscale="Turbo", opacity=0.25),
                                   text=[classes[i] for i in real_labels.tolist()], hoverinfo="text"))
    sets = {"real (dataset centres)": real_centres, **synthetic}
    for i, (name, mu) in enumerate(sets.items()):
        colour = PALETTE[i % len(PALETTE)]
        start, end = proj(mu), proj(mu + flows(mu))
        xs, ys, sizes, texts = [], [], [], []
        for c in range(len(classes)):
            xs += [start[c, 0], end[c, 0], None]
            ys += [start[c, 1], end[c, 1], None]
            sizes += [9, 13, 0]
            texts += [f"{name}: {classes[c]} centre", f"{name}: mean of the other classes (from {classes[c]})", ""]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=name, text=texts, hoverinfo="text",
                                 line=dict(color=colour, width=2, dash="solid" if i == 0 else "dot"),
                                 marker=dict(size=sizes, color=colour, symbol=["circle", "arrow", "circle"] * len(classes),
                                             angleref="previous")))
        fig.add_trace(go.Scatter(x=start[:, 0], y=start[:, 1], mode="text", text=list(classes), showlegend=False,
                                 textposition="top center", textfont=dict(color=colour, size=10), hoverinfo="skip",
                                 legendgroup=name, visible=True if i == 0 else "legendonly"))
    fig.update_layout(title=title, height=620, xaxis_title=f"PC 1 ({100 * ratio[0]:.0f} % of variance)",
                      yaxis_title=f"PC 2 ({100 * ratio[1]:.0f} % of variance)", legend=dict(orientation="h", y=-0.15),
                      margin=dict(l=60, r=10, t=50 if title else 10, b=80), plot_bgcolor="white")
    fig.update_xaxes(showgrid=True, gridcolor="#eee", zeroline=False)
    fig.update_yaxes(showgrid=True, gridcolor="#eee", zeroline=False, scaleanchor="x")
    return fig


def curves_figure(series: dict[str, Sequence[float]], title: str | None = None, yaxis: str = "",
                  xaxis: str = "step", smooth: int = 1) -> go.Figure:
    """One line per entry of ``series`` (name -> values per step); ``smooth`` > 1 adds a running mean."""
    fig = go.Figure()
    for i, (name, ys) in enumerate(series.items()):
        y = np.asarray(ys, dtype=float)
        colour = PALETTE[i % len(PALETTE)]
        fig.add_trace(go.Scatter(y=y, mode="lines", name=name, line=dict(color=colour, width=1),
                                 opacity=0.45 if smooth > 1 else 1.0))
        if smooth > 1 and len(y) >= smooth:
            k = np.ones(smooth) / smooth
            fig.add_trace(go.Scatter(x=np.arange(smooth - 1, len(y)), y=np.convolve(y, k, mode="valid"), mode="lines",
                                     name=f"{name} (mean of {smooth})", line=dict(color=colour, width=2.5)))
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, height=420,
                      margin=dict(l=60, r=10, t=50 if title else 10, b=50), plot_bgcolor="white")
    fig.update_xaxes(showgrid=True, gridcolor="#eee")
    fig.update_yaxes(showgrid=True, gridcolor="#eee")
    return fig


def cost_table(results: dict[str, dict]) -> pd.DataFrame:
    """Wall time, time per step, peak memory and final flow cosine of distillation results (name -> result)."""
    rows = {}
    for name, r in results.items():
        steps = len(r["history"]["loss"])
        rows[name] = {"steps": steps, "wall time (s)": round(r["wall_time"], 2),
                      "ms per step": round(1000 * r["wall_time"] / max(steps, 1), 1),
                      "statistics pass (s)": round(r.get("stats_time", 0.0), 2),
                      "peak memory (MiB)": round(r["peak_mem"] / 2**20, 1),
                      "final loss": round(r["history"]["loss"][-1], 4),
                      "final flow cosine": round(r["history"]["flow_cos"][-1], 4)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")
