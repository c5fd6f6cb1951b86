"""Colour ops: brightness/contrast/saturation/hue jitter (one random order per call), grayscale, Gaussian
blur (one odd kernel per call, per-image sigma) and Gaussian noise."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ddlib.kernels.augment.config import BLUR_REF_SIDE
from ddlib.kernels.augment.engine import Op, _as_float, _coin, _gen_device, _masked, _run, _uniform

__all__ = ["color_jitter", "grayscale", "gaussian_blur", "gaussian_noise"]


_LUMA = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


def _gray(x: Tensor) -> Tensor:
    """(N, 1, H, W) luma of RGB images (ITU-R 601-2 with torchvision's rounding); identity for 1 channel."""
    if x.shape[1] == 1:
        return x
    wts = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * wts).sum(1, keepdim=True)


def _rgb_to_hsv(x: Tensor, eps: float = 1e-8) -> Tensor:
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    delta = maxc - minc
    s = delta / (maxc + eps)
    dc = delta + eps
    rc, gc, bc = (maxc - r) / dc, (maxc - g) / dc, (maxc - b) / dc
    h = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(delta > 0, h, torch.zeros_like(h))
    h = torch.remainder(h / 6.0, 1.0)
    return torch.stack((h, s, maxc), 1)


def _hsv_to_rgb(x: Tensor) -> Tensor:
    h, s, v = x.unbind(1)
    k = torch.stack([torch.remainder(n + h * 6.0, 6.0) for n in (5.0, 3.0, 1.0)], 1)
    f = torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)
    return v.unsqueeze(1) - (v * s).unsqueeze(1) * f


def _hue_shift(x: Tensor, shift: Tensor, eps: float = 1e-8) -> Tensor:
    """``_hsv_to_rgb`` of ``_rgb_to_hsv(x)`` with the hue turned by ``shift`` (per image), clamped to
    [0, 1]: the same arithmetic per pixel, without the stacked HSV tensor and with fewer temporaries."""
    r, g, b = x.unbind(1)
    maxc = torch.amax(x, 1)
    delta = maxc - torch.amin(x, 1)
    s = delta / (maxc + eps)
    dc = delta + eps
    rc, gc, bc = (maxc - r).div_(dc), (maxc - g).div_(dc), (maxc - b).div_(dc)
    h = torch.where(maxc == g, (2.0 + rc).sub_(bc), (4.0 + gc).sub_(rc))
    h = torch.where(maxc == r, bc.sub_(gc), h)
    h.masked_fill_(~(delta > 0), 0.0)
    h = torch.remainder(h.div_(6.0), 1.0)
    h = torch.remainder(h.add_(shift.view(-1, 1, 1)), 1.0).mul_(6.0)
    k = torch.remainder(h.unsqueeze(1) + torch.tensor((5.0, 3.0, 1.0), device=x.device, dtype=x.dtype).view(1, 3, 1, 1), 6.0)
    f = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return (maxc.unsqueeze(1) - (maxc * s).unsqueeze(1) * f).clamp_(0.0, 1.0)


def _jitter_step(x: Tensor, brightness: float, contrast: float, saturation: float, hue: float, p: float,
                 generator: torch.Generator | None) -> Op:
    n = x.shape[0]
    apply = _coin(p, n, x, generator)
    fb = _uniform(max(0.0, 1 - brightness), 1 + brightness, n, x, generator)
    fc = _uniform(max(0.0, 1 - contrast), 1 + contrast, n, x, generator)
    fs = _uniform(max(0.0, 1 - saturation), 1 + saturation, n, x, generator)
    fh = _uniform(-hue, hue, n, x, generator)
    order = torch.randperm(4, generator=generator, device=_gen_device(generator)).tolist()

    def jitter(y: Tensor, which: Tensor | slice, sl: slice) -> Tensor:
        for i in order:  # f·a + (1 - f)·b clamped to [0, 1] (torchvision's _blend), f per image
            if i == 0 and brightness > 0:
                y = (y * fb[sl][which].view(-1, 1, 1, 1)).clamp_(0.0, 1.0)  # b = 0: the (1 - f)·b term is 0
            elif i == 1 and contrast > 0:
                f = fc[sl][which].view(-1, 1, 1, 1)
                y = (y * f + (1 - f) * _gray(y).mean(dim=(1, 2, 3), keepdim=True)).clamp_(0.0, 1.0)
            elif i == 2 and saturation > 0 and y.shape[1] == 3:
                f = fs[sl][which].view(-1, 1, 1, 1)
                y = (y * f + (1 - f) * _gray(y)).clamp_(0.0, 1.0)
            elif i == 3 and hue > 0 and y.shape[1] == 3:
                y = _hue_shift(y, fh[sl][which])
        return y
    return lambda y, sl: _masked(y, apply[sl], lambda z, which: jitter(z, which, sl))


def color_jitter(x: Tensor, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0, p: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """torchvision ``RandomApply([ColorJitter(b, c, s, h)], p)``: factors uniform in [max(0, 1-b), 1+b]
    (etc.; hue shift in [-h, h]), the four ops in one random order per call. Saturation and hue
    leave 1-channel images unchanged."""
    x = _as_float(x)
    return _run(x, [_jitter_step(x, brightness, contrast, saturation, hue, p, generator)])


def _gray_step(x: Tensor, p: float, generator: torch.Generator | None) -> Op:
    apply = _coin(p, x.shape[0], x, generator)
    return lambda y, sl: _masked(y, apply[sl], lambda z, _: _gray(z).expand_as(z), cheap=True)


def grayscale(x: Tensor, p: float = 0.2, generator: torch.Generator | None = None) -> Tensor:
    """torchvision ``RandomGrayscale(p)``: luma replicated over the channels, with probability ``p``."""
    x = _as_float(x)
    return _run(x, [_gray_step(x, p, generator)])


def _blur_step(x: Tensor, h: int, w: int, sigma: tuple[float, float], p: float, scale_with_size: bool,
               generator: torch.Generator | None) -> Op:
    n = x.shape[0]
    apply = _coin(p, n, x, generator)
    sig = _uniform(sigma[0], sigma[1], n, x, generator)
    factor = min(h, w) / BLUR_REF_SIDE if scale_with_size else 1.0
    if factor != 1.0:
        sig = sig * factor
    radius = min(int(math.ceil(3 * sigma[1] * factor)), (min(h, w) - 1) // 2)
    if radius < 1:
        return lambda y, sl: y
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t.view(1, -1) / sig.view(-1, 1)) ** 2)
    k = k / k.sum(1, keepdim=True)                                   # (N, K)

    def blur(y: Tensor, kk: Tensor) -> Tensor:  # separable, depthwise: one group per (image, channel)
        m, c = y.shape[:2]
        kk = kk.repeat_interleave(c, 0)                              # (m*C, K)
        z = F.pad(y.reshape(1, m * c, h, w), (radius, radius, radius, radius), mode="reflect")
        z = F.conv2d(z, kk.view(m * c, 1, 1, -1), groups=m * c)
        z = F.conv2d(z, kk.view(m * c, 1, -1, 1), groups=m * c)
        return z.view(m, c, h, w)
    return lambda y, sl: _masked(y, apply[sl], lambda z, which: blur(z, k[sl][which]))


def gaussian_blur(x: Tensor, sigma: tuple[float, float] = (0.1, 2.0), p: float = 0.5,
                  generator: torch.Generator | None = None, scale_with_size: bool = False) -> Tensor:
    """``RandomApply([GaussianBlur(sigma)], p)``: a separable Gaussian of per-image sigma uniform in
    ``sigma`` (pixels), kernel size ``2 * ceil(3 * sigma_max) + 1`` capped by the image, reflect padding.

    ``scale_with_size``: ``sigma`` is in pixels of a ``BLUR_REF_SIDE`` (224) px image and scales with
    the side, σ·min(H, W)/224 (the reference's σ of 0.1-2 px is for 224 px images); the draws are
    the same, only multiplied.
    """
    x = _as_float(x)
    return _run(x, [_blur_step(x, x.shape[-2], x.shape[-1], sigma, p, scale_with_size, generator)])


def _noise_step(shape: tuple[int, ...], std: float, x: Tensor, generator: torch.Generator | None,
                mean: float = 0.0, p: float = 1.0) -> Op:
    # the coin first, then the noise of every image (the reference's order); no coin when p = 1
    apply = _coin(p, shape[0], x, generator) if p < 1 else None
    noise = torch.randn(shape, generator=generator, device=_gen_device(generator), dtype=torch.float32)
    noise = std * noise.to(device=x.device, dtype=x.dtype)
    if mean != 0:
        noise = noise + mean
    if apply is None:
        return lambda y, sl: y + noise[sl]
    return lambda y, sl: _masked(y, apply[sl], lambda z, which: z + noise[sl][which])


def gaussian_noise(x: Tensor, std: float = 0.1, generator: torch.Generator | None = None, mean: float = 0.0,
                   p: float = 1.0) -> Tensor:
    """With probability ``p`` per image, add ``mean + std·ε`` (ε ~ N(0, 1)) to every pixel; not clamped (the
    models normalise any real input). The LGM/SFM code's ``RandomGaussianNoise(mean=0.5, std=0.2)`` is
    ``mean=0.5, std=0.2, p=0.5``: the noise is drawn for every image, then kept for the chosen ones."""
    x = _as_float(x)
    if (std <= 0 and mean == 0) or p <= 0:
        return x
    return _run(x, [_noise_step(tuple(x.shape), std, x, generator, mean, p)])


