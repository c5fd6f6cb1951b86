"""The in-house MoCo v2 encoder that both methods use: BPS Stage 1 and SFM's ``"inhouse"`` backbone.

The encoder is a backbone (CIFAR ResNet-18 by default, or the DD ConvNet) with two heads on its
feature: the class head Linear(D→C) and a projector D→512→ReLU→128. It is trained with

    L = ce_weight·CE + con_weight·InfoNCE + r(e)·clu_weight·L_clu      (BPS: 0.5, 1.0, 1.0)

- InfoNCE (:func:`ddlib.losses.info_nce`): MoCo v2. Two MoCo-v2 views of each image; the query view
  through the encoder, the key view through a momentum copy (m = 0.999); logits [q·k⁺, q·queue] / τ1
  (τ1 = 0.5), target 0; a queue of 65,536 keys (with their labels).
- L_clu (:func:`ddlib.losses.clustering_loss`), BPS's clustering term: per class, the queued keys are
  partitioned into patterns; each query goes to the nearest pattern centroid of its class.
- r(e) = 0 for the first 5 epochs, then a linear ramp to 1 (:func:`clu_ramp`).
- SGD (momentum 0.9, wd 1e-4), lr 0.02, 5-epoch linear warm-up then cosine to 0.01·lr, 30 epochs.

Setting ``ce_weight=0`` and ``clu_weight=0`` gives plain MoCo v2 (a self-supervised encoder: SFM's
in-house backbone, :func:`ddlib.sfm.backbones.inhouse_encoder`).

Layering. This module sits below :mod:`ddlib.bps` and :mod:`ddlib.sfm` and imports neither. What only
BPS has — partitioning the queued keys into patterns with kNN + Infomap and assigning new keys to
them — plugs in as a :class:`ClusteringTerm` (``ddlib.bps.encoder.PATTERN_CLUSTERING``), passed to
:func:`fit_encoder`/:func:`train_encoder` as ``clustering=``; the loss L_clu itself is pure and lives
in :mod:`ddlib.losses`. Without a clustering term, a config whose clustering term would act
(``clu_weight > 0`` and r(e) > 0 in some epoch) is refused. The config of the partition,
:class:`PatternConfig`, is defined here rather than in :mod:`ddlib.bps.patterns` (which re-exports
it) because :class:`EncoderConfig` holds one as a field and the encoder's cache key hashes every
field: a config must be buildable, and an SFM encoder keyed, without importing ``ddlib.bps``.

The training runs on the one loop of :mod:`ddlib.train`: the data side is
:func:`ddlib.train.image_batches` with two views (the last partial batch dropped, as MoCo does), the
learning rate an :class:`~ddlib.train.LrPerStep` hook, and the MoCo step with its queue one object
(:class:`MoCoStep`) that is both the loop's step and a hook (the momentum update inside the step,
enqueue after the optimiser step, partition refresh at epoch start, the ramp per epoch).

Choices where METHODS.md is silent or the reference cannot be followed (each a config field):

- The partitions are refreshed at the start of every epoch in which L_clu is active (the reference
  does it when the queue wraps, ≈ once an epoch); keys enqueued between two refreshes join the
  nearest centroid of their class, so every queued key always has a pattern.
- The ramp reaches 1 at the last epoch (``clu_ramp_epochs=None``); give a number to reach 1 sooner.
- The learning rate is updated every step (warm-up linear in fractional epochs), equal to the
  per-epoch schedule at epoch ends.
- One process, one device: no shuffled BatchNorm across GPUs (MoCo's trick against BN leakage);
  the key encoder runs in train mode on the whole key batch.
- ``batch_size=256`` is MoCo v2's default; METHODS.md does not state the reference's.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ddlib import artifacts, models
from ddlib.kernels.augment import AUGMENTS
from ddlib.kernels.knn import BACKENDS
from ddlib.losses import info_nce
from ddlib.train import Batch, Hook, LoopState, LrPerStep, cosine_factor, image_batches, loop
from ddlib.utils import (ParamError, check_choice, check_float, check_int, config_dict, get_device,
                         seed_everything)

__all__ = ["PatternConfig", "EncoderConfig", "BACKBONES", "lr_factor", "clu_ramp", "Encoder", "build_encoder",
           "KeyQueue", "ClusteringTerm", "MoCoStep", "fit_encoder", "encoder_key", "train_encoder"]

BACKBONES = ("resnet18", "convnet")


# ----------------------------------------------------------------------------- configs
@dataclass(frozen=True)
class PatternConfig:
    """The kNN + Infomap recipe of :mod:`ddlib.bps.patterns`; every default is the reference's (METHODS.md §1)."""

    k: int = 30                 # neighbours per sample (query excluded)
    min_sim: float = 0.5        # keep links with cosine >= min_sim
    trials: int = 3             # Infomap --num-trials
    two_level: bool = True      # Infomap --two-level (a flat partition into patterns)
    directed: bool = True       # Infomap --directed (the kNN relation is not symmetric)
    seed: int = 123             # Infomap --seed (Infomap's own default)
    knn_backend: str = "auto"   # see ddlib.kernels.knn
    block_size: int = 4096      # kNN block size (memory bound)

    def __post_init__(self) -> None:
        check_int("k", self.k, 1)
        check_float("min_sim", self.min_sim, -1.0, 1.0)
        check_int("trials", self.trials, 1, 1000)
        for name in ("two_level", "directed"):
            if not isinstance(getattr(self, name), bool):
                raise ParamError(f"{name}={getattr(self, name)!r} must be True or False")
        check_int("seed", self.seed, 0, 2**31 - 1)
        check_choice("knn_backend", self.knn_backend, BACKENDS)
        check_int("block_size", self.block_size, 1)

    def infomap_flags(self) -> str:
        """The Infomap option string for this config."""
        flags = ["--two-level"] if self.two_level else []
        flags += ["--directed"] if self.directed else []
        flags += ["--silent", f"--num-trials {self.trials}", f"--seed {self.seed}"]
        return " ".join(flags)


@dataclass(frozen=True)
class EncoderConfig:
    """Every Stage-1 hyperparameter; the defaults are the reference's (METHODS.md §1)."""

    backbone: str = "resnet18"          # "resnet18" (CIFAR) | "convnet" (DD-standard)
    convnet_width: int = 128            # ConvNet only
    convnet_depth: int = 3              # ConvNet only
    proj_hidden: int = 512              # projector D -> 512 -> ReLU -> 128
    proj_dim: int = 128
    momentum: float = 0.999             # key-encoder EMA
    queue_size: int = 65536             # MoCo queue (131,072 for ImageNet)
    temperature: float = 0.5            # tau_1
    ce_weight: float = 0.5
    con_weight: float = 1.0
    clu_weight: float = 1.0
    clu_warmup_epochs: int = 5          # r(e) = 0 for these epochs
    clu_ramp_epochs: int | None = None  # then linear to 1 over this many epochs (None: by the last epoch)
    augment: str = "moco_v2"            # the views (a preset of ddlib.kernels.augment.AUGMENTS)
    epochs: int = 30
    batch_size: int = 256
    lr: float = 0.02                    # 0.04 for ImageNet
    sgd_momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: int = 5              # linear lr warm-up
    final_lr_fraction: float = 0.01     # cosine ends at 0.01 * lr
    pattern: PatternConfig = field(default_factory=PatternConfig)  # partitions of the queued keys
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("backbone", self.backbone, BACKBONES)
        check_int("convnet_width", self.convnet_width, 1, 4096)
        check_int("convnet_depth", self.convnet_depth, 1, 8)
        check_int("proj_hidden", self.proj_hidden, 1, 65536)
        check_int("proj_dim", self.proj_dim, 1, 65536)
        check_float("momentum", self.momentum, 0.0, 1.0)
        check_int("queue_size", self.queue_size, 1, 10_000_000)
        check_float("temperature", self.temperature, 1e-4, 100.0)
        for name in ("ce_weight", "con_weight", "clu_weight"):
            check_float(name, getattr(self, name), 0.0, 1000.0)
        check_int("clu_warmup_epochs", self.clu_warmup_epochs, 0, 100_000)
        if self.clu_ramp_epochs is not None:
            check_int("clu_ramp_epochs", self.clu_ramp_epochs, 1, 100_000)
        check_choice("augment", self.augment, list(AUGMENTS))
        check_int("epochs", self.epochs, 1, 100_000)
        check_int("batch_size", self.batch_size, 2, 1_000_000)
        check_float("lr", self.lr, 1e-12, 100.0)
        check_float("sgd_momentum", self.sgd_momentum, 0.0, 0.999999)
        check_float("weight_decay", self.weight_decay, 0.0, 10.0)
        check_int("warmup_epochs", self.warmup_epochs, 0, 100_000)
        check_float("final_lr_fraction", self.final_lr_fraction, 0.0, 1.0)
        if not isinstance(self.pattern, PatternConfig):
            raise ParamError(f"pattern must be a PatternConfig, got {type(self.pattern).__name__}")
        check_int("seed", self.seed, 0, 2**32 - 1)


# ----------------------------------------------------------------------------- schedules
def lr_factor(cfg: EncoderConfig, epoch_float: float) -> float:
    """Multiplier of ``cfg.lr`` at a fractional epoch: linear warm-up ``min(e / w, 1)``, then cosine to
    ``final_lr_fraction`` (the warm-up differs from :func:`ddlib.train.lr_factor`'s by its 1e-8 offset)."""
    w = cfg.warmup_epochs
    if w > 0 and epoch_float < w:
        return min(epoch_float / w, 1.0)
    span = max(cfg.epochs - w, 1e-8)
    t = min(max((epoch_float - w) / span, 0.0), 1.0)
    return cosine_factor(t, cfg.final_lr_fraction)


def clu_ramp(cfg: EncoderConfig, epoch: int) -> float:
    """r(e): 0 for ``clu_warmup_epochs`` epochs, then linear up to 1 (epochs count from 0)."""
    w = cfg.clu_warmup_epochs
    if epoch < w:
        return 0.0
    span = cfg.clu_ramp_epochs if cfg.clu_ramp_epochs is not None else max(cfg.epochs - w, 1)
    return min(1.0, (epoch - w + 1) / span)


# ----------------------------------------------------------------------------- the model
class Encoder(nn.Module):
    """Backbone (``.backbone``: ``.features``, ``.head``, ``.feature_dim``) + projector; forward = logits."""

    def __init__(self, cfg: EncoderConfig, num_classes: int, in_channels: int, image_size: int,
                 mean=None, std=None) -> None:  # noqa: ANN001
        super().__init__()
        kw = {"width": cfg.convnet_width, "depth": cfg.convnet_depth} if cfg.backbone == "convnet" else {}
        self.backbone = models.create(cfg.backbone, num_classes, in_channels=in_channels, image_size=image_size,
                                      mean=mean, std=std, **kw)
        self.feature_dim = int(self.backbone.feature_dim)
        self.image_size = image_size
        self.projector = nn.Sequential(nn.Linear(self.feature_dim, cfg.proj_hidden), nn.ReLU(inplace=True),
                                       nn.Linear(cfg.proj_hidden, cfg.proj_dim))

    def features(self, x: Tensor) -> Tensor:
        """The backbone feature (N, D) of images in [0, 1]."""
        return self.backbone.features(x)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(L2-normalised projection (N, proj_dim), backbone feature (N, D))."""
        h = self.backbone.features(x)
        return F.normalize(self.projector(h), dim=1), h

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone.head(self.backbone.features(x))


def build_encoder(cfg: EncoderConfig, num_classes: int, in_channels: int, image_size: int,
                  mean=None, std=None) -> Encoder:  # noqa: ANN001
    """A freshly initialised :class:`Encoder` for data of this shape."""
    return Encoder(cfg, num_classes, in_channels, image_size, mean, std)


def _build_for(ds, cfg: EncoderConfig) -> Encoder:  # noqa: ANN001
    c, h, _ = ds.image_shape
    return build_encoder(cfg, ds.num_classes, c, h, mean=ds.mean.tolist(), std=ds.std.tolist())


# ----------------------------------------------------------------------------- the queue
class KeyQueue:
    """MoCo's queue of L2-normalised keys with their labels and pattern ids (ring buffer).

    ``pattern`` (-1: none) and ``pattern_class`` (the class of each pattern id) are written by a
    :class:`ClusteringTerm` (BPS's refresh and assignment); plain MoCo leaves them empty.
    """

    def __init__(self, size: int, dim: int, device: torch.device, generator: torch.Generator | None = None) -> None:
        self.keys = F.normalize(torch.randn(size, dim, generator=generator), dim=1).to(device)  # MoCo's random start
        self.labels = torch.full((size,), -1, dtype=torch.long, device=device)  # -1: never filled
        self.pattern = torch.full((size,), -1, dtype=torch.long, device=device)
        self.pattern_class = torch.zeros(0, dtype=torch.long, device=device)
        self.ptr = 0
        self.wraps = 0

    def __len__(self) -> int:
        return len(self.keys)

    @torch.no_grad()
    def enqueue(self, k: Tensor, y: Tensor, pattern: Tensor | None = None) -> None:
        """Write keys k (B, D) with labels y over the oldest entries (wrapping around)."""
        b = len(k)
        if b > len(self):  # keep only the newest
            k, y = k[-len(self):], y[-len(self):]
            pattern = None if pattern is None else pattern[-len(self):]
            b = len(self)
        pos = (self.ptr + torch.arange(b, device=self.keys.device)) % len(self)
        self.keys[pos] = k
        self.labels[pos] = y
        self.pattern[pos] = -1 if pattern is None else pattern
        if self.ptr + b >= len(self):
            self.wraps += 1
        self.ptr = (self.ptr + b) % len(self)


class ClusteringTerm(Protocol):
    """The clustering term L_clu and the pattern bookkeeping it needs (BPS plugs one in)."""

    def refresh(self, queue: KeyQueue, cfg: PatternConfig) -> dict[int, int]:
        """Re-partition the queued keys (epoch start, when the term is on); {class: number of patterns}."""

    def assign(self, queue: KeyQueue, k: Tensor, y: Tensor) -> Tensor:
        """Pattern ids (-1: none) of new keys k of classes y, before they are enqueued."""

    def loss(self, q: Tensor, y: Tensor, queue: KeyQueue) -> Tensor:
        """The term's loss for queries q of classes y against the queue."""


@torch.no_grad()
def _momentum_update(key_model: nn.Module, model: nn.Module, m: float) -> None:
    for pk, pq in zip(key_model.parameters(), model.parameters()):
        pk.mul_(m).add_(pq.detach(), alpha=1 - m)


class MoCoStep(Hook):
    """MoCo v2 (+ CE + the clustering term) on :func:`ddlib.train.loop`: call it as the step, pass it as a hook.

    Step: query view through the model, momentum update of the key model, key view through it, the
    weighted loss. Hook: at epoch start the ramp r(e) and (when the term is on) the partition refresh;
    after each optimiser step the keys are enqueued (with their patterns); at epoch end the history
    (``loss``, ``ce``, ``con``, ``clu`` as means over steps, ``r``, ``lr``, ``patterns``,
    ``epoch_seconds``) in :attr:`history`.
    """

    def __init__(self, model: Encoder, key_model: Encoder, queue: KeyQueue, cfg: EncoderConfig,
                 clustering: ClusteringTerm | None) -> None:
        self.key_model, self.queue, self.cfg, self.clustering = key_model, queue, cfg, clustering
        self.history: dict = {k: [] for k in ("loss", "ce", "con", "clu", "r", "lr", "patterns", "epoch_seconds")}
        self.r, self.use_clu = 0.0, False

    def epoch_start(self, state: LoopState) -> None:
        self.t0 = time.perf_counter()
        self.r = clu_ramp(self.cfg, state.epoch)
        self.use_clu = self.r > 0 and self.cfg.clu_weight > 0
        found = self.clustering.refresh(self.queue, self.cfg.pattern) if self.use_clu else {}
        self.history["patterns"].append(found)
        self.sums = {"loss": 0.0, "ce": 0.0, "con": 0.0, "clu": 0.0}

    def __call__(self, model: nn.Module, batch: Batch) -> tuple[Tensor, Any]:
        cfg, queue = self.cfg, self.queue
        (xq, xk), yb = batch.x, batch.y
        q, h = model.project(xq)
        with torch.no_grad():
            _momentum_update(self.key_model, model, cfg.momentum)
            k, _ = self.key_model.project(xk)
        zero = q.sum() * 0.0
        ce = F.cross_entropy(model.backbone.head(h), yb) if cfg.ce_weight > 0 else zero
        con = info_nce(q, k, queue.keys, cfg.temperature) if cfg.con_weight > 0 else zero
        clu = self.clustering.loss(q, yb, queue) if self.use_clu else zero
        loss = cfg.ce_weight * ce + cfg.con_weight * con + self.r * cfg.clu_weight * clu
        return loss, (k, yb, {"loss": loss, "ce": ce, "con": con, "clu": clu})

    def step_end(self, state: LoopState, batch: Batch, loss: Tensor, out: Any) -> None:
        k, yb, parts = out
        self.queue.enqueue(k, yb, self.clustering.assign(self.queue, k, yb) if self.use_clu else None)
        for name, v in parts.items():
            self.sums[name] += float(v.detach())

    def epoch_end(self, state: LoopState) -> None:
        for name, v in self.sums.items():
            self.history[name].append(v / max(state.steps_per_epoch, 1))
        self.history["r"].append(self.r)
        self.history["lr"].append(self.cfg.lr * lr_factor(self.cfg, state.epoch + 1))
        self.history["epoch_seconds"].append(time.perf_counter() - self.t0)


def _check_clustering(cfg: EncoderConfig, clustering: ClusteringTerm | None) -> None:
    if clustering is None and cfg.clu_weight > 0 and any(clu_ramp(cfg, e) > 0 for e in range(cfg.epochs)):
        raise ParamError(f"clu_weight={cfg.clu_weight!r} needs BPS's clustering term: train with "
                         "ddlib.bps.encoder.fit_encoder/train_encoder, or set clu_weight=0 (plain MoCo v2)")


def fit_encoder(model: Encoder, x: Tensor, y: Tensor, cfg: EncoderConfig, device: str | torch.device | None = None,
                progress: bool = True, clustering: ClusteringTerm | None = None) -> dict:
    """Train ``model`` in place on images x (uint8 or [0, 1]) with labels y; return the history.

    ``clustering``: the term L_clu plugs in (BPS: ``ddlib.bps.encoder.PATTERN_CLUSTERING``); required
    when ``cfg.clu_weight > 0`` and the ramp r(e) is positive in some epoch.
    """
    if len(x) != len(y) or len(x) < 2:
        raise ParamError("x and y must hold the same number (>= 2) of images")
    _check_clustering(cfg, clustering)
    gen = seed_everything(cfg.seed)
    dev = get_device(device)
    model.to(dev).train()
    key_model = copy.deepcopy(model)
    for p in key_model.parameters():
        p.requires_grad_(False)
    queue = KeyQueue(cfg.queue_size, cfg.proj_dim, dev, gen)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.sgd_momentum, weight_decay=cfg.weight_decay)
    bs = min(cfg.batch_size, len(x))
    source = image_batches(x, y.long(), bs, dev, augment=cfg.augment, views=2, drop_last=True)  # MoCo drops the last partial batch
    moco = MoCoStep(model, key_model, queue, cfg, clustering)
    lr = LrPerStep(lambda epoch, step, steps: cfg.lr * lr_factor(cfg, epoch + (step + 1) / steps))
    run = loop(model, opt, source, moco, cfg.epochs, gen, hooks=[lr, moco], progress=progress, desc="stage 1",
               step_bar=True)
    model.eval()
    return {**moco.history, "seconds": run["seconds"], "queue_wraps": queue.wraps}


def encoder_key(ds, cfg: EncoderConfig) -> str:  # noqa: ANN001
    """The artifact key of the encoder trained on ``ds`` with ``cfg`` (stage name ``bps-encoder``: the
    encoder was BPS's first, and the name keeps existing caches valid)."""
    return artifacts.make_key("bps-encoder", ds.key(), cfg)


def train_encoder(ds, cfg: EncoderConfig | None = None, device: str | torch.device | None = None,
                  progress: bool = True, clustering: ClusteringTerm | None = None) -> tuple[Encoder, dict]:
    """Train on ``ds.train_x/train_y``: the trained encoder (eval mode, on CPU) and its history.

    Cached as an artifact (state_dict + history) keyed by the dataset and the config: a second call
    with the same inputs loads it instead of training. ``clustering`` as in :func:`fit_encoder`.
    """
    cfg = cfg or EncoderConfig()
    if not isinstance(cfg, EncoderConfig):
        raise ParamError(f"cfg must be an EncoderConfig, got {type(cfg).__name__}")
    _check_clustering(cfg, clustering)
    key = encoder_key(ds, cfg)

    def compute() -> dict:
        seed_everything(cfg.seed)  # the initial weights follow cfg.seed, not the caller's RNG state
        model = _build_for(ds, cfg)
        hist = fit_encoder(model, ds.train_x, ds.train_y, cfg, device=device, progress=progress,
                           clustering=clustering)
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "history": hist,
                "config": config_dict(cfg)}

    record = artifacts.cached(key, compute, meta={"stage": "bps-encoder", "dataset": ds.spec})
    model = _build_for(ds, cfg)
    model.load_state_dict(record["state_dict"])
    model.eval()
    return model, record["history"]

