"""Chapter 1 (pattern discovery) runs at scale "test" and rejects invalid parameters in its first cells."""
from __future__ import annotations

import json

import pytest


def _outputs(path) -> str:  # noqa: ANN001
    nb = json.loads(path.read_text())
    return "\n".join(json.dumps(c.get("outputs", [])) for c in nb["cells"] if c["cell_type"] == "code")


def test_runs_at_test_scale(run_notebook) -> None:  # noqa: ANN001
    out = run_notebook("01_pattern_discovery", scale="test")
    text = _outputs(out)
    assert "patterns" in text and "images[0].source" in text  # the table and the hover-thumbnail scatter
    assert "Traceback" not in text


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
