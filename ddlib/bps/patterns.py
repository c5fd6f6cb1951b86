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
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ddlib.encoders import PatternConfig  # defined beside EncoderConfig, which holds one (see ddlib.encoders)
from ddlib.kernels.knn import knn, l2_normalize
from ddlib.utils import ParamError


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


def partition_class_info(emb: torch.Tensor, cfg: PatternConfig | None = None) -> ClassPartition:
    """Partition one class's embeddings (n, D) into patterns; see the module docstring."""
    from infomap import Infomap

    cfg = cfg or PatternConfig()
    if not isinstance(emb, torch.Tensor) or emb.dim() != 2:
        raise ParamError(f"emb must be a 2-D tensor (n, D); got {getattr(emb, 'shape', type(emb).__name__)}")
    n = emb.shape[0]
    if n == 0:
        return ClassPartition(torch.zeros(0, dtype=torch.long), 0, 0, 0, float("nan"), float("nan"))
    links, single = knn_links(emb, cfg)
    raw = np.full(n, -1, dtype=np.int64)
    codelength = one_level = float("nan")
    if len(links):
        im = Infomap(cfg.infomap_flags())
        im.add_links(links)
        res = im.run()
        nodes, mods = _read_modules(im)
        raw[nodes] = mods
        codelength, one_level = float(res.codelength), float(res.one_level_codelength)
    # singletons (no kept out-link) are their own patterns, overriding any module they were put in
    nxt = int(raw.max()) + 1 if (raw >= 0).any() else 0
    lonely = np.flatnonzero(single | (raw < 0))
    raw[lonely] = nxt + np.arange(len(lonely))
    ids = _relabel_by_size(raw)
    return ClassPartition(torch.from_numpy(ids), int(ids.max()) + 1, int(single.sum()), int(len(links)),
                          codelength, one_level)


def partition_class(emb: torch.Tensor, cfg: PatternConfig | None = None) -> torch.Tensor:
    """Pattern ids (n,) in 0..M-1 of one class's embeddings, pattern 0 the largest."""
    return partition_class_info(emb, cfg).ids


def partition_info(emb: torch.Tensor, labels: torch.Tensor,
                   cfg: PatternConfig | None = None) -> tuple[torch.Tensor, dict[int, ClassPartition]]:
    """Per-class pattern ids (N,) and each class's :class:`ClassPartition`."""
    cfg = cfg or PatternConfig()
    if not isinstance(emb, torch.Tensor) or emb.dim() != 2:
        raise ParamError(f"emb must be a 2-D tensor (N, D); got {getattr(emb, 'shape', type(emb).__name__)}")
    labels = torch.as_tensor(labels).reshape(-1).long().cpu()
    if labels.shape[0] != emb.shape[0]:
        raise ParamError(f"labels has {labels.shape[0]} entries but emb has {emb.shape[0]} rows")
    out = torch.full((emb.shape[0],), -1, dtype=torch.long)
    info: dict[int, ClassPartition] = {}
    for c in torch.unique(labels).tolist():
        where = torch.nonzero(labels == c).reshape(-1)
        part = partition_class_info(emb[where.to(emb.device)], cfg)
        out[where] = part.ids
        info[int(c)] = part
    return out, info


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
