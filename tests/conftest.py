"""Shared test fixtures: an isolated cache, no downloads, and a papermill runner for chapters."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("DDLIB_OFFLINE", "1")
os.environ.setdefault("DDLIB_TEST", "1")
os.environ.setdefault("PLOTLY_RENDERER", "notebook")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The test session gets its own artifact cache, never the user's."""
    monkeypatch.setenv("DDLIB_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def run_notebook(tmp_path: Path):
    """Execute ``notebooks/<name>.ipynb`` with papermill and the given parameters; return the output path."""
    import papermill as pm

    def run(name: str, **parameters: object) -> Path:
        out = tmp_path / f"{name}.out.ipynb"
        pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out), parameters=parameters,
                            kernel_name="python3", cwd=str(NOTEBOOKS), progress_bar=False)
        return out

    return run
