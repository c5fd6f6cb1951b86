"""Pattern-discovery time: exact kNN graph + Infomap for 50,000 x 512 embeddings (CIFAR-10 size).

Usage: ``python benchmarks/bench_knn_infomap.py [--n 50000] [--dim 512] [--classes 10] [--k 30]
[--device cpu|cuda] [--threads T] [--skip-whole] [--out PATH]``.

Embeddings are synthetic but structured like Stage-1 output: each class is a mixture of 8-24
patterns of unequal sizes on the unit sphere, so the 0.5-thresholded kNN graph has the density of
a real one (pure noise would leave no link above 0.5 in 512-d). Timed, per class (as the method
does: 10 graphs of 5,000 nodes) and over the whole set (one graph of 50,000 nodes):

- kNN with the PyTorch blocked kernel and with faiss IndexFlatIP (when installed);
- building the thresholded links;
- Infomap (two-level, directed, 3 trials).

Prints a table and writes JSON with provenance, threads and the machine's load average to
``benchmarks/results/bench_knn_infomap_<device>.json``. A speed record, not a test.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ddlib.bps.patterns import PatternConfig, _read_modules, knn_links
from ddlib.kernels.knn import faiss_available, knn
from ddlib import results
from ddlib.utils import get_device


def structured_embeddings(n: int, dim: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, dim) unit vectors and labels: per class, 8-24 pattern centres with geometric sizes plus noise."""
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    per = n // classes
    for c in range(classes):
        m = int(rng.integers(8, 25))
        w = 0.8 ** np.arange(m)
        counts = np.floor(w / w.sum() * per).astype(int)
        counts[0] += per - counts.sum()
        cls_dir = F.normalize(torch.randn(dim, generator=g), dim=0)
        for cnt in counts:
            centre = F.normalize(cls_dir + 0.9 * F.normalize(torch.randn(dim, generator=g), dim=0), dim=0)
            noise = F.normalize(torch.randn(int(cnt), dim, generator=g), dim=1) * 0.75
            xs.append(F.normalize(centre + noise, dim=1))
            ys.append(torch.full((int(cnt),), c))
    return torch.cat(xs), torch.cat(ys)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_knn(x: torch.Tensor, k: int, backend: str) -> float:
    _sync(x.device)
    t = time.perf_counter()
    knn(x, k, backend=backend)
    _sync(x.device)
    return time.perf_counter() - t


def time_graph(x: torch.Tensor, cfg: PatternConfig) -> dict[str, float]:
    """Links (with the config's kNN backend) and Infomap on one graph; seconds and sizes."""
    from infomap import Infomap

    t0 = time.perf_counter()
    links, single = knn_links(x, cfg)
    t1 = time.perf_counter()
    im = Infomap(cfg.infomap_flags())
    im.add_links(links)
    res = im.run()
    _, mods = _read_modules(im)
    t2 = time.perf_counter()
    return {"knn_and_links_s": t1 - t0, "infomap_s": t2 - t1, "links": int(len(links)),
            "singletons": int(single.sum()), "modules": int(len(np.unique(mods))),
            "codelength": float(res.codelength)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch/faiss threads (default: torch's)")
    ap.add_argument("--skip-whole", action="store_true", help="only the per-class graphs")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        if faiss_available():
            import faiss
            faiss.omp_set_num_threads(args.threads)
    device = get_device(args.device)
    start = time.perf_counter()
    x, y = structured_embeddings(args.n, args.dim, args.classes)
    xd = x.to(device)
    backends = ["torch"] + (["faiss"] if faiss_available() and device.type == "cpu" else [])
    rows: list[dict] = []

    def record(scope: str, what: str, backend: str, seconds: float, **extra: object) -> None:
        rows.append({"scope": scope, "what": what, "backend": backend, "seconds": round(seconds, 3), **extra})
        print(f"{scope:10s} {what:18s} {backend:6s} {seconds:9.2f} s  {extra if extra else ''}", flush=True)

    # kNN alone, per class and whole
    for backend in backends:
        if device.type == "cuda":
            time_knn(xd[y == 0], args.k, backend)  # warm up
        per = sum(time_knn(xd[y == c], args.k, backend) for c in range(args.classes))
        record("per-class", "knn", backend, per, classes=args.classes, nodes_each=args.n // args.classes)
        if not args.skip_whole:
            record("whole", "knn", backend, time_knn(xd, args.k, backend), nodes=args.n)

    # the full recipe (kNN + threshold + Infomap), with the auto backend
    cfg = PatternConfig(k=args.k)
    tot = {"knn_and_links_s": 0.0, "infomap_s": 0.0, "links": 0, "singletons": 0, "modules": 0}
    for c in range(args.classes):
        r = time_graph(xd[y == c], cfg)
        for key in tot:
            tot[key] += r[key]
    record("per-class", "knn+links", "auto", tot["knn_and_links_s"])
    record("per-class", "infomap(3 trials)", "-", tot["infomap_s"], links=tot["links"],
           singletons=tot["singletons"], patterns=tot["modules"])
    if not args.skip_whole:
        r = time_graph(xd, cfg)
        record("whole", "knn+links", "auto", r["knn_and_links_s"])
        record("whole", "infomap(3 trials)", "-", r["infomap_s"], links=r["links"], singletons=r["singletons"],
               modules=r["modules"])

    setup = {"n": args.n, "dim": args.dim, "classes": args.classes, "k": args.k, "min_sim": cfg.min_sim,
             "infomap": cfg.infomap_flags(), "device": str(device), "faiss": faiss_available()}
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"bench_knn_infomap_{device.type}.json"
    results.write(out, what=__doc__.splitlines()[0], config=setup, rows=rows,
                  timings={"wall_s": round(time.perf_counter() - start, 1)})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
