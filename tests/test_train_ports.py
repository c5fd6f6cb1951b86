"""Every procedure ported onto the one loop (``ddlib.train.loop``) reproduces what its own loop gave.

The numbers below were recorded by running the loops as they were before the port (commit 678a6d5:
``train.fit``, ``distill.train_student``, ``encoder.fit_encoder``, ``baselines._forgetting``,
``inherit._train_linear`` and ``inherit._fit_head_on_features``) at these tiny sizes; after the port
the same seeds gave bit-identical weights and histories on the machine they were recorded on. Here
they are compared with a relative tolerance of 1e-5 (the students' trained weights: 2e-3, see
``REL_STUDENT``), so a change in the order in which the random streams are consumed (which changes every
number) fails, while another CPU's float rounding does not.
``fingerprint`` is the sum of all floating-point entries of the state dict.

Issue 10 changed what CI's heads compute, on purpose: probe, KD and golden heads start from the
reference's W ~ N(0, 0.01²), b = 0 instead of ``nn.Linear``'s default, and the golden head's rate is
scaled by B/256. Their numbers in :func:`test_feature_heads` were re-recorded then (the golden head
on the clean view, lr 4e-2·64/256 = the 1e-2 it had before); the projector keeps ``nn.Linear``'s init
and, at ``projector_lr`` = the probe's rate, still gives the numbers recorded before the port.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ddlib import baselines, data, models, train
from ddlib.bps import distill as D
from ddlib.bps import encoder as E
from ddlib.bps.patterns import PatternConfig
from ddlib.sfm import inherit as I

REL = 1e-5
#: the students' weights after 4 epochs of CutMix SGD: on a second machine (2026-12-02) their fingerprints
#: moved by up to 6e-4 relative while every accuracy and every other pin here held at 1e-5; another seed (a
#: different random stream) moves them by 40-55 %, so 2e-3 still catches what the pin is for
REL_STUDENT = 2e-3


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def ds() -> data.Dataset:
    return data.load("synthetic-patterns", per_class=16, n_train=64, n_test=8)


def fingerprint(m: nn.Module) -> float:
    return float(sum(v.double().sum() for v in m.state_dict().values() if v.is_floating_point()))


def test_fit(ds: data.Dataset) -> None:
    torch.manual_seed(123)
    m = models.create("convnet", 4, 3, 16, width=8, depth=2)
    cfg = train.TrainConfig(epochs=3, batch_size=24, warmup_epochs=1, augment="crop_flip", label_smoothing=0.1)
    h = train.fit(m, ds.train_x, ds.train_y, cfg, eval_data=(ds.test_x, ds.test_y), eval_every=2, seed=5,
                  progress=False)
    assert h["loss"] == pytest.approx([1.4467464685440063, 1.356074944138527, 1.3199350237846375], rel=REL)
    assert h["eval_acc"] == [0.375, 0.40625] and h["eval_epoch"] == [2, 3]
    assert fingerprint(m) == pytest.approx(19.020719368323398, rel=REL)


@pytest.mark.parametrize("name, kw, accs, fp", [
    ("kd", dict(loss="kd"), [0.40625, 0.4375], 9.23383246085723),
    ("ce_mix", dict(loss="ce"), [0.53125, 0.53125], 8.35010705087916),
    ("ce_nomix", dict(loss="ce", cutmix_alpha=0.0), [0.5625, 0.65625], 8.316238177736523),
])
def test_students(ds: data.Dataset, monkeypatch: pytest.MonkeyPatch, name: str, kw: dict, accs: list,
                  fp: float) -> None:
    teacher = D.train_teacher(ds, D.TeacherConfig(model="convnet", width=8, depth=1, epochs=2, batch_size=32,
                                                  lr=0.05), progress=False, cache=False)
    built: list[nn.Module] = []
    build = D.build_model
    monkeypatch.setattr(D, "build_model", lambda *a, **k: built.append(build(*a, **k)) or built[-1])
    idx = np.concatenate([np.nonzero(ds.train_y.numpy() == c)[0][:4] for c in range(4)])
    cfg = D.StudentConfig(model="convnet", width=8, depth=1, epochs=4, last_epochs=2, **kw).resolved(ds.name, 4, 4)
    r = D.train_student(ds, idx, cfg, teacher, seed=3, progress=False)
    assert r["accs"] == pytest.approx(accs, rel=REL)
    assert fingerprint(built[-1]) == pytest.approx(fp, rel=REL_STUDENT)


TINY = dict(backbone="convnet", convnet_width=8, convnet_depth=2, proj_hidden=16, proj_dim=8, epochs=2,
            batch_size=16, queue_size=48, warmup_epochs=1, clu_warmup_epochs=0, pattern=PatternConfig(k=5))


# Re-recorded after issue 9's deliberate fidelity changes to Stage 1 (0.5·CE + 0.5·InfoNCE; L_clu against
# a snapshot re-partitioned when the queue wraps, queries assigned over every class's patterns; heads on the
# pooled embedding; blur sigma scaled with the image size). From here on the pin catches unintended changes.
@pytest.mark.parametrize("kw, loss, clu, fp", [
    ({}, [2.5649369955062866, 4.633864521980286], [0.4965324401855469, 1.975160300731659], 16.363613712162987),
    (dict(ce_weight=0.0, clu_weight=0.0), [1.6013373136520386, 1.9457274377346039], [0.0, 0.0], 16.555344519087612),
])
def test_encoder(ds: data.Dataset, kw: dict, loss: list, clu: list, fp: float) -> None:
    cfg = E.EncoderConfig(**{**TINY, **kw})
    torch.manual_seed(11)
    enc = E.build_encoder(cfg, 4, 3, 16)
    h = E.fit_encoder(enc, ds.train_x, ds.train_y, cfg, progress=False)
    assert h["loss"] == pytest.approx(loss, rel=REL) and h["clu"] == pytest.approx(clu, rel=REL)
    assert h["queue_wraps"] == 2
    assert fingerprint(enc) == pytest.approx(fp, rel=REL)


def test_forgetting(ds: data.Dataset) -> None:
    # the recipe the port was pinned with (crop + flip, cosine, plain momentum); DeepCore's is the default now
    cfg = baselines.ForgettingConfig(model="convnet", width=8, depth=1, epochs=3, batch_size=24, el2n_epoch=2, lr=0.1,
                                     augment="crop_flip", schedule="cosine", nesterov=False)
    s = baselines.forgetting_scores(ds, cfg, seed=4, progress=False, cache=False)
    assert s["events"] == 26 and s["el2n_epoch"] == 2
    assert float(s["el2n"].sum()) == pytest.approx(21.228179931640625, rel=REL)
    assert np.isfinite(s["forgetting"]).all() and s["forgetting"].sum() == 26


class _Linear(nn.Module):
    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("w", w)
        self.feature_dim = w.shape[0]
        self.image_size = 8

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w.T


def test_feature_heads() -> None:
    g = torch.Generator().manual_seed(0)
    digits = data.load("digits", per_class=20, test_per_class=10)
    a = torch.randn(16, 64, generator=g) / 8 * 4
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=g))
    distill_bb, eval_bb = _Linear(a), _Linear((q * torch.linspace(0.5, 2.0, 16)) @ a)
    golden = I.golden_head(distill_bb, digits, I.GoldenConfig(epochs=5, lr=4e-2, batch_size=64, augment=None))
    assert golden.train_acc == pytest.approx(0.5550000071525574, rel=REL)  # re-recorded (issue 10: the init)
    assert fingerprint(golden) == pytest.approx(-0.3803540887602139, rel=REL)
    s = I.random_real(digits, 3, seed=1)
    expected = {
        # probe and kd re-recorded (issue 10: the heads' init); proj as recorded before the port
        None: {"probe": ([2.427677838007609, 2.281966288884481, 2.2747278531392414, 2.2870919863382975],
                         -0.1326081743463874),
               "proj": ([5.280417267481486, 2.925429034233093, 1.7033473014831544, 1.6358469327290852],
                        -1.449503184761852),
               "kd": ([1.3076511065165202, 1.208278242746989, 1.283308736483256, 1.1854527473449707],
                      -0.10726562634226866)},
        3: {"probe": ([2.386142921447754, 2.137107340494792, 2.204880221684774, 2.091232935587565],
                      -0.029271632782183588),
            "proj": ([5.759059810638428, 2.715157961845398, 1.7987207015355429, 1.385706869761149],
                     -1.4336352489190176),
            "kd": ([1.2750690698623657, 1.0969137748082478, 1.0696843306223551, 1.0862716118494669],
                   -0.22559972031740472)},
    }
    for views, exp in expected.items():
        cfg = I.ProbeConfig(epochs=4, lr=0.5, projector_lr=0.5, views=views, runs=1, batch_size=8)
        got = {"probe": I.train_probe(eval_bb, s["images"], s["labels"], cfg, 10, seed=2),
               "proj": I.train_projector(eval_bb, distill_bb, s["images"], cfg, seed=3),
               "kd": I.train_kd(eval_bb, golden, distill_bb, s["images"], s["labels"], cfg, seed=4)}
        for k, (hist, fp) in exp.items():
            assert got[k].history == pytest.approx(hist, rel=REL), (views, k)
            assert fingerprint(got[k]) == pytest.approx(fp, rel=REL), (views, k)
