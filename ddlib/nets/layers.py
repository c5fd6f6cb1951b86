"""What every network of :mod:`ddlib.nets` shares: normalisation inside the model, resizing, the
classifier's shape, and the frozen feature extractor that SFM and CI read (chapters 3 and 4).

Every network takes float images in [0, 1] (uint8 images are scaled) and normalises them itself (a
:class:`Normalize` first layer holding the mean/std as buffers), so augmentations and sigmoid-decoded
synthetic images plug straight in. Every classifier has ``.features(x) -> (N, D)``, ``.head`` (an
``nn.Linear`` D -> C), ``.feature_dim``, and ``forward(x) = head(features(x))``.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ddlib.utils import ParamError, check_int, to_unit

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Normalize", "norm_stats", "resize", "Classifier", "Backbone",
           "as_backbone"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    """(x - mean) / std per channel, with mean/std as buffers (saved with the state_dict). A 1-channel
    image in front of a 3-channel model is repeated to 3 channels first (gray data on an RGB network)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if not x.is_floating_point():
            x = to_unit(x)
        if x.shape[1] == 1 and self.mean.shape[1] == 3:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def norm_stats(mean: Sequence[float] | float | None, std: Sequence[float] | float | None, channels: int,
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


def resize(x: Tensor, size: int) -> Tensor:
    """Bilinear resize to size x size (antialiased when shrinking); no-op when already that size."""
    if x.shape[-2:] == (size, size):
        return x
    if not x.is_floating_point():
        x = to_unit(x)
    shrink = min(x.shape[-2:]) > size
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)


def _nbytes(t: Tensor) -> int:
    return t.numel() * t.element_size()


class Classifier(nn.Module):
    """The shape every classifier shares: ``forward = head(features(x))``; ``embedding(x)`` a pooled vector
    (``embedding_dim``). :meth:`freeze_trunk` turns it into a trained head on fixed pretrained features.

    A frozen-trunk classifier in eval mode keeps the trunk's features of recent CPU batches by their content, up
    to :data:`MEMO_BYTES` of features (oldest dropped first), so a student evaluated every epoch on the same test
    images runs its trunk on them once (the features are the same bits: the trunk is fixed and in eval mode).
    The cap is in bytes, not batches: a test set read in more batches than a batch count would cycle through
    the memo and never hit it (10,000 Fashion-MNIST test images of a 1,280-wide trunk hold 51 MB)."""

    feature_dim: int
    head: nn.Module
    frozen_trunk: bool = False
    MEMO_BYTES = 512 * 2**20

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
        if self.frozen_trunk and not self.training and not x.requires_grad and x.device.type == "cpu":
            return self.head(self._memo_features(x))
        return self.head(self.features(x))

    def _memo_features(self, x: Tensor) -> Tensor:
        memo: OrderedDict = self.__dict__.setdefault("_trunk_memo", OrderedDict())
        key = (hashlib.sha1(x.detach().contiguous().numpy().tobytes()).hexdigest(), tuple(x.shape), str(x.dtype))
        if key in memo:
            memo.move_to_end(key)
            return memo[key]
        f = memo[key] = self.features(x)
        held = self.__dict__["_trunk_memo_bytes"] = self.__dict__.get("_trunk_memo_bytes", 0) + _nbytes(f)
        while held > self.MEMO_BYTES and len(memo) > 1:
            held -= _nbytes(memo.popitem(last=False)[1])
        self.__dict__["_trunk_memo_bytes"] = held
        return f

    def freeze_trunk(self) -> Classifier:
        """Fix everything but ``head``: no gradients, and eval mode (batch-norm statistics as loaded) however
        :meth:`train` is called. A student so built trains its linear head on the trunk's features."""
        for name, p in self.named_parameters():
            if not name.startswith("head."):
                p.requires_grad_(False)
        self.frozen_trunk = True
        return self.train(self.training)

    def load_state_dict(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - new weights: features anew
        self.__dict__.pop("_trunk_memo", None)
        self.__dict__.pop("_trunk_memo_bytes", None)
        return super().load_state_dict(*args, **kwargs)

    def train(self, mode: bool = True) -> Classifier:
        super().train(mode)
        if self.frozen_trunk:
            for name, child in self.named_children():
                if name != "head":
                    child.train(False)
        return self


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


def as_backbone(module: nn.Module, image_size: int, name: str = "") -> Backbone:
    """Wrap a module that has ``.features`` and ``.feature_dim`` (e.g. an in-house encoder) as a frozen
    :class:`Backbone` (its parameters are frozen in place)."""
    if not hasattr(module, "features") or not hasattr(module, "feature_dim"):
        raise ParamError("as_backbone needs a module with .features(x) and .feature_dim")
    check_int("image_size", image_size, 1, 4096)
    return Backbone(module.features, module, module.feature_dim, image_size, name or type(module).__name__)
