"""Real images in SFM's and LGM's loops: LGM's class-balanced real batches, and the real initialisation.

SFM never loads a real image while distilling; LGM draws a class-balanced real batch every step
(:class:`BalancedSampler`), and ``init="real"`` starts either method from the random real images of its seed
(:func:`real_init_images`). :mod:`ddlib.sfm.synth` uses them (each name is also importable from there).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F_nn
from torch import Tensor

from ddlib.sfm.stats import match_channels
from ddlib.utils import ParamError, check_int, to_unit

__all__ = ["BalancedSampler", "balanced_indices", "resize_images", "real_init_images"]


class BalancedSampler:
    """Class-balanced batches: ``per_class`` indices of every class per :meth:`draw`, class-major.

    Each class's indices are walked in a random order without replacement, and reshuffled when fewer
    than ``per_class`` are left (what a shuffled loader does per epoch, per class); a class with fewer
    than ``per_class`` images is drawn with replacement. The labels are sorted once; a draw is one
    gather of C·``per_class`` indices plus a reshuffle of the classes that ran out (amortised
    ``per_class`` per class), so its cost does not grow with the number of labels or scan them per class.
    """

    def __init__(self, y: Tensor, num_classes: int, per_class: int, generator: torch.Generator) -> None:
        y = y.detach().long().cpu()
        self.num_classes = check_int("num_classes", num_classes, 1)
        self.per_class = check_int("per_class", per_class, 1)
        self.generator = generator
        self.counts = torch.bincount(y, minlength=num_classes)[:num_classes]
        if bool((self.counts == 0).any()):
            missing = torch.nonzero(self.counts == 0).flatten().tolist()
            raise ParamError(f"classes {missing} have no training images; LGM needs real images of every class")
        self.order = torch.argsort(y, stable=True)  # class-major: class c at starts[c] : starts[c] + counts[c]
        self.starts = torch.cumsum(self.counts, 0) - self.counts
        self.cursor = self.counts.clone()  # every class "ran out": the first draw shuffles each once
        self.small = torch.nonzero(self.counts < per_class).flatten().tolist()
        self._steps = torch.arange(per_class)

    def _reshuffle(self, c: int) -> None:
        s, n = int(self.starts[c]), int(self.counts[c])
        seg = self.order[s:s + n]
        self.order[s:s + n] = seg[torch.randperm(n, generator=self.generator)]
        self.cursor[c] = 0

    def draw(self) -> Tensor:
        """``per_class`` indices of each class, class 0 first: (C·per_class,)."""
        k = self.per_class
        for c in torch.nonzero(self.cursor + k > self.counts).flatten().tolist():
            if self.counts[c] >= k:
                self._reshuffle(c)
        pos = self.starts[:, None] + torch.minimum(self.cursor[:, None] + self._steps, self.counts[:, None] - 1)
        for c in self.small:  # fewer images than per_class: with replacement
            pos[c] = self.starts[c] + torch.randint(int(self.counts[c]), (k,), generator=self.generator)
        self.cursor += k
        return self.order[pos.flatten()]


def balanced_indices(y: Tensor, num_classes: int, per_class: int, generator: torch.Generator) -> Tensor:
    """``per_class`` random indices of each class, class-major (without replacement when the class is large
    enough): one :meth:`BalancedSampler.draw`."""
    return BalancedSampler(y, num_classes, per_class, generator).draw()


def resize_images(x: Tensor, size: int) -> Tensor:
    """uint8 or float images -> float [0, 1] at ``size``×``size`` (bilinear, antialiased when shrinking)."""
    x = to_unit(x)
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F_nn.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                            antialias=size < x.shape[-1]).clamp(0, 1)


def real_init_images(ds, ipc: int, image_size: int, channels: int, seed: int) -> Tensor:  # noqa: ANN001
    """The images ``init="real"`` starts from: the random real set of ``seed`` (:func:`ddlib.baselines.random_real`,
    IPC training images per class, class-major), float [0, 1] at ``image_size`` with ``channels``. A paired
    comparison of the distilled set with the random real images of the same seed thus measures what the
    distillation added to the very images it started from."""
    from ddlib.baselines import random_real

    return match_channels(resize_images(random_real(ds, ipc, seed)["images"], image_size), channels).contiguous()
