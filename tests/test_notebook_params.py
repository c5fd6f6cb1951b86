"""Issue 24: every chapter of book/_toc.yml checks what papermill injected before any work.

An unknown parameter (``-p ipcc 3``) used to draw only papermill's warning while the chapter ran on its
defaults and exited 0; now the chapter stops in its first cells with a ParamError listing the names it
accepts. A ``$DDLIB_CACHE`` it cannot use stops it there too. List-valued parameters accept the forms the
pages show (``-p ipcs 1,2`` and ``-p ipcs "[1, 2]"``), checked on a two-cell notebook of the same shape.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill as pm
import pytest

from ddlib.bookbuild import chapters

pytestmark = pytest.mark.notebook
ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [Path(c).name for c in chapters(ROOT / "book")]


def _parameters_cell(name: str) -> list[str]:
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    return [line.split("=")[0].strip() for line in cell.source.splitlines() if "=" in line and not line.startswith("#")]


def test_every_chapter_is_covered() -> None:
    assert len(CHAPTERS) >= 6 and all(_parameters_cell(c) for c in CHAPTERS)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_an_unknown_parameter_stops_the_chapter_in_its_first_cells(chapter: str, run_notebook) -> None:
    with pytest.raises(pm.PapermillExecutionError) as err:
        run_notebook(chapter, scale="test", ipcc=3)
    assert err.value.ename == "ParamError" and err.value.exec_count <= 3, err.value.evalue
    assert err.value.evalue.startswith("'ipcc' is not a parameter of this chapter; accepted: [")
    for name in _parameters_cell(chapter):  # the accepted names are the chapter's own parameters
        assert repr(name) in err.value.evalue, name


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_an_unusable_cache_stops_the_chapter_in_its_first_cells(chapter: str, run_notebook, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cache-file").write_text("x")
    monkeypatch.setenv("DDLIB_CACHE", str(tmp_path / "cache-file"))  # the kernel inherits it
    with pytest.raises(pm.PapermillExecutionError) as err:
        run_notebook(chapter, scale="test")
    assert err.value.ename == "ParamError" and err.value.exec_count <= 3
    assert err.value.evalue.startswith(f"DDLIB_CACHE={str(tmp_path / 'cache-file')!r} is a file, not a folder")


LISTS = '''from ddlib import book
book.check_parameters(globals())
print(json.dumps({"ipcs": ipcs, "methods": methods}))
'''


def _shaped_like_a_chapter(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import json\nscale = 'test'\nipcs = None\nmethods = None",
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(LISTS)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "lists.ipynb")
    return folder / "lists.ipynb"


@pytest.mark.parametrize("ipcs, methods, want", [
    ("1,2", "bps,random", {"ipcs": [1, 2], "methods": ["bps", "random"]}),
    ("[1, 2]", '["bps"]', {"ipcs": [1, 2], "methods": ["bps"]}),
    (10, "bps", {"ipcs": 10, "methods": ["bps"]}),
    ([1, 10], None, {"ipcs": [1, 10], "methods": None}),
])
def test_list_parameters_take_the_forms_the_pages_show(ipcs, methods, want: dict, tmp_path: Path) -> None:
    src = _shaped_like_a_chapter(tmp_path)
    pm.execute_notebook(str(src), str(tmp_path / "o.ipynb"), parameters={"ipcs": ipcs, "methods": methods},
                        kernel_name="python3", progress_bar=False)
    out = nbformat.read(tmp_path / "o.ipynb", as_version=4).cells[-1].outputs[0]["text"]
    assert json.loads(out) == want


def test_a_list_that_cannot_be_read_says_how_to_pass_one(tmp_path: Path) -> None:
    src = _shaped_like_a_chapter(tmp_path)
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(src), str(tmp_path / "o.ipynb"), parameters={"ipcs": "[1, 2"}, kernel_name="python3",
                            progress_bar=False)
    assert err.value.evalue == ("ipcs='[1, 2' is not a list; pass a list as -p ipcs 1,10 or -p ipcs \"[1, 10]\" "
                                "(or papermill's -y \"ipcs: [1, 10]\"; from Python, a list)")
