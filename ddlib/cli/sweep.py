"""Sub-commands about notebooks: ``sweep`` (papermill over a grid of parameters), ``book`` (build at a scale)."""
from __future__ import annotations

import argparse

from ddlib import bookbuild
from ddlib.preflight import Output
from ddlib.sweep import SweepConfig, parse_grid, sweep

__all__ = ["OUTPUTS", "add_commands"]

#: the output options (:data:`ddlib.cli.OUTPUTS`): a sweep merges its grid into the folder and resumes (its runs have
#: unique names and each locks its own files, ddlib.sweep), a book build rebuilds its folder (locked for the build);
#: both are checked, neither is guarded against other settings
OUTPUTS = {"sweep": (Output("out", "folder", guard=False, lock=False),), "book": (Output("out", "folder", guard=False),)}


def _sweep(args: argparse.Namespace) -> int:
    cfg = SweepConfig(notebook=args.notebook, grid=parse_grid(args.param or []), out=args.out, jobs=args.jobs,
                      kernel=args.kernel, timeout=args.timeout)
    records = sweep(cfg)
    failed = [r for r in records if r["status"] != "ok"]
    done = sum(r["skipped"] for r in records)
    print(f"{len(records)} runs: {len(records) - len(failed)} ok ({done} already done), {len(failed)} failed; "
          f"table: {cfg.out}/results.csv")
    for r in failed:
        print(f"failed: {r['parameters']}: {r['error']}")
    return 1 if failed else 0


def _book(args: argparse.Namespace) -> int:
    html = bookbuild.build(args.scale, out=args.out, jobs=args.jobs)
    print(f"book: {html / 'index.html'}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> dict:
    p = sub.add_parser("sweep", help="run a notebook with papermill over a grid of parameters",
                       description="Run NOTEBOOK once per combination of the -p values; skip runs already "
                                   "done; write OUT/results.csv and OUT/results.json of what each run glued.")
    p.add_argument("notebook", help="the .ipynb to execute (its cell tagged 'parameters' takes the values)")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "V1,V2,…"),
                   help="a parameter and its comma-separated values (repeat for a grid); a list value in "
                        "brackets: -p ipcs '[1,10],[1,10,50]' is two runs")
    p.add_argument("--out", required=True, help="folder of the executed notebooks, records and table")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    p.add_argument("--kernel", default="python3", help="Jupyter kernel (default python3)")
    p.add_argument("--timeout", type=int, default=None, help="seconds allowed per cell (default: no limit)")
    b = sub.add_parser("book", help="build the book, every chapter executed (at one scale, or its defaults)",
                       description="Execute each chapter of book/_toc.yml with papermill (scale=SCALE, or the "
                                   "chapter's own defaults without --scale), JOBS at a time, then build the HTML "
                                   "strictly (-W) into OUT/_build/html. make book runs this with --jobs 2.")
    b.add_argument("--scale", default=None, help="test | cpu | gpu | workshop (default: each chapter's own defaults)")
    b.add_argument("--jobs", type=int, default=1,
                   help="chapters executed at once, sharing the machine's threads and one artifact cache (default 1)")
    b.add_argument("--out", default=None, help="output folder (default: book/, so book/_build/html)")
    return {"sweep": _sweep, "book": _book}
