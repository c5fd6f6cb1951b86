"""Pattern discovery speed: the exact kNN graph beside its SGEMM bound, and kNN + Infomap end to end.

Usage: ``python benchmarks/bench_knn_infomap.py [--threads T] [--device cpu|cuda] [--n 50000]
[--dim 512] [--classes 10] [--k 30] [--queue 65536] [--queue-dim 128] [--skip-infomap]
[--no-baseline] [--out PATH]``.

Two settings, each timed in this one run:

1. CIFAR-10 size (Stage 2's modelling): 10 classes x 5,000 x 512, k = 30. Per class, the exact
   kNN with the PyTorch kernel, with faiss (when installed) and with the kernel this one replaced
   (loaded from git, ``_git_baseline.py``), beside the bound: the time of ``x @ x.T`` of the same
   shape, same threads, same process (the product the kNN cannot avoid). Then the whole recipe
   (kNN + threshold + Infomap, ``partition_info``).
2. Stage 1's queue refresh: 65,536 keys x 128 in 10 classes (the reference's queue), k = 30,
   min_sim 0.5, Infomap two-level directed with 3 trials, on clustered keys (every node keeps
   about k links) and on random keys (no link reaches 0.5: kNN only). Its parts (kNN + links,
   Infomap with 3 and with 1 trial, reading the modules), then ``partition_info`` end to end in
   this process (1 worker) and with Infomap in worker processes (one per thread), and the
   pre-issue-12 ``partition_info`` (the old kNN kernel and code, from git).

Embeddings are synthetic unit vectors structured like Stage-1 output: per class 8-24 pattern
centres of geometric sizes plus noise (pure noise would leave no link above 0.5). Writes
``{what, provenance, config, rows, timings}`` JSON (provenance with threads and the load average
before and after) to ``benchmarks/results/bench_knn_infomap_<device>[_1thread].json``. A speed
record, not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import _git_baseline
from ddlib.bps import patterns as P
from ddlib.kernels.knn import faiss_available, knn, l2_normalize, resolve_backend
from ddlib import results
from ddlib.utils import get_device, json_safe, provenance


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


def best_of(f, repeats: int, device: torch.device) -> float:
    """The shortest of ``repeats`` timed calls (the first call warms up when repeats > 1)."""
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        f()
        _sync(device)
        times.append(time.perf_counter() - t)
    return min(times)


def knn_rows(xs: list[torch.Tensor], k: int, shape: str, backends: dict, repeats: int,
             device: torch.device) -> list[dict]:
    """Per-class kNN per backend beside the SGEMM bound, all summed over the classes."""
    sgemm = sum(best_of(lambda x=x: x @ x.T, repeats, device) for x in xs)
    rows = [{"part": "sgemm x @ x.T (the bound)", "shape": shape, "backend": "torch.mm", "seconds": sgemm}]
    for name, fn in backends.items():
        s = sum(best_of(lambda x=x: fn(x, k), repeats, device) for x in xs)
        rows.append({"part": "knn", "shape": shape, "backend": name, "seconds": s, "sgemm_seconds": sgemm,
                     "times_sgemm": s / sgemm})
    return rows


def refresh_parts(x: torch.Tensor, y: torch.Tensor, cfg: P.PatternConfig) -> dict[str, float]:
    """kNN + links, Infomap (the config's trials and 1 trial) and reading the modules, in this process."""
    from infomap import Infomap

    parts = {"knn_and_links_s": 0.0, "infomap_s": 0.0, "infomap_1_trial_s": 0.0, "read_modules_s": 0.0,
             "links": 0, "modules": 0}
    for c in torch.unique(y).tolist():
        t = time.perf_counter()
        links, _ = P.knn_links(x[y == c], cfg)
        parts["knn_and_links_s"] += time.perf_counter() - t
        parts["links"] += len(links)
        if not len(links):
            continue
        for key, flags in (("infomap_s", cfg.infomap_flags()),
                           ("infomap_1_trial_s", cfg.infomap_flags().replace(f"--num-trials {cfg.trials}", "--num-trials 1"))):
            im = Infomap(flags)
            t = time.perf_counter()
            im.add_links(links)
            im.run()
            parts[key] += time.perf_counter() - t
            if key == "infomap_s":
                t = time.perf_counter()
                _, mods = P._read_modules(im)
                parts["read_modules_s"] += time.perf_counter() - t
                parts["modules"] += len(np.unique(mods))
    return parts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--queue", type=int, default=65_536)
    ap.add_argument("--queue-dim", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2, help="timed calls per kNN / SGEMM (best kept)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch/faiss threads (default: torch's)")
    ap.add_argument("--skip-infomap", action="store_true", help="kNN and its bound only")
    ap.add_argument("--no-baseline", action="store_true", help="do not time the pre-issue-12 code")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        if faiss_available():
            import faiss
            faiss.omp_set_num_threads(args.threads)
    threads = torch.get_num_threads()
    device = get_device(args.device)
    load_before = list(os.getloadavg())
    start = time.perf_counter()
    old_knn = None if args.no_baseline else _git_baseline.load("ddlib/kernels/knn.py")
    backends = {"torch": lambda x, k: knn(x, k, backend="torch")}
    if faiss_available() and device.type == "cpu":
        backends["faiss"] = lambda x, k: knn(x, k, backend="faiss")
    if old_knn is not None:
        backends["torch (before: square blocks, running topk)"] = lambda x, k: old_knn.knn(x, k, backend="torch")
    rows: list[dict] = []

    def show(new: list[dict]) -> None:
        for r in new:
            extra = {k: v for k, v in r.items() if k not in ("part", "shape", "backend", "seconds")}
            print(f"{r['part'][:34]:34s} {r['shape'][:26]:26s} {r['backend'][:34]:34s} {r['seconds']:8.2f} s  "
                  f"{json.dumps(json_safe(extra))[:120]}", flush=True)
        rows.extend(new)

    # 1. CIFAR-10 size
    x, y = structured_embeddings(args.n, args.dim, args.classes)
    xs = [l2_normalize(x[y == c]).to(device) for c in range(args.classes)]
    shape = f"{args.classes} x {args.n // args.classes} x {args.dim}"
    show(knn_rows(xs, args.k, shape, backends, args.repeats, device))
    cfg = P.PatternConfig(k=args.k)  # the defaults: knn_backend "auto"
    if not args.skip_infomap:
        for workers in sorted({1, threads}):
            t = time.perf_counter()
            _, info = P.partition_info(x.to(device), y, cfg, workers=workers)
            show([{"part": "partition_info (kNN + Infomap)", "shape": shape, "backend": f"{workers} Infomap worker(s)",
                   "seconds": time.perf_counter() - t, "patterns": sum(p.num_patterns for p in info.values()),
                   "links": sum(p.num_links for p in info.values())}])

    # 2. the queue refresh
    qshape = f"{args.classes} x {args.queue // args.classes} x {args.queue_dim}"
    qx, qy = structured_embeddings(args.queue, args.queue_dim, args.classes, seed=1)
    rx = l2_normalize(torch.randn(args.queue, args.queue_dim, generator=torch.Generator().manual_seed(2)))
    ry = torch.arange(args.queue) % args.classes
    show(knn_rows([l2_normalize(qx[qy == c]).to(device) for c in range(args.classes)], args.k, qshape,
                  {k: v for k, v in backends.items()}, args.repeats, device))
    if not args.skip_infomap:
        for name, (kx, ky) in (("clustered keys", (qx, qy)), ("random keys", (rx, ry))):
            parts = refresh_parts(kx.to(device), ky, cfg)
            show([{"part": f"queue refresh parts, {name}", "shape": qshape, "backend": "1 process", "seconds":
                   parts["knn_and_links_s"] + parts["infomap_s"] + parts["read_modules_s"], **parts}])
            for trials in (cfg.trials, 1):
                tcfg = P.PatternConfig(k=args.k, trials=trials)
                for workers in sorted({1, threads}):
                    t = time.perf_counter()
                    P.partition_info(kx.to(device), ky, tcfg, workers=workers)
                    show([{"part": f"queue refresh, {name}", "shape": qshape,
                           "backend": f"{workers} Infomap worker(s), {trials} trial(s)", "seconds": time.perf_counter() - t}])
            if old_knn is not None:
                old_p = _git_baseline.load("ddlib/bps/patterns.py")
                old_p.knn = old_knn.knn  # the old module with the old kernel (auto: faiss on CPU when installed)
                t = time.perf_counter()
                old_p.partition_info(kx.to(device), ky, old_p.PatternConfig(k=args.k))
                show([{"part": f"queue refresh, {name}", "shape": qshape,
                       "backend": f"before (pre-issue-12 code, kNN backend auto, {cfg.trials} trials)",
                       "seconds": time.perf_counter() - t}])

    prov = provenance(" ".join([Path(sys.executable).name, *sys.argv]))
    prov.update(threads=threads, cpu_count=os.cpu_count(), load_average_before=load_before,
                load_average=list(os.getloadavg()))
    record = {"what": "exact kNN (beside its SGEMM bound) and kNN + Infomap pattern discovery",
              "provenance": prov,
              "config": {"n": args.n, "dim": args.dim, "classes": args.classes, "k": args.k, "queue": args.queue,
                         "queue_dim": args.queue_dim, "min_sim": cfg.min_sim, "infomap": cfg.infomap_flags(),
                         "device": str(device), "faiss": faiss_available(), "repeats": args.repeats,
                         "knn_backend_auto": resolve_backend("auto", device),
                         "baseline": None if old_knn is None else _git_baseline.describe("ddlib/kernels/knn.py")},
              "rows": rows,
              "timings": {"wall_s": time.perf_counter() - start}}
    suffix = "" if threads > 1 or device.type == "cuda" else "_1thread"
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"bench_knn_infomap_{device.type}{suffix}.json"
    prov_extra = {k: v for k, v in record.pop("provenance").items() if k not in ("command", "commit", "device", "date")}
    results.write(out, command=prov["command"], provenance_extra=prov_extra, **json_safe(record))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
