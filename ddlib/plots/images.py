"""Figures of images: class-by-class grids (one PNG mosaic), a pattern's nearest images, a selection's
centre and margin picks.

Images arrive as uint8 tensors (N, C, H, W) or floats in [0, 1]; thumbnails are embedded as base64 PNGs,
so a grid of a hundred images is one light figure.
"""
from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

__all__ = ["to_uint8", "png_data_uri", "class_samples", "image_grid", "pattern_grid", "centre_margin_grid"]


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
               thumb_px: int = 56, counts: bool = True) -> go.Figure:
    """A grid with one row per class of up to ``per_class`` of its images (one PNG mosaic, class names
    on the y axis, each with the number of images in its row unless ``counts`` is False: the row labels
    of :func:`pattern_grid` and :func:`centre_margin_grid` carry their own counts).

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
                     ticktext=[f"{name} ({len(idx)})" if counts else str(name) for name, idx in zip(classes, rows)],
                     showgrid=False,
                     zeroline=False)
    fig.update_layout(title=title, height=min(1400, 80 + mosaic.shape[0]),
                      margin=dict(l=150, r=10, t=50 if title else 10, b=10), plot_bgcolor="white")
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
    names = [f"pattern {g} ({int((groups == g).sum()):,} images)" for g in ids.tolist()]
    order_t = torch.cat(order) if order else torch.zeros(0, dtype=torch.long)
    rows_t = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)
    return image_grid(images[order_t], rows_t, names, per_class=per_pattern, title=title, thumb_px=thumb_px,
                      counts=False)


def centre_margin_grid(images: torch.Tensor, picks: Sequence[int], pattern: Sequence[int], role: Sequence[str],
                       max_patterns: int = 6, per_row: int = 10, title: str | None = None,
                       thumb_px: int = 56, sizes: dict[int, int] | None = None) -> go.Figure:
    """Two rows per pattern of one class's selection (patterns in the order of first appearance, at
    most ``max_patterns``): its centre picks, then its margin picks. ``picks`` index ``images``; ``sizes``
    (pattern -> images) puts each pattern's size in its row labels. Chapter 2 draws what BPS takes from
    each of a class's largest patterns (:func:`ddlib.bps.select.pattern_picks`)."""
    order: list[int] = []
    for p in pattern:
        if p not in order:
            order.append(int(p))
    order = order[:max_patterns]
    sel, rows, names = [], [], []
    for p in order:
        for r in ("centre", "margin"):
            members = [i for i, pp, rr in zip(picks, pattern, role) if int(pp) == p and rr == r]
            size = f" ({sizes[p]:,} images)" if sizes and p in sizes else ""
            names.append(f"pattern {p}{size}: {len(members)} {r}{'s' if len(members) != 1 else ''}")
            sel += members[:per_row]
            rows += [len(names) - 1] * len(members[:per_row])
    idx = torch.as_tensor(sel, dtype=torch.long)
    return image_grid(images[idx], torch.as_tensor(rows, dtype=torch.long), names, per_class=per_row, title=title,
                      thumb_px=thumb_px, counts=False)
