"""benchmarks/glue_values.py: the glued values of executed notebooks, collected and compared (hand-made notebooks,
no kernel runs)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "application/papermill.record/"


@pytest.fixture(scope="module")
def gv():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("glue_values", ROOT / "benchmarks" / "glue_values.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _glue(name: str, text: str, display: bool = False) -> nbformat.NotebookNode:
    """The output myst_nb.glue writes: display_data under the papermill prefix (display=False) or plain."""
    prefix = "" if display else PREFIX
    return nbformat.v4.new_output("display_data", data={f"{prefix}text/plain": text},
                                  metadata={"scrapbook": {"name": name, "mime_prefix": prefix}})


def _notebook(path: Path, values: dict[str, str], displayed: dict[str, str] | None = None) -> Path:
    cell = nbformat.v4.new_code_cell("from myst_nb import glue")
    cell.outputs = [_glue(k, v) for k, v in values.items()] + [_glue(k, v, True) for k, v in (displayed or {}).items()]
    other = nbformat.v4.new_code_cell("print(1)")
    other.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    nbformat.write(nbformat.v4.new_notebook(cells=[cell, other]), path)
    return path


def test_the_ignore_list_is_wall_time_and_memory(gv) -> None:  # noqa: ANN001
    assert gv.IGNORED == ("*_s", "*_s_*", "*seconds*", "*_ms", "*_ms_*", "*time*", "*mib*", "*wall*", "*peak_mem*")
    for name in ("shared_s", "costs_selection_s", "bps_all_ipc_ms", "lgm_sfm_time_ratio", "Peak_MiB", "wall_s",
                 "eval_seconds_total", "run_s_mean", "sfm_peak_mem"):
        assert gv.ignored(name), name
    for name in ("teacher_acc", "n_records", "versus_random_verdict", "steps", "cost_n_rows", "shares",
                 "ior_bps_10_final", "n_seeds_here", "top_method"):
        assert not gv.ignored(name), name


def test_collect_reads_every_glued_value(gv, tmp_path: Path) -> None:  # noqa: ANN001
    nb = _notebook(tmp_path / "02_chapter.ipynb",
                   {"acc": "81.25", "name": "'BPS'", "n": "5", "flag": "True", "none": "None", "np": "np.float64(1.5)",
                    "npb": "np.True_", "table": "   a  b\n0  1  2"}, displayed={"shown": "3"})
    got = gv.collect([nb])
    assert got == {"02_chapter": {"acc": 81.25, "name": "BPS", "n": 5, "flag": True, "none": None, "np": 1.5,
                                  "npb": True, "table": "   a  b\n0  1  2", "shown": 3}}
    from ddlib.sweep import read_results

    assert "table" not in read_results(nb)  # the sweep's table keeps scalars only, as before
    assert read_results(nb)["shown"] == 3  # glue(..., display=True) is read too


def test_write_then_compare(gv, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:  # noqa: ANN001
    for side in "ab":
        (tmp_path / side).mkdir()
    a = _notebook(tmp_path / "a" / "05_results.ipynb",
                  {"teacher_acc": "90.4", "verdict": "'BPS ahead'", "wall_s": "12.0", "peak_mib": "300.0",
                   "gone": "1", "same": "0.1"})
    b = _notebook(tmp_path / "b" / "05_results.ipynb",
                  {"teacher_acc": "90.5", "verdict": "'BPS ahead'", "wall_s": "99.0", "peak_mib": "999.0",
                   "new": "2", "same": "0.1"})
    ja, jb = tmp_path / "a.json", tmp_path / "b.json"
    assert gv.main([str(ja), str(a)]) == 0 and gv.main([str(jb), str(b)]) == 0
    assert json.loads(ja.read_text())["notebooks"]["05_results"]["teacher_acc"] == 90.4
    capsys.readouterr()
    assert gv.main(["--compare", str(ja), str(jb)]) == 1
    out = capsys.readouterr().out
    assert "05_results: teacher_acc: 90.4 -> 90.5" in out and "3 glued value(s) differ" in out
    assert "gone: only in" in out and "new: only in" in out
    assert "wall_s" not in out and "peak_mib" not in out and "verdict" not in out
    diffs = gv.compare(gv._load(str(ja)), gv._load(str(jb)), rtol=0.01, patterns=(*gv.IGNORED, "gone", "new"))
    assert diffs == []  # 90.4 and 90.5 are within 1 %; the extra names left out
    assert gv.main(["--compare", str(ja), str(ja)]) == 0
    assert "no glued value differs" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        gv.main(["--compare", str(ja)])
    (tmp_path / "bad.json").write_text("[]")
    with pytest.raises(SystemExit, match="not a glue-values file"):
        gv.main(["--compare", str(ja), str(tmp_path / "bad.json")])
