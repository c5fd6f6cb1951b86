"""Pattern discovery: per class, a thresholded directed kNN graph partitioned by Infomap.

The recipe of BPS (METHODS.md §1, faithful to the reference, which follows
"face-cluster-by-infomap"): over the L2-normalised embeddings of one class,

1. the exact inner-product kNN (k = 30) of every sample, itself excluded;
2. keep the neighbours j of i with cosine ≥ 0.5 as directed links i → j weighted by the cosine;
3. a sample with no kept neighbour is its own pattern (a singleton, even if others link to it);
4. Infomap (two-level, directed, 3 trials) partitions the remaining graph.

Infomap minimises the map equation: the expected description length (bits per step) of a random
walk on the graph, coded with one codebook per module plus an index codebook for the moves between
modules. With a two-level partition P it is L(P) = q↷·H(Q) + Σ_m p_m↻·H(P_m); minimising it amounts to
making the walker's position cheap to describe given its module, i.e. a small conditional entropy
of the stationary visit distribution given the module (H(P_T | O) in the BPS paper). The number of
modules is therefore found, not set.

Departure from the reference: the reference asks faiss for k neighbours *including* the query and
skips it, so it keeps at most k - 1; here k counts real neighbours (the query is never one). Pattern
ids are relabelled by decreasing size (pattern 0 is the largest); the reference keeps Infomap's order.

Speed (``benchmarks/bench_knn_infomap.py`` records the parts): on CPU, Infomap's trials take most
of a refresh of Stage 1's queue, the kNN graph most of the rest. :func:`partition_info` can run
the classes' Infomap in worker processes while it builds the next class's graph (by default when
there are enough embeddings, see :func:`infomap_workers`); the links, flags and seed are the
same, and so is the result.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ddlib.encoders import PatternConfig  # defined beside EncoderConfig, which holds one (see ddlib.encoders)
from ddlib.kernels.knn import knn, l2_normalize
from ddlib.utils import ParamError, check_int

__all__ = ["ClassPartition", "knn_links", "partition_class_info", "partition_class", "AHEAD_LINKS", "POOL_MIN_ROWS",
           "infomap_workers", "partition_info", "partition", "pattern_entropy"]


@dataclass(frozen=True)
class ClassPartition:
    """One class's partition and what Infomap reported about it."""

    ids: torch.Tensor            # (n,) pattern ids 0..M-1, pattern 0 the largest
    num_patterns: int
    num_singletons: int          # samples with no kept neighbour (each its own pattern)
    num_links: int               # kept directed links
    codelength: float            # map-equation codelength of the partition (bits), nan if not run
    one_level_codelength: float  # codelength with every node in one module (bits), nan if not run


def knn_links(emb: torch.Tensor, cfg: PatternConfig) -> tuple[np.ndarray, np.ndarray]:
    """The kept directed links (m, 3) [i, j, cosine] and a boolean mask of singletons (n,)."""
    n = emb.shape[0]
    if n < 2:
        return np.zeros((0, 3)), np.ones(n, dtype=bool)
    sims, idx = knn(l2_normalize(emb), cfg.k, block_size=cfg.block_size, backend=cfg.knn_backend,
                    exclude_self=True)
    sims, idx = sims.cpu().numpy().astype(np.float64), idx.cpu().numpy()
    keep = sims >= cfg.min_sim
    src = np.broadcast_to(np.arange(n)[:, None], idx.shape)
    links = np.stack([src[keep], idx[keep], sims[keep]], axis=1) if keep.any() else np.zeros((0, 3))
    return links, ~keep.any(axis=1)


def _read_modules(im: "Infomap") -> tuple[np.ndarray, np.ndarray]:  # noqa: F821
    """Node ids and their top-module ids, read through Infomap's ``write_clu``.

    Not ``res.modules()``: in infomap 2.16 it iterates a SWIG vector, and when faiss (another SWIG
    module) is imported after infomap in the same process the iterator resolves to faiss's type and
    the process segfaults. ``write_clu`` stays in C++; parsing its text costs milliseconds.
    """
    import os
    import tempfile

    with tempfile.TemporaryDirectory(prefix="ddlib-infomap-") as tmp:
        path = os.path.join(tmp, "modules.clu")
        im.write_clu(path)
        table = np.loadtxt(path, comments="#", usecols=(0, 1), dtype=np.int64, ndmin=2)
    return table[:, 0], table[:, 1]


def _relabel_by_size(raw: np.ndarray) -> np.ndarray:
    """Map arbitrary ids to 0..M-1 by decreasing size, ties by first occurrence."""
    uniq, first, inv, counts = np.unique(raw, return_index=True, return_inverse=True, return_counts=True)
    order = np.lexsort((first, -counts))  # size descending, then first occurrence
    new = np.empty(len(uniq), dtype=np.int64)
    new[order] = np.arange(len(uniq))
    return new[inv.reshape(-1)]


def _infomap(links: np.ndarray, flags: str) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Infomap on directed weighted links (m, 3) in this process: node ids, module ids, codelengths."""
    from infomap import Infomap

    im = Infomap(flags)
    im.add_links(links)
    res = im.run()
    nodes, mods = _read_modules(im)
    return nodes, mods, float(res.codelength), float(res.one_level_codelength)


def _class_partition(n: int, links: np.ndarray, single: np.ndarray,
                     found: tuple[np.ndarray, np.ndarray, float, float] | None) -> ClassPartition:
    """A class's :class:`ClassPartition` from its links, singletons and Infomap's result (None: no links)."""
    raw = np.full(n, -1, dtype=np.int64)
    codelength = one_level = float("nan")
    if found is not None:
        nodes, mods, codelength, one_level = found
        raw[nodes] = mods
    # singletons (no kept out-link) are their own patterns, overriding any module they were put in
    nxt = int(raw.max()) + 1 if (raw >= 0).any() else 0
    lonely = np.flatnonzero(single | (raw < 0))
    raw[lonely] = nxt + np.arange(len(lonely))
    ids = _relabel_by_size(raw)
    return ClassPartition(torch.from_numpy(ids), int(ids.max()) + 1, int(single.sum()), int(len(links)),
                          codelength, one_level)


def partition_class_info(emb: torch.Tensor, cfg: PatternConfig | None = None) -> ClassPartition:
    """Partition one class's embeddings (n, D) into patterns; see the module docstring."""
    cfg = cfg or PatternConfig()
    if not isinstance(emb, torch.Tensor) or emb.dim() != 2:
        raise ParamError(f"emb must be a 2-D tensor (n, D); got {getattr(emb, 'shape', type(emb).__name__)}")
    n = emb.shape[0]
    if n == 0:
        return ClassPartition(torch.zeros(0, dtype=torch.long), 0, 0, 0, float("nan"), float("nan"))
    links, single = knn_links(emb, cfg)
    return _class_partition(n, links, single, _infomap(links, cfg.infomap_flags()) if len(links) else None)


def partition_class(emb: torch.Tensor, cfg: PatternConfig | None = None) -> torch.Tensor:
    """Pattern ids (n,) in 0..M-1 of one class's embeddings, pattern 0 the largest."""
    return partition_class_info(emb, cfg).ids


# ----------------------------------------------------------------------------- Infomap in worker processes
#: A worker: reads jobs (a line "flags<TAB>m", then m links as float64 bytes) from stdin and answers
#: (a line "rows codelength one_level_codelength", then the (rows, 2) int64 clu table as bytes).
#: It imports only NumPy and Infomap (not torch), so it starts in a fraction of a second; the
#: modules are read through write_clu as in :func:`_read_modules`.
_WORKER = r"""
import os, sys, tempfile
import numpy as np
from infomap import Infomap
inp, out = sys.stdin.buffer, sys.stdout.buffer
with tempfile.TemporaryDirectory(prefix="ddlib-infomap-") as tmp:
    path = os.path.join(tmp, "modules.clu")
    while True:
        head = inp.readline().decode()
        if not head.strip():
            break
        flags, m = head.rstrip("\n").split("\t")
        links = np.frombuffer(inp.read(int(m) * 24), dtype=np.float64).reshape(-1, 3)
        im = Infomap(flags)
        im.add_links(links)
        res = im.run()
        im.write_clu(path)
        table = np.ascontiguousarray(np.loadtxt(path, comments="#", usecols=(0, 1), dtype=np.int64, ndmin=2))
        out.write(f"{len(table)} {res.codelength!r} {res.one_level_codelength!r}\n".encode())
        out.write(table.tobytes())
        out.flush()
"""


class _InfomapPool:
    """``workers`` Infomap processes, one job in flight per worker (so no pipe can fill both ways)."""

    def __init__(self, workers: int) -> None:
        import subprocess
        import sys

        self.procs = [subprocess.Popen([sys.executable, "-c", _WORKER], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE) for _ in range(workers)]
        self.busy: dict[int, object] = {}  # worker -> the job's key

    def submit(self, key: object, links: np.ndarray, flags: str) -> None:
        """Send a job to a free worker; the caller collects first when all are busy."""
        w = next(i for i in range(len(self.procs)) if i not in self.busy)
        pipe = self.procs[w].stdin
        pipe.write(f"{flags}\t{len(links)}\n".encode())
        pipe.write(np.ascontiguousarray(links, dtype=np.float64).tobytes())
        pipe.flush()
        self.busy[w] = key

    def full(self) -> bool:
        return len(self.busy) == len(self.procs)

    def collect(self) -> tuple[object, tuple[np.ndarray, np.ndarray, float, float]]:
        """The key and result of the first job to finish (blocks until one has): a worker that is
        done takes the next graph while a slower one still runs, whatever the order of submission."""
        import select

        fds = {self.procs[w].stdout.fileno(): w for w in self.busy}
        ready, _, _ = select.select(list(fds), [], [])
        w = fds[ready[0]]
        key = self.busy.pop(w)
        out = self.procs[w].stdout
        head = out.readline().split()
        if len(head) != 3:
            raise RuntimeError(f"an Infomap worker process failed (exit code {self.procs[w].poll()})")
        rows = int(head[0])
        table = np.frombuffer(out.read(rows * 16), dtype=np.int64).reshape(rows, 2)
        return key, (table[:, 0], table[:, 1], float(head[1]), float(head[2]))

    def close(self) -> None:
        for p in self.procs:
            try:
                p.stdin.close()
                p.wait(timeout=10)
            except Exception:  # noqa: BLE001 - never leave a worker behind
                p.kill()


#: Most kNN links (24 bytes each) built ahead of the Infomap workers, waiting for one to be free.
AHEAD_LINKS = 4_000_000

#: Fewest embeddings for which :func:`partition_info` starts Infomap worker processes by default: a
#: worker starts in ~0.2 s, Infomap on a few thousand points per class takes longer than that.
POOL_MIN_ROWS = 10_000


def infomap_workers(classes: int, workers: int | None = None, rows: int = POOL_MIN_ROWS) -> int:
    """Infomap processes for ``classes`` graphs of ``rows`` embeddings in all, at most one per class:
    ``workers`` if given; by default one per torch thread from :data:`POOL_MIN_ROWS` embeddings, on any
    device (on a GPU the cores are free while it builds the graphs; on 2 quiet CPU cores
    ``benchmarks/results/bench_knn_infomap_cpu.json`` times Stage 1's queue refresh with one and two
    workers), else 1."""
    if workers is None:
        workers = torch.get_num_threads() if rows >= POOL_MIN_ROWS else 1
    return max(1, min(check_int("workers", workers, 1), classes))


def partition_info(emb: torch.Tensor, labels: torch.Tensor, cfg: PatternConfig | None = None,
                   workers: int | None = None) -> tuple[torch.Tensor, dict[int, ClassPartition]]:
    """Per-class pattern ids (N,) and each class's :class:`ClassPartition`.

    With more than one worker (:func:`infomap_workers`; by default one per torch thread from
    :data:`POOL_MIN_ROWS` embeddings, else 1) the classes' Infomap runs go to worker processes,
    started with the first graph that has links, while this process builds the next classes' kNN graphs (up to
    :data:`AHEAD_LINKS` links ahead, on CPU with the torch threads the busy workers leave, at least
    one: OpenMP threads that outnumber the free cores spin against the workers); a free worker takes
    the largest graph built. Each class's result is the same as in this process (the same links,
    flags and seed).
    """
    cfg = cfg or PatternConfig()
    if not isinstance(emb, torch.Tensor) or emb.dim() != 2:
        raise ParamError(f"emb must be a 2-D tensor (N, D); got {getattr(emb, 'shape', type(emb).__name__)}")
    labels = torch.as_tensor(labels).reshape(-1).long().cpu()
    if labels.shape[0] != emb.shape[0]:
        raise ParamError(f"labels has {labels.shape[0]} entries but emb has {emb.shape[0]} rows")
    classes = torch.unique(labels).tolist()
    workers = infomap_workers(len(classes), workers, rows=emb.shape[0])
    out = torch.full((emb.shape[0],), -1, dtype=torch.long)
    info: dict[int, ClassPartition] = {}
    pending: dict[int, tuple] = {}
    pool: _InfomapPool | None = None

    def finish(c: int, found: tuple | None) -> None:
        where, n, links, single = pending.pop(c)
        part = _class_partition(n, links, single, found)
        out[where] = part.ids
        info[int(c)] = part

    flags, threads = cfg.infomap_flags(), torch.get_num_threads()
    todo, ready, ahead = list(classes), [], 0  # classes to build; built and waiting for a worker; their links
    try:
        while todo or ready or (pool is not None and pool.busy):
            if pool is not None and ready and not pool.full():
                c = max(ready, key=lambda k: len(pending[k][2]))  # the largest waiting graph first
                ready.remove(c)
                ahead -= len(pending[c][2])
                pool.submit(c, pending[c][2], flags)
            elif todo and (pool is None or not ready or ahead < AHEAD_LINKS):
                c = todo.pop(0)
                if pool is not None and emb.device.type == "cpu":  # on the cores the busy workers leave
                    torch.set_num_threads(max(1, threads - len(pool.busy)))
                where = torch.nonzero(labels == c).reshape(-1)
                links, single = knn_links(emb[where.to(emb.device)], cfg)
                pending[c] = (where, len(where), links, single)
                if len(links) and pool is None and workers > 1:  # started with the first graph to partition
                    try:  # (they start while the next graphs are built)
                        pool = _InfomapPool(workers)
                    except OSError:  # no new processes here: run Infomap in this one
                        workers = 1
                if not len(links):
                    finish(c, None)
                elif pool is None:
                    finish(c, _infomap(links, flags))
                else:
                    ready.append(c)
                    ahead += len(links)
            else:
                finish(*pool.collect())
    finally:
        torch.set_num_threads(threads)
        if pool is not None:
            pool.close()
    return out, {c: info[c] for c in sorted(info)}


def partition(emb: torch.Tensor, labels: torch.Tensor, cfg: PatternConfig | None = None) -> torch.Tensor:
    """Per-class pattern ids (N,): within each class 0..M_c-1, pattern 0 the class's largest."""
    return partition_info(emb, labels, cfg)[0]


def pattern_entropy(ids: torch.Tensor) -> float:
    """Entropy in bits of the pattern sizes (uniform weight per sample): a cheap summary for prose.

    The quantity Infomap minimises is :attr:`ClassPartition.codelength` (the map equation, over the
    random walker's stationary distribution), not this.
    """
    _, counts = torch.unique(torch.as_tensor(ids), return_counts=True)
    p = counts.double() / counts.sum()
    return float(-(p * torch.log2(p)).sum())


def patterns_table(labels: torch.Tensor, patterns: torch.Tensor, info: dict, classes: list[str]):  # noqa: ANN201
    """One row per class of a partition (:func:`ddlib.bps.encoder.model_patterns`'s ``patterns`` and ``info``):
    its patterns, singletons, the largest pattern's share of the class (``largest (%)``), the median pattern
    size, how many of the largest patterns hold half the class (``half in``), and the map equation's bits per
    step of the walk for the partition, against one module in brackets ("3.12 (10.41)"; "no links" when no
    image kept a neighbour). A ``pandas.DataFrame`` indexed by class name; chapter 1 shows it."""
    import math

    import pandas as pd

    y, pat = torch.as_tensor(labels).cpu(), torch.as_tensor(patterns).cpu()
    rows = []
    for c, name in enumerate(classes):
        sizes = torch.bincount(pat[y == c]).sort(descending=True).values
        sizes = sizes[sizes > 0]
        half = int((sizes.cumsum(0) < sizes.sum() / 2).sum()) + 1
        i = info.get(c) or info.get(str(c)) or {}
        code, one = float(i.get("codelength", math.nan)), float(i.get("one_level_codelength", math.nan))
        rows.append({"class": name, "patterns": int(len(sizes)),
                     "singletons": int(i.get("num_singletons", int((sizes == 1).sum()))),
                     "largest (%)": round(100 * float(sizes[0]) / float(sizes.sum()), 1),
                     "median size": float(sizes.double().quantile(0.5)),
                     "half in": half,
                     "bits/step (1 module)": f"{code:.2f} ({one:.2f})" if math.isfinite(code) else "no links"})
    return pd.DataFrame(rows).set_index("class")


def describe_partition(table, slots=None, recorded: dict | None = None, ipc: int = 10) -> dict:  # noqa: ANN001
    """What a partition found, in numbers and in words a chapter can cite (chapter 1's "What we found").

    ``table``: :func:`patterns_table`'s; ``slots``: :func:`ddlib.bps.slots.slots_per_pattern`'s rows at
    ``ipc`` (None: no Stage-2 reading); ``recorded``: :func:`ddlib.results.recorded_patterns`'s glue (the
    patterns per class of recorded modellings of the same dataset). Every word is read from the numbers:

    - ``shape``: "many small patterns rather than a few large ones" when no pattern holds a quarter of its
      class, "one large pattern per class with small ones beside it" when every class's largest holds half or
      more, else "a few patterns of unequal sizes";
    - ``typical``: whether this run's counts lie within the recorded ones (within 20 % of their range);
    - ``balance``: how much of BPS's centre/margin split acts at ``ipc``
      (:func:`ddlib.bps.slots.balance_words`).

    Returns glue: ``min_patterns``, ``max_patterns``, ``total_patterns``, ``n_singletons``, ``largest_min``,
    ``largest_max``, ``median_min``, ``median_max``, ``half_min``, ``half_max``, ``shape``, ``typical``, and
    with ``slots`` ``slots_min``, ``slots_max``, ``slots_margin_max``, ``slots_centre_pct``, ``balance``."""
    from ddlib.bps.slots import balance_words

    pats, largest = table["patterns"], table["largest (%)"]
    out: dict = {"min_patterns": int(pats.min()), "max_patterns": int(pats.max()), "total_patterns": int(pats.sum()),
                 "n_singletons": int(table["singletons"].sum()), "largest_min": float(largest.min()),
                 "largest_max": float(largest.max()), "median_min": float(table["median size"].min()),
                 "median_max": float(table["median size"].max()), "half_min": int(table["half in"].min()),
                 "half_max": int(table["half in"].max())}
    out["shape"] = ("many small patterns rather than a few large ones" if out["largest_max"] < 25 else
                    "one large pattern per class with small ones beside it" if out["largest_min"] >= 50 else
                    "a few patterns of unequal sizes")
    lo, hi, n = (recorded or {}).get("recorded_min", 0), (recorded or {}).get("recorded_max", 0), \
        (recorded or {}).get("recorded_n", 0)
    slack = 0.2 * max(hi - lo, 1)
    if not n:
        out["typical"] = "no modelling of this dataset is recorded yet to compare it with"
    else:
        them = "the recorded modelling" if n == 1 else f"the {n} recorded modellings"
        if lo - slack <= out["min_patterns"] and out["max_patterns"] <= hi + slack:
            out["typical"] = (f"{them} of the same recipe (other sessions) found {lo} to {hi} per class: the "
                              "count is the recipe's, not this run's luck")
        else:
            out["typical"] = (f"{them} of the book's default settings found {lo} to {hi} per class; this run's "
                              "count falls outside that range (other settings or data, or the same recipe on "
                              "another CPU, whose arithmetic trains a slightly different encoder)")
    if slots is not None and len(slots):
        picks = float(slots.centres.sum() + slots.margins.sum())
        pct = 100 * float(slots.centres.sum()) / max(picks, 1.0)
        out.update({"slots_min": int(slots.with_slot.min()), "slots_max": int(slots.with_slot.max()),
                    "slots_margin_max": int(slots.with_margin.max()), "slots_centre_pct": round(pct, 2),
                    "balance": balance_words(pct)})
    return out
