"""Figures fit the page's column: every figure sets a height only, and the book's renderer makes it responsive."""
from __future__ import annotations

import json
import re
from pathlib import Path

import plotly.graph_objects as go
import pytest
import torch

from ddlib import plots
from ddlib.sfm import ci_plots, figures

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["a", "b", "c"]


def _images(n: int = 12, channels: int = 1, size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8), torch.arange(n) % 3


def every_figure() -> dict[str, go.Figure]:
    x, y = _images()
    emb = torch.randn(len(y), 5, generator=torch.Generator().manual_seed(1))
    centres = torch.randn(3, 5, generator=torch.Generator().manual_seed(2))
    rows = [{"eval_backbone": b, "mode": m, "acc": 0.5, "acc_std": 0.1} for b in ("p", "q") for m in ("probe", "ci")]
    return {
        "image_grid": plots.image_grid(x, y, CLASSES, per_class=10, title="t"),
        "pattern_grid": plots.pattern_grid(x, emb, y, per_pattern=4),
        "centre_margin_grid": plots.centre_margin_grid(x, list(range(6)), [0, 0, 1, 1, 0, 1],
                                                       ["centre", "margin"] * 3),
        "embedding_scatter": plots.embedding_scatter(plots.project_2d(emb, "pca"), y.tolist(), x),
        "pattern_counts": plots.pattern_counts({0: 3, 1: 2, 2: 4}, {0: 1, 1: 0, 2: 2}, CLASSES),
        "flow_pca_figure": figures.flow_pca_figure(centres, {"syn": centres + 0.1}, CLASSES, emb, y),
        "sfm curves_figure": figures.curves_figure({"a": [1.0, 0.5, 0.2, 0.1]}, smooth=2),
        "accuracy_figure": ci_plots.accuracy_figure(rows, ceiling=0.9),
        "bytes_figure": ci_plots.bytes_figure({"p": {"head": 10, "images": 100}}),
        "ci curves_figure": ci_plots.curves_figure({"p": [1.0, 0.5]}, title="t", yaxis="MSE"),
    }


@pytest.mark.parametrize("name", list(every_figure()))
def test_figures_set_a_height_and_never_a_width(name: str) -> None:
    fig = every_figure()[name]
    assert fig.layout.width is None, f"{name} fixes its width ({fig.layout.width} px): it would overflow the column"
    assert fig.layout.height is not None and 200 <= fig.layout.height <= 1400


def test_the_book_renderer_draws_responsive_figures() -> None:
    html = plots.BookRenderer().to_mimebundle(every_figure()["image_grid"].to_dict())["text/html"]
    assert re.search(r'<div style="height:\d+px; width:100%;">', html)  # the box: the column's width
    assert 'class="plotly-graph-div" style="height:100%; width:100%;"' in html
    assert '"responsive": true' in html  # plotly.js follows the box when the window changes


def test_no_chapter_fixes_a_figure_width() -> None:
    """The chapters' own figure calls set a height only (``update_layout(width=…)`` overflows the column)."""
    offenders = []
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(nb.read_text())["cells"]):
            src = "".join(cell["source"])
            if cell["cell_type"] == "code" and re.search(r"update_layout\((?:[^()]|\([^()]*\))*\bwidth=", src):
                offenders.append(f"{nb.name} cell {i}")
    assert offenders == []
