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
import time
from pathlib import Path

import yaml

from ddlib.presets import SCALES
from ddlib.utils import ROOT, check_choice, check_int, progress_env

__all__ = ["toc_files", "chapters", "fold_injected_parameters", "build", "costliest_first", "prerequisites",
           "papermill_commands"]


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


def build(scale: str | None = None, out: Path | None = None, book: Path = ROOT / "book", progress: bool = True,
          jobs: int = 1) -> Path:
    """Execute every chapter (papermill) with ``scale``, or with its own defaults when ``scale`` is None (what
    ``make book`` does), build the HTML strictly; return the html folder.

    ``jobs`` > 1 runs that many chapters at once, each in a kernel of its own with the machine's threads shared
    out (``OMP_NUM_THREADS``), the costliest first as the newest book-build record timed them, a chapter only
    once the chapters it reads are done (:func:`prerequisites`). They share one
    artifact cache, whose locks (:func:`ddlib.artifacts.computing`) make a chapter that needs what another is
    computing (chapter 2 needs chapter 1's Stage 1) wait for it instead of computing it again. Each chapter's
    wall seconds go to ``<out>/_build/chapter_seconds.json``."""
    import json

    if scale is not None:
        check_choice("scale", scale, SCALES)
    check_int("jobs", jobs, 1, 64)
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
        todo = chapters(book)
        seconds = (_execute_serially if jobs == 1 else _execute_in_parallel)(todo, book, staged, scale, progress,
                                                                            jobs)
        (out / "_build").mkdir(parents=True, exist_ok=True)
        (out / "_build" / "chapter_seconds.json").write_text(json.dumps(
            {"scale": scale, "jobs": jobs, "chapter_seconds": {Path(c).name: round(t, 1) for c, t in seconds.items()}},
            indent=1) + "\n")
        jb = Path(sys.executable).with_name("jupyter-book")
        subprocess.run([str(jb), "build", "-W", "--keep-going", "--path-output", str(out), str(staged)],
                       check=True, stdout=None if progress else subprocess.DEVNULL)
    return out / "_build" / "html"


def _paths(chapter: str, book: Path, staged: Path) -> tuple[Path, Path]:
    src = (book / f"{chapter}.ipynb").resolve()
    dst = staged / f"{chapter}.ipynb"
    dst.parent.mkdir(parents=True, exist_ok=True)
    return src, dst


def _execute_serially(todo: list[str], book: Path, staged: Path, scale: str | None, progress: bool,
                      jobs: int) -> dict[str, float]:
    import papermill as pm

    seconds = {}
    for chapter in todo:
        src, dst = _paths(chapter, book, staged)
        if progress:
            print(f"executing {chapter} ({_scale_words(scale)})", flush=True)
        t = time.perf_counter()
        pm.execute_notebook(str(src), str(dst), parameters={} if scale is None else {"scale": scale},
                            kernel_name="python3", cwd=str(src.parent), progress_bar=False)
        seconds[chapter] = time.perf_counter() - t
        fold_injected_parameters(dst)
    return seconds


def _scale_words(scale: str | None) -> str:
    return "its default parameters" if scale is None else f"scale={scale}"


def costliest_first(todo: list[str], records: object = None) -> list[str]:
    """``todo`` ordered by the chapter seconds of the newest book-build record (``benchmarks/book_build_time.py``),
    costliest first, so that a parallel build starts its long chapters first; chapters it did not time keep the
    table of contents' order, after the timed ones."""
    from ddlib.results import chapter_time, load

    records = load() if records is None else list(records)  # type: ignore[call-overload]
    timed = {c: chapter_time(Path(c).name, records).get("chapter_seconds") for c in todo}
    return sorted(todo, key=lambda c: (-(timed[c] or 0.0), todo.index(c)) if timed[c] else (1.0, todo.index(c)))


def prerequisites(chapter: str, book: Path = ROOT / "book") -> list[str]:
    """The chapters ``chapter`` reads artifacts of, from its notebook metadata ``{"ddlib": {"after": [names]}}``
    (notebook names, e.g. ``"02_balanced_selection"``): a parallel build starts it only once they are done,
    since it would otherwise wait for their locks, a worker idle (chapter 5 reuses chapters 2 and 4)."""
    import json

    meta = json.loads((book / f"{chapter}.ipynb").read_text()).get("metadata", {})
    return [str(a) for a in (meta.get("ddlib") or {}).get("after", [])]


def _execute_in_parallel(todo: list[str], book: Path, staged: Path, scale: str | None, progress: bool,
                         jobs: int) -> dict[str, float]:
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    seconds: dict[str, float] = {}
    names = {Path(c).name: c for c in todo}
    after = {c: [names[a] for a in prerequisites(c, book) if a in names] for c in todo}

    def run(chapter: str) -> None:
        src, dst = _paths(chapter, book, staged)
        if progress:
            print(f"executing {chapter} ({_scale_words(scale)}, {threads} thread(s))", flush=True)
        cmd = [sys.executable, "-m", "papermill", str(src), str(dst), "-k", "python3", "--cwd", str(src.parent),
               "--no-progress-bar", *(["-p", "scale", scale] if scale is not None else [])]
        t = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"chapter {chapter} failed (papermill exit {proc.returncode}); the executed notebook, "
                               f"with the error, is {dst}:\n{proc.stderr[-2000:]}")
        seconds[chapter] = time.perf_counter() - t
        fold_injected_parameters(dst)
        if progress:
            print(f"done {chapter} in {seconds[chapter]:.0f} s", flush=True)

    waiting, running = costliest_first(todo), {}
    with ThreadPoolExecutor(max_workers=min(jobs, len(todo))) as pool:
        while waiting or running:
            ready = [c for c in waiting if all(a in seconds for a in after[c])]
            for c in ready[:jobs - len(running)]:  # the costliest ready chapters, as workers free up
                waiting.remove(c)
                running[pool.submit(run, c)] = c
            if not running:  # nothing can start: a prerequisite is not in this build
                raise RuntimeError(f"chapters {waiting} wait for chapters that are not built: "
                                   + "; ".join(f"{c} after {after[c]}" for c in waiting))
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in done:
                running.pop(f)
                if f.exception() is not None:
                    for g in running:
                        g.cancel()
                    raise f.exception()  # type: ignore[misc]
    return {c: seconds[c] for c in todo}


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
