"""Augmentations: shapes, ranges, seeding, gradients, CutMix semantics, agreement with torchvision."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from ddlib.kernels import augment as A
from ddlib.utils import ParamError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(6, 3, 16, 16, generator=gen(123))


OPS = {
    "crop": lambda x, g: A.random_resized_crop(x, 12, (0.2, 1.0), (3 / 4, 4 / 3), g),
    "pad_crop": lambda x, g: A.random_pad_crop(x, 2, None, g),
    "flip": lambda x, g: A.hflip(x, 0.5, g),
    "jitter": lambda x, g: A.color_jitter(x, 0.4, 0.4, 0.4, 0.1, 1.0, g),
    "gray": lambda x, g: A.grayscale(x, 0.5, g),
    "blur": lambda x, g: A.gaussian_blur(x, (0.1, 2.0), 1.0, g),
    "noise": lambda x, g: A.gaussian_noise(x, 0.1, g),
    "cutmix": lambda x, g: A.cutmix(x, 1.0, g)[0],
}


@pytest.mark.parametrize("preset", list(A.AUGMENTS))
def test_presets_shape_range_determinism(preset: str, x: torch.Tensor) -> None:
    y1 = A.augment(x, preset, gen(1))
    y2 = A.augment(x, preset, gen(1))
    assert y1.shape == x.shape and y1.dtype == x.dtype
    assert torch.equal(y1, y2)
    if preset != "none":
        assert not torch.equal(y1, A.augment(x, preset, gen(2)))
    if A.AUGMENTS[preset].noise_std == 0:
        assert y1.min() >= 0 and y1.max() <= 1
    else:
        assert (y1 - x).abs().max() < 2  # noise is not clamped, but stays small


def test_none_is_identity_and_uint8_accepted(x: torch.Tensor) -> None:
    assert torch.equal(A.augment(x, "none", gen()), x)
    u = (x * 255).round().to(torch.uint8)
    assert torch.allclose(A.augment(u, "none", gen()), u.float() / 255)


@pytest.mark.parametrize("op", list(OPS))
def test_every_op_seeded_differentiable_in_range(op: str, x: torch.Tensor) -> None:
    f = OPS[op]
    y1, y2, y3 = f(x, gen(5)), f(x, gen(5)), f(x, gen(6))
    assert torch.equal(y1, y2)
    assert not torch.equal(y1, y3)
    if op != "noise":
        assert y1.min() >= 0 and y1.max() <= 1
    xg = x.clone().requires_grad_(True)
    f(xg, gen(5)).pow(2).sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


@pytest.mark.parametrize("op", list(OPS))
def test_float64_and_device(op: str, x: torch.Tensor) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    xd = x.double().to(device)
    y = OPS[op](xd, gen(3))
    assert y.dtype == torch.float64 and y.device.type == device
    # the same parameters as in float32 on the CPU: the random draws do not depend on dtype/device
    y32 = OPS[op](x, gen(3))
    assert torch.allclose(y.float().cpu(), y32, atol=1e-4)


def test_crop_output_size_and_full_scale_is_identity(x: torch.Tensor) -> None:
    assert A.random_resized_crop(x, 8, (0.5, 1.0), generator=gen()).shape == (6, 3, 8, 8)
    same = A.random_resized_crop(x, None, (1.0, 1.0), (1.0, 1.0), gen())
    assert torch.allclose(same, x, atol=1e-5)
    cfg = dataclasses.replace(A.AUGMENTS["sfm"], size=10)
    assert A.augment(x, cfg, gen()).shape == (6, 3, 10, 10)


def test_pad_crop_is_an_integer_shift() -> None:
    z = torch.arange(1.0, 65.0).view(1, 1, 8, 8) / 64
    for seed in range(5):
        y = A.random_pad_crop(z, 2, generator=gen(seed))[0, 0]
        # every non-zero pixel is a pixel of the input, and rows/columns stay consecutive
        vals = y[y > 0]
        assert torch.isin((vals * 64).round(), torch.arange(1.0, 65.0)).all()
        assert torch.allclose(vals * 64, (vals * 64).round(), atol=1e-4)


def test_flip_probability_extremes(x: torch.Tensor) -> None:
    assert torch.equal(A.hflip(x, 1.0, gen()), x.flip(-1))
    assert torch.equal(A.hflip(x, 0.0, gen()), x)
    flips = sum(int(not torch.equal(A.hflip(x[:1], 0.5, gen(s)), x[:1])) for s in range(200))
    assert 70 < flips < 130


def test_grayscale_matches_torchvision(x: torch.Tensor) -> None:
    import torchvision.transforms.functional as TF

    y = A.grayscale(x, 1.0, gen())
    assert torch.allclose(y, TF.rgb_to_grayscale(x, 3), atol=1e-6)
    one = torch.rand(2, 1, 8, 8)
    assert torch.equal(A.grayscale(one, 1.0, gen()), one)


def test_hsv_round_trip_and_hue_matches_torchvision(x: torch.Tensor) -> None:
    import torchvision.transforms.functional as TF

    from ddlib.kernels.augment import colour as C

    assert torch.allclose(C._hsv_to_rgb(C._rgb_to_hsv(x)), x, atol=1e-5)
    hsv = C._rgb_to_hsv(x)
    shifted = torch.stack((torch.remainder(hsv[:, 0] + 0.1, 1.0), hsv[:, 1], hsv[:, 2]), 1)
    assert torch.allclose(C._hsv_to_rgb(shifted), TF.adjust_hue(x, 0.1), atol=1e-4)


def test_jitter_brightness_only_matches_torchvision(x: torch.Tensor) -> None:
    import torchvision.transforms.functional as TF

    g = gen(9)
    y = A.color_jitter(x[:1], 0.5, 0, 0, 0, 1.0, g)
    f = float((y / x[:1].clamp_min(1e-6))[x[:1] * 1.5 < 1].median())  # the factor actually used
    assert 0.5 <= f <= 1.5
    assert torch.allclose(y, TF.adjust_brightness(x[:1], f), atol=1e-4)


def test_blur_preserves_constant_images_and_smooths() -> None:
    c = torch.full((2, 3, 16, 16), 0.3)
    assert torch.allclose(A.gaussian_blur(c, (0.5, 2.0), 1.0, gen()), c, atol=1e-6)
    noisy = torch.rand(2, 3, 16, 16, generator=gen(1))
    assert A.gaussian_blur(noisy, (1.5, 2.0), 1.0, gen()).std() < noisy.std() * 0.6


def test_noise_std() -> None:
    z = torch.zeros(4, 3, 32, 32)
    assert abs(float(A.gaussian_noise(z, 0.2, gen()).std()) - 0.2) < 0.01


@pytest.mark.parametrize("through", ["op", "preset"])
def test_noise_as_the_reference(through: str) -> None:
    # RandomGaussianNoise(mean=0.5, std=0.2) with p = 0.5 per image, in [0, 1] pixel units: half the images get
    # 0.5 + 0.2·ε on every pixel (the std is fixed, not drawn), the others are untouched
    z = torch.zeros(4000, 3, 8, 8)
    if through == "op":
        y = A.gaussian_noise(z, 0.2, gen(3), mean=0.5, p=0.5)
    else:
        cfg = A.AUGMENTS["sfm"]
        assert (cfg.noise_mean, cfg.noise_std, cfg.noise_p) == (0.5, 0.2, 0.5)
        y = A.augment(z, dataclasses.replace(cfg, crop_scale=None, flip_p=0.0), gen(3))
    touched = (y != 0).flatten(1).any(1)
    assert abs(float(touched.float().mean()) - 0.5) < 0.03  # binomial sd 0.008
    assert torch.equal(y[~touched], z[~touched])
    added = y[touched]
    assert abs(float(added.mean()) - 0.5) < 0.003 and abs(float(added.std()) - 0.2) < 0.003
    per_image = added.flatten(1)
    assert float((per_image.std(1) - 0.2).abs().max()) < 0.06  # 192 pixels per image: the std is not drawn
    assert float((per_image.mean(1) - 0.5).abs().max()) < 0.07
    # p = 1, mean 0 keeps the earlier op's random stream: the same draws as plain N(0, std²) noise
    assert torch.equal(A.gaussian_noise(z[:4], 0.1, gen(5)), 0.1 * torch.randn(4, 3, 8, 8, generator=gen(5)))


def test_added_noise_fields_keep_cache_keys() -> None:
    from ddlib import artifacts
    from ddlib.utils import config_dict

    plain = A.AugmentConfig(crop_scale=(0.2, 1.0), noise_std=0.1)
    assert "noise_mean" not in config_dict(plain) and "noise_p" not in config_dict(plain)
    assert config_dict(A.AUGMENTS["sfm"])["noise_p"] == 0.5
    key = artifacts.make_key("x", None, plain)
    assert key != artifacts.make_key("x", None, dataclasses.replace(plain, noise_p=0.5))


def test_cutmix_semantics(x: torch.Tensor) -> None:
    mixed, perm, lam = A.cutmix(x, 1.0, gen(4))
    assert sorted(perm.tolist()) == list(range(len(x)))
    assert 0.0 <= lam <= 1.0
    from_self = (mixed == x).all(1).float()       # pixels kept from the image itself
    from_other = (mixed == x[perm]).all(1).float()
    assert torch.all((from_self + from_other) >= 1)
    # lam is the fraction of each image that is still its own (the box is shared by the batch)
    own = 1.0 - ((from_other == 1) & (from_self == 0)).float().mean(dim=(1, 2))
    moved = perm != torch.arange(len(x))
    assert torch.allclose(own[moved], torch.full_like(own[moved], lam), atol=1e-6)
    lams = [A.cutmix(x, 1.0, gen(s))[2] for s in range(60)]
    # Beta(1, 1) has mean 1/2; clipping the box at the border only shrinks it, so lam's mean is above
    assert 0.5 < sum(lams) / len(lams) < 0.85


def test_bad_configs_raise_param_error(x: torch.Tensor) -> None:
    with pytest.raises(ParamError, match="augment"):
        A.augment(x, "simclr", gen())
    with pytest.raises(ParamError, match="crop_scale"):
        A.AugmentConfig(crop_scale=(0.5, 0.2))
    with pytest.raises(ParamError, match="flip_p"):
        A.AugmentConfig(flip_p=1.5)
    with pytest.raises(ParamError, match="hue"):
        A.AugmentConfig(jitter=(0.4, 0.4, 0.4, 0.8))
    with pytest.raises(ParamError, match="pad"):
        A.AugmentConfig(pad=4)  # with the default crop_scale: two crops
    with pytest.raises(ParamError, match="4-d"):
        A.augment(torch.rand(3, 8, 8), "kd", gen())


def test_moco_v2_preset_is_the_reference_recipe() -> None:
    m = A.AUGMENTS["moco_v2"]
    assert (m.crop_scale, m.jitter, m.jitter_p, m.grayscale_p, m.blur_p, m.flip_p) == \
        ((0.2, 1.0), (0.4, 0.4, 0.4, 0.1), 0.8, 0.2, 0.5, 0.5)
    kd = dataclasses.replace(A.AUGMENTS["kd"], crop_scale=(0.1, 1.0))
    assert kd.crop_scale == (0.1, 1.0) and kd.flip_p == 0.5


@pytest.mark.parametrize("preset", ["moco_v2", "sfm", "crop_flip"])
def test_pipeline_equals_the_single_ops_in_order(preset: str, x: torch.Tensor) -> None:
    # augment draws every op's parameters in the pipeline order, as the single ops do one after the other
    cfg = A.AUGMENTS[preset]
    g1, g2 = gen(11), gen(11)
    y = x
    if cfg.crop_scale is not None:
        y = A.random_resized_crop(y, cfg.size, cfg.crop_scale, cfg.crop_ratio, g1)
    else:
        y = A.random_pad_crop(y, cfg.pad, cfg.size, g1)
    y = A.hflip(y, cfg.flip_p, g1)
    if cfg.jitter_p > 0:
        y = A.color_jitter(y, *cfg.jitter, p=cfg.jitter_p, generator=g1)
    if cfg.grayscale_p > 0:
        y = A.grayscale(y, cfg.grayscale_p, g1)
    if cfg.blur_p > 0:
        y = A.gaussian_blur(y, cfg.blur_sigma, cfg.blur_p, g1)
    if cfg.noise_std > 0:
        y = A.gaussian_noise(y, cfg.noise_std, g1, mean=cfg.noise_mean, p=cfg.noise_p)
    assert torch.equal(A.augment(x, preset, g2), y)


@pytest.mark.parametrize("preset", ["moco_v2", "sfm"])
def test_chunking_changes_nothing(preset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.rand(9, 3, 20, 20, generator=gen(3)).requires_grad_(True)
    whole = A.augment(x, preset, gen(4))
    whole.square().sum().backward()
    g_whole = x.grad.clone()
    x.grad = None
    monkeypatch.setattr(A, "CHUNK_ELEMS", 2 * 3 * 20 * 20)  # two images per chunk, a last chunk of one
    chunked = A.augment(x, preset, gen(4))
    chunked.square().sum().backward()
    assert torch.equal(whole, chunked) and torch.equal(g_whole, x.grad)


def test_ops_on_a_subset_leave_the_others_untouched(x: torch.Tensor) -> None:
    # with p = 0.5 some images are jittered / blurred / grayed and the rest are the input, bit for bit
    for op in (lambda g: A.color_jitter(x, 0.4, 0.4, 0.4, 0.1, 0.5, g), lambda g: A.gaussian_blur(x, (1.0, 2.0), 0.5, g),
               lambda g: A.grayscale(x, 0.5, g)):
        y = op(gen(8))
        same = (y == x).flatten(1).all(1)
        assert 0 < int(same.sum()) < len(x)


def test_blur_sigma_scaled_with_image_size() -> None:
    def spread(side: int, sigma: float, scale: bool) -> float:
        img = torch.zeros(1, 1, side, side)
        img[0, 0, side // 2, side // 2] = 1.0  # an impulse: the blurred image is the kernel
        y = A.gaussian_blur(img, (sigma, sigma), 1.0, gen(), scale_with_size=scale)[0, 0]
        t = torch.arange(side, dtype=torch.float32) - side // 2
        return float((y.sum(0) * t ** 2).sum() / y.sum())  # variance along x: sigma^2 (sampled Gaussian)

    assert spread(224, 1.5, True) == pytest.approx(spread(224, 1.5, False), abs=1e-6)  # 224 px: unchanged
    assert spread(112, 2.0, True) == pytest.approx(spread(112, 1.0, False), abs=1e-6)  # half the side: half sigma
    assert spread(112, 1.0, False) == pytest.approx(1.0, rel=0.01)
    # the pipeline's config carries sigma in the images' own pixels (the encoder scales it: test_encoder)
    assert "blur_scale_with_size" not in {f.name for f in dataclasses.fields(A.AugmentConfig)}


@pytest.mark.parametrize("preset", list(A.AUGMENTS))
def test_the_cuda_path_gives_the_same_images(preset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # on CUDA the batch runs whole and a random op computes every image then selects with torch.where;
    # run that path here on the CPU and compare with the chunked, subset path (and its gradients)
    x = torch.rand(7, 3, 18, 18, generator=gen(5)).requires_grad_(True)
    monkeypatch.setattr(A, "CHUNK_ELEMS", 3 * 18 * 18 * 2)
    y_cpu = A.augment(x, preset, gen(6))
    (g_cpu,) = torch.autograd.grad(y_cpu.square().sum(), x)
    monkeypatch.setattr(A, "CHUNKED_DEVICES", ())
    y_dev = A.augment(x, preset, gen(6))
    (g_dev,) = torch.autograd.grad(y_dev.square().sum(), x)
    assert torch.equal(y_cpu, y_dev)
    torch.testing.assert_close(g_cpu, g_dev, rtol=0, atol=1e-6)
