"""The progress-bar policy (``ddlib.utils.progress_shown``): bars for a person, none in rendered or tested output."""
from __future__ import annotations

import os
import re
import types
from pathlib import Path

import pytest

from ddlib import sweep, utils
from tests._chapters import write_notebook

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def outside_tests(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """As a user's shell: neither the test-suite's DDLIB_TEST nor any DDLIB_PROGRESS."""
    monkeypatch.delenv("DDLIB_TEST", raising=False)
    monkeypatch.delenv(utils.PROGRESS_ENV, raising=False)
    return monkeypatch


def fake_kernel(monkeypatch: pytest.MonkeyPatch, allow_stdin: bool) -> None:
    """Pretend to run inside an IPython kernel whose current cell came with ``allow_stdin``."""
    import IPython

    shell = types.SimpleNamespace(kernel=types.SimpleNamespace(_allow_stdin=allow_stdin))
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)


def test_a_terminal_shows_bars_unless_the_caller_or_the_environment_says_no(outside_tests) -> None:
    assert utils.progress_shown() is True  # a script or the CLI in a terminal
    assert utils.progress_shown(enabled=False) is False  # progress=False, --quiet
    for off in ("0", "off", "False", " no "):
        outside_tests.setenv(utils.PROGRESS_ENV, off)
        assert utils.progress_shown() is False, off
    outside_tests.setenv(utils.PROGRESS_ENV, "1")
    assert utils.progress_shown() is True
    assert utils.progress_shown(enabled=False) is False


def test_the_test_suite_is_silent_even_when_bars_are_asked_for(outside_tests) -> None:
    outside_tests.setenv("DDLIB_TEST", "1")
    assert utils.progress_shown() is False
    outside_tests.setenv(utils.PROGRESS_ENV, "1")
    assert utils.progress_shown() is False


def test_a_kernel_driven_by_an_executor_is_silent_and_a_frontend_is_not(outside_tests) -> None:
    fake_kernel(outside_tests, allow_stdin=False)  # papermill, nbclient, Jupyter Book's execution
    assert utils._kernel_without_frontend() is True
    assert utils.progress_shown() is False
    outside_tests.setenv(utils.PROGRESS_ENV, "1")  # asked for explicitly: shown
    assert utils.progress_shown() is True
    outside_tests.delenv(utils.PROGRESS_ENV)
    fake_kernel(outside_tests, allow_stdin=True)  # JupyterLab, Notebook, VS Code
    assert utils.progress_shown() is True
    outside_tests.setenv(utils.PROGRESS_ENV, "0")
    assert utils.progress_shown() is False


def test_progress_follows_the_policy(outside_tests, capsys: pytest.CaptureFixture) -> None:
    assert list(utils.progress(range(3), desc="x")) == [0, 1, 2]
    assert "x:" in capsys.readouterr().err  # a bar was drawn on stderr
    outside_tests.setenv(utils.PROGRESS_ENV, "0")
    bar = utils.progress(range(3), desc="x")
    assert bar.disable and list(bar) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_progress_env_sets_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(utils.PROGRESS_ENV, "yes")
    with utils.progress_env(False):
        assert os.environ[utils.PROGRESS_ENV] == "0"
    assert os.environ[utils.PROGRESS_ENV] == "yes"
    monkeypatch.delenv(utils.PROGRESS_ENV)
    with pytest.raises(RuntimeError), utils.progress_env(False):
        raise RuntimeError
    assert utils.PROGRESS_ENV not in os.environ


def test_only_utils_makes_bars() -> None:
    """Every bar goes through ddlib.utils.progress (one policy): no other module uses tqdm."""
    users = [str(p.relative_to(ROOT)) for p in (ROOT / "ddlib").rglob("*.py")
             if p.name != "utils.py" and re.search(r"\btqdm\b", p.read_text())]
    assert users == []


def test_a_sweep_runs_its_notebooks_without_bars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(utils.PROGRESS_ENV, raising=False)
    write_notebook(tmp_path / "env.ipynb", "a = 1",
                   'import os\nfrom myst_nb import glue\nglue("env", os.environ.get("DDLIB_PROGRESS"), display=False)')
    rec, = sweep.sweep(sweep.SweepConfig(notebook=str(tmp_path / "env.ipynb"), grid={"a": [1]},
                                         out=str(tmp_path / "runs")), log=lambda _: None)
    assert rec["status"] == "ok" and rec["results"]["env"] == "0"
    assert utils.PROGRESS_ENV not in os.environ  # restored after the sweep
