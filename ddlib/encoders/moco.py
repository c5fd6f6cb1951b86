"""MoCo v2's moving parts on the one training loop (chapter 1): the queue of keys (:class:`KeyQueue`), the
step that is also the loop's hook (:class:`MoCoStep`: query and momentum key encoders, InfoNCE + CE + the
clustering term, enqueue, re-partition), the protocol a clustering term follows (:class:`ClusteringTerm`;
BPS's is :data:`ddlib.bps.encoder.PATTERN_CLUSTERING`) and the MoCo pairs of a bank of frozen features."""
from __future__ import annotations

import time
from typing import Any, Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ddlib import distributed
from ddlib.encoders.config import EncoderConfig, PatternConfig, clu_ramp
from ddlib.losses import info_nce
from ddlib.train import Batch, Batches, Hook, LoopState, lr_factor
from ddlib.utils import ParamError

__all__ = ["KeyQueue", "ClusteringTerm", "MoCoStep", "check_clustering", "bank_pairs"]


class KeyQueue:
    """MoCo's queue of L2-normalised keys with their labels (a ring buffer), and the snapshot the
    clustering term works on.

    ``snapshot`` holds the keys and labels copied when the term last re-partitioned the queue (the
    reference's ``queue_emb_copy``), ``snapshot_pattern`` their pattern ids (-1: none) and
    ``pattern_class`` the class of each pattern id; written by a :class:`ClusteringTerm` (BPS's
    refresh), empty for plain MoCo.
    """

    def __init__(self, size: int, dim: int, device: torch.device, generator: torch.Generator | None = None) -> None:
        self.keys = F.normalize(torch.randn(size, dim, generator=generator), dim=1).to(device)  # MoCo's random start
        self.labels = torch.full((size,), -1, dtype=torch.long, device=device)  # -1: never filled
        self.snapshot = torch.zeros(0, dim, device=device)
        self.snapshot_labels = torch.zeros(0, dtype=torch.long, device=device)
        self.snapshot_pattern = torch.zeros(0, dtype=torch.long, device=device)
        self.pattern_class = torch.zeros(0, dtype=torch.long, device=device)
        self.ptr = 0
        self.wraps = 0

    def __len__(self) -> int:
        return len(self.keys)

    @torch.no_grad()
    def enqueue(self, k: Tensor, y: Tensor) -> bool:
        """Write keys k (B, D) with labels y over the oldest entries (wrapping around); True when the
        write reached the end of the buffer (the queue wrapped). Keys are stored in the queue's float32
        (under bf16 autocast the key encoder's output is bf16)."""
        b = len(k)
        if b > len(self):  # keep only the newest
            k, y = k[-len(self):], y[-len(self):]
            b = len(self)
        pos = (self.ptr + torch.arange(b, device=self.keys.device)) % len(self)
        self.keys[pos] = k.to(self.keys.dtype)
        self.labels[pos] = y
        wrapped = self.ptr + b >= len(self)
        if wrapped:
            self.wraps += 1
        self.ptr = (self.ptr + b) % len(self)
        return wrapped

    @torch.no_grad()
    def take_snapshot(self) -> tuple[Tensor, Tensor]:
        """Copy the filled part of the queue (keys, labels) into the snapshot and return it."""
        filled = torch.nonzero(self.labels >= 0).reshape(-1)
        self.snapshot = self.keys[filled].clone()
        self.snapshot_labels = self.labels[filled].clone()
        self.snapshot_pattern = torch.full((len(filled),), -1, dtype=torch.long, device=self.keys.device)
        self.pattern_class = torch.zeros(0, dtype=torch.long, device=self.keys.device)
        return self.snapshot, self.snapshot_labels


class ClusteringTerm(Protocol):
    """The clustering term L_clu and the partition it needs (BPS plugs one in)."""

    def refresh(self, queue: KeyQueue, cfg: PatternConfig) -> dict[int, int]:
        """Snapshot and re-partition the queued keys; {class: number of patterns}."""

    def loss(self, q: Tensor, y: Tensor, queue: KeyQueue, assign: str) -> Tensor:
        """The term's loss for queries q of classes y against the queue's snapshot."""


@torch.no_grad()
def _momentum_update(key_model: nn.Module, model: nn.Module, m: float) -> None:
    for pk, pq in zip(key_model.parameters(), model.parameters()):
        pk.mul_(m).add_(pq.detach(), alpha=1 - m)


class MoCoStep(Hook):
    """MoCo v2 (+ CE + the clustering term) on :func:`ddlib.train.loop`: call it as the step, pass it as a hook.

    Step: query view through the model, momentum update of the key model, key view through it, the
    weighted loss. Hook: at epoch start the ramp r(e), and a partition of the queue when the term turns
    on (or at every epoch start with ``clu_refresh="epoch"``); after each optimiser step the keys are
    enqueued, and with ``clu_refresh="wrap"`` the queue is re-partitioned each time it wraps while the
    term is on (the reference's ``_info_cluster``); at epoch end the history (``loss``, ``ce``, ``con``,
    ``clu`` as means over steps, ``r``, ``lr``, ``patterns`` (the last partition of the epoch),
    ``refreshes``, ``epoch_seconds``) in :attr:`history`.

    Data-parallel (the loop's ``parallel=``; the step then gets the DDP-wrapped model and the rank's share of
    the batch): the keys of the whole batch come from :func:`ddlib.distributed.shuffled_forward` (each rank
    keys a shuffled share; every rank gets all of them), so every rank enqueues the same keys; the
    re-partition runs on rank 0 and is broadcast; the history's losses are the global batch's.
    """

    def __init__(self, model: nn.Module, key_model: nn.Module, queue: KeyQueue, cfg: EncoderConfig,
                 clustering: ClusteringTerm | None) -> None:
        self.model, self.key_model, self.queue, self.cfg, self.clustering = model, key_model, queue, cfg, clustering
        self.shuffle_gen = torch.Generator().manual_seed(cfg.seed)  # the same on every rank: no permutation sent
        self.history: dict = {k: [] for k in ("loss", "ce", "con", "clu", "r", "lr", "patterns", "refreshes",
                                              "epoch_seconds")}
        self.r, self.use_clu, self.found, self.refreshes = 0.0, False, {}, 0

    def _refresh(self) -> None:
        queue = self.queue
        found = self.clustering.refresh(queue, self.cfg.pattern) if distributed.is_main() else None
        if distributed.world_size() > 1:  # rank 0's partition to every rank (each holds the same queue)
            found, pattern, pattern_class = distributed.broadcast_object(
                (found, queue.snapshot_pattern.cpu(), queue.pattern_class.cpu()))
            if not distributed.is_main():
                queue.take_snapshot()
                queue.snapshot_pattern = pattern.to(queue.keys.device)
                queue.pattern_class = pattern_class.to(queue.keys.device)
        self.found = found
        self.refreshes += 1

    def epoch_start(self, state: LoopState) -> None:
        self.t0 = time.perf_counter()
        self.r = clu_ramp(self.cfg, state.epoch)
        self.use_clu = self.r > 0 and self.cfg.clu_weight > 0
        self.refreshes = 0
        if self.use_clu and (self.cfg.clu_refresh == "epoch" or len(self.queue.pattern_class) == 0):
            self._refresh()
        self.sums = {"loss": 0.0, "ce": 0.0, "con": 0.0, "clu": 0.0}

    def __call__(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Any]:
        cfg, queue = self.cfg, self.queue
        (xq, xk), yb = batch.x, batch.y
        q, h = model(xq, project=True)
        with torch.no_grad():
            _momentum_update(self.key_model, model, cfg.momentum)
            if batch.full is None:
                k, _ = self.key_model.project(xk)
                k_all, y_all = k, yb
            else:  # data-parallel: the keys of the whole batch, each rank keying a shuffled share (shuffled BN)
                k_all = distributed.shuffled_forward(lambda x: self.key_model.project(x)[0], batch.full.x[1],
                                                     self.shuffle_gen)
                k, y_all = k_all[distributed.rows_of(batch)], batch.full.y
        zero = q.sum() * 0.0
        ce = F.cross_entropy(self.model.classifier(h), yb) if cfg.ce_weight > 0 else zero
        con = info_nce(q, k, queue.keys, cfg.temperature) if cfg.con_weight > 0 else zero
        clu = self.clustering.loss(q, yb, queue, cfg.clu_assign) if self.use_clu else zero
        loss = cfg.ce_weight * ce + cfg.con_weight * con + self.r * cfg.clu_weight * clu
        return loss, (k_all, y_all, {"loss": loss, "ce": ce, "con": con, "clu": clu})

    def step_end(self, state: LoopState, batch: Batch, loss: Tensor, out: Any) -> None:
        k_all, y_all, parts = out
        wrapped = self.queue.enqueue(k_all, y_all)
        if wrapped and self.use_clu and self.cfg.clu_refresh == "wrap":
            self._refresh()
        for name, v in parts.items():
            self.sums[name] += float(v.detach()) * batch.share  # share = 1 in one process

    def epoch_end(self, state: LoopState) -> None:
        self.sums = dict(zip(self.sums, distributed.all_reduce_sum(list(self.sums.values()))))  # over ranks
        for name, v in self.sums.items():
            self.history[name].append(v / max(state.steps_per_epoch, 1))
        self.history["r"].append(self.r)
        self.history["lr"].append(self.cfg.lr * lr_factor(self.cfg, state.epoch + 1, warmup_offset=0.0))
        self.history["patterns"].append(dict(self.found) if self.use_clu else {})
        self.history["refreshes"].append(self.refreshes)
        self.history["epoch_seconds"].append(time.perf_counter() - self.t0)


def check_clustering(cfg: EncoderConfig, clustering: ClusteringTerm | None) -> None:
    """Refuse a config whose clustering term would act (``clu_weight > 0`` and r(e) > 0 in some epoch) when no
    term is plugged in."""
    if clustering is None and cfg.clu_weight > 0 and any(clu_ramp(cfg, e) > 0 for e in range(cfg.epochs)):
        raise ParamError(f"clu_weight={cfg.clu_weight!r} needs BPS's clustering term: train with "
                         "ddlib.bps.encoder.fit_encoder/train_encoder, or set clu_weight=0 (plain MoCo v2)")


def bank_pairs(bank: Tensor, y: Tensor, batch_size: int, device: torch.device) -> Batches:
    """MoCo pairs from a bank of views ``(V, N, D)``: each sample's query and key are two distinct views
    drawn from the loop's generator; the last partial batch is dropped (as MoCo does)."""
    v = bank.shape[0]

    def fetch(idx: Tensor, gen: Any) -> Batch:
        a = torch.randint(v, (len(idx),), generator=gen)
        b = (a + torch.randint(1, v, (len(idx),), generator=gen)) % v
        return Batch(idx, (bank[a, idx].to(device).float(), bank[b, idx].to(device).float()), y[idx].to(device))

    return Batches(bank.shape[1], batch_size, fetch, drop_last=True)
