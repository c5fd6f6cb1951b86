"""ddlib.encoders and ddlib.bps.encoder: the queue, schedules, the networks Stage 1 starts from, a tiny run, and
the artifact cache (the losses: test_losses)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ddlib import data, encoders, models, train
from ddlib.bps import encoder as enc
from ddlib.bps.encoder import EncoderConfig, clu_ramp, lr_factor, model_patterns, refresh_patterns, train_encoder
from ddlib.bps.patterns import PatternConfig
from ddlib.encoders import KeyQueue
from ddlib.encoders import training as encoder_training
from ddlib.nets.layers import resize
from ddlib.utils import ParamError

TINY = dict(backbone="convnet", convnet_width=8, convnet_depth=2, proj_hidden=16, proj_dim=8, epochs=1,
            batch_size=16, queue_size=48, warmup_epochs=0, clu_warmup_epochs=0, pattern=PatternConfig(k=5))


def test_defaults_are_the_reference() -> None:
    c = EncoderConfig()  # but the backbone: the CIFAR ResNet-18 from scratch at the data's size (the docstring says so)
    assert (c.backbone, c.weights, c.input_size) == ("resnet18", None, None)
    assert (c.momentum, c.queue_size, c.temperature) == (0.999, 65536, 0.5)
    # engine_pretrain.py: alpha·CE + (1 - alpha)·InfoNCE + r(e)·L_clu with alpha = 0.5
    assert (c.proj_hidden, c.proj_dim, c.ce_weight, c.con_weight, c.clu_weight) == (512, 128, 0.5, 0.5, 1.0)
    assert (c.clu_assign, c.clu_refresh, c.blur_relative) == ("all", "wrap", True)
    assert (c.clu_warmup_epochs, c.epochs, c.lr, c.sgd_momentum, c.weight_decay) == (5, 30, 0.02, 0.9, 1e-4)
    assert (c.warmup_epochs, c.final_lr_fraction, c.augment) == (5, 0.01, "moco_v2")
    assert c.pattern == PatternConfig() and (c.pattern.k, c.pattern.min_sim, c.pattern.trials) == (30, 0.5, 3)


def test_queue_update_and_wrap() -> None:
    qu = KeyQueue(5, 2, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert (qu.labels == -1).all() and torch.allclose(qu.keys.norm(dim=1), torch.ones(5))
    k = F.normalize(torch.arange(1.0, 7.0).view(3, 2), dim=1)
    qu.enqueue(k, torch.tensor([0, 1, 2]))
    assert qu.ptr == 3 and qu.wraps == 0 and qu.labels.tolist() == [0, 1, 2, -1, -1]
    qu.enqueue(k, torch.tensor([3, 4, 5]))
    assert qu.ptr == 1 and qu.wraps == 1 and qu.labels.tolist() == [5, 1, 2, 3, 4]
    assert torch.equal(qu.keys[0], k[2]) and torch.equal(qu.keys[3], k[0])
    qu.enqueue(F.normalize(torch.ones(7, 2), dim=1), torch.full((7,), 9))  # more than the queue: newest kept
    assert (qu.labels == 9).all()


def test_queue_refresh_partitions_a_snapshot() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.eye(4)[0], torch.eye(4)[1]
    keys = F.normalize(torch.cat([a + 0.01 * torch.randn(8, 4, generator=g), b + 0.01 * torch.randn(8, 4, generator=g)]),
                       dim=1)
    qu = KeyQueue(20, 4, torch.device("cpu"))
    qu.enqueue(keys, torch.zeros(16, dtype=torch.long))
    found = refresh_patterns(qu, PatternConfig(k=7))
    assert found == {0: 2} and qu.pattern_class.tolist() == [0, 0]
    assert len(qu.snapshot) == 16 and torch.equal(qu.snapshot, keys)  # only the filled part
    p = qu.snapshot_pattern.tolist()
    assert len(set(p[:8])) == 1 and set(p[:8]) != set(p[8:])
    # the snapshot stays as taken while the queue moves on (the reference's queue_emb_copy)
    qu.enqueue(F.normalize(torch.ones(4, 4), dim=1), torch.ones(4, dtype=torch.long))
    assert torch.equal(qu.snapshot, keys) and qu.snapshot_pattern.tolist() == p
    # the loss goes through the term with the config's assignment rule
    q = F.normalize(torch.stack([a, b]), dim=1)
    for rule in ("all", "own_class"):
        assert float(enc.PATTERN_CLUSTERING.loss(q, torch.tensor([0, 0]), qu, rule)) >= 0


def test_refresh_happens_when_the_queue_wraps() -> None:
    ds = data.load("synthetic-patterns", per_class=16, n_train=64, n_test=8)
    wrap = EncoderConfig(**{**TINY, "epochs": 2})  # 4 steps of 16 per epoch, a queue of 48: wraps every 3 steps
    hist = enc.fit_encoder(enc.build_encoder(wrap, ds.num_classes, 3, 16), ds.train_x, ds.train_y, wrap,
                           progress=False)
    assert hist["queue_wraps"] == 2 and sum(hist["refreshes"]) == 1 + 2  # the first active epoch + each wrap
    epoch = EncoderConfig(**{**TINY, "epochs": 2, "clu_refresh": "epoch"})
    hist = enc.fit_encoder(enc.build_encoder(epoch, ds.num_classes, 3, 16), ds.train_x, ds.train_y, epoch,
                           progress=False)
    assert hist["refreshes"] == [1, 1]


def test_views_blur_scales_with_image_size() -> None:
    c = EncoderConfig()
    assert encoders.views_augment(c, 224).blur_sigma == (0.1, 2.0)
    assert encoders.views_augment(c, 28).blur_sigma == pytest.approx((0.1 * 28 / 224, 2.0 * 28 / 224))
    assert encoders.views_augment(EncoderConfig(blur_relative=False), 28).blur_sigma == (0.1, 2.0)


def test_pooled_embedding_feeds_the_heads() -> None:
    cfg = EncoderConfig(backbone="convnet", convnet_width=8, convnet_depth=2, proj_hidden=16, proj_dim=8)
    m = enc.build_encoder(cfg, 4, 1, 16)
    x = torch.rand(3, 1, 16, 16)
    assert m.feature_dim == 8 and m.features(x).shape == (3, 8)  # the last map averaged over space, not 8x4x4
    assert torch.allclose(m.features(x), m.backbone.body(m.backbone.normalize(x)).mean(dim=(2, 3)))
    assert m(x).shape == (3, 4) and m.project(x)[0].shape == (3, 8)


def test_pretrained_backbone_at_an_input_size() -> None:
    cfg = EncoderConfig(backbone="efficientnet-lite0", weights="imagenet", input_size=64, proj_hidden=16, proj_dim=8)
    m = enc.build_encoder(cfg, 10, 1, 28).eval()  # gray 28 px data: repeated to RGB, resized to 64 px
    ref = models.create("efficientnet-lite0", 1000)
    assert torch.equal(m.backbone.net._conv_stem.weight, ref.net._conv_stem.weight)  # the ImageNet weights
    x = torch.rand(2, 1, 28, 28)
    f = m.features(x)
    assert f.shape == (2, 1280)
    x3 = resize(x.expand(-1, 3, -1, -1), 64)
    assert torch.allclose(f, m.backbone.embedding(x3), atol=1e-5)


@pytest.mark.parametrize("kw, match", [({"weights": "imagenet"}, "not available"),
                                       ({"freeze_backbone": True}, "needs pretrained"),
                                       ({"backbone": "timm:"}, "backbone"), ({"clu_assign": "mine"}, "clu_assign"),
                                       ({"clu_refresh": "never"}, "clu_refresh"), ({"input_size": 3}, "input_size")])
def test_fidelity_options_refuse_bad_values(kw: dict, match: str) -> None:
    with pytest.raises(ParamError, match=match):
        EncoderConfig(**kw)


def test_stage1_from_the_references_imagenet_resnet18_file(tmp_path) -> None:  # noqa: ANN001
    """The reference's Stage 1 starts from torchvision's ImageNet ResNet-18 at 224 px: the registry's
    ``resnet18-imagenet`` with ``weights`` a local file (here random weights saved as torchvision's), gray data
    repeated to RGB; a tiny run at a small input size trains."""
    import torchvision

    tv = torchvision.models.resnet18().eval()
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(tv.state_dict(), path)
    cfg = EncoderConfig(backbone="resnet18-imagenet", weights=str(path), input_size=224, proj_hidden=16, proj_dim=8)
    m = enc.build_encoder(cfg, 10, 1, 28).eval()
    assert torch.equal(m.backbone.body.conv1.weight, tv.conv1.weight) and m.feature_dim == 512
    x = torch.rand(2, 1, 28, 28)
    tv.fc = torch.nn.Identity()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(m.features(x), tv((resize(x, 224).expand(-1, 3, -1, -1) - mean) / std), atol=1e-4)
    ds = data.load("synthetic-patterns", per_class=8, n_train=32, n_test=8)
    small = EncoderConfig(**{**TINY, "backbone": "resnet18-imagenet", "weights": str(path), "input_size": 32})
    model, hist = train_encoder(ds, small, progress=False)
    assert model.feature_dim == 512 and all(math.isfinite(v) for v in hist["loss"])
    with pytest.raises(ParamError, match="backbone"):
        EncoderConfig(backbone="resnet18-imagenet@64")  # the input size is a field of its own


def test_frozen_backbone_trains_a_neck_on_cached_views(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = data.load("synthetic-patterns", per_class=8, n_train=32, n_test=8)
    cfg = EncoderConfig(backbone="efficientnet-lite0", weights="imagenet", input_size=32, freeze_backbone=True,
                        neck_dim=16, proj_hidden=16, proj_dim=8, epochs=2, batch_size=8, queue_size=16,
                        warmup_epochs=0, clu_warmup_epochs=0, pattern=PatternConfig(k=3))
    model, hist = train_encoder(ds, cfg, progress=False)
    assert isinstance(model, encoders.FrozenEncoder) and model.feature_dim == 16
    assert len(hist["loss"]) == 2 and all(math.isfinite(v) for v in hist["loss"])
    emb = encoders.train_embeddings(model, ds, cfg)
    assert emb.shape == (32, 16) and torch.allclose(emb.norm(dim=1), torch.ones(32), atol=1e-5)
    # the embeddings from the cached clean bank equal the encoder run on the images (float16 bank aside)
    direct = F.normalize(model.features(ds.train_x.float() / 255), dim=1)
    assert torch.allclose(emb, direct, atol=2e-2)

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("the backbone ran again instead of the cached bank")

    monkeypatch.setattr(encoder_training, "fit_neck", boom)
    model2, hist2 = train_encoder(ds, cfg, progress=False)  # neck and banks from the cache
    assert hist2 == hist


def test_schedules() -> None:
    c = EncoderConfig()
    assert [clu_ramp(c, e) for e in (0, 4)] == [0.0, 0.0]
    assert clu_ramp(c, 5) == pytest.approx(1 / 25) and clu_ramp(c, 29) == 1.0
    assert clu_ramp(EncoderConfig(clu_ramp_epochs=5), 7) == pytest.approx(3 / 5)
    assert clu_ramp(EncoderConfig(clu_ramp_epochs=5), 20) == 1.0
    assert lr_factor(c, 2.5) == pytest.approx(0.5)
    assert lr_factor(c, 5) == pytest.approx(1.0) and lr_factor(c, 30) == pytest.approx(0.01)
    assert lr_factor(c, 17.5) == pytest.approx(0.01 + 0.99 * 0.5)


@pytest.mark.parametrize("field, value", [("backbone", "vgg"), ("queue_size", 0), ("temperature", 0.0),
                                          ("ce_weight", -1.0), ("epochs", 0), ("batch_size", 1),
                                          ("augment", "weird"), ("clu_ramp_epochs", 0), ("pattern", 3)])
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ParamError, match=field):
        EncoderConfig(**{field: value})


def test_tiny_run_then_cache_hit(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = data.load("synthetic-patterns", per_class=16, n_train=64, n_test=8)
    cfg = EncoderConfig(**{**TINY, "epochs": 2})
    model, hist = train_encoder(ds, cfg, progress=False)
    assert len(hist["loss"]) == 2 and all(math.isfinite(v) for v in hist["loss"])
    assert hist["r"] == [0.5, 1.0] and hist["patterns"][1] and hist["clu"][1] > 0
    assert hist["queue_wraps"] >= 1  # 4 batches of 16 per epoch through a queue of 48
    emb = train.embed(model.features, ds.train_x, normalize=True)
    assert emb.shape == (64, model.feature_dim) and torch.allclose(emb.norm(dim=1), torch.ones(64), atol=1e-5)

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("trained again instead of loading the cached encoder")

    monkeypatch.setattr(encoder_training, "fit_moco", boom)  # where the training happens
    model2, hist2 = train_encoder(ds, cfg, progress=False)
    assert hist2 == hist
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
    out = model_patterns(ds, cfg, PatternConfig(k=5))  # reuses the cached encoder
    assert out["embeddings"].shape == emb.shape and out["patterns"].shape == (64,)
    assert torch.allclose(out["embeddings"], emb, atol=1e-5)
    for c, m in out["num_patterns"].items():
        assert out["patterns"][ds.train_y == c].max() + 1 == m
    assert model_patterns(ds, cfg, PatternConfig(k=5))["key"] == out["key"]


def test_plain_moco() -> None:
    ds = data.load("synthetic-patterns", per_class=8, n_train=32, n_test=8)
    cfg = EncoderConfig(**{**TINY, "ce_weight": 0.0, "clu_weight": 0.0})
    model = enc.build_encoder(cfg, ds.num_classes, 3, 16)
    hist = enc.fit_encoder(model, ds.train_x, ds.train_y, cfg, progress=False)
    assert hist["ce"] == [0.0] and hist["clu"] == [0.0] and hist["con"][0] > 0 and hist["patterns"] == [{}]


def test_the_shared_encoder_needs_the_clustering_term_only_when_it_acts() -> None:
    ds = data.load("synthetic-patterns", per_class=8, n_train=32, n_test=8)
    cfg = EncoderConfig(**TINY)  # clu_weight 1 with r(0) > 0
    with pytest.raises(ParamError, match="clustering term"):
        encoders.fit_moco(encoders.build_encoder(cfg, ds.num_classes, 3, 16), ds.train_x, ds.train_y, cfg,
                          progress=False)
    with pytest.raises(ParamError, match="clustering term"):
        encoders.train_moco(ds, cfg, progress=False)
    late = EncoderConfig(**{**TINY, "clu_warmup_epochs": 5})  # the term never acts in 1 epoch
    hist = encoders.fit_moco(encoders.build_encoder(late, ds.num_classes, 3, 16), ds.train_x, ds.train_y, late,
                             progress=False)
    assert hist["clu"] == [0.0] and hist["patterns"] == [{}]


class _UnpreparedClustering(enc.PatternClustering):
    """BPS's term computing L_clu from the snapshot at every step (no per-partition preparation)."""

    def loss(self, q, y, queue, assign="all"):  # noqa: ANN001, ANN201
        return enc.clustering_loss(q, y, queue.snapshot, queue.snapshot_pattern, queue.pattern_class, assign)


@pytest.mark.parametrize("refresh", ["wrap", "epoch"])
def test_the_prepared_clustering_term_trains_the_same_bits(refresh: str) -> None:
    """The step with L_clu's snapshot prepared once per partition gives the same losses and weights, bit
    for bit, as computing it every step (and test_losses pins clustering_loss to its earlier bits); the
    queue wraps every 3 steps, so the preparation must follow every refresh."""
    ds = data.load("synthetic-patterns", per_class=16, n_train=64, n_test=8)
    cfg = EncoderConfig(**{**TINY, "epochs": 2, "clu_refresh": refresh})
    runs = []
    for term in (enc.PATTERN_CLUSTERING, _UnpreparedClustering()):
        torch.manual_seed(0)
        model = enc.build_encoder(cfg, ds.num_classes, 3, 16)
        hist = encoders.fit_moco(model, ds.train_x, ds.train_y, cfg, progress=False, clustering=term)
        runs.append((hist, model.state_dict()))
    (h1, w1), (h2, w2) = runs
    assert sum(h1["refreshes"]) >= 2 and h1["clu"][-1] > 0
    for name in ("loss", "ce", "con", "clu", "patterns", "refreshes"):
        assert h1[name] == h2[name], name
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_stage1_with_accel_options_trains_as_plain() -> None:
    """Stage 1 (two views, the momentum key encoder, the queue and L_clu) under the loop's Accel: NHWC gives
    the plain losses; bf16 autocast runs (keys queued in float32) with losses near the plain ones."""
    from ddlib.train import Accel

    ds = data.load("synthetic-patterns", per_class=16, n_train=64, n_test=8)
    cfg = EncoderConfig(**{**TINY, "epochs": 2})
    runs = {}
    for name in ("plain", "channels_last", "amp"):
        torch.manual_seed(0)  # the same initial weights
        model = enc.build_encoder(cfg, ds.num_classes, 3, 16)
        runs[name] = enc.fit_encoder(model, ds.train_x, ds.train_y, cfg, progress=False, accel=Accel.parse(name))
    assert runs["channels_last"]["con"] == pytest.approx(runs["plain"]["con"], rel=1e-4)
    assert runs["amp"]["con"] == pytest.approx(runs["plain"]["con"], rel=0.1)
    assert sum(runs["amp"]["refreshes"]) == sum(runs["plain"]["refreshes"])
