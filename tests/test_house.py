"""The house rules of issue 23, read from the sources (nothing runs): modules a newcomer can hold in their head,
one home per public name, a public API per module, and chapters that only call the library."""
from __future__ import annotations

import ast
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "ddlib"
MODULES = sorted(PKG.rglob("*.py"))
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_LINES = 500
MAX_CELL_LINES = 25
#: Names several modules define on purpose, each read with its module: the verbs of a registry or a store
#: (``models.get`` / ``selectors.get``, ``data.load`` / ``artifacts.load`` / ``results.load``), the protocol a
#: plug-in module implements (``ENTRIES`` of a data family, ``add_commands`` and ``OUTPUTS`` of a CLI module),
#: and type variables.
BY_DESIGN = {"get", "names", "register", "load", "ENTRIES", "add_commands", "OUTPUTS", "T"}


def _name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_module_over_500_lines(path: Path) -> None:
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{_name(path)} has {n} lines; split it along its seams (at most {MAX_LINES})"


def _defined(path: Path) -> set[str]:
    """The public names a module defines at top level (functions, classes, assignments), not those it imports."""
    out: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out |= {t.id for t in targets if isinstance(t, ast.Name)}
    return {n for n in out if not n.startswith("_") and n != "__all__"}


def test_no_public_name_is_defined_in_two_modules() -> None:
    homes: dict[str, list[str]] = defaultdict(list)
    for path in MODULES:
        for name in _defined(path):
            homes[name].append(_name(path))
    twice = {n: m for n, m in homes.items() if len(m) > 1 and n not in BY_DESIGN}
    assert not twice, "one home per public name; defined more than once: " + "; ".join(
        f"{n} in {', '.join(m)}" for n, m in sorted(twice.items()))


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_every_module_declares_its_public_api(path: Path) -> None:
    tree = ast.parse(path.read_text())
    names = {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
             for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
    if path.name == "__main__.py" or not _defined(path) and path.name == "__init__.py" and "__all__" not in names:
        return  # an empty package marker or the entry point
    assert "__all__" in names, f"{_name(path)} has no __all__ (the API appendix documents what it lists)"


def _code_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapters_only_call_the_library(path: Path) -> None:
    """No code cell over 25 lines, no function defined in a chapter, no figure drawn with plotly directly: the
    computing and drawing live in ddlib (one home, tested there)."""
    for src in _code_cells(path):
        head = src.strip().splitlines()[0] if src.strip() else ""
        lines = [ln for ln in src.splitlines() if ln.strip()]
        assert len(lines) <= MAX_CELL_LINES, f"{path.stem}: a code cell of {len(lines)} lines ({head!r}...)"
        assert not re.search(r"^\s*(async\s+)?def\s|^\s*class\s", src, re.M), f"{path.stem}: a def in {head!r}"
        assert not re.search(r"\bimport plotly|\bfrom plotly|\bpx\.|\bgo\.Figure", src), \
            f"{path.stem}: plotly called directly in {head!r} (figures come from ddlib.plots)"


def test_every_benchmark_script_is_listed() -> None:
    """benchmarks/README.md says it lists every script (and the command of every record): each one there is."""
    listed = (ROOT / "benchmarks" / "README.md").read_text()
    missing = [p.name for p in sorted((ROOT / "benchmarks").glob("*.py")) if f"`{p.name}`" not in listed]
    assert not missing, f"benchmarks/README.md does not list {missing}"
