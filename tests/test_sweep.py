"""``python -m ddlib sweep``: papermill over a grid, outputs named by parameters, resumable, failures isolated."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ddlib import cli
from ddlib.sweep import SweepConfig, expand, parse_grid, parse_value, read_results, run_name, sweep
from ddlib.utils import ParamError

from tests._chapters import write_notebook

TINY = '''from myst_nb import glue
if fail:
    raise RuntimeError(f"asked to fail at a={a}")
glue("square", a * a, display=False)
glue("label", f"{tag}-{a}", display=False)
glue("half", a / 2, display=False)
'''


def tiny_notebook(folder: Path) -> Path:
    return write_notebook(folder / "tiny.ipynb", 'a = 1\ntag = "x"\nfail = False', TINY)


def test_values_and_grid() -> None:
    assert [parse_value(v) for v in ("3", "0.5", "true", "None", "cifar10:/a/b")] == [3, 0.5, True, None, "cifar10:/a/b"]
    grid = parse_grid([("a", "1,2"), ("tag", "x,y")])
    assert expand(grid) == [{"a": 1, "tag": "x"}, {"a": 1, "tag": "y"}, {"a": 2, "tag": "x"}, {"a": 2, "tag": "y"}]
    assert run_name("00_data", {"dataset": "digits", "ipc": 10}) == "00_data__dataset=digits__ipc=10"
    # a value a file name cannot hold exactly keeps its readable part and gains a digest of the full values
    assert run_name("00_data", {"dataset": "cifar10:/data/c.tar", "ipc": 10}).startswith(
        "00_data__dataset=cifar10-data-c.tar__ipc=10__h-")
    for bad in ([("a", "")], [("a", "1"), ("a", "2")], [("1a", "1")]):
        with pytest.raises(ParamError):
            parse_grid(bad)
    with pytest.raises(ParamError, match="notebook"):
        SweepConfig(notebook=__file__, grid={"a": [1]})


def test_config_checks(tmp_path: Path) -> None:
    nb = str(tiny_notebook(tmp_path))
    with pytest.raises(ParamError, match="jobs"):
        SweepConfig(notebook=nb, grid={"a": [1]}, jobs=0)
    with pytest.raises(ParamError, match="grid"):
        SweepConfig(notebook=nb, grid={})


def test_sweep_records_resumes_and_isolates_failures(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    nb = tiny_notebook(tmp_path)
    out = tmp_path / "runs"
    argv = ["sweep", str(nb), "-p", "a", "2,3", "-p", "fail", "False,True", "--out", str(out), "--jobs", "2"]
    assert cli.main(argv) == 1  # the runs with fail=True fail; the others complete
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 4 and sorted(table["status"]) == ["failed", "failed", "ok", "ok"]
    ok = table[table.status == "ok"].set_index("a")
    assert ok.loc[3, "square"] == 9 and ok.loc[3, "label"] == "x-3" and ok.loc[2, "half"] == 1.0
    failed = table[table.status == "failed"]
    assert failed["error"].str.contains("RuntimeError: asked to fail").all()
    records = json.loads((out / "results.json").read_text())
    assert all({"command", "commit", "device", "date"} <= r["provenance"].keys() for r in records)
    assert (out / "tiny__a=3__fail=False.ipynb").is_file()
    assert read_results(out / "tiny__a=3__fail=False.ipynb") == {"square": 9, "label": "x-3", "half": 1.5}
    printed = capsys.readouterr().out
    assert "failed: {'a': 2, 'fail': True}" in printed

    # resumable: the successful runs are skipped, the failed ones are run again
    records = sweep(SweepConfig(notebook=str(nb), grid=parse_grid([("a", "2,3"), ("fail", "False,True")]),
                                out=str(out)), log=lambda s: None)
    assert [r["skipped"] for r in records] == [True, False, True, False]
    # a new value adds a run beside the old ones; the table keeps the earlier rows (issue 14: a second
    # grid used to rewrite results.csv with only its own rows)
    records = sweep(SweepConfig(notebook=str(nb), grid={"a": [3, 4], "fail": [False]}, out=str(out)),
                    log=lambda s: None)
    assert [r["skipped"] for r in records] == [True, False]
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 5 and table[table.status == "ok"]["square"].tolist() == [4, 9, 16]


def test_cli_reports_a_missing_notebook(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["sweep", str(tmp_path / "none.ipynb"), "-p", "a", "1", "--out", str(tmp_path)]) == 2
    assert "notebook=" in capsys.readouterr().err


def test_parallel_sweep_with_relative_paths(tmp_path: Path, monkeypatch: pytest.CaptureFixture) -> None:
    """Issue 14: ``--jobs 2`` with a relative notebook and ``--out`` (the README's form) broke, because
    papermill changes the working directory of the whole process while threads shared it."""
    nb = tiny_notebook(tmp_path)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    argv = ["sweep", f"../{nb.name}", "-p", "a", "1,2,3,4", "--out", "runs", "--jobs", "2"]
    assert cli.main(argv) == 0
    out = tmp_path / "work" / "runs"
    table = pd.read_csv(out / "results.csv")
    assert sorted(table["square"]) == [1, 4, 9, 16] and set(table["status"]) == {"ok"}
    for a in (1, 2, 3, 4):
        assert read_results(out / f"tiny__a={a}.ipynb")["square"] == a * a
    assert not list(tmp_path.glob("runs")) and not list((tmp_path / "work").glob("*.ipynb"))  # nothing misplaced


def test_second_grid_merges_and_a_rerun_replaces_its_row(tmp_path: Path) -> None:
    nb = tiny_notebook(tmp_path)
    out = tmp_path / "runs"
    quiet = {"log": lambda s: None}
    sweep(SweepConfig(notebook=str(nb), grid={"a": [1, 2]}, out=str(out)), **quiet)
    sweep(SweepConfig(notebook=str(nb), grid={"a": [3], "tag": ["y"]}, out=str(out)), **quiet)
    table = pd.read_csv(out / "results.csv")
    assert table["square"].tolist() == [1, 4, 9] and table["label"].tolist() == ["x-1", "x-2", "y-3"]
    # a re-run of the same point (its record removed, so it runs again) replaces its row, in place
    (out / "tiny__a=2.json").unlink()
    records = sweep(SweepConfig(notebook=str(nb), grid={"a": [2]}, out=str(out)), **quiet)
    assert [r["skipped"] for r in records] == [False]
    table = pd.read_csv(out / "results.csv")
    assert table["square"].tolist() == [1, 4, 9]
    rows = json.loads((out / "results.json").read_text())
    assert [r["parameters"] for r in rows] == [{"a": 1}, {"a": 2}, {"a": 3, "tag": "y"}]
    assert rows[1]["wall_s"] == records[0]["wall_s"]  # the new run's row, not the old one


def test_table_is_rebuilt_from_records_when_results_json_is_lost(tmp_path: Path) -> None:
    """A sweep that stopped before writing its table loses nothing: the run records are merged."""
    nb = tiny_notebook(tmp_path)
    out = tmp_path / "runs"
    sweep(SweepConfig(notebook=str(nb), grid={"a": [1, 2]}, out=str(out)), log=lambda s: None)
    (out / "results.json").write_text("[{truncated")
    (out / "results.csv").unlink()
    sweep(SweepConfig(notebook=str(nb), grid={"a": [5]}, out=str(out)), log=lambda s: None)
    assert sorted(pd.read_csv(out / "results.csv")["square"]) == [1, 4, 25]


def test_sweep_json_is_strict(tmp_path: Path) -> None:
    """A glued NaN/inf or a NaN parameter never writes the bare tokens NaN/Infinity (strict parsers reject them)."""
    write_notebook(tmp_path / "f.ipynb", "x = 1.0", 'from myst_nb import glue\nglue("y", x * 2, display=False)')
    out = tmp_path / "runs"
    sweep(SweepConfig(notebook=str(tmp_path / "f.ipynb"), grid={"x": [float("nan"), float("inf"), 1.5]}, out=str(out)),
          log=lambda s: None)

    def strict(text: str) -> object:
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON token {c}"))

    rows = strict((out / "results.json").read_text())
    assert [r["parameters"]["x"] for r in rows] == [None, None, 1.5]
    for f in out.glob("f__*.json"):
        strict(f.read_text())


# ----------------------------------------------------------------------------- issue 24: every run keeps its name
def test_values_a_file_name_cannot_tell_apart_are_two_runs(tmp_path: Path) -> None:
    """Issue 24: values differing only in characters a file name cannot hold (or after the 60 characters a run
    name keeps) gave two runs one name: the second overwrote the first's notebook and record, results.csv kept
    one row, "2 ok", exit 0."""
    nb = tiny_notebook(tmp_path)
    out = tmp_path / "runs"
    tags = ["a b", "a/b", "x" * 60 + "1", "x" * 60 + "2"]
    records = sweep(SweepConfig(notebook=str(nb), grid={"tag": tags}, out=str(out)), log=lambda s: None)
    assert len({r["run"] for r in records}) == 4 and all(r["status"] == "ok" for r in records)
    table = pd.read_csv(out / "results.csv")
    assert sorted(table["label"]) == sorted(f"{t}-1" for t in tags)
    assert len(list(out.glob("tiny__*.ipynb"))) == 4 and len(list(out.glob("tiny__*.json"))) == 4
    assert [r["run"] for r in records] == [run_name("tiny", {"tag": t}) for t in tags]
    assert all("__h-" in r["run"] for r in records)  # none of them can be said exactly in a file name


def test_a_grid_that_would_give_two_runs_one_name_is_refused(tmp_path: Path, capsys) -> None:
    nb = tiny_notebook(tmp_path)
    assert cli.main(["sweep", str(nb), "-p", "a", "1,2,1", "--out", str(tmp_path / "runs")]) == 2
    assert "error: -p a: the value 1 is given twice" in capsys.readouterr().err
    with pytest.raises(ParamError, match=r"the grid gives two runs the name 'tiny__a=nan__h-"):
        sweep(SweepConfig(notebook=str(nb), grid={"a": [float("nan"), float("nan")]}, out=str(tmp_path / "runs")))
    assert not (tmp_path / "runs").exists()  # refused before any run, nothing written


def test_a_point_another_sweep_is_running_is_left_to_it(tmp_path: Path, capsys) -> None:
    """Two sweeps into one folder never run the same point at once: the second reports it busy, writes neither
    its notebook, its record nor its row, and the other points run."""
    import os
    import socket

    nb = tiny_notebook(tmp_path)
    out = tmp_path / "runs"
    out.mkdir()
    (out / ".tiny__a=1.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    assert cli.main(["sweep", str(nb), "-p", "a", "1,2", "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "busy  tiny__a=1" in printed and "is in use by another run" in printed
    rows = json.loads((out / "results.json").read_text())
    assert [r["parameters"] for r in rows] == [{"a": 2}]
    assert not (out / "tiny__a=1.json").exists() and not (out / "tiny__a=1.ipynb").exists()
    assert (out / ".tiny__a=1.lock").exists() and not (out / ".tiny__a=2.lock").exists()


def test_a_list_parameter_is_one_value_of_the_grid(tmp_path: Path) -> None:
    """Chapters take lists (``ipcs``, ``methods``): a value in brackets is one list, its commas kept, so
    ``-p ipcs '[1,10],[1,10,50]'`` is two runs, each handed the whole list by papermill."""
    assert parse_value("[1, 10]") == [1, 10] and parse_value("[bps,'random']") == ["bps", "random"]
    assert parse_value("[]") == []
    assert parse_grid([("ipcs", "[1,10],[1,10,50]"), ("seed", "0,1")]) == {"ipcs": [[1, 10], [1, 10, 50]],
                                                                           "seed": [0, 1]}
    for bad in ("[1,[2]]", "[1,2", "1]"):
        with pytest.raises(ParamError, match="-p ipcs: .*list"):
            parse_grid([("ipcs", bad)])
    with pytest.raises(ParamError, match="given twice"):
        parse_grid([("ipcs", "[1,10],[1, 10]")])
    nb = write_notebook(tmp_path / "lists.ipynb", "ipcs = [1]", 'from myst_nb import glue\nglue("n", len(ipcs), '
                   'display=False)\nglue("top", max(ipcs), display=False)')
    out = tmp_path / "runs"
    assert cli.main(["sweep", str(nb), "-p", "ipcs", "[1,10],[1,10,50]", "--out", str(out)]) == 0
    rows = json.loads((out / "results.json").read_text())
    assert sorted((r["parameters"]["ipcs"], r["results"]["n"], r["results"]["top"]) for r in rows) == [
        ([1, 10], 2, 10), ([1, 10, 50], 3, 50)]
    assert len({r["run"] for r in rows}) == 2  # each list its own run name (a digest: brackets are not file names)
