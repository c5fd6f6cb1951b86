"""Chapter 1 (pattern discovery) runs at scale "test" and rejects invalid parameters in its first cells."""
from __future__ import annotations

import json

import pytest


def _outputs(path) -> str:  # noqa: ANN001
    nb = json.loads(path.read_text())
    return "\n".join(json.dumps(c.get("outputs", [])) for c in nb["cells"] if c["cell_type"] == "code")


def test_runs_at_test_scale(run_notebook) -> None:  # noqa: ANN001
    from tests._chapters import check_page

    out = run_notebook("01_pattern_discovery", scale="test")
    text = _outputs(out)
    assert "patterns" in text and "images[0].source" in text  # the table and the hover-thumbnail scatter
    assert "Traceback" not in text
    g = check_page(out)  # the "What we found" box, every cited value set, no NaN on the page
    assert g["min_patterns"] <= g["max_patterns"] and 0 < g["largest_max"] <= 100
    assert g["balance"] in ("barely acts", "acts in part", "acts") and g["chapter_time"] != "not recorded yet"
    assert g["slots_min"] >= 1  # every class has a slot at IPC 10


def test_exercise_parameters_are_accepted(run_notebook) -> None:  # noqa: ANN001
    """Exercise 2 trains without the clustering loss: clu_weight is a chapter parameter."""
    import nbformat

    out = run_notebook("01_pattern_discovery", scale="test", clu_weight=0.0, min_sim=0.8)
    nb = nbformat.read(out, as_version=4)
    assert "clu_weight=0.0" in "".join(o.get("data", {}).get("text/plain", "") for c in nb.cells
                                         if c.cell_type == "code" for o in c.outputs)


@pytest.mark.parametrize("params, name", [
    ({"projection": "tsne"}, "projection"),
    ({"k": 0}, "k"),
    ({"backbone": "vgg"}, "backbone"),
])
def test_rejects_invalid_parameters(run_notebook, params: dict, name: str) -> None:  # noqa: ANN001
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as err:
        run_notebook("01_pattern_discovery", **{"scale": "test", **params})
    assert "ParamError" in str(err.value) and name in str(err.value)
