"""benchmarks/book_build_time.py reads each chapter's execution time back from the build folder."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def _script():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("book_build_time", ROOT / "benchmarks" / "book_build_time.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def test_chapter_seconds_from_the_execution_cache(tmp_path: Path) -> None:
    from jupyter_cache import get_cache

    script = _script()
    cache_dir = tmp_path / ".jupyter_cache"
    assert script.chapter_seconds(tmp_path) == {}  # no cache: nothing, not an error
    cache = get_cache(str(cache_dir))
    for name, seconds in (("05_results", 41.26), ("02_balanced_selection", 300.04)):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(f"print('{name}')", execution_count=1)])
        path = tmp_path / f"{name}.ipynb"
        nbformat.write(nb, path)
        cache.cache_notebook_file(str(path), uri=str(path), data={"execution_seconds": seconds}, check_validity=False)
    assert script.chapter_seconds(tmp_path) == {"02_balanced_selection": 300.0, "05_results": 41.3}
    # a papermill build (python -m ddlib book) writes its chapters' wall seconds beside: those are read first
    (tmp_path / "chapter_seconds.json").write_text('{"scale": null, "jobs": 2, "chapter_seconds": '
                                                    '{"01_a": 446.4, "00_b": 12.1}}')
    assert script.chapter_seconds(tmp_path) == {"00_b": 12.1, "01_a": 446.4}
