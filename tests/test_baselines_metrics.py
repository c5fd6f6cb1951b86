"""Baselines under the selection API, and the selection metrics, on hand-made embeddings."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from ddlib import metrics
from ddlib.baselines import (ForgettingConfig, SelectionInputs, forgetting_scores, herding_order,
                             kcenter_order, select_forgetting)
from ddlib.selectors import SELECTORS
from ddlib.utils import ParamError


def _inputs(seed: int = 0) -> SelectionInputs:
    rng = np.random.default_rng(seed)
    # two classes; class 0 has a big pattern and a small far-away pattern
    a = rng.normal(0, 0.05, (80, 4)) + np.array([1, 0, 0, 0])
    b = rng.normal(0, 0.05, (20, 4)) + np.array([0, 1, 0, 0])
    c = rng.normal(0, 0.05, (60, 4)) + np.array([0, 0, 1, 0])
    emb = np.concatenate([a, b, c])
    y = np.array([0] * 100 + [1] * 60)
    pat = np.array([0] * 80 + [1] * 20 + [0] * 60)
    forg = rng.integers(0, 3, 160).astype(float)
    return SelectionInputs(emb, y, pat, scores={"forgetting": forg, "el2n": rng.random(160)})


@pytest.mark.parametrize("method", ["random", "herding", "kcenter", "centroids", "forgetting"])
def test_selectors_share_the_result_shape(method):
    inp = _inputs()
    s = SELECTORS[method](inp, 5, 0)
    assert set(s) >= {"indices", "pattern", "role", "config"}
    idx = np.array(s["indices"])
    assert len(idx) == 10 and len(set(idx.tolist())) == 10
    assert np.bincount(inp.labels[idx]).tolist() == [5, 5]
    assert len(s["pattern"]) == len(s["role"]) == 10 and set(s["role"]) <= {"centre", "margin"}
    assert s["config"]["method"] == method
    # deterministic for a seed
    assert SELECTORS[method](inp, 5, 0)["indices"] == s["indices"]
    # a class smaller than the IPC is an error naming it (issue 14: it was capped silently while the
    # output said "ipc": 70) ...
    with pytest.raises(ParamError, match=r"ipc=70 exceeds class 1 \(60 images\)"):
        SELECTORS[method](inp, 70, 0)
    # ... unless capping is asked for: then it is taken whole, and the record says so
    capped = SELECTORS[method](inp, 70, 0, cap=True)
    assert len(capped["indices"]) == 70 + 60
    assert capped["config"]["cap"] is True and capped["config"]["capped"] == {"1": 60}


def test_herding_matches_the_mean_and_kcenter_covers():
    x = np.array([[0.0], [1.0], [2.0], [10.0]])
    # mean 3.25: first 2.0; then 1.0 (pair mean 1.5, off by 1.75) beats 10.0 (mean 6.0, off by 2.75)
    assert herding_order(x, 2).tolist() == [2, 1]
    assert kcenter_order(x, 3, first=0).tolist() == [0, 3, 2]


def test_kcenter_reaches_the_small_pattern_and_lowers_fill_distance():
    inp = _inputs()
    kc = SELECTORS["kcenter"](inp, 2, 0)
    c0 = [i for i in kc["indices"] if inp.labels[i] == 0]
    assert {int(inp.patterns[i]) for i in c0} == {0, 1}
    fd_kc = metrics.fill_distance(inp.embeddings, inp.labels, kc["indices"])
    her = SELECTORS["herding"](inp, 2, 0)
    fd_h = metrics.fill_distance(inp.embeddings, inp.labels, her["indices"])
    assert fd_kc["per_class"][0] < fd_h["per_class"][0]


def test_forgetting_falls_back_to_el2n_when_events_are_few():
    inp = _inputs()
    s = select_forgetting(inp, 5)
    assert s["config"]["score"] == "forgetting"
    inp.scores = {"forgetting": np.zeros(160), "el2n": np.arange(160.0)}
    s = select_forgetting(inp, 5)
    assert s["config"]["score"] == "el2n"
    assert sorted(s["indices"]) == list(range(95, 100)) + list(range(155, 160))
    with pytest.raises(ParamError, match="forgetting"):
        select_forgetting(SelectionInputs(inp.embeddings, inp.labels), 5)


def test_never_learned_images_sort_last_under_deepcore_and_first_under_toneva():
    """A hand-built class of 6: events 3, 2, 1, 0 and two never-learned images (0 events, never correct)."""
    from ddlib.baselines import forgetting_counts

    y = np.array([0] * 6 + [1] * 6)
    events = np.array([3, 2, 1, 0, 0, 0] * 2, dtype=float)
    learned = np.array([True, True, True, True, False, False] * 2)
    scores = {"forgetting": events, "learned": learned, "el2n": np.zeros(12)}
    assert forgetting_counts(scores, "deepcore").tolist() == events.tolist()
    assert forgetting_counts(scores, "toneva")[[4, 5]].tolist() == [np.inf, np.inf]
    inp = SelectionInputs(np.eye(12), y, scores=scores)
    deepcore = select_forgetting(inp, 2)  # the two most-forgotten learned images of each class
    assert sorted(deepcore["indices"]) == [0, 1, 6, 7]
    assert deepcore["config"]["never_learned"] == "deepcore" and deepcore["config"]["never_learned_samples"] == 4
    inp.scores = {**scores, "never_learned": "toneva"}
    toneva = select_forgetting(inp, 2)  # the never-learned images first
    assert sorted(toneva["indices"]) == [4, 5, 10, 11] and toneva["config"]["never_learned"] == "toneva"
    # an artifact written before "learned" existed marked never-learned images with inf: read the same way
    old = {"forgetting": np.where(learned, events, np.inf), "el2n": np.zeros(12)}
    assert forgetting_counts(old, "deepcore").tolist() == events.tolist()
    with pytest.raises(ParamError, match="never_learned"):
        forgetting_counts(scores, "sometimes")
    with pytest.raises(ParamError, match="never_learned"):
        ForgettingConfig(never_learned="both")


def test_deepcore_recipe_is_the_forgetting_default_and_a_preset_beside_the_teacher_run():
    from ddlib import presets
    from ddlib.baselines import DEEPCORE_FORGETTING

    d = DEEPCORE_FORGETTING  # DeepCore main.py: 40 selection epochs, SGD 0.1 constant, Nesterov, batch 256, no aug
    assert (d.epochs, d.lr, d.schedule, d.nesterov, d.batch_size, d.augment, d.source, d.never_learned) == \
        (40, 0.1, "constant", True, 256, "none", "separate", "deepcore")
    ref = presets.bps(None).forgetting  # the reference (and the gpu scale) count events DeepCore's way
    assert ref == dataclasses.replace(d, model=ref.model, width=ref.width, depth=ref.depth)
    assert presets.bps("gpu").forgetting.source == "separate"
    cpu = presets.bps("cpu")  # the book's default: the teacher's own run, described by the teacher's recipe
    f, t = cpu.forgetting, cpu.teacher
    assert (f.source, f.epochs, f.lr, f.augment, f.schedule, f.nesterov) == \
        ("teacher", t.epochs, t.lr, t.augment, "cosine", False)
    dc = presets.bps("cpu", forgetting_recipe="deepcore").forgetting
    assert (dc.source, dc.epochs, dc.schedule, dc.nesterov, dc.model, dc.width) == \
        ("separate", 40, "constant", True, t.model, t.width)
    assert presets.bps("cpu", never_learned="toneva").forgetting.never_learned == "toneva"
    with pytest.raises(ParamError, match="forgetting_recipe"):
        presets.bps("cpu", forgetting_recipe="toneva")


def test_the_deepcore_scoring_run_trains_without_augmentation_at_a_constant_rate():
    from ddlib import data

    ds = data.load("digits", per_class=20, test_per_class=5)
    cfg = ForgettingConfig(model="convnet", width=8, depth=1, epochs=2, batch_size=64, el2n_epoch=1)
    sc = forgetting_scores(ds, cfg, progress=False)
    assert sc["config"]["schedule"] == "constant" and sc["config"]["nesterov"] and sc["config"]["augment"] == "none"
    assert sc["learned"].dtype == bool and np.isfinite(sc["forgetting"]).all()
    # the reading rule is applied at selection: it does not re-train the scoring run
    toneva = forgetting_scores(ds, dataclasses.replace(cfg, never_learned="toneva"), progress=False)
    assert toneva["never_learned"] == "toneva" and np.array_equal(toneva["forgetting"], sc["forgetting"])


def test_forgetting_scores_from_a_tiny_training_run():
    from ddlib import data

    ds = data.load("digits", per_class=20, test_per_class=5)
    cfg = ForgettingConfig(model="convnet", width=8, depth=1, epochs=2, batch_size=64, el2n_epoch=1)
    sc = forgetting_scores(ds, cfg, progress=False)
    assert sc["forgetting"].shape == (200,) and sc["el2n"].shape == (200,)
    assert (sc["el2n"] >= 0).all() and (sc["el2n"] <= np.sqrt(2) + 1e-6).all()
    with pytest.raises(ParamError, match="epochs"):
        ForgettingConfig(epochs=0)


def test_fill_distance_and_mmd_on_known_cases():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 0, 0, 0])
    # selecting one unit vector: the other is sqrt(2) away
    assert metrics.fill_distance(emb, y, [0])["mean"] == pytest.approx(np.sqrt(2), abs=1e-5)
    assert metrics.fill_distance(emb, y, [0, 1])["mean"] == pytest.approx(0.0, abs=1e-5)
    # MMD is 0 for a selection with the class's exact distribution, positive otherwise
    assert metrics.mmd(emb, y, [0, 1])["mean"] == pytest.approx(0.0, abs=1e-6)
    assert metrics.mmd(emb, y, [0])["mean"] > 0.1
    assert metrics.fill_distance(emb, torch.tensor([0, 0, 1, 1]), [0])["per_class"][1] == float("inf")


def test_mmd_with_a_reference_computed_once_is_the_same_number() -> None:
    """mmd_reference holds each class's own terms (sample, bandwidth, E k(x, x')); scoring many selections with
    it gives exactly what mmd computes alone, subsampled classes (max_class) included, a class without a pick
    NaN as before; hand case: one pick of {e1, e2} (bandwidth 2, the median squared distance) is
    (1 + e^-1)/2 + 1 - 2·(1 + e^-1)/2 = (1 - e^-1)/2."""
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ref = metrics.mmd_reference(emb, torch.tensor([0, 0]))
    assert metrics.mmd(emb, [0, 0], [0], reference=ref)["mean"] == pytest.approx((1 - np.exp(-1)) / 2, abs=1e-6)
    g = torch.Generator().manual_seed(0)
    emb, y = torch.randn(300, 8, generator=g), torch.arange(300) % 3
    ref = metrics.mmd_reference(emb, y, max_class=60, seed=4)
    for idx in ([0, 1, 2], [3, 6, 9, 12, 4], list(range(0, 300, 3))):  # the last has picks of class 0 only
        alone = metrics.mmd(emb, y, idx, max_class=60, seed=4)
        shared = metrics.mmd(emb, y, idx, max_class=60, seed=4, reference=ref)
        assert np.array_equal(alone["per_class"], shared["per_class"], equal_nan=True)
    assert np.isnan(metrics.mmd(emb, y, list(range(0, 300, 3)), reference=ref)["per_class"][1])


def test_roles_share_purity_accuracy():
    emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.5, 0.5], [0.1, 0.9]])
    y = np.zeros(4, dtype=int)
    roles = metrics.assign_roles(emb, y, [0, 1, 2, 3])
    assert roles.count("centre") == 2 and roles.count("margin") == 2
    assert metrics.centre_margin_share(["centre", "margin", "margin", "margin"]) == {"centre": 0.25, "margin": 0.75}
    assert metrics.pattern_purity([0, 0, 1, 1], [5, 5, 7, 7])["mean"] == pytest.approx(1.0)
    assert metrics.pattern_purity([0, 1, 0, 1], [0, 0, 1, 1], labels=[0, 0, 0, 0])["mean"] == pytest.approx(0.0)
    assert metrics.accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]), torch.tensor([1, 1])) == 0.5
    assert metrics.pattern_coverage([0, 0, 1], [0, 2], [0, 1, 0]) == pytest.approx(2 / 3)


# ----------------------------------------------------------------------------- real-image sets
def _tiny_ds():
    from ddlib import data

    x = torch.arange(6 * 3 * 2 * 2, dtype=torch.uint8).view(6, 3, 2, 2)
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    return data.Dataset("tiny", x, y, x[:2], y[:2], ["a", "b"], source="test", spec={"name": "tiny"})


def test_real_sets_nearest_mean_and_random() -> None:
    from ddlib.baselines import centroid_real_from_features, random_real

    ds = _tiny_ds()
    # class 0 features 0, 1, 5 (mean 2: nearest 1, then 0); class 1 features 10, 13, 11 (mean 11.33: 11, 10)
    feats = torch.tensor([[0.0], [1.0], [5.0], [10.0], [13.0], [11.0]])
    s = centroid_real_from_features(ds, feats, 2, {"backbone": "toy"})
    assert s["indices"].tolist() == [1, 0, 5, 3] and s["labels"].tolist() == [0, 0, 1, 1]
    assert torch.equal(s["images"], ds.train_x[[1, 0, 5, 3]].float() / 255)
    assert s["config"] == {"method": "centroid-real", "ipc": 2, "backbone": "toy", "dataset": {"name": "tiny"}}
    r = random_real(ds, 3, seed=0)  # the whole class, in a random order drawn per class
    assert sorted(r["indices"].tolist()) == list(range(6)) and r["labels"].tolist() == [0, 0, 0, 1, 1, 1]
    assert r["indices"].tolist() == random_real(ds, 3, seed=0)["indices"].tolist()
    for fn in (lambda: random_real(ds, 4), lambda: centroid_real_from_features(ds, feats, 4)):
        with pytest.raises(ParamError, match=r"ipc=4 exceeds class .a. \(label 0\) \(3 images\)"):
            fn()
