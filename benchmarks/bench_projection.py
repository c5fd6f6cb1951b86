"""Chapter 1's UMAP scatter from a fresh environment: UMAP's own pynndescent graph against the exact cosine
graph from ``ddlib.kernels.knn`` that chapter 1 hands ``ddlib.plots.project_2d`` (``precomputed_knn``).

Usage: ``python benchmarks/bench_projection.py [--n 6000] [--dim 512] [--repeats 2] [--out PATH]``.

Each variant runs in its own fresh process with an empty numba cache (``NUMBA_CACHE_DIR`` set to a new
folder), as on a machine that has just run ``make env``: the first call pays numba's compilation, the
second (same process) shows the warm cost. Points: ``n`` unit vectors in 10 clusters of ``dim`` dimensions
(chapter 1 projects one class of the full Fashion-MNIST pool, 6,000 embeddings of 512). Writes
``{what, provenance, config, rows, timings}`` to ``benchmarks/results/bench_projection_cpu.json``, with
the cold-start ratio of the two variants measured in this one run. A speed record, not a test.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: one variant's run in a fresh process: prints the seconds of each call as JSON
CHILD = """
import json, sys, time, warnings
import torch
warnings.simplefilter("ignore")
n, dim, repeats, variant = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
g = torch.Generator().manual_seed(0)
centres = torch.randn(10, dim, generator=g)
x = centres[torch.arange(n) % 10] + 0.5 * torch.randn(n, dim, generator=g)
from ddlib import plots
import umap
out = []
for _ in range(repeats):
    t = time.perf_counter()
    if variant == "exact graph (ddlib)":
        from ddlib.kernels.knn import knn, l2_normalize
        xy = plots.project_2d(x, "umap", seed=0, neighbours=knn(l2_normalize(x), 15, exclude_self=False))
    else:
        xy = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=0, n_jobs=1).fit_transform(x.numpy())
    out.append(time.perf_counter() - t)
print(json.dumps(out))
"""

VARIANTS = ("pynndescent graph (umap's own)", "exact graph (ddlib)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_projection_cpu.json"))
    a = ap.parse_args(argv)
    from ddlib import results

    rows = []
    for variant in VARIANTS:
        with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
            env = {**__import__("os").environ, "NUMBA_CACHE_DIR": cache}
            proc = subprocess.run([sys.executable, "-c", CHILD, str(a.n), str(a.dim), str(a.repeats), variant],
                                  capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        secs = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append({"variant": variant, "cold_s": round(secs[0], 2), "warm_s": [round(s, 2) for s in secs[1:]]})
        print(f"{variant}: first call {secs[0]:.1f} s, then {', '.join(f'{s:.1f}' for s in secs[1:])} s")
    ratio = rows[0]["cold_s"] / max(rows[1]["cold_s"], 1e-9)
    wall = sum(r["cold_s"] + sum(r["warm_s"]) for r in rows)
    print(f"cold start: the exact graph is {ratio:.1f}x faster")
    command = "python benchmarks/bench_projection.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results.write(Path(a.out), what="chapter 1's UMAP projection from a fresh numba cache: pynndescent's graph "
                                    "against ddlib's exact cosine graph (precomputed_knn)",
                  config={"n": a.n, "dim": a.dim, "repeats": a.repeats, "n_neighbors": 15}, rows=rows,
                  timings={"wall_s": round(wall, 1), "cold_ratio": round(ratio, 2)}, command=command.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
