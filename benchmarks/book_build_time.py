"""Wall time of a whole book build from scratch, recorded for the workshop page.

    .venv/bin/python benchmarks/book_build_time.py             # what `make book` does (chapter defaults)
    .venv/bin/python benchmarks/book_build_time.py --scale gpu # what `make book SCALE=gpu` does

With the environment, the data and MathJax already in place (``make env data mathjax``), builds the
book into a temporary folder with a fresh artifact cache and a fresh Jupyter Book execution cache, so
every chapter is executed: the time a reader waits for ``make book`` on a clean checkout, minus the
one-off installation. It runs what ``make book`` runs (``python -m ddlib book --jobs 2``: two chapters at
once, one thread each, over one artifact cache). Writes ``results/book_build_<cpu|gpu>.json`` with
provenance and the machine's load average, and each chapter's own wall time (``chapter_seconds``: over one
artifact cache, so a chapter's time is what it spends beyond what the chapters before or beside it
computed, and two chapters ran at once); ``book/workshop.md`` reads it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default=None, choices=["test", "cpu", "gpu"],
                    help="run every chapter at this scale (papermill); default: the chapters' defaults")
    ap.add_argument("--jobs", type=int, default=2, help="chapters at once, as make book's JOBS (default 2)")
    ap.add_argument("--out", default=None, help="result file (default results/book_build_<cpu|gpu>.json)")
    a = ap.parse_args(argv)

    from ddlib import results
    from ddlib.utils import get_device

    kind = "gpu" if get_device().type == "cuda" else "cpu"
    out = Path(a.out) if a.out else ROOT / "results" / f"book_build_{kind}.json"
    work = Path(tempfile.mkdtemp(prefix="ddlib-book-build-"))
    env = {**os.environ, "DDLIB_CACHE": str(work / "cache"), "DDLIB_OFFLINE": "1", "PLOTLY_RENDERER": "notebook",
           "DDLIB_PROGRESS": "0"}  # as `make book`
    env.pop("DDLIB_TEST", None)
    # what `make book` runs (Makefile: python -m ddlib book --jobs $(JOBS), JOBS=2)
    cmd = [sys.executable, "-m", "ddlib", "book", "--jobs", str(a.jobs), "--out", str(work),
           *(["--scale", a.scale] if a.scale else [])]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    html = work / "_build" / "html" / "index.html"
    ok = proc.returncode == 0 and html.is_file()
    if not ok:
        print(proc.stdout[-3000:], proc.stderr[-3000:], sep="\n", file=sys.stderr)
    command = "python benchmarks/book_build_time.py " + " ".join(argv if argv is not None else sys.argv[1:])
    scale = a.scale or "chapter defaults (make book)"
    row = {"scale": scale, "status": "ok" if ok else f"failed (exit {proc.returncode})", "wall_s": round(wall, 1),
           "load_average_after": [round(x, 2) for x in os.getloadavg()],
           "jobs": a.jobs, "chapter_seconds": chapter_seconds(work / "_build")}
    results.write(out, what="wall time of a whole book build from scratch (fresh artifact and execution caches; "
                            "environment, data and MathJax already installed)",
                  config={"scale": scale, "build_command": " ".join(cmd).replace(str(work), "<tmp>")}, rows=[row],
                  timings={"wall_s": row["wall_s"]}, command=command.strip())
    print(f"book build ({scale}): {row['status']} in {wall / 60:.1f} min -> {out}")
    return 0 if ok else 1


def chapter_seconds(build_dir: Path) -> dict[str, float]:
    """Each chapter's execution time (seconds), by notebook name: from ``chapter_seconds.json``, which
    ``python -m ddlib book`` writes into the build folder (a chapter's wall time in its own kernel; with
    ``--jobs 2`` two chapters ran at once), else from a Jupyter Book execution cache (``.jupyter_cache``, a
    ``jupyter-book build`` that executed the chapters itself); empty when the folder holds neither."""
    import json

    written = build_dir / "chapter_seconds.json"
    if written.is_file():
        return dict(sorted(json.loads(written.read_text())["chapter_seconds"].items()))
    cache_dir = build_dir / ".jupyter_cache"
    if not (cache_dir / "global.db").is_file():
        return {}
    from jupyter_cache import get_cache

    out = {}
    for rec in get_cache(str(cache_dir)).list_cache_records():
        seconds = (rec.data or {}).get("execution_seconds")
        if seconds is not None:
            out[Path(rec.uri).stem] = round(float(seconds), 1)
    return dict(sorted(out.items()))


if __name__ == "__main__":
    raise SystemExit(main())
