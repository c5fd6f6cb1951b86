"""Wall time of each chapter run with its defaults (papermill), recorded for the workshop page.

    .venv/bin/python benchmarks/chapter_times.py [--scale cpu] [--chapters 00_data,01_pattern_discovery]

Runs the chapters one at a time, in order, in a fresh artifact cache shared by the sequence (as a
reader running the book from a clean checkout: later chapters reuse what earlier ones cached), and
merges one entry per chapter into ``results/chapter_times_<scale>.json`` with provenance
(entries of chapters not run this time are kept). ``book/workshop.md`` reads that file.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="cpu", choices=["test", "cpu", "gpu"])
    ap.add_argument("--chapters", default=None, help="comma-separated notebook names (default: every chapter)")
    ap.add_argument("--cache", default=None, help="artifact cache to use (default: a fresh temporary folder)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    import papermill as pm

    from ddlib import results

    command = "python benchmarks/chapter_times.py " + " ".join(argv or sys.argv[1:])
    names = a.chapters.split(",") if a.chapters else sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    out = Path(a.out) if a.out else ROOT / "results" / f"chapter_times_{a.scale}.json"
    cache = a.cache or tempfile.mkdtemp(prefix="ddlib-chapter-times-")
    os.environ["DDLIB_CACHE"] = cache
    os.environ.setdefault("DDLIB_OFFLINE", "1")
    os.environ.pop("DDLIB_TEST", None)
    os.environ["DDLIB_PROGRESS"] = "0"  # as the book build: no bars (their output costs time in a kernel)
    chapters = {r["chapter"]: r for r in results.load_file(out)[0].rows} if out.is_file() else {}
    work = Path(tempfile.mkdtemp(prefix="ddlib-chapter-runs-"))
    for name in names:
        start = time.perf_counter()
        status, error = "ok", None
        try:
            pm.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(work / f"{name}.ipynb"),
                                parameters={"scale": a.scale}, kernel_name="python3", cwd=str(ROOT / "notebooks"),
                                progress_bar=False)
        except Exception as e:  # noqa: BLE001 - recorded, the next chapter still runs
            status, error = "failed", f"{type(e).__name__}: {str(e).splitlines()[-1] if str(e) else ''}"
        wall = time.perf_counter() - start
        load = os.getloadavg()
        chapters[name] = {
            "chapter": name, "scale": a.scale, "status": status, "error": error, "wall_s": round(wall, 1),
            "load_average_after": [round(x, 2) for x in load],
            "cache": "fresh at the first chapter of the run, shared in order" if not a.cache else a.cache,
            "run_order": names, "provenance": results.provenance(command),
        }
        print(f"{name}: {status} in {wall:.1f} s (load {load[0]:.1f})", flush=True)
        # the file is a whole record after every chapter (an interrupted run keeps what it measured); it merges
        # the chapters of several runs, so no one wall time is its own (each row has its chapter's)
        results.write(out, what=f"wall time of each chapter at scale {a.scale!r} with its defaults (papermill, one at "
                                "a time)", config={"scale": a.scale}, rows=list(chapters.values()),
                      timings={"wall_s": None}, command=command)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
