"""Chapter 04 (classifier inheritance) runs under papermill at the test scale and stops at once on invalid parameters."""
from __future__ import annotations

import nbformat
import pytest
from papermill.exceptions import PapermillExecutionError

from ddlib.sweep import read_results

pytestmark = pytest.mark.notebook


def test_chapter_04_at_test_scale(run_notebook) -> None:
    out = run_notebook("04_classifier_inheritance", scale="test")
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert html.count("plotly-graph-div") >= 4, "the image grid, accuracy, projector-curve and bytes figures"
    assert "<table" in html, "the accuracy and bytes tables"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "SFM on inhouse" in text and "golden head on inhouse" in text
    assert "torch:" in text and "device:" in text, "the environment report is missing"
    from tests._chapters import check_page

    g = check_page(out)  # the "What we found" box, every cited value set, no NaN on the page
    assert g == read_results(out)
    assert 0 <= float(g["golden_acc"]) <= 100
    for key in ("ci_sfm_ci_best_other", "ci_sfm_probe_best_other", "ci_sfm_kd_best_other", "golden_share"):
        float(g[key])
    assert g["ci_sfm_ci_gain_best_other"][0] in "+\u22120"  # signed points
    assert int(str(g["img_bytes"]).replace(",", "")) == 10 * 28 * 28  # 10 classes x IPC 1 x 28x28 grey, uint8
    for key in ("ci_random_real_ci_best_other", "ci_centroid_real_probe_best_other", "ci_centroid_real_kd_best_other"):
        assert 0 <= float(g[key]) <= 100
    # the records are read whatever this run's scale: the regime chosen on held-out images, the CIFAR-10
    # record's five paired seeds, the projector study (or "not recorded yet")
    assert float(g["regime_noise_best"]) < float(g["regime_random"]) and g["regime_n_seeds"] >= 2
    assert g["rec_n_seeds"] >= 5 and g["rec_headline"] and "not recorded" not in g["rec_ci_1"]
    assert g["ciproj_pays"] and g["across_probe"]
    assert float(g["projector_lr"]) == pytest.approx(10 * float(g["probe_lr"]))  # the reference's ratio
    assert "bank of 2 augmented views" in g["golden_setting"] and float(g["head_std"]) == 0.01


@pytest.mark.parametrize("params, name", [({"eval_backbones": ["resnet-9000"]}, "backbone"),
                                          ({"eval_backbones": []}, "eval_backbones"),
                                          ({"probe_epochs": 0}, "epochs"), ({"views": -1}, "views")])
def test_chapter_04_rejects_invalid_parameters(run_notebook, params, name) -> None:
    with pytest.raises(PapermillExecutionError) as err:
        run_notebook("04_classifier_inheritance", scale="test", **params)
    assert "ParamError" in str(err.value) and name in str(err.value)
    assert err.value.exec_count <= 3, "invalid parameters must fail in the first cells"
