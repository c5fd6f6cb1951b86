"""Geometric ops: continuous (sub-pixel) random resized crops, pad + crop, horizontal flips, and CutMix."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ddlib.kernels.augment.engine import Op, _as_float, _coin, _gen_device, _masked, _run
from ddlib.utils import check_float

__all__ = ["random_resized_crop", "random_pad_crop", "hflip", "cutmix"]


def _sample_boxes(n: int, h: int, w: int, scale: tuple[float, float], ratio: tuple[float, float],
                  generator: torch.Generator | None) -> tuple[np.ndarray, ...]:
    """torchvision's RandomResizedCrop box sampling (10 tries, then a centre crop), vectorised.

    Returns float64 arrays (top, left, height, width) in pixels, continuous (no rounding).
    """
    tries = 10
    area = h * w
    g_dev = _gen_device(generator)
    r = torch.rand((4, n, tries), generator=generator, device=g_dev, dtype=torch.float64).cpu().numpy()
    target = area * (scale[0] + (scale[1] - scale[0]) * r[0])
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * r[1]
    ar = np.exp(log_r)
    cw = np.sqrt(target * ar)
    ch = np.sqrt(target / ar)
    ok = (cw <= w) & (ch <= h) & (cw > 0) & (ch > 0)
    first = np.where(ok.any(1), ok.argmax(1), -1)
    idx = np.arange(n)
    pick = np.clip(first, 0, None)
    bh, bw = ch[idx, pick], cw[idx, pick]
    top = (h - bh) * r[2][idx, pick]
    left = (w - bw) * r[3][idx, pick]
    # fallback: the central crop at the ratio clamped to the allowed range (torchvision)
    in_ratio = w / h
    if in_ratio < min(ratio):
        fw, fh = w, w / min(ratio)
    elif in_ratio > max(ratio):
        fh, fw = h, h * max(ratio)
    else:
        fw, fh = w, h
    bad = first < 0
    bh = np.where(bad, fh, bh)
    bw = np.where(bad, fw, bw)
    top = np.where(bad, (h - fh) / 2, top)
    left = np.where(bad, (w - fw) / 2, left)
    return top, left, bh, bw


def _crop_resample(x: Tensor, top: Tensor, left: Tensor, bh: Tensor, bw: Tensor, out_h: int, out_w: int,
                   padding_mode: str) -> Tensor:
    """Sample the boxes (pixel units, per image) of x at (out_h, out_w) with bilinear grid_sample."""
    n, _, h, w = x.shape
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = bw / w
    theta[:, 0, 2] = (2 * left + bw) / w - 1
    theta[:, 1, 1] = bh / h
    theta[:, 1, 2] = (2 * top + bh) / h - 1
    grid = F.affine_grid(theta, [n, x.shape[1], out_h, out_w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def _crop_step(x: Tensor, out_h: int, out_w: int, scale: tuple[float, float], ratio: tuple[float, float],
               generator: torch.Generator | None) -> Op:
    n, _, h, w = x.shape
    top, left, bh, bw = (torch.as_tensor(a, device=x.device, dtype=x.dtype)
                         for a in _sample_boxes(n, h, w, scale, ratio, generator))
    return lambda y, sl: _crop_resample(y, top[sl], left[sl], bh[sl], bw[sl], out_h, out_w, padding_mode="border")


def random_resized_crop(x: Tensor, size: int | None = None, scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        generator: torch.Generator | None = None) -> Tensor:
    """RandomResizedCrop per image: a box of area fraction in ``scale`` and aspect ratio in ``ratio``
    (log-uniform), resampled bilinearly to ``size`` x ``size`` (default: the input size)."""
    x = _as_float(x)
    out_h, out_w = tuple(x.shape[-2:]) if size is None else (size, size)
    return _run(x, [_crop_step(x, out_h, out_w, scale, ratio, generator)], x.shape[1] * out_h * out_w)


def _pad_crop_step(x: Tensor, pad: int, size: int | None, generator: torch.Generator | None) -> Op:
    n, _, h, w = x.shape
    steps: list[Op] = []
    if pad > 0:
        off = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=_gen_device(generator))
        off = (off - pad).to(device=x.device, dtype=x.dtype)
        full_h = torch.full((n,), float(h), device=x.device, dtype=x.dtype)
        full_w = torch.full((n,), float(w), device=x.device, dtype=x.dtype)
        steps.append(lambda y, sl: _crop_resample(y, off[0][sl], off[1][sl], full_h[sl], full_w[sl], h, w,
                                                  padding_mode="zeros"))
    if size is not None and (size, size) != (h, w):
        steps.append(lambda y, sl: F.interpolate(y, size=(size, size), mode="bilinear", align_corners=False,
                                                 antialias=size < min(h, w)))

    def step(y: Tensor, sl: slice) -> Tensor:
        for f in steps:
            y = f(y, sl)
        return y
    return step


def random_pad_crop(x: Tensor, pad: int, size: int | None = None, generator: torch.Generator | None = None) -> Tensor:
    """torchvision's ``RandomCrop(size, padding=pad)``: shift each image by a random integer
    offset in [-pad, pad] in each axis, zero fill (exact copies of pixels; differentiable).
    With ``size`` different from the input size, the result is then resized bilinearly."""
    x = _as_float(x)
    out = x.shape[1] * size * size if size is not None else None
    return _run(x, [_pad_crop_step(x, pad, size, generator)], out)


def _flip_step(x: Tensor, p: float, generator: torch.Generator | None) -> Op:
    mask = _coin(p, x.shape[0], x, generator)
    return lambda y, sl: _masked(y, mask[sl], lambda z, _: z.flip(-1), cheap=True)


def hflip(x: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Flip each image left-right with probability ``p``."""
    x = _as_float(x)
    return _run(x, [_flip_step(x, p, generator)])



def cutmix(x: Tensor, alpha: float = 1.0, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, float]:
    """CutMix (Yun et al. 2019) on a batch: lam ~ Beta(alpha, alpha); a box of area fraction
    1 - lam (centre uniform, clipped at the border) is pasted from ``x[perm]``.

    Returns ``(mixed, perm, lam)`` where ``lam`` is the fraction of each image that is still its
    own after clipping, so a hard-label loss is ``lam * CE(y) + (1 - lam) * CE(y[perm])``.
    """
    x = _as_float(x)
    check_float("alpha", alpha, 1e-6, None)
    n, _, h, w = x.shape
    g_dev = _gen_device(generator)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=g_dev))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    perm = torch.randperm(n, generator=generator, device=g_dev).to(x.device)
    cut = math.sqrt(1.0 - lam)
    cw, ch = int(w * cut), int(h * cut)
    cx, cy = (int(v) for v in torch.randint(0, 1 << 30, (2,), generator=generator, device=g_dev).cpu())
    cx, cy = cx % w, cy % h
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    mask = torch.zeros(1, 1, h, w, device=x.device, dtype=x.dtype)
    mask[..., y0:y1, x0:x1] = 1.0
    mixed = x * (1 - mask) + x[perm] * mask
    lam = 1.0 - (x1 - x0) * (y1 - y0) / (w * h)
    return mixed, perm, lam


