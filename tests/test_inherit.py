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


FAST = dict(epochs=60, lr=2.0, views=4, runs=1, batch_size=100)


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
    golden = I.golden_head(distill, digits, I.GoldenConfig(epochs=30, lr=1e-2))
    test_distill = distill(digits.test_x.float() / 255)
    golden_acc = (golden(test_distill).argmax(1) == digits.test_y).float().mean().item()
    assert golden_acc > 0.7
    s = I.random_real(digits, 5, seed=0)
    cfg = I.ProbeConfig(epochs=300, lr=2.0, views=8, runs=1)
    proj = I.train_projector(evaluate, distill, s["images"], cfg)
    assert (proj.in_features, proj.out_features) == (16, 16)
    assert proj.history[-1] < 0.01 * proj.history[0]
    logits = I.ci_predict(golden, proj, evaluate(digits.test_x.float() / 255))
    ci_acc = (logits.argmax(1) == digits.test_y).float().mean().item()
    assert ci_acc >= golden_acc - 0.03
    res = I.evaluate_synthetic(s["images"], s["labels"], digits, distill, evaluate, "ci", cfg,
                               I.GoldenConfig(epochs=30, lr=1e-2))
    assert res["golden_acc"] == pytest.approx(golden_acc)
    assert res["acc"] >= golden_acc - 0.03
    assert res["bytes"]["projector"] == 17 * 16 * 4 and res["bytes"]["golden_head"] == 17 * 10 * 4
    assert res["stored_bytes"] == res["bytes"]["images_uint8"] + res["bytes"]["golden_head"]


def test_kd_trains_a_head_towards_the_teacher(digits: data.Dataset) -> None:
    distill, evaluate, _ = _toy_pair(64, 16)
    golden = I.golden_head(distill, digits, I.GoldenConfig(epochs=30, lr=1e-2))
    s = I.random_real(digits, 3, seed=1)
    head = I.train_kd(evaluate, golden, distill, s["images"], s["labels"], I.ProbeConfig(**FAST))
    assert head.history[-1] < head.history[0]
    assert (head.in_features, head.out_features) == (16, 10)


def test_golden_head_cache_hit(digits: data.Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    distill, _, _ = _toy_pair(64, 8, seed=3)
    cfg = I.GoldenConfig(epochs=2)
    first = I.golden_head(distill, digits, cfg)
    assert artifacts.exists(first.cache_key)

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("recomputed a cached golden head")

    monkeypatch.setattr(I, "_fit_head_on_features", boom)
    second = I.golden_head(distill, digits, cfg)
    assert second.cache_key == first.cache_key
    assert torch.equal(second.weight, first.weight)
    # another backbone is another artifact
    other, _, _ = _toy_pair(64, 8, seed=4)
    assert backbone_key(other) != backbone_key(distill)
    with pytest.raises(AssertionError, match="recomputed"):
        I.golden_head(other, digits, cfg)


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
    cfg, gcfg = I.ProbeConfig(**FAST), I.GoldenConfig(epochs=5, lr=1e-2)
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
