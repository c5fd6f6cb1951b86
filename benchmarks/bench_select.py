"""Stage-2 selection time: IPC 1, 10, 50, 100 together from one modelling (CIFAR-10 size).

    .venv/bin/python benchmarks/bench_select.py [--n 50000] [--dim 512] [--classes 10]

Synthetic stand-ins for one cached modelling: 50,000 L2-normalised 512-d embeddings in 10
classes, each class a mixture of patterns of geometrically decaying sizes (about 40 per class,
singletons included, as Infomap finds on CIFAR-10), and per-sample teacher entropies drawn from
a two-mode mixture (most images confident, a tail of uncertain ones). Records the wall time of
each IPC and of all four together, and how much of it the per-pattern GMM fits take, in
``benchmarks/results/bench_select_<device>.json`` with provenance.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def synthetic_modelling(n: int, dim: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    per = n // classes
    emb, labels, patterns = [], [], []
    for c in range(classes):
        m = int(rng.integers(30, 50))
        w = 0.85 ** np.arange(m)
        sizes = np.maximum(1, np.floor(w / w.sum() * per)).astype(int)
        sizes[0] += per - sizes.sum()
        centre = rng.standard_normal(dim)
        for k, s in enumerate(sizes):
            mu = centre + 0.8 * rng.standard_normal(dim)
            emb.append(mu + 0.6 * rng.standard_normal((s, dim)))
            labels.append(np.full(s, c))
            patterns.append(np.full(s, k))
    emb = np.concatenate(emb).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    h = np.where(rng.random(len(emb)) < 0.9, rng.gamma(1.0, 0.05, len(emb)), rng.uniform(0.5, 2.0, len(emb)))
    return torch.from_numpy(emb), torch.from_numpy(np.concatenate(labels)), torch.from_numpy(np.concatenate(patterns)), \
        torch.from_numpy(h.astype(np.float32))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--ipcs", default="1,10,50,100")
    ap.add_argument("--backends", default="sklearn,numpy", help="GMM backends to time (sklearn is the default)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()

    from ddlib.bps import select as S
    from ddlib import results
    from ddlib.utils import get_device

    ipcs = [int(v) for v in a.ipcs.split(",")]
    t_start = t = time.perf_counter()
    emb, y, pat, h = synthetic_modelling(a.n, a.dim, a.classes)
    gen_s = time.perf_counter() - t
    # count GMM fits and their time
    calls = {"n": 0, "s": 0.0}
    fit = S.gmm_fit

    def timed_fit(values, seed=1228, backend="sklearn"):
        t0 = time.perf_counter()
        try:
            return fit(values, seed, backend)
        finally:
            calls["n"] += 1
            calls["s"] += time.perf_counter() - t0

    S.gmm_fit = timed_fit
    for b in a.backends.split(","):  # warm-up (first-call overheads)
        S.gmm_fit(np.random.default_rng(0).random(20), backend=b)
    calls.update(n=0, s=0.0)
    timed = {}
    for backend in a.backends.split(","):
        per_ipc = {}
        t_all = time.perf_counter()
        for k in ipcs:
            c0, s0 = calls["n"], calls["s"]
            t = time.perf_counter()
            sel = S.select_bps(emb, y, pat, h, S.SelectConfig(ipc=k, gmm_backend=backend))
            per_ipc[k] = {"seconds": time.perf_counter() - t, "images": len(sel["indices"]),
                          "gmm_fits": calls["n"] - c0, "gmm_seconds": calls["s"] - s0,
                          "margin_share": sum(r == "margin" for r in sel["role"]) / len(sel["role"])}
        timed[backend] = {"per_ipc": per_ipc, "all_ipcs_seconds": time.perf_counter() - t_all}
    S.gmm_fit = fit
    dev = get_device()
    out = Path(a.out) if a.out else ROOT / "benchmarks" / "results" / f"bench_select_{dev.type}.json"
    results.write(out, what="BPS Stage 2 (select_bps) for several IPCs from one modelling",
                  config={"n": a.n, "dim": a.dim, "classes": a.classes, "ipcs": ipcs,
                          "backends": a.backends.split(",")},
                  rows=[{"backend": b, "ipc": k, **r} for b, res in timed.items() for k, r in res["per_ipc"].items()],
                  timings={"wall_s": time.perf_counter() - t_start, "synthetic_seconds": gen_s},
                  command=" ".join([sys.executable, *sys.argv]),
                  patterns=int(sum(len(torch.unique(pat[y == c])) for c in range(a.classes))),
                  all_ipcs=[{"backend": b, "seconds": res["all_ipcs_seconds"]} for b, res in timed.items()])
    for backend, res in timed.items():
        for k, r in res["per_ipc"].items():
            print(f"[{backend}] IPC {k:>4}: {r['seconds']:.3f} s for {r['images']} images ({r['gmm_fits']} GMM fits, "
                  f"{r['gmm_seconds']:.3f} s)")
        print(f"[{backend}] all IPCs together: {res['all_ipcs_seconds']:.3f} s")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
