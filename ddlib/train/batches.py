"""The data side of :func:`ddlib.train.loop`: a source ``source(epoch, gen)`` yields :class:`Batch` es and
says its ``steps_per_epoch``. :class:`Batches` builds one from a fetch function over a fresh shuffle per
epoch; :func:`image_batches` (images in memory: to [0, 1], augmentation, views, CutMix) and
:func:`tensor_batches` (precomputed features) are built on it; :class:`StackedBatches` runs S sources in
lockstep for a stacked ensemble (the student grid, :mod:`ddlib.bps.grid`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from ddlib.kernels.augment import AugmentConfig, augment as apply_augment, cutmix
from ddlib.utils import ParamError, check_int, to_unit

__all__ = ["Batch", "BatchSource", "Batches", "image_batches", "tensor_batches", "StackedBatches"]


@dataclass
class Batch:
    """One step's data: ``index`` (the samples' positions in the source), ``x`` (the model's input: a
    tensor, or a tuple of tensors such as two views or several feature banks), ``y`` (targets) and
    ``mix`` = (perm, λ) when the images were CutMix-ed (image i mixed with image perm[i]). In a data-parallel
    run a batch is one rank's share of the step's global batch, ``full`` (None in one process)."""

    index: Tensor
    x: Any
    y: Any = None
    mix: tuple[Tensor, float] | None = None
    full: Batch | None = None

    def __len__(self) -> int:
        return len(self.index)

    @property
    def share(self) -> float:
        """The fraction of the step's global batch this batch holds (1 in one process)."""
        return 1.0 if self.full is None else len(self) / len(self.full)


class BatchSource(Protocol):
    """The data side of :func:`loop`: ``source(epoch, gen)`` yields the epoch's batches."""

    steps_per_epoch: int

    def __call__(self, epoch: int, gen: Any) -> Iterator[Batch]: ...


class Batches:
    """A :class:`BatchSource` over ``n`` samples: every epoch a fresh ``randperm(n, generator=gen)`` (drawn
    when the epoch's first batch is asked for), cut into runs of ``batch_size`` (the last one partial
    unless ``drop_last``), each turned into a :class:`Batch` by ``fetch(indices, gen)``; the permutation
    is moved to ``perm_device`` first when given."""

    def __init__(self, n: int, batch_size: int, fetch: Callable[[Tensor, Any], Batch], drop_last: bool = False,
                 perm_device: torch.device | str | None = None) -> None:
        self.n = check_int("n", n, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.fetch = fetch
        self.perm_device = perm_device
        self.steps_per_epoch = n // batch_size if drop_last else math.ceil(n / batch_size)

    def __call__(self, epoch: int, gen: Any) -> Iterator[Batch]:
        order = torch.randperm(self.n, generator=gen)
        if self.perm_device is not None:
            order = order.to(self.perm_device)
        bs = self.batch_size
        for s in range(self.steps_per_epoch):
            yield self.fetch(order[s * bs:(s + 1) * bs], gen)


def image_batches(x: Tensor, y: Tensor, batch_size: int, device: torch.device, *,
                  augment: str | AugmentConfig | None = None, views: int = 1, cutmix_alpha: float | None = None,
                  drop_last: bool = False, global_rng_augment_on_gpu: bool = False) -> Batches:
    """Shuffled batches of images (a uint8 or float [0, 1] tensor, or a streamed data set's
    :class:`~ddlib.data.ImageStore`, whose batches are decoded from disk as they are drawn), on ``device``
    as float [0, 1].

    ``augment`` (a preset or config) is drawn from the loop's generator; ``views=2`` gives the batch as
    two independently augmented views (MoCo's query and key) instead of one; ``cutmix_alpha`` mixes
    the augmented batch (α > 0: CutMix; 0: no mixing, ``mix`` = (identity, 1)); None: no ``mix``.
    ``global_rng_augment_on_gpu``: off the CPU, draw the augmentation from the global RNG instead
    (the forgetting-score model's recorded behaviour, kept for its cached scores).
    """
    dev = torch.device(device)

    def fetch(idx: Tensor, gen: Any) -> Batch:
        xb = to_unit(x[idx].to(dev, non_blocking=True))
        yb = y[idx].to(dev, non_blocking=True)
        g = None if global_rng_augment_on_gpu and dev.type != "cpu" else gen
        if views > 1:
            return Batch(idx, tuple(apply_augment(xb, augment, g) for _ in range(views)), yb)
        if augment is not None:
            xb = apply_augment(xb, augment, g)
        mix = None
        if cutmix_alpha is not None:
            if cutmix_alpha > 0:
                xb, perm, lam = cutmix(xb, cutmix_alpha, g)
                mix = (perm, lam)
            else:
                mix = (torch.arange(len(idx), device=dev), 1.0)
        return Batch(idx, xb, yb, mix)

    if views > 1 and augment is None:
        raise ParamError(f"views={views} needs an augmentation (the views would be identical)")
    return Batches(len(x), batch_size, fetch, drop_last=drop_last)


def tensor_batches(x: Tensor, y: Tensor, batch_size: int, device: torch.device | None = None) -> Batches:
    """Shuffled batches of precomputed tensors (e.g. features) indexed as they are (the permutation is
    moved to ``device``, where x and y should already be)."""
    return Batches(len(y), batch_size, lambda idx, gen: Batch(idx, x[idx], y[idx]), perm_device=device)


class StackedBatches:
    """S sources in lockstep, for a stacked ensemble (e.g. :class:`ddlib.stack.ModelStack`): called with
    one generator per member, ``source(epoch, gens)``; member j draws from ``gens[j]`` exactly what its
    source draws alone. Each step's :class:`Batch` has ``x`` the members' inputs stacked (S, B, ...),
    ``y`` the members' own batches (a tuple: their targets and CutMix pairings) and ``index`` their
    positions as columns (B, S), so the loop weighs the step by the batch length as for one member.
    The members must have the same number of steps per epoch and the same batch shapes."""

    def __init__(self, sources: Sequence[BatchSource]) -> None:
        self.sources = list(sources)
        if not self.sources:
            raise ParamError("sources must name at least one batch source")
        steps = sorted({s.steps_per_epoch for s in self.sources})
        if len(steps) != 1:
            raise ParamError(f"sources must have the same steps_per_epoch to run in lockstep; got {steps}")
        self.steps_per_epoch = steps[0]

    def __call__(self, epoch: int, gen: Any) -> Iterator[Batch]:
        gens = list(gen) if isinstance(gen, (list, tuple)) else None
        if gens is None or len(gens) != len(self.sources):
            raise ParamError(f"gen must be a list of one generator per member ({len(self.sources)})")
        for members in zip(*(s(epoch, g) for s, g in zip(self.sources, gens))):
            yield Batch(torch.stack([b.index for b in members], 1), torch.stack([b.x for b in members]), members)


