"""Figures fit the page's column: every figure sets a height only, and the book's renderer makes it responsive."""
from __future__ import annotations

import json
import re
from pathlib import Path

import plotly.graph_objects as go
import pytest
import torch

from ddlib import plots
from ddlib.sfm.stats import flows

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
        "flow_pca_figure": plots.flow_pca_figure(centres, {"syn": centres + 0.1}, CLASSES, emb, y,
                                                 flows=flows),
        "curves_figure (steps, smoothed)": plots.curves_figure({"a": [1.0, 0.5, 0.2, 0.1]}, smooth=2),
        "accuracy_figure": plots.accuracy_figure(rows, ceiling=0.9),
        "bytes_figure": plots.bytes_figure({"p": {"head": 10, "images": 100}}),
        "curves_figure (epochs, log)": plots.curves_figure({"p": [1.0, 0.5]}, title="t", yaxis="MSE",
                                                            xaxis="epoch", first=1, log_y=True),
        "embedding_scatter (largest coloured)": plots.embedding_scatter(plots.project_2d(emb, "pca"),
                                                                        [0] * 6 + [1] * 4 + [2, 3], x, largest=2),
        "centre_margin_grid (sizes)": plots.centre_margin_grid(x, list(range(6)), [0, 0, 1, 1, 0, 1],
                                                               ["centre", "margin"] * 3, sizes={0: 40, 1: 9}),
        "grouped_bars (facets)": plots.grouped_bars(
            [{"m": m, "v": v, "k": k, "f": f} for m in ("a", "b") for k in (1, 10) for f in ("x", "y")
             for v in (0.5,)], x="m", y="v", group="k", facet="f", hline=0.5),
        "lines_figure (two facets, errors)": plots.lines_figure(
            [{"e": e, "a": 50 + e / 10, "m": m, "h": 1.0, "k": k} for e in (50, 100) for m in ("p", "q")
             for k in (10, 50)], x="e", y="a", group="m", error="h", facet="k", log_x=True),
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


def test_curves_figure_draws_steps_from_zero_with_a_running_mean() -> None:
    """Chapter 3's use: steps from 0, each line faint with its running mean over ``smooth`` values."""
    fig = plots.curves_figure({"a": [4.0, 2.0, 0.0]}, smooth=2)
    raw, mean = fig.data
    assert list(raw.x) == [0, 1, 2] and list(raw.y) == [4.0, 2.0, 0.0] and raw.opacity == 0.45
    assert list(mean.x) == [1, 2] and list(mean.y) == [3.0, 1.0] and mean.name == "a (mean of 2)"
    assert mean.line.color == raw.line.color
    assert fig.layout.xaxis.title.text == "step" and fig.layout.yaxis.type == "linear"
    assert fig.layout.title.text is None and fig.layout.margin.t == 10


def test_curves_figure_draws_epochs_from_one_on_a_log_axis() -> None:
    """Chapter 4's use: epochs from 1, a log y axis, a title, no smoothing; one colour per curve."""
    fig = plots.curves_figure({"p": [1.0, 0.5], "q": [2.0, 1.0]}, title="t", yaxis="MSE", xaxis="epoch", first=1,
                              log_y=True)
    assert [list(t.x) for t in fig.data] == [[1, 2], [1, 2]] and [t.name for t in fig.data] == ["p", "q"]
    assert fig.data[0].line.color != fig.data[1].line.color and fig.data[0].opacity == 1.0
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.title.text == "MSE"
    assert fig.layout.xaxis.title.text == "epoch" and fig.layout.title.text == "t"


def test_flow_arrows_end_at_the_mean_of_the_other_centres() -> None:
    """In the PCA plane (an affine map) each class's arrow ends at the mean of the other centres' points."""
    centres = torch.randn(4, 6, generator=torch.Generator().manual_seed(3))
    fig = plots.flow_pca_figure(centres, {}, ["a", "b", "c", "d"], flows=flows)
    arrows = fig.data[0]  # real centres: (start, end, gap) per class
    start = torch.tensor([[arrows.x[3 * c], arrows.y[3 * c]] for c in range(4)])
    end = torch.tensor([[arrows.x[3 * c + 1], arrows.y[3 * c + 1]] for c in range(4)])
    others = (start.sum(0, keepdim=True) - start) / 3
    torch.testing.assert_close(end, others, atol=1e-5, rtol=1e-5)


def test_umap_projection_leaves_no_tqdm_warning_on_the_page() -> None:
    """umap imports tqdm.auto, which warns "IProgress not found" in a Jupyter kernel without ipywidgets; chapter
    1's page showed that warning as a stderr block. A fresh process that looks like a kernel to tqdm shows it
    for a bare ``import umap`` and not for ddlib's projection."""
    import subprocess
    import sys

    kernel = ("import sys, types, warnings; warnings.simplefilter('always'); ip = types.ModuleType('IPython'); "
              "ip.get_ipython = lambda: types.SimpleNamespace(); sys.modules['IPython'] = ip; "
              "sys.modules['ipykernel.zmqshell'] = types.ModuleType('ipykernel.zmqshell'); ")  # what tqdm looks for
    bare = subprocess.run([sys.executable, "-c", kernel + "import umap"], capture_output=True, text=True, timeout=300)
    ours = subprocess.run([sys.executable, "-c", kernel + "import torch; from ddlib import plots; "
                           "plots.project_2d(torch.randn(40, 8), 'umap')"], capture_output=True, text=True, timeout=300)
    assert bare.returncode == 0 and ours.returncode == 0, ours.stderr
    assert "IProgress not found" in bare.stderr  # the test can see the warning
    assert "IProgress not found" not in ours.stderr


def test_a_whole_table_shows_every_row_and_cell() -> None:
    """pandas cuts a frame of more than 60 rows to its first and last five, and long cells to 50 characters;
    a WholeTable (what the chapters' long tables are) shows all of it, without row numbers unless the index
    names something, and stays one when filtered."""
    import pandas as pd

    long = pd.DataFrame({"n": range(73), "text": ["x" * 80] * 73})
    assert long._repr_html_().count("<tr") < 74  # the plain frame is cut: the reason for the class
    t = plots.whole_table(long)
    html = t._repr_html_()
    assert html.count("<tr") == 74 and "x" * 80 in html and "<th>72</th>" not in html  # 73 rows + header, no numbers
    assert len(repr(t).splitlines()) == 74 and "..." not in repr(t)
    assert isinstance(t[t.n > 3], plots.WholeTable) and plots.whole_table(t) is t
    named = plots.whole_table(long.set_index("n"))
    assert "<th>72</th>" in named._repr_html_()  # an index that names something is shown


def test_embedding_scatter_colours_the_largest_and_greys_the_rest() -> None:
    """Chapter 1's 45 patterns: the ``largest`` biggest get distinct colours, every other point one grey trace."""
    x, _ = _images(12)
    emb = torch.randn(12, 5, generator=torch.Generator().manual_seed(1))
    groups = [3] * 5 + [1] * 4 + [0, 2, 4]  # sizes: 3 -> 5, 1 -> 4, then three singletons
    fig = plots.embedding_scatter(plots.project_2d(emb, "pca"), groups, x, largest=2)
    grey, first, second = fig.data
    assert grey.name == "3 other patterns (3)" and grey.marker.color == plots.OTHER and len(grey.x) == 3
    assert (first.name, second.name) == ("pattern 3 (5)", "pattern 1 (4)")  # largest first, not by id
    assert (first.marker.color, second.marker.color) == plots.LARGEST_COLOURS[:2]
    assert [t.name for t in plots.embedding_scatter(plots.project_2d(emb, "pca"), groups, x).data] == [
        "pattern 0 (1)", "pattern 1 (4)", "pattern 2 (1)", "pattern 3 (5)", "pattern 4 (1)"]  # largest=None


def test_centre_margin_grid_labels_rows_with_sizes_and_counts() -> None:
    x, _ = _images(6)
    fig = plots.centre_margin_grid(x, list(range(5)), [7, 7, 7, 2, 2], ["centre", "centre", "margin", "centre",
                                                                        "margin"], sizes={7: 300})
    assert list(fig.layout.yaxis.ticktext) == ["pattern 7 (300 images): 2 centres (2)",
                                               "pattern 7 (300 images): 1 margin (1)", "pattern 2: 1 centre (1)",
                                               "pattern 2: 1 margin (1)"]
