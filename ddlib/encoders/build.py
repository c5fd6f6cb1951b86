"""The encoder's networks (chapter 1's Stage 1, chapter 3's in-house backbone): a trunk from the registry of
:mod:`ddlib.models` with a class head and a projector (:class:`Encoder`), and, on a frozen pretrained trunk, a
trained neck with the same heads (:class:`NeckEncoder`, :class:`FrozenEncoder`)."""
from __future__ import annotations

import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ddlib import models
from ddlib.encoders.config import EncoderConfig
from ddlib.nets.layers import resize
from ddlib.utils import ParamError

__all__ = ["make_trunk", "Encoder", "NeckEncoder", "FrozenEncoder", "build_encoder", "build_for", "frozen_backbone"]


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
            nn.Sequential(nn.Linear(dim, cfg.proj_hidden), nn.ReLU(inplace=True),
                          nn.Linear(cfg.proj_hidden, cfg.proj_dim)))


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


def build_for(ds, cfg: EncoderConfig) -> Encoder:  # noqa: ANN001
    """:func:`build_encoder` for the images of ``ds`` (channels, size, mean/std)."""
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
