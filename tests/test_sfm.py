"""SFM/LGM: statistics, the flow identity, the pyramid, the losses, the chunked step and bad parameters."""
from __future__ import annotations

import json

import pytest
import torch

from ddlib import artifacts, data, models
from ddlib.kernels.augment import AUGMENTS
from ddlib.sfm import stats, synth
from ddlib.utils import ParamError


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: one thread avoids OpenMP spin-waiting on a shared CPU (10x faster here)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_backbone() -> torch.nn.Module:
    """A tiny random ConvNet on 8x8 RGB images (2 blocks, width 16): a frozen feature extractor."""
    torch.manual_seed(0)
    return models.as_backbone(models.create("convnet", 4, 3, 8, width=16, depth=2), 8, "tiny")


@pytest.fixture(scope="module")
def tiny_ds() -> data.Dataset:
    ds = data.load("synthetic-patterns", per_class=12)
    ds.train_x = synth.resize_images(ds.train_x, 8).mul(255).round().to(torch.uint8)
    return ds


def tiny_cfg(**kw) -> synth.SynthConfig:
    base = dict(ipc=2, steps=40, lr=0.05, image_size=8, crop=8, grow_every=10, augs_per_batch=3, seed=0)
    return synth.SynthConfig(**{**base, **kw})


# ----------------------------------------------------------------------------- statistics
def test_flows_hand_computed() -> None:
    mu = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    # F_0 = mean(μ1, μ2) − μ0 = (1, 2); F_1 = mean(μ0, μ2) − μ1 = (−2, 2); F_2 = mean(μ0, μ1) − μ2 = (1, −4)
    expected = torch.tensor([[1.0, 2.0], [-2.0, 2.0], [1.0, -4.0]])
    assert torch.allclose(stats.flows(mu), expected)
    assert float(stats.flow_cosine(expected, 3 * expected)) == pytest.approx(1.0)
    assert float(stats.flow_cosine(expected, -expected)) == pytest.approx(-1.0)


def test_class_centres_match_means_and_cache(tiny_backbone, tiny_ds) -> None:
    mu = stats.class_centres(tiny_backbone, tiny_ds.train_x, tiny_ds.train_y, tiny_ds.num_classes, batch_size=7)
    with torch.no_grad():
        f = tiny_backbone(tiny_ds.train_x.float() / 255)
    ref = torch.stack([f[tiny_ds.train_y == c].mean(0) for c in range(tiny_ds.num_classes)])
    assert torch.allclose(mu, ref, atol=1e-5)
    st = stats.dataset_stats(tiny_backbone, tiny_ds, "tiny")
    assert artifacts.exists(st["key"]) and torch.allclose(st["flows"], stats.flows(ref), atol=1e-5)
    again = stats.dataset_stats(tiny_backbone, tiny_ds, "tiny")
    assert again["key"] == st["key"] and torch.equal(again["centres"], st["centres"])


def test_lgm_gradient_at_zero_head_is_scaled_flow(tiny_backbone, tiny_ds) -> None:
    """∇_W CE at W = 0, b = 0 on a class-balanced batch = (C−1)/C² · F(batch class means); ∇_b CE = 0."""
    c = tiny_ds.num_classes
    idx = synth.balanced_indices(tiny_ds.train_y, c, 5, torch.Generator().manual_seed(1))
    with torch.no_grad():
        z = tiny_backbone(tiny_ds.train_x[idx].float() / 255)
    y = tiny_ds.train_y[idx]
    w = torch.zeros(c, z.shape[1], requires_grad=True)
    b = torch.zeros(c, requires_grad=True)
    g = synth.linear_ce_grad(z, y, w, b, create_graph=False)
    gw, gb = g[: w.numel()].view_as(w), g[w.numel():]
    expected = (c - 1) / c**2 * stats.flows(stats.class_means(z, y, c))
    assert torch.allclose(gw, expected, atol=1e-6, rtol=1e-5)
    assert torch.allclose(gb, torch.zeros(c), atol=1e-7)
    assert float(stats.flow_cosine(gw, expected)) == pytest.approx(1.0, abs=1e-6)


# ----------------------------------------------------------------------------- parameterisation
def test_pyramid_growth_keeps_decoded_image() -> None:
    g = torch.Generator().manual_seed(0)
    # exact cases: the new level is full size (8 px), or the existing levels are 1x1
    for size, res in ((8, [1, 2, 4]), (16, [1])):
        p = synth.ImageParams([torch.randn(3, 3, r, r, generator=g) / len(res) for r in res], size,
                              resolutions=synth.pyramid_resolutions(size), grow_mode="mean")
        before = p.decode()
        assert p.grow() and [lv.shape[-1] for lv in p.levels] == res + [synth.pyramid_resolutions(size)[len(res)]]
        assert torch.allclose(p.decode(), before, atol=1e-6)
    # in general up to bilinear re-sampling (upsample∘upsample != upsample)
    p = synth.ImageParams([torch.randn(3, 3, r, r, generator=g) / 3 for r in (1, 2, 4)], 32,
                          resolutions=synth.pyramid_resolutions(32), grow_mode="mean")
    before = p.decode()
    p.grow()
    assert (p.decode() - before).abs().max() < 0.05
    # a complete pyramid does not grow; noise growth rescales the old levels by L/(L+1)
    full = synth.ImageParams.create(2, 3, 8, init="zero")
    while full.grow():
        pass
    assert [lv.shape[-1] for lv in full.levels] == [1, 2, 4, 8] and not full.grow()
    noisy = synth.ImageParams.create(2, 3, 8, init="noise", generator=g)
    old = noisy.levels[0].detach().clone()
    noisy.grow(g)
    assert torch.allclose(noisy.levels[0], old / 2) and noisy.levels[1].shape == (2, 3, 2, 2)


def test_real_init_inverts_the_decode(tiny_ds) -> None:
    real = synth.real_init_images(tiny_ds.train_x, tiny_ds.train_y, 4, 2, 8, 3, torch.Generator().manual_seed(0))
    for par in ("pyramid", "pixels"):
        p = synth.ImageParams.create(8, 3, 8, par, init="real", real=real)
        assert torch.allclose(p.decode(), real.clamp(1e-4, 1 - 1e-4), atol=1e-4)
    assert torch.equal(torch.arange(4).repeat_interleave(2), tiny_ds.train_y[
        synth.balanced_indices(tiny_ds.train_y, 4, 2, torch.Generator().manual_seed(0))])


# ----------------------------------------------------------------------------- the losses
@pytest.mark.parametrize("method", ["sfm", "lgm"])
def test_losses_decrease_on_a_tiny_problem(tiny_backbone, tiny_ds, method) -> None:
    res = synth.distill(tiny_backbone, tiny_ds, tiny_cfg(method=method), progress=False)
    loss = res["history"]["loss"]
    assert len(loss) == 40 and res["images"].shape == (8, 3, 8, 8)
    assert 0 <= float(res["images"].min()) and float(res["images"].max()) <= 1
    assert sum(loss[-5:]) / 5 < 0.8 * sum(loss[:5]) / 5
    assert res["levels"] == [1, 2, 4, 8] and res["wall_time"] > 0
    cos = res["history"]["flow_cos"]
    assert cos[-1] > cos[0]


def test_chunked_sfm_gives_the_direct_gradient(tiny_backbone, tiny_ds) -> None:
    st = stats.dataset_stats(tiny_backbone, tiny_ds, "tiny")
    labels = torch.arange(4).repeat_interleave(3)
    aug = synth._aug_config(tiny_cfg())
    grads = {}
    for two_pass in (False, True):
        g = torch.Generator().manual_seed(3)
        p = synth.ImageParams.create(12, 3, 8, init="noise", generator=g)
        while p.grow(g):
            pass
        loss, s_hat = synth.sfm_backward(p, tiny_backbone, st["flows"], labels, 4, aug, (0, 7), chunk_size=5,
                                         two_pass=two_pass)
        grads[two_pass] = ([lv.grad.clone() for lv in p.levels], loss, s_hat)
    (g0, l0, s0), (g1, l1, s1) = grads[False], grads[True]
    assert l0 == pytest.approx(l1, abs=1e-6) and torch.allclose(s0, s1, atol=1e-6)
    for a, b in zip(g0, g1):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
    assert any(float(a.abs().max()) > 0 for a in g0)


def test_sfm_from_statistics_only_and_chunked_distill(tiny_backbone, tiny_ds) -> None:
    st = stats.dataset_stats(tiny_backbone, tiny_ds, "tiny")
    res = synth.distill(tiny_backbone, st, tiny_cfg(steps=5, chunk_size=3), progress=False)
    assert res["images"].shape == (8, 3, 8, 8) and len(res["history"]["flow_cos"]) == 5


def test_save_and_load_synthetic(tmp_path, tiny_backbone, tiny_ds) -> None:
    res = synth.distill(tiny_backbone, tiny_ds, tiny_cfg(steps=2), progress=False)
    paths = synth.save_synthetic(res, tmp_path / "out", classes=tiny_ds.classes, backbone="tiny", dataset="x")
    back = synth.load_synthetic(tmp_path / "out")
    assert torch.equal(back["images"], res["images"]) and back["labels"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert back["config"]["method"] == "sfm" and back["classes"] == tiny_ds.classes
    meta = json.loads(paths["json"].read_text())
    assert meta["peak_mem"] >= 0 and meta["config"]["ipc"] == 2 and paths["grid"].stat().st_size > 0


# ----------------------------------------------------------------------------- bad parameters
@pytest.mark.parametrize("kw, name", [
    (dict(method="dm"), "method"), (dict(ipc=0), "ipc"), (dict(steps=0), "steps"), (dict(lr=0.0), "lr"),
    (dict(parameterisation="fourier"), "parameterisation"), (dict(init="ones"), "init"),
    (dict(chunk_size=0), "chunk_size"), (dict(method="lgm", chunk_size=4), "chunk_size"),
    (dict(augment="nope"), "augment"), (dict(augs_per_batch=0), "augs_per_batch"), (dict(crop=1), "crop"),
    (dict(grow_every=0), "grow_every"), (dict(channels=2), "channels"), (dict(start_res=99, image_size=8), "start_res"),
])
def test_bad_config_raises(kw, name) -> None:
    with pytest.raises(ParamError, match=name):
        synth.SynthConfig(**kw)


def test_bad_inputs_raise(tiny_backbone, tiny_ds) -> None:
    st = stats.dataset_stats(tiny_backbone, tiny_ds, "tiny")
    with pytest.raises(ParamError, match="needs real images"):
        synth.distill(tiny_backbone, st, tiny_cfg(method="lgm"), progress=False)
    with pytest.raises(ParamError, match="ds_or_stats"):
        synth.distill(tiny_backbone, {"x": 1}, tiny_cfg(), progress=False)
    with pytest.raises(ParamError, match="C >= 2"):
        stats.flows(torch.zeros(1, 4))
    with pytest.raises(ParamError, match="no training images"):
        stats.class_centres(tiny_backbone, tiny_ds.train_x[:3], torch.zeros(3, dtype=torch.long), 2)
    assert "sfm" in AUGMENTS
