"""Batched, differentiable image augmentations on tensors, on any device, seeded.

Images are float tensors in [0, 1] of shape (N, C, H, W) (uint8 input is converted with
``x.float() / 255``). Every op is differentiable with respect to the images, so the same
code augments real batches (MoCo views, KD students) and synthetic images being optimised
(SFM/LGM). Random parameters are drawn with ``generator`` (a ``torch.Generator``, CPU or the
images' device; ``None`` = PyTorch's global RNG) and then moved to the images' device, so a
seed gives the same parameters on CPU and CUDA.

Departures from torchvision (which works image by image):

- crops are continuous (sub-pixel) boxes sampled by ``affine_grid`` + bilinear ``grid_sample``
  instead of integer boxes + resize, which makes them differentiable;
- colour jitter applies brightness, contrast, saturation, hue in one random order per call
  (torchvision draws an order per image);
- Gaussian blur uses one odd kernel size per call, ``2 * ceil(3 * sigma_max) + 1`` (capped by
  the image size), with a per-image sigma and reflect padding, like torchvision's ``GaussianBlur``;
  MoCo-v2's PIL blur takes a radius in pixels, which we read as sigma.

Speed (``benchmarks/bench_augment.py``): each op first draws its parameters for the whole batch,
then the batch runs through the ops (on one CPU thread a chunk of a few images at a time, see
:data:`CHUNK_ELEMS`, so that the temporaries stay in cache), and a random op computes only the
images it applies to. The random draws and their order are those of applying the ops one by one,
and every op is per image, so a generator gives the same images, bit for bit, as the earlier
whole-batch version.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ddlib.utils import ParamError, check_choice, check_float, check_int

__all__ = ["AugmentConfig", "AUGMENTS", "augment", "random_resized_crop", "random_pad_crop", "hflip",
           "color_jitter", "grayscale", "gaussian_blur", "gaussian_noise", "cutmix", "get_augment"]


@dataclass(frozen=True)
class AugmentConfig:
    """One augmentation pipeline; each op is off when its probability or size is 0.

    Applied in the order crop (random resized crop, or pad-and-crop when ``pad > 0``), flip,
    colour jitter, grayscale, blur, noise: the order of the MoCo-v2 and SFM pipelines.

    ``pad`` (an addition to the shared contract, default off) is torchvision's
    ``RandomCrop(size, padding=pad)``: a random shift by up to ``pad`` pixels with zero fill,
    the standard CIFAR "crop + flip" of the reference teachers.

    ``blur_sigma`` is in pixels of the image being blurred. The reference's σ 0.1–2 is for 224-px
    images; the MoCo encoder scales it to its images' size in its config
    (:func:`ddlib.encoders.views_augment`), so the cache keys of what the views feed say which σ was used.
    """

    crop_scale: tuple[float, float] | None = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    size: int | None = None
    flip_p: float = 0.5
    jitter: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    jitter_p: float = 0.0
    grayscale_p: float = 0.0
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    noise_std: float = 0.0
    pad: int = 0

    def __post_init__(self) -> None:
        if self.crop_scale is not None:
            lo, hi = _pair("crop_scale", self.crop_scale)
            check_float("crop_scale[0]", lo, 1e-6, 1.0)
            check_float("crop_scale[1]", hi, lo, 1.0)
        lo, hi = _pair("crop_ratio", self.crop_ratio)
        check_float("crop_ratio[0]", lo, 1e-6, None)
        check_float("crop_ratio[1]", hi, lo, None)
        if self.size is not None:
            check_int("size", self.size, 1, 4096)
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p"):
            check_float(name, getattr(self, name), 0.0, 1.0)
        if not isinstance(self.jitter, (tuple, list)) or len(self.jitter) != 4:
            raise ParamError(f"jitter={self.jitter!r} must be 4 numbers (brightness, contrast, saturation, hue)")
        for name, v, hi in zip(("brightness", "contrast", "saturation", "hue"), self.jitter, (None, None, None, 0.5)):
            check_float(f"jitter.{name}", v, 0.0, hi)
        lo, hi = _pair("blur_sigma", self.blur_sigma)
        check_float("blur_sigma[0]", lo, 1e-6, None)
        check_float("blur_sigma[1]", hi, lo, None)
        check_float("noise_std", self.noise_std, 0.0, None)
        check_int("pad", self.pad, 0, 1024)
        if self.pad > 0 and self.crop_scale is not None:
            raise ParamError(f"pad={self.pad} and crop_scale={self.crop_scale} are both set; "
                             "use one kind of crop (set crop_scale=None for pad-and-crop)")


#: The image side the reference's blur σ (0.1-2 px) is meant for (its Stage 1 runs at 224 px).
BLUR_REF_SIDE = 224


def _pair(name: str, v: object) -> tuple[float, float]:
    if not isinstance(v, (tuple, list)) or len(v) != 2:
        raise ParamError(f"{name}={v!r} must be a pair (low, high)")
    return v[0], v[1]


#: The presets. ``crop_flip`` is the CIFAR teacher recipe RandomCrop(32, padding=4) + flip
#: (4 px of a 32 px image; for 28 px data it is 1/7 of the side). ``kd`` is BPS's student
#: augmentation RandomResizedCrop(min_crop, 1) + flip (min_crop set per IPC with
#: ``dataclasses.replace(AUGMENTS["kd"], crop_scale=(min_crop, 1.0))``; CutMix is applied by
#: the caller with :func:`cutmix`). ``sfm``'s noise std of 0.1 (in [0, 1] pixel units) is our
#: choice: the SFM/LGM papers name Gaussian noise without its std.
AUGMENTS: dict[str, AugmentConfig] = {
    "none": AugmentConfig(crop_scale=None, flip_p=0.0),
    "crop_flip": AugmentConfig(crop_scale=None, pad=4, flip_p=0.5),
    "moco_v2": AugmentConfig(crop_scale=(0.2, 1.0), flip_p=0.5, jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8,
                             grayscale_p=0.2, blur_p=0.5, blur_sigma=(0.1, 2.0)),
    "kd": AugmentConfig(crop_scale=(0.08, 1.0), flip_p=0.5),
    "sfm": AugmentConfig(crop_scale=(0.08, 1.0), flip_p=0.5, noise_std=0.1),
}


def get_augment(cfg: AugmentConfig | str | None) -> AugmentConfig | None:
    """The config for a preset name (ParamError listing the presets if unknown), or ``cfg`` itself."""
    if cfg is None or isinstance(cfg, AugmentConfig):
        return cfg
    check_choice("augment", cfg, list(AUGMENTS))
    return AUGMENTS[cfg]


# ----------------------------------------------------------------------------- random numbers
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

Step = Callable[[Tensor, slice], Tensor]  # applies one drawn op to the images of batch slice ``sl``


def _run(x: Tensor, steps: list[Step], out_per_image: int | None = None) -> Tensor:
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


# ----------------------------------------------------------------------------- geometry
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
               generator: torch.Generator | None) -> Step:
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


def _pad_crop_step(x: Tensor, pad: int, size: int | None, generator: torch.Generator | None) -> Step:
    n, _, h, w = x.shape
    steps: list[Step] = []
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


def _flip_step(x: Tensor, p: float, generator: torch.Generator | None) -> Step:
    mask = _coin(p, x.shape[0], x, generator)
    return lambda y, sl: _masked(y, mask[sl], lambda z, _: z.flip(-1), cheap=True)


def hflip(x: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Flip each image left-right with probability ``p``."""
    x = _as_float(x)
    return _run(x, [_flip_step(x, p, generator)])


# ----------------------------------------------------------------------------- colour
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
                 generator: torch.Generator | None) -> Step:
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


def _gray_step(x: Tensor, p: float, generator: torch.Generator | None) -> Step:
    apply = _coin(p, x.shape[0], x, generator)
    return lambda y, sl: _masked(y, apply[sl], lambda z, _: _gray(z).expand_as(z), cheap=True)


def grayscale(x: Tensor, p: float = 0.2, generator: torch.Generator | None = None) -> Tensor:
    """torchvision ``RandomGrayscale(p)``: luma replicated over the channels, with probability ``p``."""
    x = _as_float(x)
    return _run(x, [_gray_step(x, p, generator)])


def _blur_step(x: Tensor, h: int, w: int, sigma: tuple[float, float], p: float, scale_with_size: bool,
               generator: torch.Generator | None) -> Step:
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


def _noise_step(shape: tuple[int, ...], std: float, x: Tensor, generator: torch.Generator | None) -> Step:
    noise = torch.randn(shape, generator=generator, device=_gen_device(generator), dtype=torch.float32)
    noise = std * noise.to(device=x.device, dtype=x.dtype)
    return lambda y, sl: y + noise[sl]


def gaussian_noise(x: Tensor, std: float = 0.1, generator: torch.Generator | None = None) -> Tensor:
    """Add N(0, std^2) noise to every pixel; not clamped (the models normalise any real input)."""
    x = _as_float(x)
    if std <= 0:
        return x
    return _run(x, [_noise_step(tuple(x.shape), std, x, generator)])


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


# ----------------------------------------------------------------------------- pipeline
def augment(x: Tensor, cfg: AugmentConfig | str, generator: torch.Generator | None = None) -> Tensor:
    """Apply the pipeline ``cfg`` (a config or a preset name of :data:`AUGMENTS`) to a batch.

    Every op's random parameters are drawn first, in the pipeline's order and as the single ops
    draw them, then the batch runs through all ops (on CPU a chunk of images at a time, see
    :data:`CHUNK_ELEMS`); only the images an op applies to are computed. A generator gives the
    same images as applying the single ops one after the other.
    """
    cfg = get_augment(cfg)
    if cfg is None:
        raise ParamError(f"augment=None: give an AugmentConfig or one of {list(AUGMENTS)}")
    x = _as_float(x)
    n, c, h, w = x.shape
    steps: list[Step] = []
    if cfg.crop_scale is not None:
        h, w = (h, w) if cfg.size is None else (cfg.size, cfg.size)
        steps.append(_crop_step(x, h, w, cfg.crop_scale, cfg.crop_ratio, generator))
    elif cfg.pad > 0 or (cfg.size is not None and cfg.size != x.shape[-1]):
        steps.append(_pad_crop_step(x, cfg.pad, cfg.size, generator))
        h, w = (h, w) if cfg.size is None else (cfg.size, cfg.size)
    if cfg.flip_p > 0:
        steps.append(_flip_step(x, cfg.flip_p, generator))
    if cfg.jitter_p > 0 and any(v > 0 for v in cfg.jitter):
        steps.append(_jitter_step(x, *cfg.jitter, p=cfg.jitter_p, generator=generator))
    if cfg.grayscale_p > 0:
        steps.append(_gray_step(x, cfg.grayscale_p, generator))
    if cfg.blur_p > 0:
        steps.append(_blur_step(x, h, w, cfg.blur_sigma, cfg.blur_p, False, generator))
    if cfg.noise_std > 0:
        steps.append(_noise_step((n, c, h, w), cfg.noise_std, x, generator))
    return _run(x, steps, c * h * w)
