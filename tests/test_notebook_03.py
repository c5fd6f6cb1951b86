"""Chapter 03 (statistical flow) runs under papermill at the test scale and stops at once on invalid parameters."""
from __future__ import annotations

import nbformat
import pytest
from papermill.exceptions import PapermillExecutionError

from ddlib.sweep import read_results

pytestmark = pytest.mark.notebook


def test_chapter_03_at_test_scale(run_notebook) -> None:
    out = run_notebook("03_statistical_flow", scale="test")
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert html.count("plotly-graph-div") >= 5, "the PCA, cosine, two image grids and loss figures"
    assert "<table" in html, "the statistics and cost tables"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "SFM (chunked)" in text and "LGM" in text
    assert "torch:" in text and "device:" in text, "the environment report is missing"
    from tests._chapters import check_page

    g = check_page(out)  # the "What we found" box, every cited value set, no NaN on the page
    assert g == read_results(out)
    assert g["n_classes"] == 10
    # the twenty-seed record is read whatever this run's scale; this run's sets on the same fixed views
    assert g["flowrec_n_seeds"] >= 5 and g["flowrec_views"] >= 1
    assert g["flowrec_sfm_chunked_summary"] and g["flowrec_lgm_per_view_mean_verdict"]
    for name in ("sfm", "sfm_chunked", "lgm"):
        assert -1 <= float(g[f"live_{name}_per_view_mean"]) <= 1
    assert "one view per image" in "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert float(g["identity_err"]) < 1e-4  # LGM's zero-head gradient is the scaled flow
    for key in ("time_ratio", "mem_ratio", "chunk_ratio", "sfm_final_cos", "lgm_final_cos", "head_cos"):
        float(g[key])
    # the reference's N − 1 at IPC > 1: below 1 even at the ideal point, exactly 1 at IPC 1
    assert float(g["ref_cos_one"]) == pytest.approx(1.0, abs=1e-3) and float(g["ref_cos"]) < 1
    assert int(g["ref_n"]) == 10 * int(g["ref_ipc"]) and float(g["common_ratio"]) > 0
    # the images' optimisation state: 4 copies of a complete 256-px RGB pyramid, about 4 MiB
    assert float(g["state_mib_ref"]) == pytest.approx(4 * 3 * 87381 * 4 / 2**20, abs=0.05)
    assert (g["noise_mean"], g["noise_std"], g["noise_share"]) == ("0.5", "0.2", "50")


@pytest.mark.parametrize("params, name", [({"backbone": "resnet-9000"}, "backbone"), ({"ipc": 0}, "ipc")])
def test_chapter_03_rejects_invalid_parameters(run_notebook, params, name) -> None:
    with pytest.raises(PapermillExecutionError) as err:
        run_notebook("03_statistical_flow", scale="test", **params)
    assert "ParamError" in str(err.value) and name in str(err.value)
    assert err.value.exec_count <= 3, "invalid parameters must fail in the first cells"
