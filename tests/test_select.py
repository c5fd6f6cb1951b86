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
