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

from __future__ import annotations

import torch
from torch import Tensor

from ddlib.kernels.augment.colour import (_blur_step, _gray_step, _jitter_step, _noise_step, color_jitter,
                                          gaussian_blur, gaussian_noise, grayscale)
from ddlib.kernels.augment.config import AUGMENTS, BLUR_REF_SIDE, AugmentConfig, get_augment
from ddlib.kernels.augment.engine import CHUNK_ELEMS, CHUNKED_DEVICES, Op, _as_float, _run
from ddlib.kernels.augment.geometry import (_crop_step, _flip_step, _pad_crop_step, cutmix, hflip, random_pad_crop,
                                            random_resized_crop)
from ddlib.utils import ParamError

__all__ = ["AugmentConfig", "AUGMENTS", "BLUR_REF_SIDE", "CHUNK_ELEMS", "CHUNKED_DEVICES", "augment",
           "random_resized_crop", "random_pad_crop", "hflip", "color_jitter", "grayscale", "gaussian_blur",
           "gaussian_noise", "cutmix", "get_augment"]


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
    steps: list[Op] = []
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
    if (cfg.noise_std > 0 or cfg.noise_mean != 0) and cfg.noise_p > 0:
        steps.append(_noise_step((n, c, h, w), cfg.noise_std, x, generator, cfg.noise_mean, cfg.noise_p))
    return _run(x, steps, c * h * w)
