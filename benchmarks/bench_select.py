"""Stage-2 selection time: IPC 1, 10, 50, 100 from one modelling (CIFAR-10 size), both GMM backends.

    python benchmarks/bench_select.py [--n 50000] [--dim 512] [--classes 10] [--ipcs 1,10,50,100]
                                      [--threads 1] [--no-baseline] [--out PATH]

Synthetic stand-ins for one cached modelling: 50,000 L2-normalised 512-d embeddings in 10
classes, each class a mixture of patterns of geometrically decaying sizes (about 40 per class,
singletons included, as Infomap finds on CIFAR-10), and per-sample teacher entropies drawn from
a two-mode mixture (most images confident, a tail of uncertain ones), stored as float32 as a
teacher's would be.

For each GMM backend (``sklearn``: scikit-learn's GaussianMixture, the reference; ``numpy``: the
batched replica, ``ddlib.kernels.gmm``), timed in this one run, wall and CPU (process) seconds:

- ``prepare`` (model once: group by pattern, centre orders);
- each IPC alone from the prepared model (its GMM fits, none cached from another IPC);
- the four IPCs together (``select_ipcs``: one batch of GMM fits for all of them), and
  ``prepare`` + the four together (everything from the modelling to the selections);
- the pre-issue-12 ``select_bps`` per IPC (loaded from git), once per backend.

Then the picks of the two backends are compared per IPC and every differing (class, pattern) is
listed (``differences``), with the fits the batched backend left to scikit-learn (``fallbacks``).
Writes ``{what, provenance, config, rows, timings, differences}`` to
``benchmarks/results/bench_select_<device>.json``. A speed record, not a test.
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

import _git_baseline

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


def timed(f):
    """(result, wall seconds, CPU seconds of this process)."""
    c, t = time.process_time(), time.perf_counter()
    out = f()
    return out, time.perf_counter() - t, time.process_time() - c


def differences(a: dict, b: dict, labels: np.ndarray) -> list[dict]:
    """Per IPC, the (class, pattern) whose picks or roles differ between two selections."""
    out = []
    for k in a:
        if all(a[k][f] == b[k][f] for f in ("indices", "pattern", "role")):
            continue
        groups: dict[tuple, list] = {}
        for name, sel in (("a", a[k]), ("b", b[k])):
            for i, p, r in zip(sel["indices"], sel["pattern"], sel["role"]):
                groups.setdefault((int(labels[i]), int(p)), [[], []])[name == "b"].append((int(i), r))
        for (c, p), (ga, gb) in sorted(groups.items()):
            if ga != gb:
                out.append({"ipc": k, "class": c, "pattern": p, "sklearn_only": sorted(set(ga) - set(gb)),
                            "numpy_only": sorted(set(gb) - set(ga)), "same_set_other_order": set(ga) == set(gb)})
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--ipcs", default="1,10,50,100")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (NumPy's BLAS follows OMP_NUM_THREADS)")
    ap.add_argument("--no-baseline", action="store_true", help="do not time the pre-issue-12 select_bps")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from ddlib.bps import select as S
    from ddlib import results
    from ddlib.utils import get_device, json_safe, provenance

    load_before = list(os.getloadavg())
    t_start = time.perf_counter()
    ipcs = [int(v) for v in a.ipcs.split(",")]
    (emb, y, pat, h), gen_s, _ = timed(lambda: synthetic_modelling(a.n, a.dim, a.classes))
    S.select_all(emb[:2000], y[:2000], pat[:2000], h[:2000], [5], S.SelectConfig(gmm_backend="sklearn"))  # warm-up
    S.select_all(emb[:2000], y[:2000], pat[:2000], h[:2000], [5], S.SelectConfig(gmm_backend="numpy"))
    old = None if a.no_baseline else _git_baseline.load("ddlib/bps/select.py")
    rows: list[dict] = []
    sels = {}

    def row(backend: str, part: str, wall: float, cpu: float, **extra) -> None:
        rows.append({"backend": backend, "part": part, "seconds": wall, "cpu_seconds": cpu, **extra})
        print(f"[{backend:7s}] {part:42s} {wall:8.3f} s wall {cpu:8.3f} s CPU  {json.dumps(extra)[:100]}", flush=True)

    for backend in ("sklearn", "numpy"):
        cfg = S.SelectConfig(gmm_backend=backend)
        model, w, c = timed(lambda: S.prepare(emb, y, pat, h))
        row(backend, "prepare (model once)", w, c)
        for k in ipcs:  # each IPC alone: no cut cached from another IPC
            model._cuts.clear()
            before = dict(model.stats)
            sel, w, c = timed(lambda: S.select_ipcs(model, [k], cfg)[k])
            row(backend, f"IPC {k} alone", w, c, images=len(sel["indices"]),
                gmm_fits=model.stats["fits"] - before["fits"], fallbacks=model.stats["fallbacks"] - before["fallbacks"],
                gmm_seconds=model.stats["gmm_seconds"] - before["gmm_seconds"],
                margin_share=sum(r == "margin" for r in sel["role"]) / len(sel["role"]))
        model._cuts.clear()
        before = dict(model.stats)
        out, w, c = timed(lambda: S.select_ipcs(model, ipcs, cfg))
        row(backend, f"IPC {','.join(map(str, ipcs))} together", w, c,
            gmm_fits=model.stats["fits"] - before["fits"], fallbacks=model.stats["fallbacks"] - before["fallbacks"],
            gmm_seconds=model.stats["gmm_seconds"] - before["gmm_seconds"])
        sels[backend] = out
        out2, w, c = timed(lambda: S.select_all(emb, y, pat, h, ipcs, cfg))
        row(backend, f"prepare + IPC {','.join(map(str, ipcs))} together", w, c)
        assert out2 == out
        if old is not None:
            for k in ipcs:
                osel, w, c = timed(lambda: old.select_bps(emb, y, pat, h, old.SelectConfig(ipc=k, gmm_backend=backend)))
                same = all(osel[f] == out[k][f] for f in ("indices", "pattern", "role"))
                row(backend, f"IPC {k}, before (pre-issue-12 select_bps)", w, c, same_picks_as_now=same)

    diffs = differences(sels["sklearn"], sels["numpy"], y.numpy())
    print(f"picks differing between sklearn and numpy: {len(diffs)} (class, pattern, IPC) cases")
    dev = get_device()
    prov = provenance(" ".join([Path(sys.executable).name, *sys.argv]))
    prov.update(threads=torch.get_num_threads(), omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
                cpu_count=os.cpu_count(), load_average_before=load_before, load_average=list(os.getloadavg()))
    record = {"what": "BPS Stage 2 for several IPCs from one modelling, scikit-learn vs batched GMM",
              "provenance": prov,
              "config": {"n": a.n, "dim": a.dim, "classes": a.classes, "ipcs": ipcs,
                         "patterns": int(sum(len(torch.unique(pat[y == c])) for c in range(a.classes))),
                         "select": json_safe(S.SelectConfig().__dict__),
                         "baseline": None if old is None else _git_baseline.describe("ddlib/bps/select.py")},
              "rows": rows,
              "differences": diffs,
              "timings": {"synthetic_s": gen_s, "wall_s": time.perf_counter() - t_start}}
    out = Path(a.out) if a.out else ROOT / "benchmarks" / "results" / f"bench_select_{dev.type}.json"
    prov_extra = {k: v for k, v in record.pop("provenance").items() if k not in ("command", "commit", "device", "date")}
    results.write(out, command=prov["command"], provenance_extra=prov_extra, **json_safe(record))
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
