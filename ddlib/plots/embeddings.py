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
from ddlib.plots.style import CONTEXT_GREY, colour_of

__all__ = ["REAL_COLOUR", "PATTERN_COLOURS", "HOVER_THUMBNAIL_JS", "project_2d", "thin", "largest_groups",
           "embedding_scatter", "pca_basis", "flow_pca_figure"]

#: The real data's centres in :func:`flow_pca_figure` (the reference every set is compared with)
REAL_COLOUR = "#000000"

#: Colours of the largest patterns of :func:`embedding_scatter` (distinct from each other and from the grey
#: of the rest; patterns are no methods, so any distinct set does).
PATTERN_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#e377c2", "#8c564b",
                   "#bcbd22", "#393b79")

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


def project_2d(emb: torch.Tensor, method: str = "umap", seed: int = 0, n_neighbors: int = 15,
               neighbours: tuple[torch.Tensor, torch.Tensor] | None = None) -> np.ndarray:
    """2-D coordinates of embeddings (n, D) by UMAP (cosine metric; umap-learn) or PCA.

    ``neighbours``: UMAP's neighbour graph, ``(sims, idx)`` as :func:`ddlib.kernels.knn.knn` returns it for
    the unit-normalised embeddings with ``k=n_neighbors, exclude_self=False`` (exact cosine similarities,
    one matrix product per row block). Given, UMAP takes it (``precomputed_knn``) instead of building its own
    with pynndescent, whose numba compilation made the first projection of a fresh environment take 99.5 s
    against 19.9 s (6,000 points, ``benchmarks/bench_projection.py``); it is the graph pynndescent
    approximates. Without it UMAP finds its own neighbours."""
    from ddlib.utils import ParamError, check_choice

    check_choice("projection", method, ("umap", "pca"))
    x = emb.detach().cpu().float().numpy()
    if len(x) < 3:
        return np.pad(x[:, :2], ((0, 0), (0, max(0, 2 - x.shape[1]))))
    if method == "umap" and len(x) > n_neighbors + 1:
        graph = None
        if neighbours is not None:
            sims, idx = (torch.as_tensor(t).detach().cpu() for t in neighbours)
            if sims.shape != idx.shape or tuple(idx.shape) != (len(x), n_neighbors):
                raise ParamError(f"neighbours: (sims, idx) of shape ({len(x)}, {n_neighbors}) expected (one row "
                                 f"per point, n_neighbors={n_neighbors} each, itself included); got "
                                 f"{tuple(sims.shape)} and {tuple(idx.shape)}")
            graph = (*_self_first(idx.long().numpy(), (1.0 - sims.float()).clamp_min(0.0).numpy()), None)
        with warnings.catch_warnings():  # umap imports a progress-bar module that warns in a kernel without
            warnings.filterwarnings("ignore", message="IProgress not found")  # ipywidgets: a stray block on the page
            import umap

            warnings.filterwarnings("ignore", message=".*knn_search_index.*")  # no transform() is needed
            return umap.UMAP(n_neighbors=n_neighbors, min_dist=0.1, metric="cosine", random_state=seed, n_jobs=1,
                             precomputed_knn=graph or (None, None, None)).fit_transform(x)
    x = x - x.mean(0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, :2] * s[:2]


def _self_first(idx: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's own point in the first column at distance 0, as UMAP expects of a neighbour graph (an
    exact duplicate may tie with it and come first, or push it out of the row)."""
    idx, dist = idx.astype(np.int64).copy(), dist.astype(np.float32).copy()
    rows = np.arange(len(idx))
    for r in np.nonzero(idx[:, 0] != rows)[0]:
        at = np.nonzero(idx[r] == r)[0]
        j = at[0] if len(at) else idx.shape[1] - 1  # absent: it takes the farthest neighbour's place
        idx[r, 1:j + 1], dist[r, 1:j + 1] = idx[r, :j].copy(), dist[r, :j].copy()
    idx[:, 0], dist[:, 0] = rows, 0.0
    return idx, dist


def thin(groups: Sequence[int] | np.ndarray, max_points: int, seed: int = 0) -> np.ndarray:
    """The sorted indices of at most ``max_points`` points, drawn reproducibly (``seed``) and stratified by
    group: each group keeps its share of the points (at least one), so the picture's densities are the
    data's. All indices when there are ``max_points`` or fewer.

    A figure needs no more points than the eye can tell apart (a few hundred per pattern in a column-wide
    scatter); every point drawn costs page weight (and, in :func:`embedding_scatter`, a thumbnail).
    """
    groups = np.asarray(groups)
    n = len(groups)
    if max_points < 1:
        raise ValueError(f"max_points={max_points} must be >= 1")
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    ids, counts = np.unique(groups, return_counts=True)
    share = np.maximum(1, np.floor(counts * max_points / n)).astype(int)
    keep = []
    for g, k in zip(ids, share):
        members = np.flatnonzero(groups == g)
        keep.append(rng.choice(members, size=min(k, len(members)), replace=False))
    return np.sort(np.concatenate(keep))


def largest_groups(groups: Sequence[int] | np.ndarray, k: int) -> list[int]:
    """The ``k`` largest groups by size, largest first (ties: the smaller id first)."""
    ids, counts = np.unique(np.asarray(groups), return_counts=True)
    order = sorted(range(len(ids)), key=lambda i: (-counts[i], ids[i]))
    return [ids[i].item() for i in order[:k]]


def embedding_scatter(xy: np.ndarray, groups: Sequence[int], images: torch.Tensor, title: str | None = None,
                      index: Sequence[int] | None = None, top_k: int = 8, max_points: int = 800,
                      seed: int = 0) -> go.Figure:
    """A scatter of 2-D points coloured by group (pattern), each carrying its image thumbnail.

    The ``top_k`` largest patterns get distinct colours and a legend entry each (the legend sits below
    the plot, clear of the points); the other patterns are drawn grey, without a legend entry (their
    pattern shows on hover). At most ``max_points`` points are drawn, chosen by :func:`thin` (stratified by
    pattern, reproducible with ``seed``); the legend and the title count every point, and the figure's
    ``layout.meta`` holds ``{"drawn", "images"}`` for the prose to cite.

    The thumbnails ride in ``customdata`` at the images' own size (the corner image shows them enlarged;
    the book's CSS keeps the pixels sharp); show the figure with
    ``post_script=HOVER_THUMBNAIL_JS`` to see the hovered image in the top-right corner.
    """
    groups = np.asarray(groups)
    index = np.arange(len(groups)) if index is None else np.asarray(index)
    sizes = dict(zip(*(a.tolist() for a in np.unique(groups, return_counts=True))))
    top = largest_groups(groups, top_k)
    keep = thin(groups, max_points, seed)
    x = to_uint8(images[torch.as_tensor(keep, dtype=torch.long)])
    xy, groups, index = np.asarray(xy)[keep], groups[keep], index[keep]
    uris = np.array([png_data_uri(img) for img in x])
    fig = go.Figure()
    rest = ~np.isin(groups, top)
    if rest.any():
        fig.add_trace(go.Scattergl(
            x=xy[rest, 0], y=xy[rest, 1], mode="markers", name="other patterns", showlegend=False,
            marker=dict(size=5, color=CONTEXT_GREY), customdata=np.stack([uris[rest], index[rest].astype(str),
                                                                          groups[rest].astype(str)], axis=1),
            hovertemplate="pattern %{customdata[2]}<br>image #%{customdata[1]}<extra></extra>"))
    for i, g in enumerate(top):
        m = groups == g
        fig.add_trace(go.Scattergl(
            x=xy[m, 0], y=xy[m, 1], mode="markers", name=f"pattern {g} ({sizes[g]})",
            marker=dict(size=7, color=PATTERN_COLOURS[i % len(PATTERN_COLOURS)], line=dict(width=0.5, color="white")),
            customdata=np.stack([uris[m], index[m].astype(str)], axis=1),
            hovertemplate=f"pattern {g}<br>image #%{{customdata[1]}}<extra></extra>"))
    n_other = len(sizes) - len(top)
    note = (f"{len(keep)} of {sum(sizes.values())} images; the {len(top)} largest of {len(sizes)} patterns coloured"
            + (f", {n_other} others grey" if n_other else ""))
    legend_rows = -(-len(top) // 4)
    fig.update_layout(
        meta={"drawn": len(keep), "images": sum(sizes.values())},  # what the prose cites: the points drawn
        title=title, height=560 + 22 * legend_rows,
        margin=dict(l=10, r=130, t=70 if title else 30, b=20 + 22 * legend_rows),
        plot_bgcolor="white",
        legend=dict(orientation="h", x=0, y=-0.02, xanchor="left", yanchor="top", itemsizing="constant"),
        annotations=[dict(text=note, xref="paper", yref="paper", x=0, y=1.0, xanchor="left", yanchor="bottom",
                          showarrow=False, font=dict(size=11, color="#555"))],
        images=[dict(source=uris[0] if len(uris) else None, xref="paper", yref="paper", x=1.02, y=1.0,
                     sizex=0.2, sizey=0.3, xanchor="left", yanchor="top", layer="above")])
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
                    title: str | None = None, *, flows: Callable[[torch.Tensor], torch.Tensor],
                    max_points: int = 2000, seed: int = 0) -> go.Figure:
    """Class centres and their flows (arrows from each centre to the mean of the other centres) in the
    2-D PCA of the real features: the real set and every synthetic set of ``synthetic`` (name -> class
    means (C, D)), each a legend entry that can be toggled; hover shows the class.

    ``flows`` maps class centres (C, D) to their flows (C, D): pass ``ddlib.sfm.stats.flows`` (the
    figure takes it as an argument because plots sit below ``ddlib.sfm`` and never import it).
    The PCA is fitted on ``real_features`` when given (drawn faintly, coloured by class), else on
    the centres; at most ``max_points`` of them are drawn (:func:`thin`, stratified by class). Each set has
    its method's colour (:func:`ddlib.plots.style.colour_of`: name the sets ``"SFM"``, ``"LGM"``, ... so that a
    method keeps its colour in every figure), the real centres black. Every arrow is labelled at its start with
    its class (the data's above the centre, a synthetic set's below), and a set's labels hide with its arrows.
    """
    basis_src = real_features if real_features is not None else real_centres
    mean, comp, ratio = pca_basis(basis_src.float())

    def proj(z: torch.Tensor) -> np.ndarray:
        return ((z.float() - mean) @ comp).numpy()

    fig = go.Figure()
    if real_features is not None and real_labels is not None:
        keep = torch.as_tensor(thin(real_labels.numpy(), max_points, seed), dtype=torch.long)
        xy, labels = proj(real_features[keep]), real_labels[keep]
        fig.add_trace(go.Scattergl(x=xy[:, 0], y=xy[:, 1], mode="markers", name="real features",
                                   marker=dict(size=3, color=labels.numpy(), colorscale="Turbo", opacity=0.25),
                                   text=[classes[i] for i in labels.tolist()], hoverinfo="text"))
    sets = {"real (dataset centres)": real_centres, **synthetic}
    others = iter(range(len(sets)))
    for i, (name, mu) in enumerate(sets.items()):
        colour = REAL_COLOUR if i == 0 else colour_of(name, next(others))
        start, end = proj(mu), proj(mu + flows(mu))
        xs, ys, sizes, texts = [], [], [], []
        for c in range(len(classes)):
            xs += [start[c, 0], end[c, 0], None]
            ys += [start[c, 1], end[c, 1], None]
            sizes += [9, 13, 0]
            texts += [f"{name}: {classes[c]} centre", f"{name}: mean of the other classes (from {classes[c]})", ""]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=name, text=texts, hoverinfo="text",
                                 legendgroup=name,
                                 line=dict(color=colour, width=2, dash="solid" if i == 0 else "dot"),
                                 marker=dict(size=sizes, color=colour, symbol=["circle", "arrow", "circle"] * len(classes),
                                             angleref="previous")))
        fig.add_trace(go.Scatter(x=start[:, 0], y=start[:, 1], mode="text", text=list(classes), showlegend=False,
                                 textposition="top center" if i == 0 else "bottom center",
                                 textfont=dict(color=colour, size=10 if i == 0 else 9), hoverinfo="skip",
                                 legendgroup=name))  # every arrow labelled with its class; hidden with its set
    fig.update_layout(title=title, height=620, xaxis_title=f"PC 1 ({100 * ratio[0]:.0f} % of variance)",
                      yaxis_title=f"PC 2 ({100 * ratio[1]:.0f} % of variance)", legend=dict(orientation="h", y=-0.15),
                      margin=dict(l=60, r=10, t=50 if title else 10, b=80), plot_bgcolor="white")
    fig.update_xaxes(showgrid=True, gridcolor="#eee", zeroline=False)
    fig.update_yaxes(showgrid=True, gridcolor="#eee", zeroline=False, scaleanchor="x")
    return fig
