"""Evaluation of synthetic sets: probe, Classifier Inheritance, KD, baselines, backbone registry."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ddlib import artifacts, data
from ddlib.sfm import inherit as I
from ddlib.sfm.backbones import backbone_key, get_backbone
from ddlib.utils import ParamError


class LinearBackbone(nn.Module):
    """A toy frozen backbone: φ(x) = W · vec(x) (+ optional feature map M after it)."""

    def __init__(self, w: torch.Tensor, image_size: int) -> None:
        super().__init__()
        self.register_buffer("w", w)
        self.feature_dim = w.shape[0]
        self.image_size = image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.T


class MeanColour(nn.Module):
    """φ(x) = per-channel mean: invariant to crops and flips, so colour classes are linearly separable."""

    feature_dim = 3
    image_size = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
    return data.load("digits")


def colour_dataset(n_train: int = 8, n_test: int = 20, seed: int = 0) -> data.Dataset:
    """3 classes; class c has channel c bright (plus noise): separable by mean colour."""
    g = torch.Generator().manual_seed(seed)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.arange(3).repeat_interleave(n)
        x = torch.rand(len(y), 3, 8, 8, generator=g) * 0.5
        x[torch.arange(len(y)), y] += 0.5
        return (x * 255).to(torch.uint8), y

    xtr, ytr = make(n_train)
    xte, yte = make(n_test)
    return data.Dataset("colours", xtr, ytr, xte, yte, ["r", "g", "b"], source="test", spec={"name": "colours"})


FAST = dict(epochs=60, lr=2.0, projector_lr=2.0, views=4, runs=1, batch_size=100)
#: a golden head on the clean view at an effective Adam lr of 1e-2 (lr·B/256 with B = 256)
CLEAN_GOLDEN = I.GoldenConfig(epochs=30, lr=1e-2, batch_size=256, augment=None)


def test_probe_learns_separable_toy() -> None:
    ds = colour_dataset()
    s = I.random_real(ds, 2, seed=0)
    res = I.evaluate_synthetic(s["images"], s["labels"], ds, None, MeanColour(), "probe", I.ProbeConfig(**FAST))
    assert res["acc"] == 1.0
    assert res["loss_curve"][-1] < res["loss_curve"][0]
    assert res["bytes"]["probe_head"] == (3 + 1) * 3 * 4
    assert res["stored_bytes"] == res["bytes"]["images_uint8"] == 6 * 3 * 8 * 8


def test_probe_reference_mode_fresh_views() -> None:
    ds = colour_dataset()
    s = I.random_real(ds, 2, seed=0)
    head = I.train_probe(MeanColour(), s["images"], s["labels"], I.ProbeConfig(**{**FAST, "views": None}))
    assert isinstance(head, nn.Linear) and head.out_features == 3
    acc = (head(MeanColour()(ds.test_x.float() / 255)).argmax(1) == ds.test_y).float().mean()
    assert acc == 1.0


def _toy_pair(d_in: int, d: int, seed: int = 0) -> tuple[LinearBackbone, LinearBackbone, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d_in, generator=g) / math.sqrt(d_in) * 4
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g))
    m = q * torch.linspace(0.5, 2.0, d)  # invertible, condition number 4
    return LinearBackbone(a, 8), LinearBackbone(m @ a, 8), m


def test_ci_projector_reduces_mse_and_recovers_golden_accuracy(digits: data.Dataset) -> None:
    distill, evaluate, _ = _toy_pair(64, 16)
    golden = I.golden_head(distill, digits, CLEAN_GOLDEN)
    test_distill = distill(digits.test_x.float() / 255)
    golden_acc = (golden(test_distill).argmax(1) == digits.test_y).float().mean().item()
    assert golden_acc > 0.7
    s = I.random_real(digits, 5, seed=0)
    cfg = I.ProbeConfig(epochs=300, lr=2.0, projector_lr=2.0, views=8, runs=1)
    proj = I.train_projector(evaluate, distill, s["images"], cfg)
    assert (proj.in_features, proj.out_features) == (16, 16)
    assert proj.history[-1] < 0.01 * proj.history[0]
    logits = I.ci_predict(golden, proj, evaluate(digits.test_x.float() / 255))
    ci_acc = (logits.argmax(1) == digits.test_y).float().mean().item()
    assert ci_acc >= golden_acc - 0.03
    res = I.evaluate_synthetic(s["images"], s["labels"], digits, distill, evaluate, "ci", cfg,
                               CLEAN_GOLDEN)
    assert res["golden_acc"] == pytest.approx(golden_acc)
    assert res["acc"] >= golden_acc - 0.03
    assert res["bytes"]["projector"] == 17 * 16 * 4 and res["bytes"]["golden_head"] == 17 * 10 * 4
    assert res["stored_bytes"] == res["bytes"]["images_uint8"] + res["bytes"]["golden_head"]


def test_kd_trains_a_head_towards_the_teacher(digits: data.Dataset) -> None:
    distill, evaluate, _ = _toy_pair(64, 16)
    golden = I.golden_head(distill, digits, CLEAN_GOLDEN)
    s = I.random_real(digits, 3, seed=1)
    head = I.train_kd(evaluate, golden, distill, s["images"], s["labels"], I.ProbeConfig(**FAST))
    assert head.history[-1] < head.history[0]
    assert (head.in_features, head.out_features) == (16, 10)


def test_golden_head_cache_hit(digits: data.Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    distill, _, _ = _toy_pair(64, 8, seed=3)
    cfg = I.GoldenConfig(epochs=2, augment=None)
    first = I.golden_head(distill, digits, cfg)
    assert artifacts.exists(first.cache_key)

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("recomputed a cached golden head")

    monkeypatch.setattr(I, "_golden_source", boom)
    second = I.golden_head(distill, digits, cfg)
    assert second.cache_key == first.cache_key
    assert torch.equal(second.weight, first.weight)
    # another backbone is another artifact
    other, _, _ = _toy_pair(64, 8, seed=4)
    assert backbone_key(other) != backbone_key(distill)
    with pytest.raises(AssertionError, match="recomputed"):
        I.golden_head(other, digits, cfg)


class Counting(nn.Module):
    """Wraps a backbone and counts the images it embeds."""

    def __init__(self, bb: nn.Module) -> None:
        super().__init__()
        self.bb, self.seen = bb, 0
        self.feature_dim, self.image_size = bb.feature_dim, bb.image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += len(x)
        return self.bb(x)


def test_heads_start_from_the_reference_init(monkeypatch: pytest.MonkeyPatch) -> None:
    """Probe and KD heads from W ~ N(0, 0.01²), b = 0 (the reference's LinearClassifier); the projector
    keeps nn.Linear's default (as the reference's); the projector's Adam rate is ten times the probe's."""
    lrs = []
    real_adam = torch.optim.Adam

    def spy(params, lr, **kw):  # noqa: ANN001, ANN003
        lrs.append(lr)
        return real_adam(params, lr=lr, **kw)

    monkeypatch.setattr(torch.optim, "Adam", spy)
    monkeypatch.setattr(I, "loop", lambda *a, **k: {"loss": [0.0]})  # no training: the heads as initialised
    distill, evaluate = LinearBackbone(torch.randn(400, 192), 8), LinearBackbone(torch.randn(300, 192), 8)
    ds = colour_dataset()
    s = I.random_real(ds, 2, seed=0)
    cfg = I.ProbeConfig(views=2, runs=1)
    head = I.train_probe(evaluate, s["images"], s["labels"], cfg)
    golden = nn.Linear(400, 3)
    kd = I.train_kd(evaluate, golden, distill, s["images"], s["labels"], cfg)
    for h in (head, kd):
        h.requires_grad_(False)
        assert abs(float(h.weight.std()) - 0.01) < 0.0005 and float(h.bias.abs().max()) == 0.0
    proj = I.train_projector(evaluate, distill, s["images"], cfg)
    proj.requires_grad_(False)
    bound = 1 / math.sqrt(300)  # kaiming-uniform: U(−1/√d_in, 1/√d_in)
    assert float(proj.weight.abs().max()) <= bound and float(proj.weight.std()) > 0.5 * bound / math.sqrt(3)
    b = len(s["labels"])  # B = min(batch_size, N) = 6
    assert lrs == pytest.approx([cfg.lr * b / 256, cfg.lr * b / 256, cfg.projector_lr * b / 256])
    assert cfg.projector_lr == 10 * cfg.lr == 0.01  # eval_syn.py: 0.01·B/256 against the probe's 0.001·B/256


def test_golden_head_on_augmented_views_fresh_or_banked() -> None:
    """The reference's golden head sees a fresh augmented view of every image every epoch (epochs·N backbone
    images); the CPU departure embeds a bank of K views once (K·N) and picks one per image per epoch."""
    ds = colour_dataset(n_train=20)
    n = len(ds.train_y)
    assert I.GoldenConfig() == I.GoldenConfig(epochs=10, batch_size=128, lr=1e-3, augment="kd", views=None)
    fresh = Counting(MeanColour())
    head = I.golden_head(fresh, ds, I.GoldenConfig(epochs=6, lr=2.0, seed=1))
    assert fresh.seen == 6 * n + n  # six fresh views of each image, then the clean view for train_acc
    banked = Counting(MeanColour())
    head_b = I.golden_head(banked, ds, I.GoldenConfig(epochs=6, lr=2.0, views=2, seed=1))
    assert banked.seen == 2 * n  # the bank; the clean view is cached (the same backbone key)
    test_f = MeanColour()(ds.test_x.float() / 255)
    for h in (head, head_b):
        assert h.train_acc == 1.0 and (h(test_f).argmax(1) == ds.test_y).float().mean() == 1.0
    again = Counting(MeanColour())
    assert torch.equal(I.golden_head(again, ds, I.GoldenConfig(epochs=6, lr=2.0, views=2, seed=1)).weight,
                       head_b.weight) and again.seen == 0  # the head (and its bank) are cached


def test_real_baselines(digits: data.Dataset) -> None:
    r = I.random_real(digits, 3, seed=0)
    assert r["images"].shape == (30, 1, 8, 8) and r["images"].max() <= 1
    assert torch.equal(r["labels"], torch.arange(10).repeat_interleave(3))
    assert torch.equal(I.random_real(digits, 3, seed=0)["indices"], r["indices"])
    distill, _, _ = _toy_pair(64, 8)
    c = I.centroid_real(distill, digits, 2)
    f = distill(digits.train_x.float() / 255)
    for k in range(10):
        members = torch.nonzero(digits.train_y == k).flatten()
        d = (f[members] - f[members].mean(0)).norm(dim=1)
        assert set(c["indices"][2 * k:2 * k + 2].tolist()) == set(members[d.argsort()[:2]].tolist())


@pytest.mark.parametrize("make", [
    lambda: I.ProbeConfig(epochs=0),
    lambda: I.ProbeConfig(views=0),
    lambda: I.ProbeConfig(crop_scale=(0.5, 0.1)),
    lambda: I.ProbeConfig(kd_weight=1.5),
    lambda: I.GoldenConfig(lr=-1.0),
    lambda: I.GoldenConfig(views=0),
    lambda: I.GoldenConfig(augment="nope"),
    lambda: I.ProbeConfig(projector_lr=0.0),
    lambda: I.random_real(colour_dataset(), 0),
    lambda: I.random_real(colour_dataset(n_train=2), 3),
    lambda: get_backbone("resnet-9000"),
    lambda: get_backbone("inhouse"),
])
def test_bad_parameters_raise(make) -> None:  # noqa: ANN001
    with pytest.raises(ParamError):
        make()


def test_evaluate_synthetic_rejects_bad_inputs() -> None:
    ds = colour_dataset()
    s = I.random_real(ds, 1)
    with pytest.raises(ParamError, match="mode"):
        I.evaluate_synthetic(s["images"], s["labels"], ds, None, MeanColour(), "nope")
    with pytest.raises(ParamError, match="distill_backbone"):
        I.evaluate_synthetic(s["images"], s["labels"], ds, None, MeanColour(), "ci")
    with pytest.raises(ParamError, match="labels"):
        I.evaluate_synthetic(s["images"], s["labels"][:2], ds, None, MeanColour(), "probe")


def test_backbone_registry_random_convnet_is_seeded() -> None:
    ds = colour_dataset()
    a, b = get_backbone("convnet-random", ds), get_backbone("convnet-random", ds)
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(a(x), b(x)) and a(x).shape == (2, a.feature_dim)
    assert backbone_key(a) == backbone_key(b) != backbone_key(get_backbone("convnet-random", ds, seed=1))
    assert not any(p.requires_grad for p in a.parameters())


def test_inhouse_encoder_trains_and_caches() -> None:
    small = data.load("digits", per_class=12)
    kw = dict(epochs=1, progress=False, convnet_width=8, queue_size=64, batch_size=32)
    bb = get_backbone("inhouse", small, **kw)
    assert bb(torch.rand(3, 1, 8, 8)).shape == (3, bb.feature_dim)
    assert bb.ddlib_key == get_backbone("inhouse", small, **kw).ddlib_key
    with pytest.raises(ParamError, match="not accepted"):
        get_backbone("inhouse", small, epochs=1, no_such_option=3)


def test_evaluate_modes_shares_work_and_matches_single_modes(digits: data.Dataset) -> None:
    distill, evaluate, _ = _toy_pair(64, 16)
    s = I.random_real(digits, 2, seed=2)
    cfg, gcfg = I.ProbeConfig(**FAST), I.GoldenConfig(epochs=5, lr=2e-2, batch_size=256, augment=None)
    both = I.evaluate_modes(s["images"], s["labels"], digits, distill, evaluate, ("probe", "ci"), cfg, gcfg)
    assert set(both) == {"probe", "ci"} and "golden_acc" in both["ci"] and "golden_acc" not in both["probe"]
    for mode in ("probe", "ci"):
        single = I.evaluate_synthetic(s["images"], s["labels"], digits, distill, evaluate, mode, cfg, gcfg)
        assert single["acc"] == pytest.approx(both[mode]["acc"])
    with pytest.raises(ParamError, match="modes"):
        I.evaluate_modes(s["images"], s["labels"], digits, distill, evaluate, (), cfg, gcfg)


def test_inhouse_encoder_ignores_the_test_split() -> None:
    kw = dict(epochs=1, progress=False, convnet_width=8, queue_size=64, batch_size=32)
    a = get_backbone("inhouse", data.load("digits", per_class=12), **kw)
    b = get_backbone("inhouse", data.load("digits", per_class=12, test_per_class=3), **kw)
    assert a.ddlib_key == b.ddlib_key


def test_backbone_names_come_from_the_registry(tmp_path) -> None:  # noqa: ANN001
    """Every registry network with weights by its name, every one's random init as ``<name>-random``; a
    pretrained one from a local file (gray data repeated to RGB, ``+gray`` and the size in the key)."""
    import torchvision

    from ddlib.sfm.backbones import backbone_names

    ds = colour_dataset()
    assert {"inhouse", "efficientnet-lite0", "resnet18-imagenet", "convnet-random", "resnet18-random",
            "timm:<name>"} <= set(backbone_names())
    r = get_backbone("resnet18-random", ds, seed=1)
    assert r(torch.rand(2, 3, 8, 8)).shape == (2, 512) and backbone_key(r) == "resnet18-random-seed1-3x8"
    with pytest.raises(ParamError, match="takes no option"):
        get_backbone("convnet-random", ds, epochs=3)
    with pytest.raises(ParamError, match="not known"):
        get_backbone("convnet", ds)  # trained from scratch only: its random init is "convnet-random"
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    gray = data.load("digits", per_class=2)
    bb = get_backbone("resnet18-imagenet", gray, image_size=32, weights=str(path))
    assert backbone_key(bb) == f"resnet18-imagenet-file:{path}+gray@32px"
    assert bb(torch.rand(2, 1, 8, 8)).shape == (2, 512) and not any(p.requires_grad for p in bb.parameters())


def test_from_preset_builds_what_the_chapters_build() -> None:
    """``from_preset``: the in-house encoder with the preset's epochs and width, a random one with a seed, a
    pretrained one at the preset's input size (what chapter 4's ``make_backbone`` does)."""
    from ddlib import presets
    from ddlib.sfm.backbones import from_preset, preset_options

    p = presets.ci("test", dataset="digits", per_class=12)
    ds = data.load(p.dataset, per_class=p.per_class, seed=p.seed, test_per_class=p.test_per_class)
    a = from_preset("inhouse", ds, p, progress=False)
    b = get_backbone("inhouse", ds, epochs=p.encoder_epochs, convnet_width=p.encoder_width, progress=False)
    assert a.ddlib_key == b.ddlib_key
    assert backbone_key(from_preset("convnet-random", ds, p, seed=3)) == "convnet-random-seed3-1x8"
    assert preset_options("efficientnet-lite2", p) == {"image_size": p.image_size}
    assert preset_options("efficientnet-lite2", p, image_size=48) == {"image_size": 48}
