"""BPS Stage 1: the multi-visual-pattern encoder (METHODS.md §1), then embeddings and partitions.

The encoder, its config, the MoCo queue and its training on the one loop are shared with SFM and
live in :mod:`ddlib.encoders` (its docstring states the loss, the schedule and the choices made).
This module plugs in what only BPS has, the clustering term L_clu:

- :func:`refresh_patterns`: per class, the queued keys are partitioned into patterns with the kNN +
  Infomap recipe of :mod:`ddlib.bps.patterns` (at the start of every epoch in which L_clu is on);
- :func:`assign_patterns`: keys enqueued between two refreshes join the nearest centroid of their
  class (pattern centroids: the L2-normalised means of the queued keys of each pattern);
- the loss :func:`ddlib.losses.clustering_loss`: with d = sqrt(2 − 2·q·k + 1e-6), L_clu = mean d to
  the keys of the query's pattern + (2 − mean d to every other queued key).

:data:`PATTERN_CLUSTERING` bundles the three as the :class:`~ddlib.encoders.ClusteringTerm` that
:func:`fit_encoder` and :func:`train_encoder` (the shared ones with it plugged in) pass on.
:func:`model_patterns` is Stage 1 end to end: the encoder, the L2-normalised embeddings of the
training set, and their per-class partition, cached.
"""
from __future__ import annotations

import time

import torch
from torch import Tensor

from ddlib import artifacts, encoders
from ddlib.bps.patterns import PatternConfig, partition_info
from ddlib.encoders import Encoder, EncoderConfig, build_encoder, clu_ramp, encoder_key, lr_factor  # noqa: F401
from ddlib.losses import assign_to_centroids, clustering_loss, info_nce, pattern_centroids  # noqa: F401
from ddlib.train import embed
from ddlib.utils import ParamError, get_device

__all__ = ["EncoderConfig", "Encoder", "build_encoder", "KeyQueue", "refresh_patterns", "assign_patterns",
           "PATTERN_CLUSTERING", "fit_encoder", "train_encoder", "encoder_key", "model_patterns", "lr_factor",
           "clu_ramp", "info_nce", "clustering_loss"]


# ----------------------------------------------------------------------------- the clustering term
@torch.no_grad()
def refresh_patterns(queue: encoders.KeyQueue, cfg: PatternConfig) -> dict[int, int]:
    """Partition the filled queue per class with kNN + Infomap; return {class: number of patterns}."""
    filled = torch.nonzero(queue.labels >= 0).reshape(-1)
    queue.pattern.fill_(-1)
    if len(filled) == 0:
        queue.pattern_class = torch.zeros(0, dtype=torch.long, device=queue.keys.device)
        return {}
    ids, info = partition_info(queue.keys[filled], queue.labels[filled].cpu(), cfg)  # kNN on the keys' device
    classes = sorted(info)
    offset = {c: 0 for c in classes}
    total = 0
    for c in classes:
        offset[c] = total
        total += info[c].num_patterns
    lab = queue.labels[filled].cpu()
    glob = ids + torch.tensor([offset[int(c)] for c in lab.tolist()], dtype=torch.long)
    queue.pattern[filled] = glob.to(queue.keys.device)
    queue.pattern_class = torch.tensor([c for c in classes for _ in range(info[c].num_patterns)],
                                       dtype=torch.long, device=queue.keys.device)
    return {c: info[c].num_patterns for c in classes}


@torch.no_grad()
def assign_patterns(queue: encoders.KeyQueue, k: Tensor, y: Tensor) -> Tensor:
    """Pattern ids for new keys: the nearest current centroid of their class (-1 if none)."""
    if len(queue.pattern_class) == 0:
        return torch.full((len(k),), -1, dtype=torch.long, device=k.device)
    cent, counts = pattern_centroids(queue.keys, queue.pattern, len(queue.pattern_class))
    return assign_to_centroids(k, y, cent, counts, queue.pattern_class)


class PatternClustering:
    """BPS's :class:`~ddlib.encoders.ClusteringTerm`: Infomap patterns of the queue and L_clu."""

    def refresh(self, queue: encoders.KeyQueue, cfg: PatternConfig) -> dict[int, int]:
        return refresh_patterns(queue, cfg)

    def assign(self, queue: encoders.KeyQueue, k: Tensor, y: Tensor) -> Tensor:
        return assign_patterns(queue, k, y)

    def loss(self, q: Tensor, y: Tensor, queue: encoders.KeyQueue) -> Tensor:
        return clustering_loss(q, y, queue.keys, queue.pattern, queue.pattern_class)


PATTERN_CLUSTERING = PatternClustering()


class KeyQueue(encoders.KeyQueue):
    """The MoCo queue with BPS's pattern bookkeeping as methods (for direct use and benchmarks)."""

    def refresh_patterns(self, cfg: PatternConfig) -> dict[int, int]:
        """:func:`refresh_patterns` on this queue."""
        return refresh_patterns(self, cfg)

    def assign(self, k: Tensor, y: Tensor) -> Tensor:
        """:func:`assign_patterns` on this queue."""
        return assign_patterns(self, k, y)


# ----------------------------------------------------------------------------- training with the term
def fit_encoder(model: Encoder, x: Tensor, y: Tensor, cfg: EncoderConfig, device: str | torch.device | None = None,
                progress: bool = True) -> dict:
    """:func:`ddlib.encoders.fit_encoder` with BPS's clustering term plugged in."""
    return encoders.fit_encoder(model, x, y, cfg, device=device, progress=progress, clustering=PATTERN_CLUSTERING)


def train_encoder(ds, cfg: EncoderConfig | None = None, device: str | torch.device | None = None,
                  progress: bool = True) -> tuple[Encoder, dict]:
    """Stage 1's encoder on ``ds`` (cached): :func:`ddlib.encoders.train_encoder` with BPS's clustering term."""
    return encoders.train_encoder(ds, cfg, device=device, progress=progress, clustering=PATTERN_CLUSTERING)


def model_patterns(ds, enc_cfg: EncoderConfig | None = None, pat_cfg: PatternConfig | None = None,
                   device: str | torch.device | None = None, progress: bool = True) -> dict:
    """Stage 1 end to end, cached: train (or load) the encoder, embed the train set, partition each class.

    Returns ``{"embeddings": (N, D) L2-normalised, "patterns": (N,) per-class ids (0 = the class's
    largest), "num_patterns": {class: M}, "info": {class: {...}}, "encoder_key", "key",
    "seconds": {...}}``. Stage 2 reuses this one result for every IPC.
    """
    enc_cfg = enc_cfg or EncoderConfig()
    pat_cfg = pat_cfg or PatternConfig()
    if not isinstance(pat_cfg, PatternConfig):
        raise ParamError(f"pat_cfg must be a PatternConfig, got {type(pat_cfg).__name__}")
    ekey = encoder_key(ds, enc_cfg)
    key = artifacts.make_key("bps-patterns", ds.key(), pat_cfg, upstream=[ekey])

    def compute() -> dict:
        t0 = time.perf_counter()
        model, _ = train_encoder(ds, enc_cfg, device=device, progress=progress)
        t1 = time.perf_counter()
        emb = embed(model.features, ds.train_x, device=device, normalize=True)  # the test transform (none)
        t2 = time.perf_counter()
        ids, info = partition_info(emb.to(get_device(device)), ds.train_y, pat_cfg)  # kNN on the GPU when there is one
        t3 = time.perf_counter()
        return {"embeddings": emb, "patterns": ids,
                "num_patterns": {c: p.num_patterns for c, p in info.items()},
                "info": {c: {"num_patterns": p.num_patterns, "num_singletons": p.num_singletons,
                             "num_links": p.num_links, "codelength": p.codelength,
                             "one_level_codelength": p.one_level_codelength} for c, p in info.items()},
                "encoder_key": ekey, "key": key,
                "seconds": {"encoder": t1 - t0, "embed": t2 - t1, "partition": t3 - t2}}

    return artifacts.cached(key, compute, meta={"stage": "bps-patterns", "dataset": ds.spec})
