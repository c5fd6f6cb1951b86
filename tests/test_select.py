"""BPS Stage 2 on hand-made cases: slot arithmetic, the GMM cut, fill rules, small patterns/classes."""
from __future__ import annotations

import numpy as np
import pytest

from ddlib.bps.select import (SelectConfig, centre_picks, gmm_cut, margin_picks, pattern_slots, select_all,
                              select_bps)
from ddlib.utils import ParamError


def test_slots_round_and_repair_on_largest_first():
    assert pattern_slots([50, 30, 20], 10).tolist() == [5, 3, 2]
    # 1/3 each of 10 -> round 3,3,3 = 9; the missing slot goes to the largest (first on ties)
    assert pattern_slots([10, 10, 10], 10).tolist() == [4, 3, 3]
    # round(0.45*1)=0, round(0.35)=0, round(0.2)=0 -> repair gives the one slot to the largest pattern
    assert pattern_slots([45, 35, 20], 1).tolist() == [1, 0, 0]
    # over-allocation is removed from the largest first: 2.5->2 (half to even), 2.5->2, ... sum check
    s = pattern_slots([25, 25, 25, 25], 10)
    assert s.sum() == 10 and s.tolist() == [3, 3, 2, 2]
    # rounding up overshoots: 0.6,0.6,0.6,... each rounds to 1 for ipc 3 over 5 equal patterns
    s = pattern_slots([1, 1, 1, 1, 1], 3)
    assert s.sum() == 3
    s = pattern_slots([7, 7, 7, 7, 2], 4)  # 0.96 each -> 1,1,1,1,0 = 4
    assert s.tolist() == [1, 1, 1, 1, 0]
    s = pattern_slots([6, 6, 6, 6, 6, 6, 6], 10)  # 1.43 -> 1 each = 7; +3 on the first three
    assert s.tolist() == [2, 2, 2, 1, 1, 1, 1]
    s = pattern_slots([3, 3, 3, 3, 3, 3], 9)  # 1.5 -> 2 each = 12; -3 on the first three
    assert s.tolist() == [1, 1, 1, 2, 2, 2]
    with pytest.raises(ValueError):
        pattern_slots([], 3)


def test_gmm_cut_on_a_known_mixture():
    rng = np.random.default_rng(0)
    # equal variances and weights: the cut is the midpoint of the means
    v = np.concatenate([rng.normal(0.0, 0.1, 4000), rng.normal(1.0, 0.1, 4000)])
    lo, cut = gmm_cut(v)
    assert abs(lo - 0.0) < 0.02 and abs(cut - 0.5) < 0.02
    # heavier low mode: the cut moves towards the high mode; analytic value for the true mixture
    v = np.concatenate([rng.normal(1.0, 0.2, 9000), rng.normal(2.0, 0.2, 1000)])
    lo, cut = gmm_cut(v)
    expect = 1.5 + 0.2 ** 2 * np.log(9.0) / 1.0
    assert abs(lo - 1.0) < 0.02 and abs(cut - expect) < 0.03
    # the same values give the same cut (fixed seed)
    assert gmm_cut(v) == gmm_cut(v)
    # the NumPy backend fits the same model: on clear modes it agrees with scikit-learn
    lo2, cut2 = gmm_cut(v, backend="numpy")
    assert abs(lo2 - lo) < 1e-3 and abs(cut2 - cut) < 1e-3


def test_margin_fill_rules():
    # pool of 20; candidates = top max(2, 10) = 10 entropies: five near 1.0 and five near 3.0
    h = np.array([0.1] * 10 + [1.0, 1.01, 1.02, 1.03, 1.04] + [3.0, 3.01, 3.02, 3.03, 3.04])
    lo, cut = gmm_cut(h[10:])
    assert 1.0 <= lo < 1.05 and 1.04 < cut < 3.0
    picks = margin_picks(h, 3, 0.10)
    # [mu_low, cut] ascending: entropies >= mean of the low mode (1.02) first
    assert h[picks].tolist() == [1.02, 1.03, 1.04]
    # shortfall: [mu_low, cut] holds 3; then below mu_low descending (1.01, 1.0, then 0.1 ...)
    picks = margin_picks(h, 6, 0.10)
    assert h[picks].tolist() == [1.02, 1.03, 1.04, 1.01, 1.0, 0.1]
    # nothing from the high-entropy (likely mislabelled) mode until everything else is used,
    # then the rest in descending entropy (the reference's back-fill)
    picks = margin_picks(h, 15, 0.10)
    assert (h[picks] >= 3.0).sum() == 0
    picks = margin_picks(h, 16, 0.10)
    assert h[picks][-1] == 3.04 and (h[picks] >= 3.0).sum() == 1
    # without the filter or with a small pool: highest entropies first
    assert h[margin_picks(h, 2, 0.10, gmm_filter=False)].tolist() == [3.04, 3.03]
    small = np.array([0.5, 0.9, 0.1, 0.7])
    assert margin_picks(small, 2).tolist() == [1, 3]
    assert margin_picks(small, 9).tolist() == [0, 1, 2, 3]


def _blobs(rng, n_per, centres, noise=0.05):
    x = np.concatenate([c + noise * rng.standard_normal((n_per[i], len(c))) for i, c in enumerate(centres)])
    p = np.concatenate([np.full(n, i) for i, n in enumerate(n_per)])
    return x, p


def test_select_bps_centres_margins_and_sizes():
    rng = np.random.default_rng(1)
    centres = [np.eye(8)[0], np.eye(8)[1], np.eye(8)[2]]
    x0, p0 = _blobs(rng, [60, 30, 10], centres)
    x1, p1 = _blobs(rng, [50, 50], [np.eye(8)[3], np.eye(8)[4]])
    emb = np.concatenate([x0, x1])
    y = np.array([0] * 100 + [1] * 100)
    pat = np.concatenate([p0, p1])
    h = rng.random(200)
    sel = select_bps(emb, y, pat, h, 10)
    idx = np.array(sel["indices"])
    assert len(idx) == 20 and len(set(idx.tolist())) == 20
    assert (np.bincount(y[idx]) == 10).all()
    # class 0: slots 6, 3, 1 -> centres 3, 2, 1
    c0 = [i for i, k in enumerate(idx) if y[k] == 0]
    assert [sel["pattern"][i] for i in c0].count(0) == 6 and [sel["pattern"][i] for i in c0].count(2) == 1
    assert sum(sel["role"][i] == "centre" for i in c0) == 3 + 2 + 1
    # each centre pick is among the highest-cosine samples of its pattern
    for i, k in enumerate(idx):
        if sel["role"][i] == "centre" and y[k] == 0 and sel["pattern"][i] == 0:
            members = np.nonzero((y == 0) & (pat == 0))[0]
            top = members[centre_picks(emb[members] / np.linalg.norm(emb[members], axis=1, keepdims=True), 3)]
            assert k in top
    assert sel["config"]["ipc"] == 10


def test_ipc_larger_than_pattern_and_class():
    rng = np.random.default_rng(2)
    emb = rng.standard_normal((12, 4))
    y = np.array([0] * 9 + [1] * 3)
    pat = np.array([0] * 7 + [1] * 2 + [0] * 3)
    h = rng.random(12)
    # IPC 6 for class 0: slots round(7/9*6)=5, round(2/9*6)=1; class 1 (3 < 6) taken whole
    sel = select_bps(emb, y, pat, h, 6)
    idx = np.array(sel["indices"])
    assert (y[idx] == 1).sum() == 3 and (y[idx] == 0).sum() == 6
    # IPC 8: slots 6 and 2 -> pattern 1 (size 2) taken whole; the class gets 8
    sel = select_bps(emb, y, pat, h, 8)
    assert (y[np.array(sel["indices"])] == 0).sum() == 8
    # IPC 20: everything, with roles on every pick
    sel = select_bps(emb, y, pat, h, 20)
    assert sorted(sel["indices"]) == list(range(12))
    assert set(sel["role"]) <= {"centre", "margin"} and len(sel["role"]) == 12
    # a pattern smaller than its slots: the class ends short, as in the reference
    pat2 = np.array([0] * 3 + [1] * 6 + [0] * 3)
    y2 = np.array([0] * 9 + [1] * 3)
    s = select_bps(emb, y2, pat2, h, 8)  # slots round(3/9*8)=3 (pattern 0), 5 (pattern 1) -> 8
    assert (y2[np.array(s["indices"])] == 0).sum() == 8


def test_determinism_and_all_ipcs_from_one_modelling():
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((300, 16))
    y = np.repeat(np.arange(3), 100)
    pat = rng.integers(0, 4, 300)
    h = rng.random(300)
    a = select_all(emb, y, pat, h, [1, 10, 50])
    b = select_all(emb, y, pat, h, [1, 10, 50])
    assert a == b
    assert [len(a[k]["indices"]) for k in (1, 10, 50)] == [3, 30, 150]
    # IPC 1: the centre of each class's largest pattern
    assert a[1]["role"] == ["centre"] * 3


def test_config_validation():
    with pytest.raises(ParamError, match="ipc"):
        SelectConfig(ipc=0)
    with pytest.raises(ParamError, match="k_ratio"):
        SelectConfig(k_ratio=2.0)
    with pytest.raises(ParamError, match="centre_frac"):
        SelectConfig(centre_frac=-0.1)
    with pytest.raises(ParamError, match="gmm_backend"):
        SelectConfig(gmm_backend="torch")


# ----------------------------------------------------------------------------- the batched GMM backend
def _entropy_sets(seed: int, count: int) -> list[np.ndarray]:
    """Candidate sets like Stage 2's: sorted top entropies, float32 values, a few mixtures and shapes."""
    rng = np.random.default_rng(seed)
    sets = []
    for j in range(count):
        n = int(rng.integers(5, 120))
        kind = j % 4
        if kind == 0:    # a confident bulk and an uncertain tail (the benchmark's distribution)
            v = np.where(rng.random(n) < 0.9, rng.gamma(1.0, 0.05, n), rng.uniform(0.5, 2.0, n))
        elif kind == 1:  # two clear modes
            v = np.concatenate([rng.normal(0.2, 0.05, n // 2), rng.normal(1.0, 0.2, n - n // 2)])
        elif kind == 2:  # no structure
            v = rng.uniform(0.0, 2.0, n)
        else:            # one mode with outliers
            v = np.concatenate([rng.gamma(4.0, 0.05, n - 2), rng.uniform(1.5, 3.0, 2)])
        sets.append(np.sort(np.abs(v).astype(np.float32).astype(np.float64)))
    return sets


def test_kmeans_first_centre_is_randomstate_choice():
    from ddlib.kernels import gmm as G

    for seed in (1228, 0, 12345):
        u0 = G._draws(seed)[0]
        for n in range(2, 200):
            assert G._first_centre(n, u0) == np.random.RandomState(seed).choice(n, p=np.ones(n) / n)


def test_batched_fit_equals_sklearn_fit():
    from ddlib.kernels import gmm as G

    sets = _entropy_sets(0, 120)
    mu, var, w, delicate = G.fit_batched(sets, 1228)
    checked = 0
    for j in np.flatnonzero(~delicate):
        m2, v2, w2 = G.fit_sklearn(sets[j], 1228)
        np.testing.assert_allclose(mu[j], m2, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(var[j], v2, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(w[j], w2, rtol=1e-9, atol=1e-12)
        checked += 1
    assert checked >= 110  # continuous data: (almost) no set needs scikit-learn


def test_batched_cuts_split_candidates_as_sklearn():
    from ddlib.kernels import gmm as G

    sets = _entropy_sets(1, 200)
    stats: dict = {}
    lo, cut = G.cuts(sets, 1228, "numpy", stats)
    lo2, cut2 = G.cuts(sets, 1228, "sklearn")
    assert stats["fits"] == 200
    for v, a, b, a2, b2 in zip(sets, lo, cut, lo2, cut2):
        assert np.array_equal((v >= a) & (v <= b), (v >= a2) & (v <= b2))
        assert np.array_equal(v < a, v < a2)
        assert np.isinf(b) == np.isinf(b2)


def test_ties_on_a_decision_fall_back_to_sklearn():
    from ddlib.kernels import gmm as G

    # 0.9 is exactly the midpoint of the first two k-means centres 0.3 and 1.5: rounding decides its label
    v = np.array([0.3] * 20 + [0.9, 1.5])
    _, _, _, delicate = G.fit_batched([v], 1228)
    assert delicate[0]
    stats: dict = {}
    assert G.cuts([v], 1228, "numpy", stats) == G.cuts([v], 1228, "sklearn")
    assert stats["fallbacks"] == 1
    with pytest.raises(ValueError):
        G.fit_batched([np.array([1.0])])


@pytest.mark.parametrize("seed", [0, 1])
def test_numpy_backend_selects_as_sklearn(seed):
    # a modelling like the benchmark's, small: 3 classes of geometric pattern sizes, a two-mode entropy
    rng = np.random.default_rng(seed)
    emb, y, pat = [], [], []
    for c in range(3):
        sizes = np.maximum(1, (0.8 ** np.arange(12) * 120).astype(int))
        for k, s in enumerate(sizes):
            emb.append(rng.standard_normal(16) + 0.7 * rng.standard_normal((s, 16)))
            y += [c] * s
            pat += [k] * s
    emb = np.concatenate(emb).astype(np.float32)
    h = np.where(rng.random(len(emb)) < 0.9, rng.gamma(1.0, 0.05, len(emb)),
                 rng.uniform(0.5, 2.0, len(emb))).astype(np.float32)
    ipcs = [1, 10, 50, 100]
    a = select_all(emb, y, pat, h, ipcs, SelectConfig(gmm_backend="sklearn"))
    b = select_all(emb, y, pat, h, ipcs, SelectConfig(gmm_backend="numpy"))
    for k in ipcs:
        assert {f: a[k][f] for f in ("indices", "pattern", "role")} == {f: b[k][f] for f in ("indices", "pattern", "role")}
        assert b[k]["config"]["gmm_backend"] == "numpy"
    assert sum(r == "margin" for r in b[100]["role"]) > 50  # the filter was exercised


def test_hand_made_cases_same_with_numpy_backend():
    rng = np.random.default_rng(1)
    centres = [np.eye(8)[0], np.eye(8)[1], np.eye(8)[2]]
    x0, p0 = _blobs(rng, [60, 30, 10], centres)
    x1, p1 = _blobs(rng, [50, 50], [np.eye(8)[3], np.eye(8)[4]])
    emb, y, pat = np.concatenate([x0, x1]), np.array([0] * 100 + [1] * 100), np.concatenate([p0, p1])
    h = rng.random(200)
    for ipc in (1, 3, 10, 40, 100):
        a = select_bps(emb, y, pat, h, SelectConfig(ipc=ipc))
        b = select_bps(emb, y, pat, h, SelectConfig(ipc=ipc, gmm_backend="numpy"))
        assert (a["indices"], a["role"]) == (b["indices"], b["role"])
    h2 = np.array([0.1] * 10 + [1.0, 1.01, 1.02, 1.03, 1.04] + [3.0, 3.01, 3.02, 3.03, 3.04])
    for k in (3, 6, 15, 16):
        assert margin_picks(h2, k, 0.10).tolist() == margin_picks(h2, k, 0.10, backend="numpy").tolist()


def test_model_once_serves_every_ipc_without_refitting():
    from ddlib.bps.select import prepare, select_ipcs

    rng = np.random.default_rng(4)
    emb = rng.standard_normal((400, 8))
    y = np.repeat(np.arange(2), 200)
    pat = rng.integers(0, 3, 400)
    h = rng.random(400)
    model = prepare(emb, y, pat, h)
    first = select_ipcs(model, [10, 50], SelectConfig(gmm_backend="numpy"))
    fits = model.stats["fits"]
    assert fits > 0
    again = select_ipcs(model, [50, 10], SelectConfig(gmm_backend="numpy"))
    assert model.stats["fits"] == fits  # the cuts are cached per (pattern, number of centres)
    assert again == first
    assert first[50] == select_bps(emb, y, pat, h, SelectConfig(ipc=50, gmm_backend="numpy"))


def test_non_finite_candidates_skip_the_filter_as_sklearn():
    from ddlib.kernels import gmm as G

    bad = [np.array([0.1, 0.2, np.nan, 0.4, 0.5, 0.9]), np.array([0.1, 0.2, 0.3, 0.4, np.inf])]
    for backend in ("numpy", "sklearn"):
        lo, cut = G.cuts(bad, 1228, backend)
        assert np.isnan(lo).all() and np.isnan(cut).all()
    h = np.array([0.1] * 10 + [1.0, 1.01, np.nan, 1.03, 1.04] + [3.0, 3.01, 3.02, 3.03, 3.04])
    assert margin_picks(h, 4, backend="numpy").tolist() == margin_picks(h, 4, backend="sklearn").tolist()


def test_slots_per_pattern_on_a_hand_computed_case():
    from ddlib.bps.slots import slots_per_pattern, slots_summary

    # class 0: patterns of 6, 3, 1 images; class 1: one pattern of 4
    labels = np.array([0] * 10 + [1] * 4)
    patterns = np.array([0] * 6 + [1] * 3 + [2] + [0] * 4)
    t = slots_per_pattern(labels, patterns, [1, 3, 10]).set_index(["ipc", "class"])
    # IPC 1: round(.6, .3, .1) = 1, 0, 0: one slot, all centre; class 1: one slot, a centre
    assert t.loc[(1, 0)].tolist() == [3, 1, 0, 1, 0, 1] and t.loc[(1, 1)].tolist() == [1, 1, 0, 1, 0, 1]
    # IPC 3: round(1.8, .9, .3) = 2, 1, 0: the largest gets a centre and a margin, the second a centre
    assert t.loc[(3, 0)].tolist() == [3, 2, 1, 2, 1, 2]
    assert t.loc[(3, 1)].tolist() == [1, 1, 1, 2, 1, 3]  # int(0.5*3 + 0.5) = 2 centres, 1 margin
    # IPC 10 >= the class: taken whole, 6 -> 3 + 3, 3 -> 2 + 1, 1 -> 1 + 0; class 1: 4 -> 2 + 2
    assert t.loc[(10, 0)].tolist() == [3, 3, 2, 6, 4, 6] and t.loc[(10, 1)].tolist() == [1, 1, 1, 2, 2, 4]
    s = slots_summary(t.reset_index()).set_index("IPC")
    assert s.loc[1, "patterns"] == "2.0 (1–3)" and s.loc[3, "with both"] == "1"
    assert s.loc[1, "centres (%)"] == 100.0 and s.loc[10, "centres (%)"] == 57.1


def test_slots_per_pattern_counts_the_roles_select_bps_gives():
    from ddlib.bps.slots import slots_per_pattern

    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(3), 60)
    patterns = np.concatenate([rng.integers(0, m, 60) for m in (2, 7, 15)])
    emb, h = rng.normal(size=(180, 8)), rng.random(180)
    t = slots_per_pattern(labels, patterns, [1, 5, 20])
    for k, sel in select_all(emb, labels, patterns, h, [1, 5, 20]).items():
        roles = np.array(sel["role"])
        assert t[t.ipc == k].centres.sum() == (roles == "centre").sum()
        assert t[t.ipc == k].margins.sum() == (roles == "margin").sum()
        assert t[t.ipc == k].with_slot.sum() == len({(labels[i], p) for i, p in zip(sel["indices"], sel["pattern"])})


def test_merge_patterns_merges_the_smallest_into_the_nearest_until_each_gets_its_slots():
    from ddlib.bps.slots import merge_patterns

    a, b, c, d = [1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]
    emb = np.array([a] * 5 + [b] * 3 + [c] + [d] + [a] * 3, dtype=np.float32)
    labels = np.array([0] * 10 + [1] * 3)
    patterns = np.array([0] * 5 + [1] * 3 + [2] + [3] + [0] * 3)
    # IPC 4: slots of (5, 3, 1, 1) are 3, 1, 0, 0; d (the smallest, last id) joins b (cosine .99): (5, 4, 1) gets
    # 2, 2, 0; c joins a: (6, 4) gets 2, 2, and every pattern has two slots
    out = merge_patterns(emb, labels, patterns, ipc=4, min_slots=2).numpy()
    assert out.tolist() == [0] * 5 + [1] * 3 + [0] + [1] + [0] * 3
    # at IPC 10 every pattern already has a slot: nothing merges with min_slots=1
    assert merge_patterns(emb, labels, patterns, ipc=10, min_slots=1).numpy().tolist() == patterns.tolist()
    # one slot in all: everything merges into one pattern (nothing can give two)
    assert set(merge_patterns(emb, labels, patterns, ipc=1).numpy().tolist()) == {0}
    with pytest.raises(ParamError):
        merge_patterns(emb, labels[:-1], patterns, ipc=4)


def test_slots_report_glue_and_balance_words():
    from ddlib.bps.slots import balance_words, slots_report

    labels = np.array([0] * 10 + [1] * 4)
    patterns = np.array([0] * 6 + [1] * 3 + [2] + [0] * 4)
    table, g = slots_report(labels, {"reference": patterns, "one pattern": np.zeros(14, int)}, [1, 3])
    assert table.columns[0] == "partition" and table.partition.tolist() == ["reference"] * 2 + ["one pattern"] * 2
    assert (g["slots_reference_ipc3_with_slot"], g["slots_reference_ipc3_with_slot_min"]) == (1.5, 1)
    assert (g["slots_reference_ipc3_centre_pct"], g["slots_reference_ipc3_balance"]) == (66.67, "acts in part")
    assert g["slots_one_pattern_ipc1_balance"] == "barely acts" and g["slots_one_pattern_ipc3_with_margin"] == 1.0
    assert [balance_words(v) for v in (100, 75, 74.9, 60, 50)] == ["barely acts", "barely acts", "acts in part",
                                                                    "acts in part", "acts"]


def test_pattern_picks_take_centres_then_margins_from_the_largest_patterns():
    from ddlib.bps.select import pattern_picks

    rng = np.random.default_rng(0)
    labels = np.array([0] * 30 + [1] * 5)
    patterns = np.array([0] * 20 + [1] * 7 + [2] * 3 + [0] * 5)
    emb, h = rng.normal(size=(35, 4)), rng.random(35)
    out = pattern_picks(emb, labels, patterns, h, cls=0, n_patterns=2, budget=4)
    assert out["sizes"] == {0: 20, 1: 7} and out["pattern"] == [0] * 4 + [1] * 4
    assert out["role"] == ["centre", "centre", "margin", "margin"] * 2
    assert all(labels[i] == 0 for i in out["indices"])
    local = select_bps(emb[:20], labels[:20], patterns[:20], h[:20], 4)["indices"]  # one pattern, its own run
    assert out["indices"][:4] == local
    with pytest.raises(ParamError):
        pattern_picks(emb, labels, patterns, h, cls=5)
