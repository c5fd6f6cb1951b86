"""Plotly figures and tables used by the chapters.

Importing this module sets plotly's renderer: ``$PLOTLY_RENDERER`` when given, else
``"notebook"``, which embeds plotly.js in the output so that Jupyter Book (1.x drops
plotly's own mime type) keeps the figures and they draw offline. Chapters just call
``fig.show()``.

Images arrive as uint8 tensors (N, C, H, W) or floats in [0, 1]; thumbnails are embedded
as base64 PNGs, so a grid of a hundred images is one light figure.
"""
from __future__ import annotations

import base64
import io
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import torch

pio.renderers.default = os.environ.get("PLOTLY_RENDERER") or "notebook"


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

    ``thumb_px`` is the drawn size of one thumbnail; pixels are repeated, never smoothed.
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
    fig.update_layout(title=title, width=min(1000, 170 + mosaic.shape[1]), height=min(1400, 80 + mosaic.shape[0]),
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
