"""The networks trained from scratch on small images: the DD-standard ConvNet and the CIFAR ResNet-18 (the
teachers, students and Stage-1 trunks of chapters 1, 2 and 5). Declared in :data:`ddlib.models.BACKBONES`."""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ddlib.nets.layers import Classifier, Normalize, norm_stats
from ddlib.utils import ParamError, check_int

__all__ = ["ConvNet", "ResNet18"]


class ConvNet(Classifier):
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
        self.normalize = Normalize(*norm_stats(mean, std, in_channels))
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


class ResNet18(Classifier):
    """The CIFAR ResNet-18 (as in BPS's reference and kuangliu/pytorch-cifar): a 3x3 stride-1 stem
    with no max-pool, four stages of two basic blocks of ``width``, 2·, 4·, 8·``width`` channels (the
    reference's 64, 128, 256, 512), global average pool: an 8·``width``-d feature (512-d)."""

    def __init__(self, num_classes: int, in_channels: int = 3, image_size: int = 32,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None, width: int = 64) -> None:
        super().__init__()
        check_int("width", width, 1, 1024)
        self.normalize = Normalize(*norm_stats(mean, std, in_channels))
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        stages, c = [], width
        for mult, stride in ((1, 1), (2, 2), (4, 2), (8, 2)):
            stages += [_BasicBlock(c, width * mult, stride), _BasicBlock(width * mult, width * mult, 1)]
            c = width * mult
        self.layers = nn.Sequential(*stages)
        self.image_size = image_size
        self.width = width
        self.feature_dim = 8 * width
        self.head = nn.Linear(self.feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(self.layers(self.stem(self.normalize(x))), 1).flatten(1)
