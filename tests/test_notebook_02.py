"""Chapter 2 (balanced selection) runs at scale "test" and rejects invalid parameters in its first cells."""
from __future__ import annotations

import json

import pytest


def _outputs(path) -> str:  # noqa: ANN001
    nb = json.loads(path.read_text())
    return "\n".join(json.dumps(c.get("outputs", [])) for c in nb["cells"] if c["cell_type"] == "code")


def test_runs_at_test_scale(run_notebook) -> None:  # noqa: ANN001
    from tests._chapters import check_page

    out = run_notebook("02_balanced_selection", scale="test")
    text = _outputs(out)
    for word in ("pattern 0 (", "centres", "with both", "fill distance", "IPC 2 (ms)",
                 "HLR (points)", "no detectable difference"):
        assert word in text, word
    assert "Traceback" not in text
    g = check_page(out)  # the "What we found" box, every cited value set, no NaN on the page
    # the recorded evidence is read whatever this run's scale: Fashion-MNIST's five-seed record
    assert g["vr_headline"].startswith(("BPS", "random", "no detectable")) and "not run" not in g["vr_headline"]
    assert g["hlr_n"] > 0 and g["versus_random_n_seeds_min"] == 5
    assert g["cross_arch_sentence"]  # recorded or "not recorded yet", never empty
    assert g["slots_reference_ipc10_balance"] in ("barely acts", "acts in part", "acts")


def test_runs_with_other_valid_parameters(run_notebook) -> None:  # noqa: ANN001
    from ddlib.sweep import read_results

    out = run_notebook("02_balanced_selection", scale="test", methods=["bps", "herding"], ipcs=[1, 3],
                       student_ipcs="3", show_class="Trouser", k_ratio=0.2, centre_frac=1.0)
    assert "herding" in _outputs(out)
    g = read_results(out)  # IPC 1 is selected and counted, but trains no student (the book's cpu split)
    assert g["accuracy_max_ipc"] == 3 and "selects at IPC 1 but trains no students" in g["untrained_ipcs"]


def test_exercise_parameters_in_the_form_the_page_shows(run_notebook) -> None:  # noqa: ANN001
    """Exercises 2-4 give lists as -p ipcs 1,10 and -p hard_label_methods all: papermill passes text."""
    from ddlib.sweep import read_results

    out = run_notebook("02_balanced_selection", scale="test", ipcs="1,3", hard_label_methods="all",
                       methods=["bps", "random"])
    g = read_results(out)
    assert g["accuracy_max_ipc"] == 3 and g["balance_random"].endswith("%")


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
