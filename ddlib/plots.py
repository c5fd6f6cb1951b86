"""Plotly figures and tables used by the chapters.

Importing this module sets plotly's renderer to ``"book"``: plotly's ``"notebook"`` renderer
(plotly.js embedded in the output, so that Jupyter Book 1.x, which drops plotly's own mime
type, keeps the figures and they draw offline) without the MathJax script it loads from a
CDN into every figure (an error in an offline reader's console; the book serves MathJax
itself). ``$PLOTLY_RENDERER`` naming any other renderer wins. Chapters just call ``fig.show()``.

Figures set a height only, never a width: plotly then fills the width of what holds it (the book's
text column, a notebook's output area) and follows it when the window changes, so no figure is
laid out wider than the column and clipped. Facets wrap (two per row) rather than squeeze.

Images arrive as uint8 tensors (N, C, H, W) or floats in [0, 1]; thumbnails are embedded
as base64 PNGs, so a grid of a hundred images is one light figure.
"""
from __future__ import annotations

import base64
import io
import os
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import torch
from plotly.io._base_renderers import NotebookRenderer

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


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Images (N, C, H, W), uint8 or float in [0, 1], as a uint8 array (N, H, W, C)."""
    x = x.detach().cpu()
    if x.dtype != torch.uint8:
        x = (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def png_data_uri(img: np.ndarray, scale: int = 1) -> str:
    """A uint8 image (H, W, C) with C in {1, 3} as a ``data:image/png;base64`` URI, enlarged ``scale`` times
    by pixel repetition (browsers blur small images drawn large)."""
    from PIL import Image

    if scale > 1:
        img = img.repeat(scale, axis=0).repeat(scale, axis=1)
    pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def class_samples(labels: torch.Tensor, per_class: int, num_classes: int | None = None,
                  generator: torch.Generator | None = None) -> list[torch.Tensor]:
    """For each class, the indices of up to ``per_class`` of its samples (random with ``generator``,
    else the first ones)."""
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    out = []
    for c in range(num_classes):
        idx = torch.nonzero(labels == c).flatten()
        if generator is not None:
            idx = idx[torch.randperm(len(idx), generator=generator)]
        out.append(idx[:per_class])
    return out


def image_grid(images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], per_class: int = 8,
               title: str | None = None, generator: torch.Generator | None = None, pad: int = 2,
               thumb_px: int = 56) -> go.Figure:
    """A grid with one row per class of up to ``per_class`` of its images (one PNG mosaic, class names
    on the y axis).

    ``thumb_px`` is the size of one thumbnail in the mosaic; pixels are repeated, never smoothed. The
    figure's height fits the mosaic; its width follows the column, the mosaic scaled down to fit.
    """
    x = to_uint8(images)
    n, h, w, ch = x.shape
    rows = class_samples(labels, per_class, len(classes), generator)
    cols = max(1, max(len(r) for r in rows))
    scale = max(1, round(thumb_px / max(h, w)))
    cell_h, cell_w = h * scale + pad, w * scale + pad
    mosaic = np.full((len(classes) * cell_h + pad, cols * cell_w + pad, ch), 255, dtype=np.uint8)
    for r, idx in enumerate(rows):
        for c, i in enumerate(idx.tolist()):
            tile = x[i].repeat(scale, axis=0).repeat(scale, axis=1)
            mosaic[pad + r * cell_h: pad + r * cell_h + h * scale, pad + c * cell_w: pad + c * cell_w + w * scale] = tile
    fig = go.Figure(go.Image(source=png_data_uri(mosaic), hoverinfo="skip"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(tickmode="array", tickvals=[pad + r * cell_h + h * scale / 2 for r in range(len(classes))],
                     ticktext=[f"{name} ({len(idx)})" for name, idx in zip(classes, rows)], showgrid=False,
                     zeroline=False)
    fig.update_layout(title=title, height=min(1400, 80 + mosaic.shape[0]),
                      margin=dict(l=150, r=10, t=50 if title else 10, b=10), plot_bgcolor="white")
    return fig


def class_balance(labels_by_split: dict[str, torch.Tensor], classes: Sequence[str]) -> pd.DataFrame:
    """A table with one row per class: the count and share (%) of each split, and a total row."""
    table = pd.DataFrame(index=pd.Index(list(classes), name="class"))
    for split, y in labels_by_split.items():
        counts = torch.bincount(y.cpu(), minlength=len(classes)).numpy()
        table[split] = counts
        table[f"{split} %"] = (100 * counts / max(1, counts.sum())).round(1)
    table.loc["total"] = table.sum(numeric_only=True).round(1)
    count_cols = list(labels_by_split)
    table[count_cols] = table[count_cols].astype(int)
    return table


# ----------------------------------------------------------------------------- patterns (chapter 1)
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
        import umap

        return umap.UMAP(n_neighbors=n_neighbors, min_dist=0.1, metric="cosine", random_state=seed,
                         n_jobs=1).fit_transform(x)
    x = x - x.mean(0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    return u[:, :2] * s[:2]


def embedding_scatter(xy: np.ndarray, groups: Sequence[int], images: torch.Tensor, title: str | None = None,
                      index: Sequence[int] | None = None, thumb_px: int = 112) -> go.Figure:
    """A scatter of 2-D points coloured by group (pattern), each carrying its image thumbnail.

    The thumbnails ride in ``customdata``; show the figure with ``post_script=HOVER_THUMBNAIL_JS`` to
    see the hovered image in the right margin, above the legend (the first image is shown until then).
    """
    x = to_uint8(images)
    groups = np.asarray(groups)
    index = np.arange(len(x)) if index is None else np.asarray(index)
    scale = max(1, round(thumb_px / max(x.shape[1:3])))
    uris = np.array([png_data_uri(img, scale) for img in x])
    fig = go.Figure()
    for g in sorted(set(groups.tolist())):
        m = groups == g
        fig.add_trace(go.Scattergl(
            x=xy[m, 0], y=xy[m, 1], mode="markers", name=f"pattern {g} ({int(m.sum())})",
            marker=dict(size=7, line=dict(width=0.5, color="white")),
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


def pattern_grid(images: torch.Tensor, emb: torch.Tensor, groups: torch.Tensor, per_pattern: int = 8,
                 max_patterns: int = 12, title: str | None = None, thumb_px: int = 56) -> go.Figure:
    """One row per pattern (largest first, at most ``max_patterns``): its ``per_pattern`` images nearest
    the pattern's mean embedding (cosine), nearest first."""
    groups = torch.as_tensor(groups).cpu()
    emb = torch.nn.functional.normalize(emb.detach().cpu().float(), dim=1)
    ids, counts = torch.unique(groups, return_counts=True)
    ids = ids[torch.argsort(counts, descending=True, stable=True)][:max_patterns]
    order, rows = [], []
    for r, g in enumerate(ids.tolist()):
        members = torch.nonzero(groups == g).flatten()
        centre = torch.nn.functional.normalize(emb[members].mean(0), dim=0)
        nearest = members[torch.argsort(emb[members] @ centre, descending=True)][:per_pattern]
        order.append(nearest)
        rows.append(torch.full((len(nearest),), r))
    names = [f"pattern {g} ({int((groups == g).sum())})" for g in ids.tolist()]
    order_t = torch.cat(order) if order else torch.zeros(0, dtype=torch.long)
    rows_t = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)
    return image_grid(images[order_t], rows_t, names, per_class=per_pattern, title=title, thumb_px=thumb_px)


def pattern_counts(num_patterns: dict[int, int], singletons: dict[int, int], classes: Sequence[str],
                   title: str | None = None) -> go.Figure:
    """Bars per class: the patterns Infomap found, split into multi-image patterns and singletons."""
    cs = sorted(num_patterns)
    names = [classes[c] for c in cs]
    single = [singletons.get(c, 0) for c in cs]
    multi = [num_patterns[c] - s for c, s in zip(cs, single)]
    fig = go.Figure([go.Bar(x=names, y=multi, name="patterns of 2+ images"),
                     go.Bar(x=names, y=single, name="singletons")])
    fig.update_layout(barmode="stack", title=title, yaxis_title="patterns found", height=400,
                      margin=dict(l=60, r=10, t=50 if title else 10, b=60))
    return fig


# ----------------------------------------------------------------------------- selection (chapter 2)
def centre_margin_grid(images: torch.Tensor, picks: Sequence[int], pattern: Sequence[int], role: Sequence[str],
                       max_patterns: int = 6, per_row: int = 10, title: str | None = None,
                       thumb_px: int = 56) -> go.Figure:
    """Two rows per pattern of one class's selection (patterns in the order of first appearance, at
    most ``max_patterns``): its centre picks, then its margin picks. ``picks`` index ``images``."""
    order: list[int] = []
    for p in pattern:
        if p not in order:
            order.append(int(p))
    order = order[:max_patterns]
    sel, rows, names = [], [], []
    for p in order:
        for r in ("centre", "margin"):
            members = [i for i, pp, rr in zip(picks, pattern, role) if int(pp) == p and rr == r]
            names.append(f"pattern {p}: {r}s")
            sel += members[:per_row]
            rows += [len(names) - 1] * len(members[:per_row])
    idx = torch.as_tensor(sel, dtype=torch.long)
    return image_grid(images[idx], torch.as_tensor(rows, dtype=torch.long), names, per_class=per_row, title=title,
                      thumb_px=thumb_px)
