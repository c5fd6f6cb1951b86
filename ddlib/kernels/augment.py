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
"""
from __future__ import annotations

import math
from dataclasses import dataclass

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


def _where(mask: Tensor, a: Tensor, b: Tensor) -> Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), a, b)


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


def random_resized_crop(x: Tensor, size: int | None = None, scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        generator: torch.Generator | None = None) -> Tensor:
    """RandomResizedCrop per image: a box of area fraction in ``scale`` and aspect ratio in ``ratio``
    (log-uniform), resampled bilinearly to ``size`` x ``size`` (default: the input size)."""
    x = _as_float(x)
    n, _, h, w = x.shape
    out_h, out_w = (h, w) if size is None else (size, size)
    top, left, bh, bw = (torch.as_tensor(a, device=x.device, dtype=x.dtype)
                         for a in _sample_boxes(n, h, w, scale, ratio, generator))
    return _crop_resample(x, top, left, bh, bw, out_h, out_w, padding_mode="border")


def random_pad_crop(x: Tensor, pad: int, size: int | None = None, generator: torch.Generator | None = None) -> Tensor:
    """torchvision's ``RandomCrop(size, padding=pad)``: shift each image by a random integer
    offset in [-pad, pad] in each axis, zero fill (exact copies of pixels; differentiable).
    With ``size`` different from the input size, the result is then resized bilinearly."""
    x = _as_float(x)
    n, _, h, w = x.shape
    if pad > 0:
        off = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=_gen_device(generator))
        off = (off - pad).to(device=x.device, dtype=x.dtype)
        full_h = torch.full((n,), float(h), device=x.device, dtype=x.dtype)
        full_w = torch.full((n,), float(w), device=x.device, dtype=x.dtype)
        x = _crop_resample(x, off[0], off[1], full_h, full_w, h, w, padding_mode="zeros")
    if size is not None and (size, size) != (h, w):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < min(h, w))
    return x


def hflip(x: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Flip each image left-right with probability ``p``."""
    x = _as_float(x)
    return _where(_coin(p, x.shape[0], x, generator), x.flip(-1), x)


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


def _blend(a: Tensor, b: Tensor, f: Tensor) -> Tensor:
    """f * a + (1 - f) * b clamped to [0, 1] (torchvision's _blend), f per image."""
    f = f.view(-1, 1, 1, 1)
    return (f * a + (1 - f) * b).clamp(0.0, 1.0)


def color_jitter(x: Tensor, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 hue: float = 0.0, p: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
    """torchvision ``RandomApply([ColorJitter(b, c, s, h)], p)``: factors uniform in [max(0, 1-b), 1+b]
    (etc.; hue shift in [-h, h]), the four ops in one random order per call. Saturation and hue
    leave 1-channel images unchanged."""
    x = _as_float(x)
    n = x.shape[0]
    apply = _coin(p, n, x, generator)
    factors = {
        "b": _uniform(max(0.0, 1 - brightness), 1 + brightness, n, x, generator),
        "c": _uniform(max(0.0, 1 - contrast), 1 + contrast, n, x, generator),
        "s": _uniform(max(0.0, 1 - saturation), 1 + saturation, n, x, generator),
        "h": _uniform(-hue, hue, n, x, generator),
    }
    order = torch.randperm(4, generator=generator, device=_gen_device(generator)).tolist()
    y = x
    for i in order:
        op = "bcsh"[i]
        if op == "b" and brightness > 0:
            y = _blend(y, torch.zeros_like(y), factors["b"])
        elif op == "c" and contrast > 0:
            mean = _gray(y).mean(dim=(1, 2, 3), keepdim=True)
            y = _blend(y, mean.expand_as(y), factors["c"])
        elif op == "s" and saturation > 0 and y.shape[1] == 3:
            y = _blend(y, _gray(y).expand_as(y), factors["s"])
        elif op == "h" and hue > 0 and y.shape[1] == 3:
            hsv = _rgb_to_hsv(y)
            hh = torch.remainder(hsv[:, 0] + factors["h"].view(-1, 1, 1), 1.0)
            y = _hsv_to_rgb(torch.stack((hh, hsv[:, 1], hsv[:, 2]), 1)).clamp(0.0, 1.0)
    return _where(apply, y, x)


def grayscale(x: Tensor, p: float = 0.2, generator: torch.Generator | None = None) -> Tensor:
    """torchvision ``RandomGrayscale(p)``: luma replicated over the channels, with probability ``p``."""
    x = _as_float(x)
    apply = _coin(p, x.shape[0], x, generator)
    return _where(apply, _gray(x).expand_as(x), x)


def gaussian_blur(x: Tensor, sigma: tuple[float, float] = (0.1, 2.0), p: float = 0.5,
                  generator: torch.Generator | None = None) -> Tensor:
    """``RandomApply([GaussianBlur(sigma)], p)``: a separable Gaussian of per-image sigma uniform in
    ``sigma`` (pixels), kernel size ``2 * ceil(3 * sigma_max) + 1`` capped by the image, reflect padding."""
    x = _as_float(x)
    n, c, h, w = x.shape
    apply = _coin(p, n, x, generator)
    sig = _uniform(sigma[0], sigma[1], n, x, generator)
    radius = min(int(math.ceil(3 * sigma[1])), (min(h, w) - 1) // 2)
    if radius < 1:
        return x
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t.view(1, -1) / sig.view(-1, 1)) ** 2)
    k = k / k.sum(1, keepdim=True)                                   # (N, K)
    k = k.repeat_interleave(c, 0)                                    # (N*C, K)
    y = x.reshape(1, n * c, h, w)
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(y, k.view(n * c, 1, -1, 1), groups=n * c)
    return _where(apply, y.view(n, c, h, w), x)


def gaussian_noise(x: Tensor, std: float = 0.1, generator: torch.Generator | None = None) -> Tensor:
    """Add N(0, std^2) noise to every pixel; not clamped (the models normalise any real input)."""
    x = _as_float(x)
    if std <= 0:
        return x
    noise = torch.randn(x.shape, generator=generator, device=_gen_device(generator), dtype=torch.float32)
    return x + std * noise.to(device=x.device, dtype=x.dtype)


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
    """Apply the pipeline ``cfg`` (a config or a preset name of :data:`AUGMENTS`) to a batch."""
    cfg = get_augment(cfg)
    if cfg is None:
        raise ParamError(f"augment=None: give an AugmentConfig or one of {list(AUGMENTS)}")
    x = _as_float(x)
    if cfg.crop_scale is not None:
        x = random_resized_crop(x, cfg.size, cfg.crop_scale, cfg.crop_ratio, generator)
    elif cfg.pad > 0 or (cfg.size is not None and cfg.size != x.shape[-1]):
        x = random_pad_crop(x, cfg.pad, cfg.size, generator)
    if cfg.flip_p > 0:
        x = hflip(x, cfg.flip_p, generator)
    if cfg.jitter_p > 0 and any(v > 0 for v in cfg.jitter):
        x = color_jitter(x, *cfg.jitter, p=cfg.jitter_p, generator=generator)
    if cfg.grayscale_p > 0:
        x = grayscale(x, cfg.grayscale_p, generator)
    if cfg.blur_p > 0:
        x = gaussian_blur(x, cfg.blur_sigma, cfg.blur_p, generator)
    if cfg.noise_std > 0:
        x = gaussian_noise(x, cfg.noise_std, generator)
    return x

