"""Chapter 5 (results) runs at scale "test" with both training protocols and rejects invalid parameters."""
from __future__ import annotations

import json

import pytest


def _outputs(path) -> str:  # noqa: ANN001
    nb = json.loads(path.read_text())
    return "\n".join(json.dumps(c.get("outputs", []), ensure_ascii=False) for c in nb["cells"]
                     if c["cell_type"] == "code")


def test_runs_at_test_scale(run_notebook) -> None:  # noqa: ANN001
    import nbformat

    from tests._chapters import check_page, finding_box

    out = run_notebook("05_results", scale="test")
    text = _outputs(out)
    assert "Traceback" not in text
    for word in ("KD: gain over random", "KD − hard labels", "CI − probe", "ms per step",
                 "SFM: CI − probe", "probe ahead", "SFM − LGM"):
        assert word in text, word
    g = check_page(out)  # the "What we found" box, every cited value set, no NaN on the page
    # the box states the five-seed records' findings whatever this run's scale
    nb = nbformat.read(out, as_version=4)
    box = finding_box(nb)
    for name in ("fm_headline", "c10_bps_10", "fm_others", "c10_others", "sfm_lgm_rec_verdict",
                 "sfm_real_rec_verdict", "ci_rec_1", "ci_rec_10", "cross_arch_sentence", "agree_sentence"):
        assert f"`{name}`" in box, name
    assert g["fm_headline"].startswith(("BPS", "random")) and "not run" not in g["fm_headline"]
    assert g["c10_bps_10"].startswith(("BPS ahead", "random ahead", "no detectable")), g["c10_bps_10"]
    assert g["ci_rec_10"].startswith("probe ahead") and g["sfm_lgm_rec_n_seeds_min"] >= 5
    assert "k-center" in g["fm_others"] and "k-center" in g["c10_others"]
    assert g["cross_arch_sentence"]  # recorded or "not recorded yet", never empty
    assert g["agree_record_seeds"] == 5 and g["agree_n_seeds"] == 1
    assert g["gains_ipc"] == 2 and g["chapter_time"]
    assert "ddlib:" in str(nb.cells[-1].outputs)  # the environment report closes the chapter


def test_the_cpu_scales_split_runs_at_the_test_scale(run_notebook) -> None:  # noqa: ANN001
    """The book's cpu default distils SFM only and trains students at some of the selected IPCs; the same
    choice, passed as papermill's -p passes text, runs at the test scale: no LGM in this run's sets or cost,
    the page says so, and the students are those of ``student_ipcs`` only."""
    from tests._chapters import check_page

    out = run_notebook("05_results", scale="test", synthesis="sfm", student_ipcs="2")
    g = check_page(out)
    assert "LGM's images" not in g["live_probe_means"] and "SFM's images" in g["live_probe_means"]
    assert "not distilled" in g["own_work"] and "SFM only" in g["live_cost_sentence"]
    assert g["gains_ipc"] == 2
    assert "SFM − LGM" not in _outputs(out)  # no live comparison with LGM ...
    assert "not recorded" not in g["sfm_lgm_rec_verdict"]  # ... the records' is read instead


def test_the_cross_architecture_table_once_a_record_exists(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """A hand-made record in benchmarks/cross_arch.py's format (paired rows whose protocol is the student
    architecture) gives chapter 5's table: rows methods by IPC, one column per architecture, every cell a
    difference with its interval, no NaN, narrow enough for the column; before one exists, one sentence."""
    from ddlib import results

    none, g0 = results.cross_arch_verdicts(results.latest_cross_arch("fashion-mnist", []))
    assert len(none) == 0 and "not been recorded yet" in g0["cross_arch_sentence"]
    archs = ["ConvNet", "ResNet-18 (width 16)", "EfficientNet-Lite0, frozen, 64 px"]  # cross_arch.label
    paired = [{"method": m, "baseline": "random", "ipc": k, "protocol": a, "rule": "final", "n_seeds": 5,
               "diff_mean": d, "ci95": [d - 0.01, d + 0.01]}
              for m, d in (("bps", 0.004), ("herding", -0.02), ("centroids", 0.03)) for k in (10, 50)
              for a in archs]
    path = tmp_path / "cross_arch_fashion-mnist_cpu.json"
    path.write_text(json.dumps({
        "what": "cross-architecture", "timings": {"wall_s": 1.0}, "rows": [], "paired": paired,
        "config": {"dataset": {"name": "fashion-mnist"}},
        "provenance": {"command": "c", "commit": "abc", "device": "CPU (1 threads)", "date": "2026-12-07"}}))
    rec = results.latest_cross_arch("fashion-mnist", results.load_file(path))
    table, g = results.cross_arch_verdicts(rec)
    parts = results.split_columns(table)
    for part in parts:
        assert part.shape[1] <= 6 and not part.isna().any().any()
        assert max(len(str(c)) for c in [*part.columns, *part.to_numpy().ravel()]) <= 40
    assert list(table.columns)[1:] == archs and len(table) == 6
    assert table.iloc[0, 1] == "+0.4 [−0.6, 1.4]" and table.iloc[4, 1] == "+3.0 [2.0, 4.0] ahead"
    assert "3 student architectures" in g["cross_arch_sentence"] and "no detectable difference" in g[
        "cross_arch_sentence"]


@pytest.mark.parametrize("params, name", [
    ({"methods": ["bps", "magic"]}, "method"),
    ({"sfm_dataset": "nope", "ipcs": [1]}, "nope"),
])
def test_rejects_invalid_parameters(run_notebook, params: dict, name: str) -> None:  # noqa: ANN001
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as err:
        run_notebook("05_results", **{"scale": "test", **params})
    assert "ParamError" in str(err.value) and name in str(err.value)
