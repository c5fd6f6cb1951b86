"""ddlib.bookbuild's parallel execution (``make book`` runs ``python -m ddlib book --jobs 2``): the order it starts
chapters in, what it writes, and a failing chapter named with its executed notebook, nothing built."""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import yaml

from ddlib import bookbuild, results
from ddlib.utils import ParamError
from tests._chapters import write_notebook

pytestmark = pytest.mark.notebook


def _build_record(seconds: dict[str, float], date: str) -> results.Record:
    return results.Record("results/book_build_cpu.json", {
        "what": "w", "provenance": {"command": "c", "commit": "abc", "device": "CPU (2 threads)", "date": date},
        "config": {"scale": results.BOOK_DEFAULT_SCALE}, "timings": {},
        "rows": [{"scale": results.BOOK_DEFAULT_SCALE, "chapter_seconds": seconds}]})


def test_the_costliest_chapters_start_first() -> None:
    """The newest build record's chapter seconds order the chapters, costliest first; an untimed chapter keeps
    the table of contents' order after the timed ones."""
    todo = ["notebooks/00_a", "notebooks/01_b", "notebooks/02_c", "notebooks/03_new"]
    old = _build_record({"00_a": 900.0, "01_b": 1.0, "02_c": 2.0}, "2026-01-01 00:00:00 UTC")
    new = _build_record({"00_a": 12.0, "01_b": 446.0, "02_c": 686.0}, "2026-12-01 00:00:00 UTC")
    assert bookbuild.costliest_first(todo, [old, new]) == ["notebooks/02_c", "notebooks/01_b", "notebooks/00_a",
                                                           "notebooks/03_new"]
    assert bookbuild.costliest_first(todo, []) == todo  # nothing timed: the table of contents' order


def _book(tmp_path: Path, bodies: dict[str, str]) -> Path:
    book = tmp_path / "book"
    (book / "notebooks").mkdir(parents=True)
    for name, body in bodies.items():
        path = write_notebook(book / "notebooks" / f"{name}.ipynb", 'scale = "cpu"', body)
        nb = nbformat.read(path, as_version=4)
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(f"# Chapter {name}"))  # a page needs a title
        nbformat.write(nb, path)
    (book / "intro.md").write_text("# A book\n")
    (book / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "intro", "chapters": [
        {"file": f"notebooks/{n}"} for n in bodies]}))
    (book / "_config.yml").write_text(yaml.safe_dump({"title": "t", "execute": {"execute_notebooks": "off"}}))
    return book


def test_a_parallel_build_runs_every_chapter_in_its_own_kernel_with_its_share_of_threads(tmp_path: Path) -> None:
    body = ('import os\nfrom myst_nb import glue\nglue("threads", os.environ.get("OMP_NUM_THREADS"), '
            'display=False)\nglue("scale", scale, display=False)')
    book = _book(tmp_path, {"01_a": body, "02_b": body})
    html = bookbuild.build(None, out=tmp_path / "out", book=book, progress=False, jobs=2)
    assert (html / "index.html").is_file()
    timed = json.loads((tmp_path / "out" / "_build" / "chapter_seconds.json").read_text())
    assert (timed["scale"], timed["jobs"], sorted(timed["chapter_seconds"])) == (None, 2, ["01_a", "02_b"])
    import os

    want = str(max(1, (os.cpu_count() or 1) // 2))
    for name in ("01_a", "02_b"):  # the chapter's own default scale (nothing injected), the build's thread share
        nb = json.loads((tmp_path / "out" / "_staged" / "notebooks" / f"{name}.ipynb").read_text())
        text = json.dumps(nb["cells"][-1]["outputs"])
        assert want in text and "cpu" in text
        assert not any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])


def test_a_failing_chapter_is_named_with_its_executed_notebook_and_nothing_is_built(tmp_path: Path) -> None:
    book = _book(tmp_path, {"01_ok": "x = 1", "02_bad": 'raise ValueError("broken chapter")'})
    with pytest.raises(RuntimeError, match=r"chapter notebooks/02_bad failed .*02_bad\.ipynb"):
        bookbuild.build("test", out=tmp_path / "out", book=book, progress=False, jobs=2)
    assert not (tmp_path / "out" / "_build" / "html").exists()
    with pytest.raises(ParamError, match="jobs"):
        bookbuild.build("test", out=tmp_path / "out", book=book, progress=False, jobs=0)


def test_a_chapter_that_reads_another_starts_after_it(tmp_path: Path) -> None:
    """Notebook metadata ``{"ddlib": {"after": [...]}}``: with two workers, "02_b" (which reads "01_a"'s
    artifacts) starts only once "01_a" has finished, though a worker is free from the start."""
    stamp = tmp_path / "stamps"
    stamp.mkdir()
    body = ('import time, pathlib\nd = pathlib.Path({!r})\n(d / "{}.start").write_text(repr(time.time()))\n'
            'time.sleep({})\n(d / "{}.end").write_text(repr(time.time()))')
    book = _book(tmp_path, {"01_a": body.format(str(stamp), "01_a", 2, "01_a"),
                            "02_b": body.format(str(stamp), "02_b", 0, "02_b")})
    path = book / "notebooks" / "02_b.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.metadata["ddlib"] = {"after": ["01_a"]}
    nbformat.write(nb, path)
    assert bookbuild.prerequisites("notebooks/02_b", book) == ["01_a"]
    bookbuild.build(None, out=tmp_path / "out", book=book, progress=False, jobs=2)
    read = lambda name: float((stamp / name).read_text())  # noqa: E731
    assert read("02_b.start") >= read("01_a.end")
