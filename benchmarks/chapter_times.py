"""Wall time of each chapter run with its defaults (papermill), recorded for the workshop page.

    .venv/bin/python benchmarks/chapter_times.py [--scale cpu] [--chapters 00_data,01_pattern_discovery]
    .venv/bin/python benchmarks/chapter_times.py --scale workshop --bundle ddlib-workshop-cache.tar --exercises

Runs the chapters one at a time, in order, in a fresh artifact cache shared by the sequence (as a
reader running the book from a clean checkout: later chapters reuse what earlier ones cached), and
merges one entry per chapter into ``results/chapter_times_<scale>.json`` with provenance
(entries of chapters not run this time are kept). ``book/workshop.md`` reads that file.

``--bundle FILE`` imports a cache exported by ``python -m ddlib cache export`` into the fresh cache first:
the chapters then run as a workshop attendee runs them after the set-up. ``--exercises`` then runs every
papermill command of ``book/workshop.md`` (the exercises, in the page's order, in the same cache) and
records each one's time as a row too (``exercise``: the command as the page shows it). Each row holds the
wall time and the kernel's CPU time (``cpu_s``): on a machine shared with other jobs the wall time includes
waiting for a core, so the two together say how loaded the measurement was. ``new_cache_entries`` names the
artifacts the run computed and stored (none, after an import, for a chapter run as exported).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _children_cpu_s() -> float:
    """CPU seconds (user + system) of this process's finished children: the kernels papermill started."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(notebook: Path, out: Path, parameters: dict, cwd: Path) -> tuple[str, str | None, float, float]:
    """(status, error, wall seconds, the kernel's CPU seconds) of one papermill run."""
    import papermill as pm

    cpu = _children_cpu_s()
    start = time.perf_counter()
    status, error = "ok", None
    try:
        pm.execute_notebook(str(notebook), str(out), parameters=parameters, kernel_name="python3", cwd=str(cwd),
                            progress_bar=False)
    except Exception as e:  # noqa: BLE001 - recorded, the next run still goes
        status, error = "failed", f"{type(e).__name__}: {str(e).splitlines()[-1] if str(e) else ''}"
    return status, error, time.perf_counter() - start, _children_cpu_s() - cpu


def exercise_runs(page: Path) -> list[tuple[str, str, dict]]:
    """(command as shown, notebook name, parameters) of each papermill command of ``page``, with papermill's own
    parsing of ``-p``/``-y``/``-r`` (its command line, its run replaced by a capture)."""
    import shlex
    from unittest import mock

    import papermill.cli

    from ddlib import bookbuild

    runs = []
    for words in bookbuild.papermill_commands(page):
        with mock.patch.object(papermill.cli, "execute_notebook") as run:
            papermill.cli.papermill.main(words[1:], standalone_mode=False)
        kw = run.call_args.kwargs
        runs.append((shlex.join(words), Path(kw["input_path"]).stem, dict(kw["parameters"])))
    return runs


def main(argv: list[str] | None = None) -> int:
    from ddlib.presets import SCALES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="cpu", choices=list(SCALES))
    ap.add_argument("--chapters", default=None, help="comma-separated notebook names (default: every chapter)")
    ap.add_argument("--cache", default=None, help="artifact cache to use (default: a fresh temporary folder)")
    ap.add_argument("--bundle", default=None, help="a cache file of `python -m ddlib cache export`, imported first")
    ap.add_argument("--exercises", action="store_true", help="also run the papermill commands of book/workshop.md")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)

    from ddlib import bundle, results
    from ddlib.utils import provenance

    command = "python benchmarks/chapter_times.py " + " ".join(argv if argv is not None else sys.argv[1:])
    names = a.chapters.split(",") if a.chapters else sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    out = Path(a.out) if a.out else ROOT / "results" / f"chapter_times_{a.scale}.json"
    cache = a.cache or tempfile.mkdtemp(prefix="ddlib-chapter-times-")
    os.environ["DDLIB_CACHE"] = cache
    os.environ.setdefault("DDLIB_OFFLINE", "1")
    os.environ.pop("DDLIB_TEST", None)
    os.environ["DDLIB_PROGRESS"] = "0"  # as the book build: no bars (their output costs time in a kernel)
    described = "fresh at the first chapter of the run, shared in order" if not a.cache else a.cache
    imported = None
    if a.bundle:
        start = time.perf_counter()
        done = bundle.import_bundle(a.bundle, cache=cache)
        sha = hashlib.sha256(Path(a.bundle).read_bytes()).hexdigest()
        imported = {"file": Path(a.bundle).name, "sha256": sha, "entries": len(done["imported"]),
                    "bytes": Path(a.bundle).stat().st_size, "import_s": round(time.perf_counter() - start, 1),
                    "exported": {k: done["manifest"].get(k) for k in ("scale", "chapters", "created", "ddlib",
                                                                        "run_seconds")}}
        described = f"fresh, then {imported['entries']} entries imported from {imported['file']}; shared in order"
        print(f"imported {imported['entries']} entries from {a.bundle} in {imported['import_s']} s", flush=True)
    rows = {r.get("exercise") or r["chapter"]: r for r in results.load_file(out)[0].rows} if out.is_file() else {}
    work = Path(tempfile.mkdtemp(prefix="ddlib-chapter-runs-"))
    jobs = [(name, None, name, {"scale": a.scale}) for name in names]
    if a.exercises:
        jobs += [(nb, shown, f"{nb}__exercise{i}", params)
                 for i, (shown, nb, params) in enumerate(exercise_runs(ROOT / "book" / "workshop.md"), 1)]

    def record() -> None:
        # the file is a whole record after every run (an interrupted run keeps what it measured); it merges the
        # runs of several invocations, so no one wall time is its own (each row has its run's)
        results.write(out, what=f"wall time of each chapter at scale {a.scale!r} with its defaults (papermill, one at "
                                "a time), and of the workshop page's exercises when run", config={"scale": a.scale},
                      rows=list(rows.values()), timings={"wall_s": None}, command=command)

    def entries() -> set[str]:
        return {f.stem for f in Path(cache).glob("*.json")}

    for name, shown, tag, params in jobs:
        before = entries()
        status, error, wall, cpu = _run(ROOT / "notebooks" / f"{name}.ipynb", work / f"{tag}.ipynb", params,
                                        ROOT / "notebooks")
        load = os.getloadavg()
        # cpu_s: the kernel's CPU time; on a shared machine (load above the cores) it says what the run needs,
        # where wall_s also holds the time it waited for a core
        row = {"chapter": name, "scale": a.scale, "status": status, "error": error, "wall_s": round(wall, 1),
               "cpu_s": round(cpu, 1), "new_cache_entries": sorted(entries() - before),
               "load_average_after": [round(x, 2) for x in load], "cache": described, "run_order": [t for _, _, t, _ in jobs],
               "provenance": provenance(command)}
        if imported:
            row["bundle"] = imported
        if shown:
            row["exercise"], row["parameters"] = shown, params
        rows[shown or name] = row
        print(f"{shown or name}: {status} in {wall:.1f} s, {cpu:.1f} s of CPU (load {load[0]:.1f})", flush=True)
        record()
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
