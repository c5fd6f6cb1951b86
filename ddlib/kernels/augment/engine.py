"""How a pipeline runs: random parameters drawn with a generator on its device (then moved to the images'),
and the ops applied to a batch, on one CPU thread a chunk of images at a time (:data:`CHUNK_ELEMS`)."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ddlib.utils import ParamError

__all__ = ["CHUNK_ELEMS", "CHUNKED_DEVICES", "Op"]


def _gen_device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")


def _rand(n: int | tuple[int, ...], x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Uniform [0, 1) numbers drawn with ``generator`` on its device, returned on x's device/dtype."""
    shape = (n,) if isinstance(n, int) else n
    r = torch.rand(shape, generator=generator, device=_gen_device(generator), dtype=torch.float64)
    return r.to(device=x.device, dtype=x.dtype)


def _uniform(lo: float, hi: float, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    return lo + (hi - lo) * _rand(n, x, generator)


def _coin(p: float, n: int, x: Tensor, generator: torch.Generator | None) -> Tensor:
    """A bool mask (n,) on x's device: True with probability p. Always draws, so streams stay aligned."""
    return _rand(n, x, generator) < p


def _as_float(x: Tensor) -> Tensor:
    if x.dim() != 4:
        raise ParamError(f"images must be a 4-d tensor (N, C, H, W); got shape {tuple(x.shape)}")
    return x if x.is_floating_point() else x.float() / 255.0


# ----------------------------------------------------------------------------- running the steps
#: On CPU with one torch thread the batch runs through the whole pipeline a chunk of images at a
#: time, about this many values per chunk (3 RGB images at 224 px), so that every op's temporaries
#: stay in cache; a batch of at most two chunks runs whole. Every op is per image, so the result is
#: the same as on the whole batch, bit for bit. With several threads the batch runs whole: every op
#: is then a parallel region whose threads are woken for it, which on a shared machine cost
#: milliseconds per op in ``bench_augment.py``, and chunks multiply the ops.
CHUNK_ELEMS = 2 ** 19
#: Devices where the batch runs in chunks and a random op computes only its images (index_select /
#: index_copy); elsewhere (CUDA) one launch per op over the whole batch and ``torch.where``, no host sync.
CHUNKED_DEVICES = ("cpu",)

Op = Callable[[Tensor, slice], Tensor]  # applies one drawn op to the images of batch slice ``sl``


def _run(x: Tensor, steps: list[Op], out_per_image: int | None = None) -> Tensor:
    """Apply ``steps`` to ``x``: chunk by chunk on one CPU thread, else the whole batch at once."""
    n = x.shape[0]
    per = max(x[0].numel() if n else 1, out_per_image or 0, 1)
    chunked = x.device.type in CHUNKED_DEVICES and torch.get_num_threads() == 1
    size = max(1, CHUNK_ELEMS // per) if chunked else n
    if size >= n or n * per <= 2 * CHUNK_ELEMS:  # a small batch: chunks would only add their overhead
        for f in steps:
            x = f(x, slice(None))
        return x
    out = []
    for i, y in zip(range(0, n, size), x.split(size)):  # split, not slices: one backward for all chunks
        sl = slice(i, i + size)
        for f in steps:
            y = f(y, sl)
        out.append(y)
    return torch.cat(out)


def _masked(x: Tensor, mask: Tensor, fn: Callable[[Tensor, Tensor | slice], Tensor], cheap: bool = False) -> Tensor:
    """``fn`` applied to the images where ``mask`` is True, the others unchanged.

    ``fn(images, which)`` gets the selected images and which rows of the chunk they are (to index
    per-image parameters). On CPU only the selected images are computed (index_select /
    index_copy); on CUDA, and for a ``cheap`` op (a flip, a gray), all of them, then
    ``torch.where`` (see :data:`CHUNKED_DEVICES`).
    """
    if cheap or x.device.type not in CHUNKED_DEVICES:
        return torch.where(mask.view(-1, 1, 1, 1), fn(x, slice(None)), x)
    idx = torch.nonzero(mask).view(-1)
    if len(idx) == 0:
        return x
    if len(idx) == len(x):
        return fn(x, slice(None))
    return x.index_copy(0, idx, fn(x.index_select(0, idx), idx))


