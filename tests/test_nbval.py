"""Reproducibility: a chapter executed twice with the same seed shows the same outputs (nbval).

Each chapter runs at scale "test": first with papermill (as the book build does), then ``pytest --nbval``
executes the papermill output again in a fresh kernel and compares every cell's outputs with the stored
ones. Each of the two passes has an artifact cache of its own, filled from empty in chapter order (as a
reader running the book from a clean checkout: a chapter reuses what the earlier ones cached), so the
second pass computes every encoder, pattern set, teacher, selection, synthetic image and accuracy again
rather than reading the first pass's back. Both run single-threaded (``OMP_NUM_THREADS=1``), like the rest
of the suite on CPU.

What legitimately differs is sanitised by ``tests/nbval_sanitize.cfg`` (figure ids, memory addresses,
printed wall times and peak memory, tables with wall-clock columns); cells that show nothing but
wall-clock numbers carry the ``nbval-ignore-output`` tag in the notebooks. A mismatch fails with the
chapter, the cell's number and first line, and nbval's diff of the outputs.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ddlib import bookbuild

pytestmark = [pytest.mark.slow, pytest.mark.notebook]
ROOT = Path(__file__).resolve().parents[1]
SANITIZE = Path(__file__).with_name("nbval_sanitize.cfg")
CHAPTERS = [Path(c).name for c in bookbuild.chapters()]
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the module: ``cache-papermill``, ``cache-nbval`` and the executed chapters."""
    return tmp_path_factory.mktemp("nbval")


def run_papermill(chapter: str, work: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import papermill as pm

    for name, value in {**SINGLE_THREAD, "DDLIB_CACHE": str(work / "cache-papermill"), "DDLIB_PROGRESS": "0"}.items():
        monkeypatch.setenv(name, value)  # the kernel inherits them
    out = work / f"{chapter}.ipynb"
    pm.execute_notebook(str(ROOT / "notebooks" / f"{chapter}.ipynb"), str(out), parameters={"scale": "test"},
                        kernel_name="python3", cwd=str(ROOT / "notebooks"), progress_bar=False)
    return out


def run_nbval(notebook: Path, work: Path) -> subprocess.CompletedProcess:
    """``pytest --nbval`` on ``notebook`` in a pytest of its own (an empty ini: no conftest, no options of ours)."""
    ini = work / "nbval.ini"
    ini.write_text("[pytest]\n")
    env = {**os.environ, **SINGLE_THREAD, "DDLIB_CACHE": str(work / "cache-nbval"), "DDLIB_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "--nbval-sanitize-with", str(SANITIZE),
           "-c", str(ini), "--rootdir", str(work), "-p", "no:cacheprovider", "-q", "-rf", "--tb=short", "--color=no",
           str(notebook)]
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=1800)


def failed_cells(report: str, notebook: Path) -> list[str]:
    """``'Cell 12 (acc = pd.DataFrame(…)'`` for every cell nbval reports as failed."""
    cells = json.loads(notebook.read_text())["cells"]
    found = []
    for n in dict.fromkeys(int(m) for m in re.findall(r"::Cell (\d+)", report)):
        first = "".join(cells[n]["source"]).strip().splitlines()[:1] if n < len(cells) else []
        found.append(f"Cell {n} ({first[0][:70] if first else ''})")
    return found


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_reproduces_its_outputs(chapter: str, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    executed = run_papermill(chapter, work, monkeypatch)
    proc = run_nbval(executed, work)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, (
        f"{chapter}: a second execution with the same seed gave other outputs in "
        f"{failed_cells(report, executed) or 'no cell named (see the report)'}\n{report[-6000:]}")
    assert re.search(r"\d+ passed", report), report[-2000:]  # nbval collected and checked the cells


def test_a_changed_output_is_reported_with_its_cell(tmp_path: Path) -> None:
    """The harness itself: a stored output that a re-execution does not give back fails, naming the cell;
    a sanitised difference (a wall time in a table's ms column) passes."""
    import nbformat

    def cell(source: str, stored: str) -> nbformat.NotebookNode:
        return nbformat.v4.new_code_cell(source, execution_count=1,
                                         outputs=[nbformat.v4.new_output("stream", name="stdout", text=stored)])

    nb = nbformat.v4.new_notebook(cells=[cell("print(6 * 7)", "41\n"),
                                         cell('print("method  IPC 1 (ms)\\nbps  1.5")', "method  IPC 1 (ms)\nbps  9.9\n")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "changed.ipynb"
    nbformat.write(nb, path)
    proc = run_nbval(path, tmp_path)
    report = proc.stdout + proc.stderr
    assert proc.returncode == 1, report[-2000:]
    assert failed_cells(report, path) == ["Cell 0 (print(6 * 7))"], report[-2000:]
    assert "1 passed" in report  # the table's wall-clock column is sanitised
