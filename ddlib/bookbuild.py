"""Build the book with every chapter run at one scale (``make book SCALE=test``, ``python -m ddlib book``).

``make book`` lets Jupyter Book execute the chapters with their default parameters (and cache
them). To build at another scale, each chapter listed in ``book/_toc.yml`` is executed by
papermill with ``scale=…`` into a staged copy of the book, which Jupyter Book then renders as
executed (``.ipynb`` excluded from its execution; text pages with code cells are run); the
cell of injected parameters is folded on each page (``hide-cell``, one click shows it), like the
chapters' own parameters cell. Progress bars are off in every kernel (``DDLIB_PROGRESS=0``). The staged copy lives in ``<out>/_staged``; the HTML goes
to ``<out>/_build/html``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from ddlib.presets import SCALES
from ddlib.utils import ROOT, check_choice, progress_env

__all__ = ["toc_files", "chapters", "fold_injected_parameters", "build", "papermill_commands"]


def toc_files(toc: dict) -> list[str]:
    """Every ``file:`` of a Jupyter Book table of contents, in reading order (root first)."""
    found = [toc["root"]] if "root" in toc else []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                found.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                walk(node.get(key, []))
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return found


def chapters(book: Path = ROOT / "book") -> list[str]:
    """The toc entries that are notebooks (``notebooks/NN_name``)."""
    toc = yaml.safe_load((book / "_toc.yml").read_text())
    return [f for f in toc_files(toc) if (book / f"{f}.ipynb").is_file()]


def fold_injected_parameters(path: Path) -> None:
    """Tag the cell papermill injected into an executed notebook ``hide-cell`` (Jupyter Book folds it), as the
    chapters tag their own parameters cell: the page opens with the chapter's question, not its settings."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "hide-cell" not in tags:
            cell.metadata["tags"] = [*tags, "hide-cell"]
            cell.metadata["mystnb"] = {"code_prompt_show": "Show the parameters this build set",
                                       "code_prompt_hide": "Hide the parameters this build set"}
    nbformat.write(nb, str(path))


def build(scale: str, out: Path | None = None, book: Path = ROOT / "book", progress: bool = True) -> Path:
    """Execute every chapter with ``scale`` (papermill), build the HTML strictly; return the html folder."""
    import papermill as pm

    check_choice("scale", scale, SCALES)
    out = Path(out) if out is not None else book
    staged = out / "_staged"
    if staged.exists():
        shutil.rmtree(staged)
    shutil.copytree(book, staged, symlinks=False,
                    ignore=lambda d, names: [n for n in names if n in ("_build", "_staged", "notebooks")])
    config = yaml.safe_load((book / "_config.yml").read_text())
    # the chapters arrive executed by papermill; text pages with code cells (the workshop page's
    # table) are still executed by Jupyter Book, else their glue keys would be missing
    config["execute"] = {**config.get("execute", {}), "execute_notebooks": "force",
                         "exclude_patterns": ["*.ipynb"]}
    (staged / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    os.environ.setdefault("PLOTLY_RENDERER", "notebook")  # the kernels inherit it (see ddlib.plots)
    # no progress bars in the pages: the kernels (and Jupyter Book's) inherit DDLIB_PROGRESS=0
    with progress_env(False):
        for chapter in chapters(book):
            src = (book / f"{chapter}.ipynb").resolve()
            dst = staged / f"{chapter}.ipynb"
            dst.parent.mkdir(parents=True, exist_ok=True)
            if progress:
                print(f"executing {chapter} (scale={scale})", flush=True)
            pm.execute_notebook(str(src), str(dst), parameters={"scale": scale}, kernel_name="python3",
                                cwd=str(src.parent), progress_bar=False)
            fold_injected_parameters(dst)
        jb = Path(sys.executable).with_name("jupyter-book")
        subprocess.run([str(jb), "build", "-W", "--keep-going", "--path-output", str(out), str(staged)],
                       check=True, stdout=None if progress else subprocess.DEVNULL)
    return out / "_build" / "html"


def papermill_commands(page: Path) -> list[list[str]]:
    """The papermill commands a page shows in its ``bash`` code blocks, each as its argument list (``shlex``;
    continued lines joined; ``#`` comments dropped), from the word ``papermill`` on. The workshop page's
    commands are parsed and run from here by ``tests/test_workshop.py`` and ``benchmarks/chapter_times.py``."""
    import re
    import shlex

    text = Path(page).read_text()
    out = []
    for block in re.findall(r"```(?:bash|console|shell)\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            at = next((i for i, w in enumerate(words) if Path(w).name == "papermill"), None)
            if at is not None:
                out.append(words[at:])
    return out
