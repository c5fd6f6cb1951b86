"""The in-house MoCo v2 encoder that both methods use: BPS Stage 1 and SFM's ``"inhouse"`` backbone.

The encoder is a backbone (any network of :data:`ddlib.models.BACKBONES`: the CIFAR ResNet-18 by default, the
DD ConvNet, the reference's ImageNet ResNet-18, ...) with two heads on its pooled feature: the class head
Linear(D→C) and a projector D→512→ReLU→128. It is trained with

    L = ce_weight·CE + con_weight·InfoNCE + r(e)·clu_weight·L_clu      (BPS: 0.5, 0.5, 1.0)

- InfoNCE (:func:`ddlib.losses.info_nce`): MoCo v2. Two MoCo-v2 views of each image; the query view
  through the encoder, the key view through a momentum copy (m = 0.999); logits [q·k⁺, q·queue] / τ1
  (τ1 = 0.5), target 0; a queue of 65,536 keys (with their labels).
- L_clu (:func:`ddlib.losses.clustering_loss`), BPS's clustering term: per class, a snapshot of the queued
  keys is partitioned into patterns (taken at every queue wrap, as the reference); each query goes to the
  nearest pattern centroid of any class (the reference; ``clu_assign="own_class"``: of its own).
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

- The partition is of a snapshot of the queued keys, taken each time the queue wraps (the reference's
  ``_info_cluster``, ≈ once an epoch; ``clu_refresh="epoch"``: at every epoch start instead) and when the
  term first turns on; keys enqueued after a snapshot are not assigned to its patterns. Each query is
  assigned to the nearest pattern centroid over the patterns of *every* class (``clu_assign="all"``, the
  reference; ``"own_class"`` restricts it to the query's class).
- The ramp reaches 1 at the last epoch (``clu_ramp_epochs=None``); give a number to reach 1 sooner.
- The learning rate is updated every step (warm-up linear in fractional epochs), equal to the
  per-epoch schedule at epoch ends.
- In one process the key encoder runs in train mode on the whole key batch. Under torchrun
  (:mod:`ddlib.distributed`) the query encoder trains in DistributedDataParallel on each rank's share of
  the global batch (``batch_size`` is the global batch, as MoCo's), the key encoder runs on a shuffled
  share of the whole key batch (MoCo's shuffled BatchNorm), every rank's keys are gathered so every rank
  enqueues the global batch and holds the same queue, and the re-partition runs on rank 0, its partition
  broadcast. Without batch norm (the DD ConvNet) the run is the one-process run up to float rounding.
- ``batch_size=256`` is MoCo v2's default; METHODS.md does not state the reference's.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ddlib import artifacts, distributed, models
from ddlib.kernels.augment import AUGMENTS, AugmentConfig
from ddlib.kernels.knn import BACKENDS
from ddlib.losses import CLU_ASSIGN, info_nce
from ddlib.nets.layers import resize
from ddlib.train import Accel, Batch, Batches, Hook, LoopState, LrPerStep, cosine_factor, image_batches, loop
from ddlib.utils import (ParamError, check_choice, check_float, check_int, config_dict, get_device,
                         seed_everything)

__all__ = ["PatternConfig", "EncoderConfig", "CLU_REFRESH", "lr_factor", "clu_ramp", "views_augment",
           "make_trunk", "Encoder", "NeckEncoder", "FrozenEncoder", "build_encoder", "frozen_backbone", "KeyQueue",
           "ClusteringTerm", "MoCoStep", "bank_pairs", "fit_encoder", "fit_neck", "encoder_key", "view_banks",
           "train_encoder", "train_embeddings"]

#: When the clustering term re-partitions the queued keys: "wrap" (every time the queue wraps, as the
#: reference's ``_info_cluster``) or "epoch" (at the start of every epoch; cheaper with a small queue).
CLU_REFRESH = ("wrap", "epoch")


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
    block_size: int = 4096      # kNN: at most this many rows per block (see ddlib.kernels.knn.row_block)

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
    """Every Stage-1 hyperparameter. The defaults are the reference's (METHODS.md §1) except the backbone's.

    The reference fine-tunes torchvision's ImageNet ResNet-18 (7x7 stride-2 stem, max-pool) from its ImageNet
    weights on images upsampled to 224 px (CIFAR, Tiny-ImageNet; from scratch on ImageNet). The default here is
    the CIFAR ResNet-18 (3x3 stride-1 stem, no max-pool; :class:`ddlib.nets.cifar.ResNet18`) from random
    weights at the data's own size (``input_size=None``): it differs in the stem, the weights and the input
    size. The reference's setting is ``backbone="resnet18-imagenet", weights="imagenet", input_size=224``
    (the weights from a local file when offline: :data:`ddlib.models.BACKBONES`).
    """

    backbone: str = "resnet18"          # a name of ddlib.models.BACKBONES (select --help) | "timm:<name>"
    weights: str | None = None          # None: random init | "imagenet": the spec's pretrained weights | a file
    input_size: int | None = None       # resize the (augmented) images to this size before the backbone (ref.: 224)
    freeze_backbone: bool = False       # a frozen pretrained backbone; train a neck + the heads on cached features
    neck_dim: int = 512                 # frozen backbone only: Linear(D -> neck_dim) + BN + ReLU, the embedding
    frozen_views: int = 2               # frozen backbone only: augmented views of each image, embedded once
    blur_relative: bool = True          # the views' blur sigma range is for 224-px images: scale it by size / 224
    convnet_width: int = 128            # ConvNet only
    convnet_depth: int = 3              # ConvNet only
    proj_hidden: int = 512              # projector D -> 512 -> ReLU -> 128
    proj_dim: int = 128
    momentum: float = 0.999             # key-encoder EMA
    queue_size: int = 65536             # MoCo queue (131,072 for ImageNet)
    temperature: float = 0.5            # tau_1
    ce_weight: float = 0.5              # the reference: alpha·CE + (1 - alpha)·InfoNCE, alpha = 0.5
    con_weight: float = 0.5
    clu_weight: float = 1.0
    clu_assign: str = "all"             # "all": nearest centroid of any class (reference) | "own_class"
    clu_refresh: str = "wrap"           # re-partition when the queue wraps (reference) | "epoch": at epoch starts
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
        spec = models.get(self.backbone)  # a ParamError naming "backbone" and every name
        if self.weights is not None:
            if not isinstance(self.weights, str) or not self.weights:
                raise ParamError(f"weights={self.weights!r} must be None, 'imagenet' or the path of a weights file")
            if self.weights == "imagenet" and spec.weights is None:
                raise ParamError(f"weights='imagenet' is not available for backbone={self.backbone!r} (trained from "
                                 f"scratch only); use one of {models.pretrained_names()} ('resnet18-imagenet' is the "
                                 "reference's) or timm:<name>, or give a weights file")
        if self.input_size is not None:
            check_int("input_size", self.input_size, 8, 4096)
        if not isinstance(self.freeze_backbone, bool):
            raise ParamError(f"freeze_backbone={self.freeze_backbone!r} must be True or False")
        if self.freeze_backbone and self.weights is None:
            raise ParamError("freeze_backbone=True needs pretrained weights (weights='imagenet' or a file): "
                             "a frozen random backbone learns nothing")
        check_int("neck_dim", self.neck_dim, 1, 65536)
        check_int("frozen_views", self.frozen_views, 2, 1000)
        if not isinstance(self.blur_relative, bool):
            raise ParamError(f"blur_relative={self.blur_relative!r} must be True or False")
        check_choice("clu_assign", self.clu_assign, CLU_ASSIGN)
        check_choice("clu_refresh", self.clu_refresh, CLU_REFRESH)
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
def views_augment(cfg: EncoderConfig, image_size: int) -> AugmentConfig:
    """The views' augmentation for images of side ``image_size``: ``cfg.augment``'s preset, its blur
    sigma range scaled by ``image_size / 224`` when ``cfg.blur_relative`` (the reference's 0.1–2 px
    are for the 224-px images it augments; ddlib augments at the data's own size, then resizes)."""
    aug = AUGMENTS[cfg.augment]
    if cfg.blur_relative and aug.blur_p > 0 and image_size != 224:
        aug = dataclasses.replace(aug, blur_sigma=(aug.blur_sigma[0] * image_size / 224,
                                                   aug.blur_sigma[1] * image_size / 224))
    return aug


def make_trunk(cfg: EncoderConfig, num_classes: int, in_channels: int, image_size: int, mean=None,
               std=None) -> nn.Module:  # noqa: ANN001
    """The backbone a :class:`Encoder` is built on: the :func:`ddlib.models.create` classifier of
    ``cfg.backbone`` whose own head is replaced by ``nn.Identity`` (the encoder's heads read its pooled
    :meth:`embedding`). A network with pretrained weights is built for RGB (gray images are repeated to 3
    channels inside it) and normalises with its own statistics (``mean``/``std`` are ignored for it); with
    ``cfg.weights`` it loads them ("imagenet": the registry's source; else a file). A network trained from
    scratch loads a ``cfg.weights`` file after construction (``strict=False``: a classifier's head may differ).
    The ConvNet takes ``cfg.convnet_width`` and ``cfg.convnet_depth``."""
    spec = models.get(cfg.backbone)
    size = cfg.input_size or image_size
    options = {"width": cfg.convnet_width, "depth": cfg.convnet_depth} if cfg.backbone == "convnet" else {}
    if spec.weights is not None:
        trunk = models.create(cfg.backbone, num_classes, in_channels=3, image_size=size,
                              pretrained=cfg.weights is not None,
                              weights=None if cfg.weights in (None, "imagenet") else cfg.weights,
                              input_size=cfg.input_size, **options)
    else:
        trunk = models.create(cfg.backbone, num_classes, in_channels=in_channels, image_size=size, mean=mean, std=std,
                              **options)
        if cfg.weights is not None:
            if not os.path.isfile(cfg.weights):
                raise ParamError(f"weights={cfg.weights!r} does not exist; give a state_dict file of the backbone")
            trunk.load_state_dict(torch.load(cfg.weights, map_location="cpu", weights_only=True), strict=False)
    trunk.head = nn.Identity()
    return trunk


def _heads(dim: int, num_classes: int, cfg: EncoderConfig) -> tuple[nn.Module, nn.Module]:
    return (nn.Linear(dim, num_classes),
            nn.Sequential(nn.Linear(dim, cfg.proj_hidden), nn.ReLU(inplace=True), nn.Linear(cfg.proj_hidden, cfg.proj_dim)))


class Encoder(nn.Module):
    """An image encoder: the backbone's pooled embedding ``h`` (after an optional resize to
    ``cfg.input_size``) feeds the class head ``classifier`` Linear(D→C) and the ``projector``
    D→``proj_hidden``→ReLU→``proj_dim``, as the reference's ``ModelBase`` (its heads read ResNet-18's
    pooled 512-d feature; a ConvNet's embedding is its last map averaged over space). ``forward`` = logits.
    """

    def __init__(self, cfg: EncoderConfig, num_classes: int, in_channels: int, image_size: int,
                 mean=None, std=None) -> None:  # noqa: ANN001
        super().__init__()
        self.backbone = make_trunk(cfg, num_classes, in_channels, image_size, mean, std)
        self.input_size = cfg.input_size
        self.feature_dim = int(self.backbone.embedding_dim)
        self.image_size = image_size
        self.classifier, self.projector = _heads(self.feature_dim, num_classes, cfg)

    def features(self, x: Tensor) -> Tensor:
        """The pooled backbone feature (N, D) of images in [0, 1] (the Stage-2 embedding before L2)."""
        if self.input_size is not None:
            x = resize(x, self.input_size)
        return self.backbone.embedding(x)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(L2-normalised projection (N, proj_dim), pooled feature (N, D))."""
        h = self.features(x)
        return F.normalize(self.projector(h), dim=1), h

    def forward(self, x: Tensor, project: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Logits; with ``project`` the pair :meth:`project` gives (MoCo's step calls it so, which runs the
        projection through DistributedDataParallel's forward in a data-parallel run)."""
        return self.project(x) if project else self.classifier(self.features(x))


class NeckEncoder(nn.Module):
    """The trainable part of an encoder on a frozen backbone: it reads the backbone's features (not
    images). ``neck`` = Linear(D_in→``neck_dim``) → BatchNorm → ReLU gives the embedding ``h``; the
    heads are :class:`Encoder`'s. A CPU departure from the reference (which fine-tunes the whole
    ImageNet ResNet-18 at 224 px): the pretrained trunk stays fixed, Stage 1 shapes a 512-d embedding
    on top of it with the same losses."""

    def __init__(self, cfg: EncoderConfig, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.neck = nn.Sequential(nn.Linear(in_dim, cfg.neck_dim), nn.BatchNorm1d(cfg.neck_dim), nn.ReLU(inplace=True))
        self.feature_dim = cfg.neck_dim
        self.classifier, self.projector = _heads(cfg.neck_dim, num_classes, cfg)

    def features(self, f: Tensor) -> Tensor:
        return self.neck(f.float())

    def project(self, f: Tensor) -> tuple[Tensor, Tensor]:
        h = self.features(f)
        return F.normalize(self.projector(h), dim=1), h

    def forward(self, f: Tensor, project: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Logits; with ``project`` the pair :meth:`project` gives (as :meth:`Encoder.forward`)."""
        return self.project(f) if project else self.classifier(self.features(f))


class FrozenEncoder(nn.Module):
    """A frozen pretrained backbone followed by a trained :class:`NeckEncoder`: images in, the neck's
    embedding out (``features``), logits (``forward``). ``bank_key`` names the cached clean-view
    features of the training set, so Stage 2 does not run the backbone again."""

    def __init__(self, backbone: nn.Module, head: NeckEncoder) -> None:
        super().__init__()
        self.frozen = backbone
        self.head = head
        self.feature_dim = head.feature_dim
        for p in self.frozen.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> FrozenEncoder:
        super().train(mode)
        self.frozen.eval()
        return self

    def features(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            f = self.frozen(x)
        return self.head.features(f)

    def forward(self, x: Tensor) -> Tensor:
        return self.head.classifier(self.features(x))


def build_encoder(cfg: EncoderConfig, num_classes: int, in_channels: int, image_size: int,
                  mean=None, std=None) -> Encoder:  # noqa: ANN001
    """A freshly initialised :class:`Encoder` for data of this shape."""
    return Encoder(cfg, num_classes, in_channels, image_size, mean, std)


def _build_for(ds, cfg: EncoderConfig) -> Encoder:  # noqa: ANN001
    c, h, _ = ds.image_shape
    return build_encoder(cfg, ds.num_classes, c, h, mean=ds.mean.tolist(), std=ds.std.tolist())


def frozen_backbone(cfg: EncoderConfig, in_channels: int) -> nn.Module:
    """The frozen pretrained backbone of ``cfg`` (features at ``cfg.input_size`` or its native size), tagged
    with a stable ``ddlib_key`` for the feature banks' cache keys (``+gray`` for 1-channel data, which the
    network repeats to RGB)."""
    if models.get(cfg.backbone).weights is None:
        raise ParamError(f"freeze_backbone=True needs a pretrained backbone ({models.pretrained_names()} or "
                         f"timm:<name>), not {cfg.backbone!r}")
    weights = None if cfg.weights == "imagenet" else cfg.weights
    bb = models.backbone(cfg.backbone, pretrained=True, weights=weights, image_size=cfg.input_size, in_channels=3)
    tag = models.weights_key(cfg.backbone, weights)
    tag = tag if cfg.input_size is None else f"{tag}@{cfg.input_size}px"
    bb.ddlib_key = tag + ("+gray" if in_channels == 1 else "")
    return bb


# ----------------------------------------------------------------------------- the queue
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
        self.history["lr"].append(self.cfg.lr * lr_factor(self.cfg, state.epoch + 1))
        self.history["patterns"].append(dict(self.found) if self.use_clu else {})
        self.history["refreshes"].append(self.refreshes)
        self.history["epoch_seconds"].append(time.perf_counter() - self.t0)


def _check_clustering(cfg: EncoderConfig, clustering: ClusteringTerm | None) -> None:
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


def _fit(model: nn.Module, source: Any, n: int, cfg: EncoderConfig, dev: torch.device, gen: torch.Generator,
         clustering: ClusteringTerm | None, progress: bool, accel: Accel | None = None) -> dict:
    distributed.check_split("batch_size", cfg.batch_size)  # under torchrun: the global batch, split over ranks
    key_model = copy.deepcopy(model)
    for p in key_model.parameters():
        p.requires_grad_(False)
    queue = KeyQueue(cfg.queue_size, cfg.proj_dim, dev, gen)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, momentum=cfg.sgd_momentum,
                          weight_decay=cfg.weight_decay)
    moco = MoCoStep(model, key_model, queue, cfg, clustering)
    lr = LrPerStep(lambda epoch, step, steps: cfg.lr * lr_factor(cfg, epoch + (step + 1) / steps))
    # under torchrun every rank trains the query encoder together (the classifier idles when ce_weight = 0)
    par = distributed.data_parallel(model, dev, find_unused_parameters=cfg.ce_weight == 0)
    run = loop(model, opt, source, moco, cfg.epochs, gen, hooks=[lr, moco], progress=progress, desc="stage 1",
               step_bar=True, parallel=par, accel=accel)
    model.eval()
    return {**moco.history, "seconds": run["seconds"], "queue_wraps": queue.wraps}


def fit_encoder(model: Encoder, x: Tensor, y: Tensor, cfg: EncoderConfig, device: str | torch.device | None = None,
                progress: bool = True, clustering: ClusteringTerm | None = None, accel: Accel | None = None) -> dict:
    """Train ``model`` in place on images x (uint8 or [0, 1]) with labels y; return the history.

    ``clustering``: the term L_clu plugs in (BPS: ``ddlib.bps.encoder.PATTERN_CLUSTERING``); required
    when ``cfg.clu_weight > 0`` and the ramp r(e) is positive in some epoch. ``accel``: the loop's
    :class:`~ddlib.train.Accel` (not cached: :func:`train_encoder` trains plain).
    """
    if len(x) != len(y) or len(x) < 2:
        raise ParamError("x and y must hold the same number (>= 2) of images")
    _check_clustering(cfg, clustering)
    gen = seed_everything(cfg.seed)
    dev = get_device(device)
    model.to(dev).train()
    bs = min(cfg.batch_size, len(x))
    source = image_batches(x, y.long(), bs, dev, augment=views_augment(cfg, int(x.shape[-1])), views=2,
                           drop_last=True)  # MoCo drops the last partial batch
    return _fit(model, source, len(x), cfg, dev, gen, clustering, progress, accel)


def fit_neck(model: NeckEncoder, bank: Tensor, y: Tensor, cfg: EncoderConfig, device: str | torch.device | None = None,
             progress: bool = True, clustering: ClusteringTerm | None = None) -> dict:
    """Train a :class:`NeckEncoder` in place on a bank of augmented views' features ``(V, N, D)``."""
    if bank.dim() != 3 or bank.shape[0] < 2 or bank.shape[1] != len(y) or len(y) < 2:
        raise ParamError(f"bank must be (views >= 2, N, D) with N = len(y) >= 2; got {tuple(bank.shape)} for {len(y)}")
    _check_clustering(cfg, clustering)
    gen = seed_everything(cfg.seed)
    dev = get_device(device)
    model.to(dev).train()
    source = bank_pairs(bank, y.long(), min(cfg.batch_size, len(y)), dev)
    return _fit(model, source, len(y), cfg, dev, gen, clustering, progress)


def encoder_key(ds, cfg: EncoderConfig) -> str:  # noqa: ANN001
    """The artifact key of the encoder trained on ``ds`` with ``cfg`` (stage name ``bps-encoder``: the
    encoder was BPS's first, and the name keeps existing caches valid)."""
    return artifacts.make_key("bps-encoder", ds.key(), cfg)


def view_banks(ds, cfg: EncoderConfig, device=None) -> tuple[nn.Module, Tensor]:  # noqa: ANN001
    """A frozen encoder's inputs: its backbone and the cached bank of ``cfg.frozen_views`` augmented views
    of every training image (float16, ``(V, N, D)``; :func:`ddlib.features.view_bank`)."""
    from ddlib.features import view_bank

    bb = frozen_backbone(cfg, int(ds.image_shape[0]))
    bank = view_bank(bb, ds, augment_cfg=views_augment(cfg, int(ds.image_shape[-1])), views=cfg.frozen_views,
                     seed=cfg.seed, half=True, device=device)
    return bb, bank


def train_encoder(ds, cfg: EncoderConfig | None = None, device: str | torch.device | None = None,
                  progress: bool = True, clustering: ClusteringTerm | None = None) -> tuple[nn.Module, dict]:
    """Train on ``ds.train_x/train_y``: the trained encoder (eval mode, on CPU) and its history.

    Cached as an artifact (state_dict + history) keyed by the dataset and the config: a second call
    with the same inputs loads it instead of training. ``clustering`` as in :func:`fit_encoder`. With
    ``cfg.freeze_backbone`` the result is a :class:`FrozenEncoder` whose neck and heads were trained on
    cached features of augmented views (:func:`view_banks`).
    """
    cfg = cfg or EncoderConfig()
    if not isinstance(cfg, EncoderConfig):
        raise ParamError(f"cfg must be an EncoderConfig, got {type(cfg).__name__}")
    _check_clustering(cfg, clustering)
    key = encoder_key(ds, cfg)
    if cfg.freeze_backbone:
        bb, bank = view_banks(ds, cfg, device)

        def compute_neck() -> dict:
            seed_everything(cfg.seed)
            neck = NeckEncoder(cfg, bank.shape[-1], ds.num_classes)
            hist = fit_neck(neck, bank, ds.train_y, cfg, device=device, progress=progress, clustering=clustering)
            return {"state_dict": {k: v.cpu() for k, v in neck.state_dict().items()}, "history": hist,
                    "config": config_dict(cfg), "in_dim": int(bank.shape[-1])}

        record = artifacts.cached(key, compute_neck, meta={"stage": "bps-encoder", "dataset": ds.spec},
                                  collective=True)
        neck = NeckEncoder(cfg, record["in_dim"], ds.num_classes)
        neck.load_state_dict(record["state_dict"])
        return FrozenEncoder(bb, neck).eval(), record["history"]

    def compute() -> dict:
        seed_everything(cfg.seed)  # the initial weights follow cfg.seed, not the caller's RNG state
        model = _build_for(ds, cfg)
        hist = fit_encoder(model, ds.train_x, ds.train_y, cfg, device=device, progress=progress,
                           clustering=clustering)
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "history": hist,
                "config": config_dict(cfg)}

    record = artifacts.cached(key, compute, meta={"stage": "bps-encoder", "dataset": ds.spec}, collective=True)
    model = _build_for(ds, cfg)
    model.load_state_dict(record["state_dict"])
    model.eval()
    return model, record["history"]


def train_embeddings(model: nn.Module, ds, cfg: EncoderConfig, device=None) -> Tensor:  # noqa: ANN001
    """The L2-normalised Stage-2 embeddings ``(N, D)`` of ``ds``'s training images (the test-time view):
    for a frozen encoder, its neck over the cached clean-view features; else the encoder's pooled feature."""
    from ddlib.train import embed

    if isinstance(model, FrozenEncoder):
        from ddlib.features import view_bank

        clean = view_bank(model.frozen, ds, views=1, seed=0, half=True, device=device)[0]
        with torch.no_grad():
            model.head.eval()
            return F.normalize(torch.cat([model.head.features(clean[i:i + 4096]) for i in range(0, len(clean), 4096)]),
                               dim=1)
    return embed(model.features, ds.train_x, device=device, normalize=True, shard=True)
