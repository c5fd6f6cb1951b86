"""Chapter 5 (results) runs at scale "test" with both training protocols and rejects invalid parameters."""
from __future__ import annotations

import re

import pytest

from ddlib.sweep import read_results


def test_runs_at_test_scale(run_notebook) -> None:  # noqa: ANN001
    import nbformat

    out = run_notebook("05_results", scale="test")
    nb = nbformat.read(out, as_version=4)
    text = "\n".join(str(o) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "Traceback" not in text
    for word in ("hard labels", "KD: gain over random", "KD − hard labels", "ci on convnet-random",
                 "centroid-nearest real", "ms per step", "shared modelling", "SFM minus (points)"):
        assert word in text, word
    glued = read_results(out)
    # every number the prose names is glued
    for name in ("best_gain_kd", "best_gain_ce", "bps_gain_kd", "bps_gain_ce", "kd_minus_ce_mean", "sfm_probe",
                 "lgm_probe", "random_probe", "centroid_probe", "sfm_ci_gain", "lgm_sfm_time_ratio", "sfm_lgm_views", "sfm_lgm_source",
                 "n_records", "n_gpu_records", "n_rec_acc", "n_cost_rows", "teacher_acc", "k_top"):
        assert name in glued, name
    assert glued["k_top"] == 2
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    named = set(re.findall(r"\{glue:text\}`([A-Za-z0-9_]+)", prose))
    assert named and named <= set(glued), named - set(glued)
    assert "ddlib:" in str(nb.cells[-1].outputs)  # the environment report closes the chapter


@pytest.mark.parametrize("params, name", [
    ({"methods": ["bps", "magic"]}, "method"),
    ({"sfm_dataset": "nope", "ipcs": [1]}, "nope"),
])
def test_rejects_invalid_parameters(run_notebook, params: dict, name: str) -> None:  # noqa: ANN001
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as err:
        run_notebook("05_results", **{"scale": "test", **params})
    assert "ParamError" in str(err.value) and name in str(err.value)
