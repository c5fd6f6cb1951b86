"""The image parameterisation shared by SFM and LGM: a pyramid (or plain pixels) with colour decorrelation.

Synthetic images are not optimised as pixels but as a Laplacian-style pyramid of levels, coarse
first (:class:`ImageParams`), decoded as

    x = sigmoid(2 · decorrelate(Σ_l upsample_bilinear(level_l, full size)))

with Lucid's fixed colour decorrelation (:func:`decorrelate_colour`, 3 channels only). The pyramid
starts at ``start_res`` and grows a finer level every ``grow_every`` steps of the loop in
:mod:`ddlib.sfm.synth` (:meth:`ImageParams.grow`), as the LGM reference does. ``init="real"`` inverts
the decode exactly, so the optimisation starts from real images.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F_nn
from torch import Tensor

from ddlib.utils import ParamError, check_choice

__all__ = ["PARAMETERISATIONS", "INITS", "COLOR_CORRELATION_SVD_SQRT", "COLOR_MATRIX", "decorrelate_colour",
           "correlate_colour", "pyramid_resolutions", "pyramid_state_bytes", "ImageParams"]

PARAMETERISATIONS = ("pyramid", "pixels")
INITS = ("noise", "zero", "real")

# Lucid's colour correlation (square root of the ImageNet colour covariance), as in the LGM code;
# normalised by its largest column norm.
COLOR_CORRELATION_SVD_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOR_MATRIX = COLOR_CORRELATION_SVD_SQRT / torch.linalg.norm(COLOR_CORRELATION_SVD_SQRT, dim=0).max()


def decorrelate_colour(x: Tensor) -> Tensor:
    """Apply the fixed colour decorrelation matrix to (N, 3, H, W)."""
    return torch.einsum("dc,nchw->ndhw", COLOR_MATRIX.to(x.device, x.dtype), x)


def correlate_colour(x: Tensor) -> Tensor:
    """Invert :func:`decorrelate_colour`."""
    inv = torch.linalg.inv(COLOR_MATRIX.double()).float()
    return torch.einsum("dc,nchw->ndhw", inv.to(x.device, x.dtype), x)


def pyramid_resolutions(image_size: int, start_res: int = 1) -> list[int]:
    """Level resolutions from ``start_res`` doubling up to ``image_size`` (the last one capped), coarse first."""
    res, out = start_res, [start_res]
    while res < image_size:
        res = min(res * 2, image_size)
        out.append(res)
    return out


def pyramid_state_bytes(image_size: int, channels: int = 3, start_res: int = 1, parameterisation: str = "pyramid",
                        bytes_per_value: int = 4) -> int:
    """Bytes one synthetic image's optimisation state takes once the pyramid is complete: its levels
    (Σ_l r_l²·channels values), their gradients and Adam's two moments, i.e. 4·Σ_l r_l²·channels values.

    At 256 px RGB (levels 1, 2, …, 256) that is 4 · 3 · 87,381 float32 ≈ 4 MiB per image, whatever the
    chunking of the SFM step: the chunks bound the activations, not this.
    """
    check_choice("parameterisation", parameterisation, PARAMETERISATIONS)
    res = [image_size] if parameterisation == "pixels" else pyramid_resolutions(image_size, start_res)
    return 4 * sum(r * r for r in res) * channels * bytes_per_value


class ImageParams:
    """Synthetic images as a pyramid of levels (coarse first) or plain pixels (one full-resolution level).

    decode = sigmoid(2 · decorrelate(Σ_l upsample_bilinear(level_l, full size))).
    """

    def __init__(self, levels: list[Tensor], image_size: int, decorrelate: bool = True,
                 resolutions: list[int] | None = None, grow_mode: str = "noise") -> None:
        self.levels = [lv.detach().clone().requires_grad_(True) for lv in levels]
        self.image_size = image_size
        self.decorrelate = decorrelate and levels[0].shape[1] == 3
        self.resolutions = resolutions or [lv.shape[-1] for lv in levels]
        self.grow_mode = check_choice("grow_mode", grow_mode, ("noise", "mean"))

    # construction -----------------------------------------------------------------------------
    @classmethod
    def create(cls, n: int, channels: int, image_size: int, parameterisation: str = "pyramid",
               init: str = "noise", start_res: int = 1, decorrelate: bool = True,
               generator: torch.Generator | None = None, device: str | torch.device = "cpu",
               real: Tensor | None = None) -> ImageParams:
        """``n`` images; ``init`` "noise" (N(0,1) levels, each /#levels, as the reference), "zero", or "real"
        (``real`` images in [0, 1], (n, channels, image_size, image_size): the decode is inverted exactly)."""
        check_choice("parameterisation", parameterisation, PARAMETERISATIONS)
        check_choice("init", init, INITS)
        full = pyramid_resolutions(image_size, start_res)
        if parameterisation == "pixels":
            res = [image_size]
        elif init == "real":
            res = full  # every level present: coarse ones zero, the finest holds the inverted image
        else:
            res = [start_res]
        grow_mode = "noise" if init == "noise" else "mean"
        if init == "real":
            if real is None or tuple(real.shape) != (n, channels, image_size, image_size):
                raise ParamError(f"init='real' needs real images of shape {(n, channels, image_size, image_size)}")
            z = torch.logit(real.float().clamp(1e-4, 1 - 1e-4)) / 2
            if decorrelate and channels == 3:
                z = correlate_colour(z)
            levels = [torch.zeros(n, channels, r, r) for r in res[:-1]] + [z]
        else:
            levels = [torch.randn(n, channels, r, r, generator=generator) for r in res]
            levels = [lv * (0.0 if init == "zero" else 1.0 / len(levels)) for lv in levels]
        return cls([lv.to(device) for lv in levels], image_size, decorrelate, full if parameterisation == "pyramid"
                   else [image_size], grow_mode)

    # use ------------------------------------------------------------------------------------------
    def parameters(self) -> list[Tensor]:
        return self.levels

    @property
    def num_images(self) -> int:
        return self.levels[0].shape[0]

    def pre_sigmoid(self, idx: Tensor | slice | None = None) -> Tensor:
        """Σ_l upsample(level_l) before decorrelation and sigmoid, (n, C, S, S)."""
        s = self.image_size
        out = None
        for lv in self.levels:
            lv = lv if idx is None else lv[idx]
            up = lv if lv.shape[-1] == s else F_nn.interpolate(lv, size=(s, s), mode="bilinear",
                                                              align_corners=False, antialias=False)
            out = up if out is None else out + up
        return out  # type: ignore[return-value]

    def decode(self, idx: Tensor | slice | None = None) -> Tensor:
        """Images in [0, 1] (all, or those selected by ``idx``)."""
        z = self.pre_sigmoid(idx)
        if self.decorrelate:
            z = decorrelate_colour(z)
        return torch.sigmoid(2 * z)

    @property
    def can_grow(self) -> bool:
        return self.levels[-1].shape[-1] < self.resolutions[-1]

    @torch.no_grad()
    def grow(self, generator: torch.Generator | None = None) -> bool:
        """Add the next finer level; existing levels are rescaled by L/(L+1) (as the reference).

        The new level is N(0,1)/(L+1) noise when the images started from noise (the reference's
        ``init_mode="noise"``), else the mean of the upsampled existing levels, which keeps the
        decoded image (up to bilinear re-sampling: exact when the existing levels are 1×1 or the
        new one is full size). Returns False when the pyramid is complete. The optimiser must be
        reset by the caller (as the reference does).
        """
        if not self.can_grow:
            return False
        old, new = len(self.levels), len(self.levels) + 1
        r = self.resolutions[len(self.levels)] if len(self.resolutions) > len(self.levels) else self.image_size
        n, c = self.levels[0].shape[:2]
        dev = self.levels[0].device
        if self.grow_mode == "noise":
            new_level = torch.randn(n, c, r, r, generator=generator).to(dev) / new
        else:
            ups = [lv if lv.shape[-1] == r else F_nn.interpolate(lv, size=(r, r), mode="bilinear",
                                                                 align_corners=False, antialias=False)
                   for lv in self.levels]
            new_level = torch.stack(ups).sum(0) / new
        self.levels = [(lv.detach() * (old / new)).requires_grad_(True) for lv in self.levels]
        self.levels.append(new_level.detach().clone().requires_grad_(True))
        return True

