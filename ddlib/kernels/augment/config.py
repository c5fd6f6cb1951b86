"""The augmentation pipelines: :class:`AugmentConfig` (one pipeline; each op off at probability or size 0)
and the named presets :data:`AUGMENTS` (MoCo v2's views, the teacher's crop + flip, the KD students', SFM's)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ddlib.utils import ADDED_FIELD, ParamError, check_choice, check_float, check_int

__all__ = ["AugmentConfig", "BLUR_REF_SIDE", "AUGMENTS", "get_augment"]


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

    Gaussian noise (:func:`gaussian_noise`): with probability ``noise_p`` per image, every pixel gets
    ``noise_mean + noise_std·ε``, ε ~ N(0, 1), in [0, 1] pixel units, before the backbone's normalisation,
    not clamped: the LGM/SFM code's ``RandomGaussianNoise(mean=0.5, std=0.2)`` (p = 0.5) is
    ``noise_mean=0.5, noise_std=0.2, noise_p=0.5``. ``noise_mean`` and ``noise_p`` were added later
    (:data:`~ddlib.utils.ADDED_FIELD`: at their defaults 0 and 1 they leave cache keys as they were).
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
    noise_mean: float = field(default=0.0, metadata=ADDED_FIELD)
    noise_p: float = field(default=1.0, metadata=ADDED_FIELD)

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
        check_float("noise_mean", self.noise_mean, -10.0, 10.0)
        check_float("noise_p", self.noise_p, 0.0, 1.0)
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
#: the caller with :func:`cutmix`). ``sfm`` is the LGM/SFM code's ``AugStandard``: flip, RandomResizedCrop
#: (0.08–1) and ``RandomGaussianNoise(mean=0.5, std=0.2)`` applied to each image with p = 0.5
#: (``src/augmentation/standard_aug.py`` and ``ops/random_gaussian_noise.py`` of the LGM code; the mean is
#: an offset of half the pixel range added with the noise).
AUGMENTS: dict[str, AugmentConfig] = {
    "none": AugmentConfig(crop_scale=None, flip_p=0.0),
    "crop_flip": AugmentConfig(crop_scale=None, pad=4, flip_p=0.5),
    "moco_v2": AugmentConfig(crop_scale=(0.2, 1.0), flip_p=0.5, jitter=(0.4, 0.4, 0.4, 0.1), jitter_p=0.8,
                             grayscale_p=0.2, blur_p=0.5, blur_sigma=(0.1, 2.0)),
    "kd": AugmentConfig(crop_scale=(0.08, 1.0), flip_p=0.5),
    "sfm": AugmentConfig(crop_scale=(0.08, 1.0), flip_p=0.5, noise_std=0.2, noise_mean=0.5, noise_p=0.5),
}


def get_augment(cfg: AugmentConfig | str | None) -> AugmentConfig | None:
    """The config for a preset name (ParamError listing the presets if unknown), or ``cfg`` itself."""
    if cfg is None or isinstance(cfg, AugmentConfig):
        return cfg
    check_choice("augment", cfg, list(AUGMENTS))
    return AUGMENTS[cfg]


