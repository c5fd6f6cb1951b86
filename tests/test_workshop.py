"""The workshop page (``book/workshop.md``) can be run as written: its agenda fills 90 minutes, every papermill
command it shows parses with papermill's own command line into parameters the chapter has (lists as lists), its
``python -m ddlib`` commands parse, and (slow) every papermill command runs, at the test scale."""
from __future__ import annotations

import ast
import json
import re
import shlex
from pathlib import Path
from unittest import mock

import pytest

from ddlib import bookbuild, presets

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "book" / "workshop.md"
COMMANDS = bookbuild.papermill_commands(PAGE)
#: the chapters' parameters that take a list: those a scale of ddlib.presets.VALUES sets to a list
LISTS = {n for wf in presets.VALUES.values() for v in wf.values() for n, x in v.items() if isinstance(x, (list, tuple))}


def parsed(words: list[str]) -> dict:
    """What papermill's command line hands to ``execute_notebook`` for ``papermill ARGS`` (its run replaced)."""
    import papermill.cli

    with mock.patch.object(papermill.cli, "execute_notebook") as run:
        papermill.cli.papermill.main(words[1:], standalone_mode=False)
    return run.call_args.kwargs


def chapter_parameters(notebook: Path) -> set[str]:
    """The names the chapter's cell tagged ``parameters`` assigns."""
    cell = next(c for c in json.loads(notebook.read_text())["cells"] if "parameters" in c["metadata"].get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    return {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}


def test_the_agenda_fills_90_minutes_with_talks_and_hands_on() -> None:
    text = PAGE.read_text()
    agenda = text.split("## Agenda", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in agenda.splitlines()
            if re.match(r"\|\s*\d:\d\d", line)]
    assert sum(int(r[1]) for r in rows) == 90
    assert {r[2] for r in rows} == {"talk", "hands-on"}
    at = 0
    for start, minutes, *_ in rows:  # each block starts when the one before ends
        assert start == f"{at // 60}:{at % 60:02d}", (start, at)
        at += int(minutes)
    for heading in ("## Learning goals", "## Agenda", "## Before the day: the set-up checklist", "## Exercises"):
        assert heading in text


def test_the_page_shows_papermill_commands_for_every_exercise() -> None:
    assert len(COMMANDS) >= 6  # the set-up check and the exercises
    exercises = re.findall(r"\*\*Exercise \d+ \(chapter \d\)", PAGE.read_text())
    assert len(exercises) == len(COMMANDS) - 1


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(w[1:3]) for w in COMMANDS])
def test_a_command_sets_only_the_chapters_parameters(words: list[str]) -> None:
    kw = parsed(words)
    notebook = ROOT / "notebooks" / kw["input_path"]
    assert notebook.is_file(), f"{shlex.join(words)}: no chapter {kw['input_path']} (the page runs from notebooks/)"
    params = kw["parameters"]
    unknown = set(params) - chapter_parameters(notebook)
    assert not unknown, f"{shlex.join(words)}: {sorted(unknown)} are not parameters of {notebook.name}"
    assert params.get("scale") == "workshop", f"{shlex.join(words)}: runs at scale {params.get('scale')!r}"
    for name, value in params.items():
        if name in LISTS:
            assert isinstance(value, list), f"{shlex.join(words)}: {name}={value!r} reaches the chapter as text"
    assert kw["output_path"].startswith("out/"), "the page's outputs go to notebooks/out/ (git-ignored)"


def test_p_passes_a_list_as_text_and_y_as_a_list() -> None:
    """What the page says about -p and -y, checked against papermill, and that the chapters read -p's text as a list."""
    from ddlib.book import parse_list

    base = ["papermill", "02_balanced_selection.ipynb", "out/x.ipynb"]
    assert parsed(base + ["-p", "ipcs", "[1, 2]"])["parameters"]["ipcs"] == "[1, 2]"
    assert parsed(base + ["-y", "ipcs: [1, 2]"])["parameters"]["ipcs"] == [1, 2]
    assert parsed(base + ["-p", "k_ratio", "0.2"])["parameters"]["k_ratio"] == 0.2
    for text in ("[1, 2]", "1,2"):
        assert parse_list("ipcs", parsed(base + ["-p", "ipcs", text])["parameters"]["ipcs"]) == [1, 2]


def test_the_ddlib_commands_parse() -> None:
    from ddlib.cli import build_parser

    parser, handlers = build_parser()
    blocks = re.findall(r"```bash\n(.*?)```", PAGE.read_text(), flags=re.S)
    shown = [shlex.split(line, comments=True) for b in blocks for line in b.splitlines() if "-m ddlib " in line]
    assert shown, "the page shows the cache commands"
    for words in shown:
        args = parser.parse_args(words[words.index("ddlib") + 1:])
        assert args.command in handlers


def test_the_workshop_scale_builds_for_every_chapter() -> None:
    for fn in (presets.data, presets.stage1, presets.bps, presets.sfm, presets.ci, presets.results):
        fn("workshop")


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(w[1:3]) for w in COMMANDS])
def test_a_command_runs_at_the_test_scale(words: list[str], tmp_path: Path) -> None:
    """The command as the page shows it, with scale "test" for "workshop" (the recorded workshop run,
    benchmarks/chapter_times.py --exercises, runs them at their own scale)."""
    import papermill as pm

    kw = parsed(words)
    params = {**kw["parameters"], "scale": "test"}
    pm.execute_notebook(str(ROOT / "notebooks" / kw["input_path"]), str(tmp_path / "out.ipynb"), parameters=params,
                        kernel_name="python3", cwd=str(ROOT / "notebooks"), progress_bar=False)
