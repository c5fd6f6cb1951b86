"""Figures fit the page's column: every figure sets a height only, and the book's renderer makes it responsive."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from ddlib import plots
from ddlib.sfm.stats import flows
from ddlib.utils import ParamError

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
                                                                        [0] * 6 + [1] * 4 + [2, 3], x, top_k=2),
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
    assert list(mean.x) == [1, 2] and list(mean.y) == [3.0, 1.0] and mean.name == "a (running mean of 2)"
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


def test_umap_takes_ddlibs_exact_cosine_graph_not_pynndescents(monkeypatch) -> None:  # noqa: ANN001
    """Chapter 1 hands the projection the exact cosine kNN graph of ddlib.kernels.knn; UMAP gets it with
    each point itself first at distance 0 and the rest at 1 - cos, so pynndescent, whose numba compilation
    cost minutes on a fresh environment, is never called. A graph of the wrong shape is refused by name."""
    import umap.umap_ as umap_module

    from ddlib.kernels.knn import knn, l2_normalize
    from ddlib.plots.embeddings import _self_first

    x = torch.randn(300, 16, generator=torch.Generator().manual_seed(0))
    sims, idx = knn(l2_normalize(x), 15, exclude_self=False)
    i, d = _self_first(idx.numpy(), (1 - sims).clamp_min(0).numpy())
    assert (i[:, 0] == np.arange(300)).all() and (d[:, 0] == 0).all() and i.dtype == np.int64
    u = torch.nn.functional.normalize(x, dim=1)
    cos = u @ u.T
    cos.fill_diagonal_(float("-inf"))
    top = cos.topk(14, dim=1)
    assert all(set(a) == set(b) for a, b in zip(i[:, 1:].tolist(), top.indices.tolist()))
    np.testing.assert_allclose(d[:, 1:], (1 - top.values).numpy(), atol=1e-5)
    # an exact duplicate ties with the point itself: the point still comes first, the duplicate next
    dup_i, dup_d = _self_first(np.array([[1, 0, 2], [0, 1, 2], [2, 0, 1]]), np.zeros((3, 3)))
    assert dup_i.tolist() == [[0, 1, 2], [1, 0, 2], [2, 0, 1]]
    pushed, _ = _self_first(np.array([[1, 2, 3]]), np.array([[0.0, 0.1, 0.2]]))  # itself pushed out of the row
    assert pushed.tolist() == [[0, 1, 2]]

    def no_pynndescent(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("UMAP computed its own neighbours")

    monkeypatch.setattr(umap_module, "nearest_neighbors", no_pynndescent)
    xy = plots.project_2d(x, "umap", neighbours=(sims, idx))
    assert xy.shape == (300, 2) and np.isfinite(xy).all()
    with pytest.raises(ParamError, match=r"neighbours: .*\(300, 15\)"):
        plots.project_2d(x, "umap", neighbours=knn(l2_normalize(x), 10, exclude_self=False))


def test_a_whole_table_shows_every_row_and_cell() -> None:
    """pandas cuts a frame of more than 60 rows to its first and last five, and long cells to 50 characters;
    a WholeTable (what the chapters' long tables are) shows all of it, without row numbers unless the index
    names something, and stays one when filtered."""
    import pandas as pd

    long = pd.DataFrame({"n": range(73), "text": ["x" * 80] * 73})
    with pd.option_context("display.max_rows", 60, "display.min_rows", 10, "display.max_colwidth", 50):
        assert long._repr_html_().count("<tr") < 74  # pandas' defaults cut a plain frame (ddlib.plots lifts them)
    t = plots.whole_table(long)
    html = t._repr_html_()
    assert html.count("<tr") == 74 and "x" * 80 in html and "<th>72</th>" not in html  # 73 rows + header, no numbers
    assert len(repr(t).splitlines()) == 74 and "..." not in repr(t)
    assert isinstance(t[t.n > 3], plots.WholeTable) and plots.whole_table(t) is t
    named = plots.whole_table(long.set_index("n"))
    assert "<th>72</th>" in named._repr_html_()  # an index that names something is shown


def test_centre_margin_grid_labels_rows_with_sizes_and_counts() -> None:
    x, _ = _images(6)
    fig = plots.centre_margin_grid(x, list(range(5)), [7, 7, 7, 2, 2], ["centre", "centre", "margin", "centre",
                                                                        "margin"], sizes={7: 300})
    assert list(fig.layout.yaxis.ticktext) == ["pattern 7 (300 images): 2 centres",
                                               "pattern 7 (300 images): 1 margin", "pattern 2: 1 centre",
                                               "pattern 2: 1 margin"]  # each count once
    grid = plots.pattern_grid(x, torch.randn(6, 4), torch.tensor([3, 3, 3, 1, 1, 1]), per_pattern=2)
    assert list(grid.layout.yaxis.ticktext) == ["pattern 1 (3 images)", "pattern 3 (3 images)"]


# ----------------------------------------------------------------------------- one palette for the book
def _colour(trace) -> str:  # noqa: ANN001
    return trace.marker.color if isinstance(trace.marker.color, str) else trace.line.color


def test_a_method_has_one_colour_in_figures_of_different_chapters() -> None:
    """Chapter 2 draws selectors with plotly express (px.line, color="method"), chapter 5 with other labels and
    in another order (px.bar), chapters 3 and 4 with ddlib.plots: each method gets the book's colour in all."""
    import pandas as pd
    import plotly.express as px

    ch2 = px.line(pd.DataFrame({"ipc": [1, 10] * 3, "acc": range(6), "method": ["herding"] * 2 + ["bps"] * 2
                                + ["random"] * 2}), x="ipc", y="acc", color="method")
    ch5 = px.bar(pd.DataFrame({"x": range(5), "y": range(5), "method": ["random", "k-center", "bps (centre share 0)",
                                                                       "Forgetting", "BPS"]}), x="x", y="y", color="method")
    ch3 = plots.curves_figure({"SFM": [1.0, 0.5], "LGM": [1.0, 0.7], "SFM (chunked)": [1.0, 0.6]})
    ch4 = plots.accuracy_figure([{"eval_backbone": "b", "mode": m, "acc": 0.5, "acc_std": 0.0}
                                 for m in ("probe", "ci", "kd")])
    colours: dict[str, set[str]] = {}
    for fig in (ch2, ch5, ch3, ch4):
        for t in fig.data:
            colours.setdefault(plots.canonical(t.name), set()).add(_colour(t))
    variants = colours.pop(None)  # "bps (centre share 0)", "SFM (chunked)": drawn beside their method, in others
    assert not variants & set(plots.METHOD_COLOURS.values()), variants
    for method, seen in colours.items():
        assert seen == {plots.METHOD_COLOURS[method]}, (method, seen)
    assert {"bps", "random", "herding", "kcenter", "forgetting", "sfm", "lgm", "probe", "ci", "kd"} <= set(colours)


def test_the_palette_gives_every_method_its_own_colour() -> None:
    assert len(set(plots.METHOD_COLOURS.values())) == len(plots.METHOD_COLOURS)
    assert not set(plots.METHOD_COLOURS.values()) & set(plots.PALETTE)  # other series never read as a method
    assert plots.canonical("K-Center") == "kcenter" and plots.canonical("random real") == "random-real"
    assert plots.canonical("new head (probe)") == "probe" and plots.canonical("KD from inherited head") == "kd"
    assert plots.canonical("IPC 10") is None and plots.colour_of("IPC 10", 1) == plots.PALETTE[1]


def test_flow_figure_draws_each_synthetic_set_in_its_methods_colour() -> None:
    centres = torch.randn(3, 5, generator=torch.Generator().manual_seed(4))
    fig = plots.flow_pca_figure(centres, {"SFM": centres + 0.1, "LGM": centres - 0.1}, CLASSES, flows=flows)
    arrows = {t.name: t.line.color for t in fig.data if t.mode == "lines+markers"}
    assert arrows["SFM"] == plots.METHOD_COLOURS["sfm"] and arrows["LGM"] == plots.METHOD_COLOURS["lgm"]


def test_flow_figure_labels_every_arrow_with_its_class() -> None:
    """Each set's arrows carry their class names at their starts, shown (not only on a legend click) and
    hidden with their set (one legend group)."""
    centres = torch.randn(3, 5, generator=torch.Generator().manual_seed(4))
    fig = plots.flow_pca_figure(centres, {"SFM": centres + 0.1, "LGM": centres - 0.1}, CLASSES, flows=flows)
    arrows = [t for t in fig.data if t.mode == "lines+markers"]
    labels = {t.legendgroup: t for t in fig.data if t.mode == "text"}
    assert len(arrows) == 3 and set(labels) == {t.name for t in arrows} == {t.legendgroup for t in arrows}
    for t in arrows:
        lab = labels[t.name]
        assert list(lab.text) == list(CLASSES) and lab.visible in (None, True)
        assert list(lab.x) == [t.x[3 * c] for c in range(len(CLASSES))]  # at each arrow's start
        assert lab.textfont.color == t.line.color


# ----------------------------------------------------------------------------- what the eye can see
def test_thin_keeps_each_groups_share_reproducibly() -> None:
    import numpy as np

    groups = np.repeat([0, 1, 2], [900, 90, 10])
    keep = plots.thin(groups, 100, seed=3)
    assert len(keep) <= 100 and np.all(np.diff(keep) > 0)
    assert np.array_equal(keep, plots.thin(groups, 100, seed=3))  # reproducible
    assert not np.array_equal(keep, plots.thin(groups, 100, seed=4))
    counts = np.bincount(groups[keep], minlength=3)
    assert counts[0] == 90 and counts[1] == 9 and counts[2] == 1  # each group its share, at least one
    assert np.array_equal(plots.thin(groups[:50], 100), np.arange(50))  # fewer points than the cap: all


def test_the_pattern_scatter_colours_the_largest_patterns_and_greys_the_rest() -> None:
    import numpy as np

    x, _ = _images(60)
    groups = np.repeat([5, 3, 9, 1, 7], [25, 15, 10, 6, 4])  # sizes 25, 15, 10, 6, 4
    xy = np.random.default_rng(0).normal(size=(60, 2))
    fig = plots.embedding_scatter(xy, groups, x, top_k=3, max_points=30)
    shown = [t for t in fig.data if t.showlegend is not False]
    assert [t.name for t in shown] == ["pattern 5 (25)", "pattern 3 (15)", "pattern 9 (10)"]  # sizes: all points
    assert len({t.marker.color for t in shown}) == 3
    grey = [t for t in fig.data if t.showlegend is False]
    assert len(grey) == 1 and grey[0].marker.color == plots.CONTEXT_GREY
    assert sum(len(t.x) for t in fig.data) <= 30  # thinned
    assert fig.layout.legend.orientation == "h" and fig.layout.legend.y < 0  # below the plot, clear of the points


def test_pandas_prints_tables_in_full() -> None:
    import pandas as pd

    table = pd.DataFrame({"a": range(73), "b": range(73)})
    assert pd.get_option("display.max_rows") is None
    html = table._repr_html_()
    assert html.split("<tbody>")[1].count("<tr>") == 73 and "..." not in html  # all 73 rows


def test_the_book_renderer_leaves_plotly_js_out_and_keeps_plotlys_mime_type() -> None:
    fig = every_figure()["curves_figure (steps, smoothed)"].to_dict()
    bundle = plots.BookRenderer().to_mimebundle(fig)
    assert len(bundle["text/html"]) < 50_000 and "Plotly.newPlot" in bundle["text/html"]
    assert "* plotly.js v" not in bundle["text/html"] and "cdn" not in bundle["text/html"].lower()
    assert bundle["application/vnd.plotly.v1+json"]["data"][0]["name"] == "a"  # JupyterLab draws this one
    assert set(plots.BookRenderer(plotly_mime=False).to_mimebundle(fig)) == {"text/html"}  # the builds'
    import plotly.io as pio

    page = pio.renderers["book_page"].to_mimebundle(fig)["text/html"]  # the pages: no toolbar over titles
    assert '"displayModeBar": false' in page and "displayModeBar" not in bundle["text/html"]


def test_the_renderer_follows_plotly_renderer() -> None:
    """Unset: "book" (both mime types); "notebook" (the builds and tests): "book_page" (the page's html only)."""
    import subprocess
    import sys

    code = "import ddlib.plots, plotly.io as pio; print(pio.renderers.default)"
    env = {k: v for k, v in __import__("os").environ.items() if k != "PLOTLY_RENDERER"}
    seen = [subprocess.run([sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True,
                           timeout=300).stdout.strip() for extra in ({}, {"PLOTLY_RENDERER": "notebook"},
                                                                     {"PLOTLY_RENDERER": "json"})]
    assert seen == ["book", "book_page", "json"]
