"""Chapters 3 and 4 at a scale with their defaults: wall time and CPU time, from a fresh artifact cache.

On a shared machine a chapter's wall time depends on the load; its CPU time (user + system of the kernel
process, from ``getrusage(RUSAGE_CHILDREN)`` once the kernel has exited) does not, and on an idle machine
with two cores the wall time lies between CPU time / 2 and CPU time. Each chapter runs in a kernel of its own
after the previous one, in one fresh cache, as a book build runs them (chapter 4 reuses chapter 3's in-house
encoder).

    python benchmarks/sfm_chapter_cost.py --out results/sfm_chapter_cost_cpu.json
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="cpu", choices=["test", "cpu"])
    ap.add_argument("--chapters", default="03_statistical_flow,04_classifier_inheritance")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    import papermill as pm

    from ddlib import results

    cache = tempfile.mkdtemp(prefix="ddlib-sfm-chapters-")
    os.environ.update(DDLIB_CACHE=cache, DDLIB_OFFLINE="1", DDLIB_PROGRESS="0")
    os.environ.pop("DDLIB_TEST", None)
    work = Path(tempfile.mkdtemp(prefix="ddlib-sfm-chapter-runs-"))
    rows = []
    t0 = time.perf_counter()
    for name in a.chapters.split(","):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_before = os.getloadavg()
        start = time.perf_counter()
        pm.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(work / f"{name}.ipynb"),
                            parameters={"scale": a.scale}, kernel_name="python3", cwd=str(ROOT / "notebooks"),
                            progress_bar=False)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        rows.append({"chapter": name, "scale": a.scale, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                     "load_average_before": [round(x, 2) for x in load_before],
                     "load_average_after": [round(x, 2) for x in os.getloadavg()]})
        print(f"{name}: wall {wall:.1f} s, CPU {cpu:.1f} s", flush=True)
    out = Path(a.out or ROOT / "results" / f"sfm_chapter_cost_{a.scale}.json")
    command = "python " + " ".join(["benchmarks/sfm_chapter_cost.py", *(argv if argv is not None else sys.argv[1:])])
    results.write(out, what=f"chapters 3 and 4 at scale {a.scale!r} with their defaults: wall and CPU seconds "
                            "(kernel user + system), fresh artifact cache", config={"scale": a.scale,
                  "chapters": a.chapters.split(","), "cache": "fresh, shared in order"}, rows=rows,
                  timings={"wall_s": round(time.perf_counter() - t0, 1)}, command=command)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
