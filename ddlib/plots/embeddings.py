"""Figures of points in two dimensions: embeddings projected by UMAP or PCA (with image thumbnails on hover),
and class centres with their flows in the PCA of a backbone's features.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from ddlib.plots.images import png_data_uri, to_uint8
from ddlib.plots.style import PALETTE

#: A plotly ``post_script`` for :func:`embedding_scatter`: on hover, the figure's corner image
#: (``layout.images[0]``) shows the hovered point's thumbnail (``customdata[0]``, a PNG data URI).
#: Plotly's hover box renders text only (no ``<img>``), so the picture is drawn by the figure
#: itself; it works in the static book page, offline. Use ``fig.show(post_script=HOVER_THUMBNAIL_JS)``.
HOVER_THUMBNAIL_JS = """
var gd = document.getElementById('{plot_id}');
if (gd && gd.on) {
  gd.on('plotly_hover', function (ev) {
    var p = ev.points && ev.points[0];
    if (p && p.customdata && p.customdata[0]) {
      Plotly.relayout(gd, {'images[0].source': p.customdata[0]});
    }
  });
}
"""


def project_2d(emb: torch.Tensor, method: str = "umap", seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """2-D coordinates of embeddings (n, D) by UMAP (cosine metric; umap-learn) or PCA."""
    from ddlib.utils import check_choice

    check_choice("projection", method, ("umap", "pca"))
    x = emb.detach().cpu().float().numpy()
    if len(x) < 3:
        return np.pad(x[:, :2], ((0, 0), (0, max(0, 2 - x.shape[1]))))
    if method == "umap" and len(x) > n_neighbors + 1:
        with warnings.catch_warnings():  # umap imports a progress-bar module that warns in a kernel without
            warnings.filterwarnings("ignore", message="IProgress not found")  # ipywidgets: a stray block on the page
            import umap

        return umap.UMAP(n_neighbors=n_neighbors, min_dist=0.1, metric="cosine", random_state=seed,
                         n_jobs=1).fit_transform(x)
    x = x - x.mean(0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, :2] * s[:2]


#: colours of the largest groups of :func:`embedding_scatter` (ten that stay apart; the rest are :data:`OTHER`)
LARGEST_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
                   "#bcbd22", "#393b79")
#: the grey of the groups :func:`embedding_scatter` does not colour
OTHER = "#c7c7c7"


def embedding_scatter(xy: np.ndarray, groups: Sequence[int], images: torch.Tensor, title: str | None = None,
                      index: Sequence[int] | None = None, thumb_px: int = 112, largest: int | None = None) -> go.Figure:
    """A scatter of 2-D points coloured by group (pattern), each carrying its image thumbnail.

    ``largest``: colour only the ``largest`` biggest groups (ten colours that stay apart, :data:`LARGEST_COLOURS`)
    and draw every other point in one grey trace beneath them (:data:`OTHER`, "other patterns"): with dozens of
    patterns, one colour each would repeat colours. None: one trace per group. The thumbnails ride in
    ``customdata``; show the figure with ``post_script=HOVER_THUMBNAIL_JS`` to see the hovered image in the
    right margin, above the legend (the first image is shown until then).
    """
    x = to_uint8(images)
    groups = np.asarray(groups)
    index = np.arange(len(x)) if index is None else np.asarray(index)
    scale = max(1, round(thumb_px / max(x.shape[1:3])))
    uris = np.array([png_data_uri(img, scale) for img in x])
    ids, counts = np.unique(groups, return_counts=True)
    by_size = [int(g) for g in ids[np.lexsort((ids, -counts))]]  # largest first, ties by id
    shown = by_size if largest is None else by_size[:largest]
    fig = go.Figure()
    rest = ~np.isin(groups, shown)
    if rest.any():
        fig.add_trace(go.Scattergl(
            x=xy[rest, 0], y=xy[rest, 1], mode="markers",
            name=f"{len(by_size) - len(shown)} other patterns ({int(rest.sum())})",
            marker=dict(size=5, color=OTHER), customdata=np.stack([uris[rest], index[rest].astype(str),
                                                                  groups[rest].astype(str)], axis=1),
            hovertemplate="pattern %{customdata[2]}<br>image #%{customdata[1]}<extra></extra>"))
    for i, g in enumerate(shown if largest is not None else sorted(shown)):
        m = groups == g
        colour = dict(color=LARGEST_COLOURS[i % len(LARGEST_COLOURS)]) if largest is not None else {}
        fig.add_trace(go.Scattergl(
            x=xy[m, 0], y=xy[m, 1], mode="markers", name=f"pattern {g} ({int(m.sum())})",
            marker=dict(size=7, line=dict(width=0.5, color="white"), **colour),
            customdata=np.stack([uris[m], index[m].astype(str)], axis=1),
            hovertemplate=f"pattern {g}<br>image #%{{customdata[1]}}<extra></extra>"))
    fig.update_layout(
        title=title, height=560, margin=dict(l=10, r=150, t=50 if title else 10, b=10),
        plot_bgcolor="white", legend=dict(x=1.02, y=0.62, xanchor="left", yanchor="top"),
        images=[dict(source=uris[0] if len(uris) else None, xref="paper", yref="paper", x=1.02, y=1.0,
                     sizex=0.2, sizey=0.35, xanchor="left", yanchor="top", layer="above")])
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    return fig


def pca_basis(features: torch.Tensor, k: int = 2) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """(mean (D,), components (D, k), explained variance ratio (k,)) of ``features`` (N, D)."""
    x = features.double()
    mean = x.mean(0)
    _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
    var = s**2
    return mean.float(), vt[:k].t().float(), (var[:k] / var.sum()).numpy()


def flow_pca_figure(real_centres: torch.Tensor, synthetic: dict[str, torch.Tensor], classes: Sequence[str],
                    real_features: torch.Tensor | None = None, real_labels: torch.Tensor | None = None,
                    title: str | None = None, *, flows: Callable[[torch.Tensor], torch.Tensor]) -> go.Figure:
    """Class centres and their flows (arrows from each centre to the mean of the other centres) in the
    2-D PCA of the real features: the real set and every synthetic set of ``synthetic`` (name -> class
    means (C, D)), each a legend entry that can be toggled; hover shows the class.

    ``flows`` maps class centres (C, D) to their flows (C, D): pass ``ddlib.sfm.stats.flows`` (the
    figure takes it as an argument because plots sit below ``ddlib.sfm`` and never import it).
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
