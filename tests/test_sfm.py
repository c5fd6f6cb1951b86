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
    base = dict(ipc=2, steps=40, lr=0.05, image_size=8, crop=8, grow_every=10, seed=0)
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
    real = synth.real_init_images(tiny_ds, 2, 8, 3, seed=0)
    for par in ("pyramid", "pixels"):
        p = synth.ImageParams.create(8, 3, 8, par, init="real", real=real)
        assert torch.allclose(p.decode(), real.clamp(1e-4, 1 - 1e-4), atol=1e-4)
    assert torch.equal(torch.arange(4).repeat_interleave(2), tiny_ds.train_y[
        synth.balanced_indices(tiny_ds.train_y, 4, 2, torch.Generator().manual_seed(0))])


def test_real_init_starts_from_the_random_real_set_of_its_seed(tiny_backbone, tiny_ds) -> None:
    """init="real" starts from baselines.random_real's draw of the seed, so SFM − random real over paired seeds
    measures what distillation adds to the images it started from."""
    from ddlib.baselines import random_real

    start = synth.distill(tiny_backbone, tiny_ds, tiny_cfg(init="real", steps=1, lr=1e-9, seed=3), progress=False)
    drawn = random_real(tiny_ds, 2, seed=3)
    assert torch.allclose(start["images"], synth.resize_images(drawn["images"], 8).clamp(1e-4, 1 - 1e-4), atol=1e-4)
    assert torch.equal(start["labels"], drawn["labels"])
    assert synth.images_key(tiny_ds, tiny_cfg(init="real"), "tiny") != synth.images_key(tiny_ds, tiny_cfg(), "tiny")


# ----------------------------------------------------------------------------- the losses
@pytest.mark.parametrize("method", ["sfm", "lgm"])
def test_losses_decrease_on_a_tiny_problem(tiny_backbone, tiny_ds, method) -> None:
    res = synth.distill(tiny_backbone, tiny_ds, tiny_cfg(method=method, augs_per_batch=3 if method == "lgm" else None),
                        progress=False)
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


def test_chunked_distillation_follows_the_direct_run_on_the_same_views(tiny_backbone, tiny_ds, monkeypatch) -> None:
    """Chunking changes how the gradient is computed, not the loss nor the run: with the same chunks (so the same
    augmentation draws) the two-pass step and one graph over all chunks give the same images after many
    steps. A chunked run draws its views per chunk, so it sees other views than the direct run (one chunk):
    their runs differ as two augmentation streams do, not by a different gradient."""
    cfg = tiny_cfg(steps=15, chunk_size=3)
    two_pass = synth.distill(tiny_backbone, tiny_ds, cfg, progress=False)
    original = synth.sfm_backward
    monkeypatch.setattr(synth, "sfm_backward", lambda *a, **k: original(*a, **{**k, "two_pass": False}))
    one_graph = synth.distill(tiny_backbone, tiny_ds, cfg, progress=False)
    assert torch.allclose(two_pass["images"], one_graph["images"], atol=1e-5)
    assert two_pass["history"]["loss"] == pytest.approx(one_graph["history"]["loss"], abs=1e-5)
    monkeypatch.setattr(synth, "sfm_backward", original)
    direct = synth.distill(tiny_backbone, tiny_ds, tiny_cfg(steps=15), progress=False)
    assert not torch.allclose(direct["images"], two_pass["images"], atol=1e-3)  # other draws, another run


def test_view_flow_cosines_score_every_set_on_the_same_views(tiny_backbone, tiny_ds) -> None:
    from ddlib.kernels.augment import augment

    st = stats.dataset_stats(tiny_backbone, tiny_ds, "tiny")
    aug = synth._aug_config(tiny_cfg())
    labels = torch.arange(4).repeat_interleave(2)
    a, b = torch.rand(8, 3, 8, 8, generator=torch.Generator().manual_seed(1)), torch.rand(8, 3, 8, 8)
    ev = stats.view_flow_cosines(tiny_backbone, a, labels, st["flows"], aug, views=3, seed=5)
    assert ev == stats.view_flow_cosines(tiny_backbone, a, labels, st["flows"], aug, views=3, seed=5)
    with torch.no_grad():
        feats = [tiny_backbone(augment(a, aug, generator=torch.Generator().manual_seed(5 + v))) for v in range(3)]
        one = [float(stats.flow_cosine(st["flows"], stats.flows(stats.class_means(f, labels, 4)))) for f in feats]
        mean = stats.flows(stats.class_means(sum(feats) / 3, labels, 4))
        clean = stats.flows(stats.class_means(tiny_backbone(a), labels, 4))
    assert ev["per_view"] == pytest.approx(one, abs=1e-6)
    assert ev["mean_view"] == pytest.approx(float(stats.flow_cosine(st["flows"], mean)), abs=1e-6)
    assert ev["clean"] == pytest.approx(float(stats.flow_cosine(st["flows"], clean)), abs=1e-6)
    assert ev["per_view_mean"] == pytest.approx(sum(one) / 3, abs=1e-6)
    assert stats.view_flow_cosines(tiny_backbone, b, labels, st["flows"], aug, views=3, seed=5)["per_view"] != ev["per_view"]


def test_sfm_k_averages_k_views_per_image(tiny_backbone, tiny_ds) -> None:
    """SFM-k: each image's feature is the mean of φ over its k augmented views (the view-major repeat drawn
    with the step's chunk generator); the two-pass step gives the direct gradient for k > 1 too."""
    from ddlib.kernels.augment import augment

    st = stats.dataset_stats(tiny_backbone, tiny_ds, "tiny")
    labels = torch.arange(4).repeat_interleave(2)
    aug = synth._aug_config(tiny_cfg())
    g = torch.Generator().manual_seed(3)
    p = synth.ImageParams.create(8, 3, 8, init="noise", generator=g)
    out = {}
    for two_pass in (False, True):
        for lv in p.levels:
            lv.grad = None
        loss, s_hat = synth.sfm_backward(p, tiny_backbone, st["flows"], labels, 4, aug, (0, 5), chunk_size=3,
                                         two_pass=two_pass, views=3)
        out[two_pass] = (loss, s_hat, [lv.grad.clone() for lv in p.levels])
    with torch.no_grad():
        per_image = []
        for k, sl in enumerate(synth._chunks(8, 3)):
            x = augment(p.decode(sl).repeat(3, 1, 1, 1), aug, synth._generator(torch.device("cpu"), 0, 5, k))
            per_image.append(tiny_backbone(x).view(3, -1, tiny_backbone.feature_dim).mean(0))
        expected = stats.class_means(torch.cat(per_image), labels, 4)
    assert torch.allclose(out[False][1], expected, atol=1e-6) and torch.allclose(out[True][1], expected, atol=1e-6)
    assert out[False][0] == pytest.approx(1 - float(stats.flow_cosine(st["flows"], stats.flows(expected))), abs=1e-6)
    for a, b in zip(out[False][2], out[True][2]):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
    one = synth.sfm_backward(p, tiny_backbone, st["flows"], labels, 4, aug, (0, 5), views=1)[1]
    assert not torch.allclose(one, expected, atol=1e-4)  # one view is not the mean of three


def test_augs_per_batch_defaults_keys_and_records(tiny_backbone, tiny_ds) -> None:
    """SFM-1 and LGM-10 by default; the value used is what runs, records and cache keys carry."""
    assert synth.SynthConfig().augs == 1 and synth.SynthConfig(method="lgm").augs == 10
    assert synth.SynthConfig(augs_per_batch=4).resolved().augs_per_batch == 4
    assert synth.SynthConfig().resolved() == synth.SynthConfig(augs_per_batch=1)
    one = synth.distill_cached(tiny_backbone, tiny_ds, tiny_cfg(steps=2), "tiny", progress=False)
    again = synth.distill_cached(tiny_backbone, tiny_ds, tiny_cfg(steps=2, augs_per_batch=1), "tiny", progress=False)
    two = synth.distill_cached(tiny_backbone, tiny_ds, tiny_cfg(steps=2, augs_per_batch=2), "tiny", progress=False)
    assert one["config"]["augs_per_batch"] == 1 and two["config"]["augs_per_batch"] == 2
    assert again["key"] == one["key"] and again["cached"] and not one["cached"]
    assert two["key"] != one["key"] and not two["cached"]
    assert not torch.equal(one["images"], two["images"])


def test_snapshots_are_the_shorter_runs(tiny_backbone, tiny_ds) -> None:
    """The images after s steps of one run are those of a run of s steps (one trajectory, checkpoints)."""
    res = synth.distill(tiny_backbone, tiny_ds, tiny_cfg(steps=12), progress=False, snapshots=(5, 12))
    short = synth.distill(tiny_backbone, tiny_ds, tiny_cfg(steps=5), progress=False)
    assert torch.equal(res["snapshots"][5], short["images"]) and torch.equal(res["snapshots"][12], res["images"])
    with pytest.raises(ParamError, match="snapshot"):
        synth.distill(tiny_backbone, tiny_ds, tiny_cfg(steps=3), progress=False, snapshots=(4,))


def test_a_cache_hit_records_its_own_time(tiny_backbone, tiny_ds) -> None:
    """A loaded synthetic set: wall_s is this call's (about 0), the run that made it is original_wall_s."""
    cfg = tiny_cfg(steps=3, seed=11)
    first = synth.distill_cached(tiny_backbone, tiny_ds, cfg, "tiny", progress=False)
    assert synth.run_times(first) == {"wall_s": first["wall_time"], "cached": False}
    hit = synth.distill_cached(tiny_backbone, tiny_ds, cfg, "tiny", progress=False)
    t = synth.run_times(hit)
    assert t["cached"] and t["original_wall_s"] == first["wall_time"] and t["wall_s"] == hit["load_s"]
    assert synth.run_times(hit, elapsed_s=0.25)["wall_s"] == 0.25
    assert 0 <= t["wall_s"] < 5


def test_balanced_sampler_distribution() -> None:
    """Every draw has per_class indices of each class; a class's images are walked without replacement until
    they run out, so over many draws every image is drawn equally often; small classes with replacement."""
    y = torch.tensor([2] * 7 + [0] * 12 + [1] * 30 + [3] * 3)[torch.randperm(52, generator=torch.Generator().manual_seed(0))]
    s = synth.BalancedSampler(y, 4, 4, torch.Generator().manual_seed(1))
    counts = torch.zeros(len(y), dtype=torch.long)
    for step in range(300):
        idx = s.draw()
        assert torch.equal(y[idx], torch.arange(4).repeat_interleave(4))
        if step < 3:  # class 0 (12 images) gives 3 disjoint draws of 4 before it is reshuffled
            assert len(set(idx[:4].tolist())) == 4
        counts += torch.bincount(idx, minlength=len(y))
    per_image = {c: counts[y == c] for c in range(4)}
    assert all(int(v.sum()) == 1200 for v in per_image.values())
    assert torch.equal(per_image[0], torch.full((12,), 100))  # 3 draws a pass, 100 whole passes
    # 30 images, 7 draws (28 images) a pass: each image in all but about 1 in 15 passes (≈ 40 ± 3, not the
    # ± 6 per image of drawing with replacement)
    assert int(per_image[1].min()) >= 33 and int(per_image[1].max()) <= 45
    assert abs(float(per_image[2].float().mean()) - 1200 / 7) < 1e-3
    assert (per_image[3] - 400).abs().max() < 80  # 3 images, 4 per draw: with replacement
    idx = synth.balanced_indices(y, 4, 2, torch.Generator().manual_seed(0))
    assert torch.equal(y[idx], torch.arange(4).repeat_interleave(2))
    with pytest.raises(ParamError, match="no training images"):
        synth.BalancedSampler(y, 5, 2, torch.Generator())


def test_reference_flows_at_ipc_above_one() -> None:
    """The reference divides the other classes' sum by C·IPC − 1: at IPC 1 the dataset flow, at IPC > 1 the
    common component of the centres enters (hand-computed), turning the flow even at ŝ = μ."""
    mu = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert torch.allclose(stats.reference_flows(mu, 1), stats.flows(mu))
    # IPC 2: N − 1 = 5; F_0 = ((0, 1) + (1, 1)) / 5 − (1, 0) = (−0.8, 0.4)
    expected = torch.tensor([[-0.8, 0.4], [0.4, -0.8], [-0.8, -0.8]])
    assert torch.allclose(stats.reference_flows(mu, 2), expected)
    # centres m + δ_c: the cosine to the dataset flow is |a·δ| / sqrt(|a·δ|² + C·|b·m|²), a = N/(N−1), b = (N−C)/(N−1)
    g = torch.Generator().manual_seed(0)
    delta = torch.randn(10, 16, generator=g)
    delta -= delta.mean(0)
    m = 3 * torch.randn(16, generator=g)
    n = 100
    a, b = n / (n - 1), (n - 10) / (n - 1)
    predicted = a * delta.norm() / (a**2 * delta.norm() ** 2 + 10 * b**2 * m.norm() ** 2).sqrt()
    got = stats.flow_cosine(stats.flows(m + delta), stats.reference_flows(m + delta, 10))
    assert float(got) == pytest.approx(float(predicted), rel=1e-5) and float(got) < 0.9
    with pytest.raises(ParamError, match="ipc"):
        stats.reference_flows(mu, 0)


def test_pyramid_state_bytes_counts_levels_grads_and_adam() -> None:
    # 256 px RGB: levels 1..256, Σ r² = (4⁹ − 1)/3 = 87,381; ×3 channels ×4 copies ×4 bytes
    assert synth.pyramid_state_bytes(256) == 4 * 3 * 87381 * 4
    assert 3.9 < synth.pyramid_state_bytes(256) / 2**20 < 4.1
    p = synth.ImageParams.create(2, 3, 16, init="zero")
    while p.grow():
        pass
    opt = torch.optim.Adam(p.parameters())
    sum(lv.sum() for lv in p.levels).backward()
    opt.step()
    tensors = [*p.levels, *(lv.grad for lv in p.levels), *(v for st in opt.state.values()
                                                           for k, v in st.items() if k != "step")]
    assert sum(t.numel() * t.element_size() for t in tensors) == 2 * synth.pyramid_state_bytes(16)
    assert synth.pyramid_state_bytes(16, parameterisation="pixels") == 4 * 3 * 256 * 4


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
