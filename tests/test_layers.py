"""Layers only point down: the imports of every ddlib module, read from its source (no import runs)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "ddlib"
MODULES = {".".join(p.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__"): p
           for p in PKG.rglob("*.py")}


def imports(path: Path) -> set[str]:
    """Every ``ddlib...`` module a file imports (at top level or inside functions)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("ddlib")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ddlib"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES}
    return out


def test_the_table_of_modules_is_read() -> None:
    assert {"ddlib.train", "ddlib.losses", "ddlib.encoders", "ddlib.sfm.synth", "ddlib.bps.encoder"} <= set(MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_or_sideways_import(module: str) -> None:
    found = imports(MODULES[module])
    if module.startswith("ddlib.sfm"):
        assert not {m for m in found if m.startswith("ddlib.bps")}, "ddlib.sfm must not import ddlib.bps"
    if module.startswith("ddlib.bps"):
        assert not {m for m in found if m.startswith("ddlib.sfm")}, "ddlib.bps must not import ddlib.sfm"
    if module not in ("ddlib.book", "ddlib.bookbuild"):  # the book helpers
        assert "ddlib.book" not in found, "only the book helpers import ddlib.book"
    if module.startswith("ddlib.plots"):  # figures sit low: they get what a method computes passed in
        bad = {m for m in found if not m.startswith(("ddlib.utils", "ddlib.plots"))}
        assert not bad, f"{module} draws figures but imports {sorted(bad)} (ddlib.plots imports only ddlib.utils)"
    if module.startswith(("ddlib.bps", "ddlib.sfm", "ddlib.kernels")):
        assert not {m for m in found if m.startswith("ddlib.plots")}, f"{module} computes; it must not import plots"
    low = ("ddlib.utils", "ddlib.distributed", "ddlib.artifacts", "ddlib.losses", "ddlib.kernels", "ddlib.models",
           "ddlib.nets", "ddlib.train",
           "ddlib.encoders", "ddlib.baselines", "ddlib.data", "ddlib.metrics")
    if module.startswith(low):
        bad = {m for m in found if re.match(r"ddlib\.(bps|sfm|cli|results|plots|book)", m)}
        assert not bad, f"{module} sits below bps/sfm/cli but imports {sorted(bad)}"


def test_figures_have_one_home() -> None:
    """Only ``ddlib.plots`` imports plotly: figures live there, one module per kind, none beside a method."""
    def third_party(path: Path) -> set[str]:
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        return names | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}

    drawing = {m for m, p in MODULES.items() if any(n.split(".")[0] == "plotly" for n in third_party(p))}
    assert drawing and all(m.startswith("ddlib.plots.") for m in drawing), sorted(drawing)
    assert {"ddlib.plots.images", "ddlib.plots.embeddings", "ddlib.plots.curves"} <= set(MODULES)


def test_one_training_loop() -> None:
    """``opt.step()`` appears in the one loop of ddlib.train and in SFM/LGM's image optimiser only."""
    hits = sorted(str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
                  if re.search(r"\b\w*opt\w*\.step\(\)", p.read_text()))
    assert hits == ["sfm/synth.py", "train/loop.py"]
