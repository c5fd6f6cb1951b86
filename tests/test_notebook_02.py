"""Chapter 2 (balanced selection) runs at scale "test" and rejects invalid parameters in its first cells."""
from __future__ import annotations

import json

import pytest


def _outputs(path) -> str:  # noqa: ANN001
    nb = json.loads(path.read_text())
    return "\n".join(json.dumps(c.get("outputs", [])) for c in nb["cells"] if c["cell_type"] == "code")


def test_runs_at_test_scale(run_notebook) -> None:  # noqa: ANN001
    out = run_notebook("02_balanced_selection", scale="test")
    text = _outputs(out)
    for word in ("pattern 0: centres", "centre_share", "fill_distance", "accuracy", "IPC 2 (ms)"):
        assert word in text, word
    assert "Traceback" not in text


def test_runs_with_other_valid_parameters(run_notebook) -> None:  # noqa: ANN001
    out = run_notebook("02_balanced_selection", scale="test", methods=["bps", "herding"], ipcs=[3],
                       show_class="Trouser", k_ratio=0.2)
    assert "herding" in _outputs(out)


@pytest.mark.parametrize("params, name", [
    ({"methods": ["bps", "magic"]}, "method"),
    ({"ipcs": [0]}, "ipcs"),
    ({"k_ratio": 2.0}, "k_ratio"),
])
def test_rejects_invalid_parameters(run_notebook, params: dict, name: str) -> None:  # noqa: ANN001
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as err:
        run_notebook("02_balanced_selection", **{"scale": "test", **params})
    assert "ParamError" in str(err.value) and name in str(err.value)
