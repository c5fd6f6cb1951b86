"""BPS Stage 1: the multi-visual-pattern encoder (METHODS.md §1), then embeddings and partitions.

The encoder, its config, the MoCo queue and its training on the one loop are shared with SFM and
live in :mod:`ddlib.encoders` (its docstring states the loss, the schedule and the choices made; chapter 1
runs them).
This module plugs in what only BPS has, the clustering term L_clu:

- :func:`refresh_patterns`: a snapshot of the queued keys is partitioned per class into patterns with
  the kNN + Infomap recipe of :mod:`ddlib.bps.patterns` (each time the queue wraps while L_clu is on,
  as the reference; ``EncoderConfig.clu_refresh="epoch"``: at epoch starts);
- the loss :func:`ddlib.losses.clustering_loss` against that snapshot: each query goes to the nearest
  pattern centroid (the L2-normalised mean of the pattern's snapshot keys) over the patterns of every
  class (``clu_assign="all"``, the reference; ``"own_class"`` restricts it to the query's class); with
  d = sqrt(2 − 2·q·k + 1e-6), L_clu = mean d to the keys of that pattern + (2 − mean d to every other key).

:data:`PATTERN_CLUSTERING` bundles the three as the :class:`~ddlib.encoders.ClusteringTerm` that
:func:`fit_encoder` and :func:`train_encoder` (:func:`ddlib.encoders.fit_moco` and
:func:`~ddlib.encoders.train_moco` with it plugged in) pass on.
:func:`model_patterns` is Stage 1 end to end: the encoder, the L2-normalised embeddings of the
training set, and their per-class partition, cached.
"""
from __future__ import annotations

import time
import weakref

import torch
from torch import Tensor

from ddlib import artifacts, distributed, encoders
from ddlib.bps.patterns import PatternConfig, partition_info
# re-exported for chapter 1 and the scripts that import them from here (their home is ddlib.encoders / ddlib.losses)
from ddlib.encoders import Encoder, EncoderConfig, build_encoder, clu_ramp, encoder_key  # noqa: F401
from ddlib.train import lr_factor  # noqa: F401
from ddlib.losses import (ClusteringSnapshot, clustering_loss, clustering_loss_prepared,  # noqa: F401
                          clustering_snapshot, info_nce)
from ddlib.train import Accel
from ddlib.utils import ParamError, get_device

__all__ = ["refresh_patterns", "PatternClustering", "PATTERN_CLUSTERING", "fit_encoder", "train_encoder",
           "model_patterns"]


# ----------------------------------------------------------------------------- the clustering term
@torch.no_grad()
def refresh_patterns(queue: encoders.KeyQueue, cfg: PatternConfig) -> dict[int, int]:
    """Snapshot the filled queue and partition the snapshot per class with kNN + Infomap (pattern ids
    global over classes, as the reference's ``info_label``); return {class: number of patterns}."""
    keys, labels = queue.take_snapshot()
    if len(keys) == 0:
        return {}
    ids, info = partition_info(keys, labels.cpu(), cfg)  # kNN on the keys' device
    classes = sorted(info)
    offset, total = {}, 0
    for c in classes:
        offset[c] = total
        total += info[c].num_patterns
    lab = labels.cpu()
    glob = ids + torch.tensor([offset[int(c)] for c in lab.tolist()], dtype=torch.long)
    queue.snapshot_pattern = glob.to(keys.device)
    queue.pattern_class = torch.tensor([c for c in classes for _ in range(info[c].num_patterns)],
                                       dtype=torch.long, device=keys.device)
    return {c: info[c].num_patterns for c in classes}


class PatternClustering:
    """BPS's :class:`~ddlib.encoders.ClusteringTerm`: Infomap patterns of the queue's snapshot and L_clu
    against that snapshot (the reference's ``queue_emb_copy`` and ``info_label``).

    What L_clu needs of a snapshot (its centroids, the keys that have a pattern) is prepared once per
    partition (:func:`ddlib.losses.clustering_snapshot`) and kept per queue until the queue's snapshot
    tensors are replaced (a refresh replaces them): the same loss as :func:`clustering_loss`, bit for bit.
    """

    def __init__(self) -> None:
        self._prepared: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def refresh(self, queue: encoders.KeyQueue, cfg: PatternConfig) -> dict[int, int]:
        return refresh_patterns(queue, cfg)

    def snapshot(self, queue: encoders.KeyQueue) -> ClusteringSnapshot | None:
        """The queue's prepared snapshot, computed again only when its snapshot tensors changed."""
        source = (queue.snapshot, queue.snapshot_pattern, queue.pattern_class)
        held = self._prepared.get(queue)
        if held is None or any(a is not b for a, b in zip(held[0], source)):
            held = (source, clustering_snapshot(*source))
            self._prepared[queue] = held
        return held[1]

    def loss(self, q: Tensor, y: Tensor, queue: encoders.KeyQueue, assign: str = "all") -> Tensor:
        return clustering_loss_prepared(q, y, self.snapshot(queue), assign)


PATTERN_CLUSTERING = PatternClustering()


# ----------------------------------------------------------------------------- training with the term
def fit_encoder(model: Encoder, x: Tensor, y: Tensor, cfg: EncoderConfig, device: str | torch.device | None = None,
                progress: bool = True, accel: Accel | None = None) -> dict:
    """:func:`ddlib.encoders.fit_moco` with BPS's clustering term plugged in."""
    return encoders.fit_moco(model, x, y, cfg, device=device, progress=progress, clustering=PATTERN_CLUSTERING,
                                accel=accel)


def train_encoder(ds, cfg: EncoderConfig | None = None, device: str | torch.device | None = None,
                  progress: bool = True) -> tuple[Encoder, dict]:
    """Stage 1's encoder on ``ds`` (cached): :func:`ddlib.encoders.train_moco` with BPS's clustering term."""
    return encoders.train_moco(ds, cfg, device=device, progress=progress, clustering=PATTERN_CLUSTERING)


def model_patterns(ds, enc_cfg: EncoderConfig | None = None, pat_cfg: PatternConfig | None = None,
                   device: str | torch.device | None = None, progress: bool = True, train_ds=None) -> dict:
    """Stage 1 end to end, cached: train (or load) the encoder, embed the train set, partition each class.

    ``train_ds``: the images the encoder learns from, when not all of ``ds`` (a per-class subsample of
    the pool, for CPU budgets); the embeddings and partitions are always of every image of ``ds``.

    Under torchrun the encoder trains data-parallel, the embeddings are computed sharded over the ranks, and
    the partition runs on rank 0 (:mod:`ddlib.distributed`). The embeddings are one process's up to float
    rounding (without batch norm); Infomap may split a class differently on embeddings that differ in their
    last bits, so the patterns need not be one process's (``tests/test_distributed.py``).

    Returns ``{"embeddings": (N, D) L2-normalised, "patterns": (N,) per-class ids (0 = the class's
    largest), "num_patterns": {class: M}, "info": {class: {...}}, "encoder_key", "key",
    "seconds": {...}}``. Stage 2 reuses this one result for every IPC.
    """
    enc_cfg = enc_cfg or EncoderConfig()
    pat_cfg = pat_cfg or PatternConfig()
    if not isinstance(pat_cfg, PatternConfig):
        raise ParamError(f"pat_cfg must be a PatternConfig, got {type(pat_cfg).__name__}")
    train_ds = ds if train_ds is None else train_ds
    ekey = encoder_key(train_ds, enc_cfg)
    key = artifacts.make_key("bps-patterns", ds.key(), pat_cfg, upstream=[ekey])

    def compute() -> dict:
        t0 = time.perf_counter()
        model, _ = train_encoder(train_ds, enc_cfg, device=device, progress=progress)
        t1 = time.perf_counter()
        emb = encoders.train_embeddings(model, ds, enc_cfg, device=device)  # the test transform (none)
        t2 = time.perf_counter()
        # kNN on the GPU when there is one; under torchrun on rank 0, its partition sent to the others
        ids, info = distributed.on_main(lambda: partition_info(emb.to(get_device(device)), ds.train_y, pat_cfg))
        t3 = time.perf_counter()
        return {"embeddings": emb, "patterns": ids,
                "num_patterns": {c: p.num_patterns for c, p in info.items()},
                "info": {c: {"num_patterns": p.num_patterns, "num_singletons": p.num_singletons,
                             "num_links": p.num_links, "codelength": p.codelength,
                             "one_level_codelength": p.one_level_codelength} for c, p in info.items()},
                "encoder_key": ekey, "key": key,
                "seconds": {"encoder": t1 - t0, "embed": t2 - t1, "partition": t3 - t2}}

    return artifacts.cached(key, compute, meta={"stage": "bps-patterns", "dataset": ds.spec}, collective=True)
