"""Stage 1's configs and schedules: :class:`EncoderConfig` (every hyperparameter of the encoder), the
:class:`PatternConfig` of its partitions, the learning-rate and clustering-ramp schedules, and the views'
augmentation (chapter 1 states them; :mod:`ddlib.encoders` says what the encoder does).

:class:`PatternConfig` is defined here rather than in :mod:`ddlib.bps.patterns` (which re-exports it) because
:class:`EncoderConfig` holds one as a field and the encoder's cache key hashes every field: a config must be
buildable, and an SFM encoder keyed, without importing ``ddlib.bps``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ddlib import models
from ddlib.kernels.augment import AUGMENTS, AugmentConfig
from ddlib.kernels.knn import KNN_BACKENDS
from ddlib.losses import CLU_ASSIGN
from ddlib.utils import ParamError, check_choice, check_float, check_int

__all__ = ["PatternConfig", "EncoderConfig", "CLU_REFRESH", "clu_ramp", "views_augment"]

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
        check_choice("knn_backend", self.knn_backend, KNN_BACKENDS)
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
def clu_ramp(cfg: EncoderConfig, epoch: int) -> float:
    """r(e): 0 for ``clu_warmup_epochs`` epochs, then linear up to 1 (epochs count from 0)."""
    w = cfg.clu_warmup_epochs
    if epoch < w:
        return 0.0
    span = cfg.clu_ramp_epochs if cfg.clu_ramp_epochs is not None else max(cfg.epochs - w, 1)
    return min(1.0, (epoch - w + 1) / span)


def views_augment(cfg: EncoderConfig, image_size: int) -> AugmentConfig:
    """The views' augmentation for images of side ``image_size``: ``cfg.augment``'s preset, its blur
    sigma range scaled by ``image_size / 224`` when ``cfg.blur_relative`` (the reference's 0.1–2 px
    are for the 224-px images it augments; ddlib augments at the data's own size, then resizes)."""
    aug = AUGMENTS[cfg.augment]
    if cfg.blur_relative and aug.blur_p > 0 and image_size != 224:
        aug = dataclasses.replace(aug, blur_sigma=(aug.blur_sigma[0] * image_size / 224,
                                                   aug.blur_sigma[1] * image_size / 224))
    return aug
