"""Frozen feature extractors for distillation and evaluation, by name, shared by chapters 3-5 and the CLI.

The names come from the one registry of networks, :data:`ddlib.models.BACKBONES` (:func:`backbone_names` lists them):

- ``"inhouse"``            a small MoCo v2 encoder trained on ``ds`` itself (:mod:`ddlib.encoders`, shared
                           with BPS Stage 1, with the CE and clustering terms off: :func:`inhouse_encoder`);
                           cached, so CPU-friendly
- ``<name>``               every registry network with pretrained weights, e.g. ``"efficientnet-lite0"``
                           (``-lite1``, ``-lite2``: real offline ImageNet weights, 224, 240, 260 px, 1280-d) or
                           ``"resnet18-imagenet"`` (from a local file offline)
- ``<name>-random``        every registry network with random weights drawn from ``seed``, e.g.
                           ``"convnet-random"`` (the DD ConvNet: a control with no learnt features)
- ``"timm:<name>"``        any timm model (hub weights when online, a local file otherwise)

Every backbone maps images in [0, 1] of any size to features ``(N, D)`` and carries ``.feature_dim``,
``.image_size`` and ``.ddlib_key`` (a stable id used in cache keys: see :func:`backbone_key`). A chapter or a
command builds one from its synthesis preset with :func:`from_preset`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from ddlib import artifacts, models
from ddlib.features import module_key
from ddlib.nets.layers import as_backbone
from ddlib.utils import ParamError, check_int

__all__ = ["INHOUSE", "RANDOM", "INHOUSE_EPOCHS", "INHOUSE_DEFAULTS", "backbone_names", "check_name", "backbone_key",
           "set_image_size", "inhouse_encoder", "random_backbone", "get_backbone", "preset_options", "from_preset"]

INHOUSE = "inhouse"
#: the suffix that names a registry network with random weights (a control)
RANDOM = "-random"
#: The in-house encoder's defaults: a CPU-sized MoCo v2 (DD ConvNet of width 64, a 4,096-key queue, 20 epochs,
#: plain InfoNCE at weight 1 as MoCo v2) rather than BPS's ResNet-18 with a 65,536-key queue and 30 epochs. Any of
#: them, and every other ``EncoderConfig`` field, can be overridden through :func:`inhouse_encoder`'s options.
INHOUSE_EPOCHS = 20
INHOUSE_DEFAULTS: dict[str, Any] = {"backbone": "convnet", "convnet_width": 64, "queue_size": 4096, "con_weight": 1.0}


def backbone_names() -> list[str]:
    """Every name :func:`get_backbone` accepts (read from the registry now): ``inhouse``, the pretrained
    networks, each network's ``-random``, ``timm:<name>``."""
    return [INHOUSE, *models.pretrained_names(), *(n + RANDOM for n in models.BACKBONES), "timm:<name>"]


def _split(name: str) -> tuple[str, bool]:
    """(the registry name, random?) of a backbone name."""
    random = isinstance(name, str) and name.endswith(RANDOM) and name not in models.BACKBONES
    return (name[:-len(RANDOM)] if random else name), random


def check_name(name: str) -> str:
    """Return ``name`` if :func:`get_backbone` accepts it, else raise :class:`ParamError` listing the names."""
    base, random = _split(name)
    ok = name == INHOUSE or (isinstance(base, str) and base.startswith("timm:") and len(base) > 5)
    if not ok and base in models.BACKBONES:
        ok = random or models.BACKBONES[base].weights is not None
    if not ok:
        raise ParamError(f"backbone={name!r} is not known; choose one of {backbone_names()}")
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

    Trained through :func:`ddlib.encoders.train_moco` (which caches the weights), so a second call
    with the same dataset and settings loads it. ``encoder_options`` go to ``EncoderConfig`` (e.g. the
    architecture, width, queue size). The backbone sees images at the dataset's own resolution.
    """
    from ddlib.encoders import EncoderConfig, train_moco

    if ds is None:
        raise ParamError("backbone='inhouse' is trained on a dataset: pass ds (the dataset it learns from)")
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
    model, _history = train_moco(train_only, cfg, progress=progress)
    bb = as_backbone(model, image_size=int(ds.image_shape[-1]))
    key = artifacts.make_key("inhouse-backbone", train_only.key(), cfg)
    return _tag(bb, key, INHOUSE)


def random_backbone(name: str, ds: Any = None, seed: int = 0) -> nn.Module:
    """The registry network ``name`` with random weights drawn from ``seed`` (the global RNG is left as it
    was), at the data's channels and size (a network with an input size of its own: that size)."""
    seed = check_int("seed", seed, 0, 2**32 - 1)
    spec = models.get(name)
    channels = int(ds.image_shape[0]) if ds is not None else 3
    size = spec.input_size or (int(ds.image_shape[-1]) if ds is not None else 32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        bb = models.backbone(name, pretrained=False, image_size=size, in_channels=channels)
    return _tag(bb, f"{name}{RANDOM}-seed{seed}-{channels}x{size}", name + RANDOM)


def get_backbone(name: str, ds: Any = None, image_size: int | None = None, **kw: Any) -> nn.Module:
    """The frozen backbone ``name`` (see the module docstring); ``ds`` is needed by ``"inhouse"`` (and gives a
    random network the data's channels and size).

    ``image_size`` overrides the resolution the backbone resizes its inputs to (CPU budgets); ``kw`` go to
    the builder: ``epochs``/``seed``/``progress``/encoder options for ``inhouse``, ``seed`` for a ``-random``
    one, ``weights`` (a local file) for a pretrained one.
    """
    check_name(name)
    base, random = _split(name)
    if name == INHOUSE:
        return set_image_size(inhouse_encoder(ds, **kw), image_size)
    takes = ("seed",) if random else ("weights",)
    bad = sorted(set(kw) - set(takes))
    if bad:
        raise ParamError(f"backbone={name!r} takes no option {bad}; it takes {list(takes)} and image_size")
    if random:
        bb = random_backbone(base, ds, **kw)
    else:
        weights = kw.get("weights")
        key = name if name.startswith("timm:") and weights is None else models.weights_key(name, weights)
        bb = _tag(models.backbone(name, weights=weights), key, name)
        if ds is not None and int(ds.image_shape[0]) == 1:  # the network repeats gray images to RGB
            bb.ddlib_key = f"{key}+gray"
    bb.eval()
    for p in bb.parameters():
        p.requires_grad_(False)
    return set_image_size(bb, image_size)


def preset_options(name: str, preset: Any, progress: bool = True, image_size: int | None = None,
                   seed: int | None = None) -> dict[str, Any]:
    """:func:`get_backbone`'s options for ``name`` from a synthesis preset (``ddlib.presets.sfm``/``ci``): the
    in-house encoder's epochs and width, the preset's input size for pretrained backbones; ``image_size`` (an
    explicit size for any backbone) and ``seed`` (a random backbone's) when given."""
    kw: dict[str, Any] = {}
    _, random = _split(name)
    if name == INHOUSE:
        kw["progress"] = progress
        kw.update({k: v for k, v in (("epochs", preset.encoder_epochs), ("convnet_width", preset.encoder_width))
                   if v is not None})
    if image_size is not None:
        kw["image_size"] = image_size
    elif name != INHOUSE and not random and getattr(preset, "image_size", None) is not None:
        kw["image_size"] = preset.image_size
    if seed is not None and random:
        kw["seed"] = seed
    return kw


def from_preset(name: str, ds: Any, preset: Any, progress: bool = True, image_size: int | None = None,
                seed: int | None = None) -> nn.Module:
    """The backbone ``name`` for ``ds`` as a synthesis preset sets it (:func:`preset_options`): what chapters 3
    and 4 and ``python -m ddlib distill``/``evaluate-synthetic`` build."""
    return get_backbone(name, ds, **preset_options(name, preset, progress, image_size, seed))
