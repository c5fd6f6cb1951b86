"""ddlib.losses: every loss alone, on small hand-computed tensors."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ddlib import losses as L


# ----------------------------------------------------------------------------- classification
def test_cutmix_cross_entropy_hand_computed() -> None:
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])  # p = (3/4, 1/4) and (1/2, 1/2)
    y = torch.tensor([0, 1])
    perm = torch.tensor([1, 0])  # image 0 was mixed with image 1 and vice versa
    ce_y = (-math.log(0.75) - math.log(0.5)) / 2
    ce_perm = (-math.log(0.25) - math.log(0.5)) / 2  # targets y[perm] = (1, 0)
    got = L.cutmix_cross_entropy(logits, y, perm, 0.75)
    assert float(got) == pytest.approx(0.75 * ce_y + 0.25 * ce_perm, rel=1e-6)
    assert float(L.cutmix_cross_entropy(logits, y, torch.arange(2), 1.0)) == pytest.approx(ce_y, rel=1e-6)


def test_softmax_entropy() -> None:
    h = L.softmax_entropy(torch.zeros(3, 10))
    assert torch.allclose(h, torch.full((3,), float(torch.log(torch.tensor(10.0)))))
    p = torch.tensor([[0.75, 0.25]])
    assert float(L.softmax_entropy(p.log())[0]) == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert L.softmax_entropy(torch.zeros(2, 4, dtype=torch.bfloat16)).dtype == torch.float32


# ----------------------------------------------------------------------------- distillation
def test_kd_kl_loss_is_bps_kl_times_tau_squared() -> None:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(5, 10, generator=g)
    assert L.kd_kl_loss(s, s.clone(), 20.0).abs() < 1e-3  # 0 up to float32 rounding times tau^2 = 400
    t = torch.randn(5, 10, generator=g)
    # KL(p_t || p_s) * tau^2, batch mean
    pt, ls = torch.softmax(t / 4, 1), torch.log_softmax(s / 4, 1)
    ref = (pt * (pt.log() - ls)).sum(1).mean() * 16
    assert L.kd_kl_loss(s, t, 4.0) == pytest.approx(float(ref), rel=1e-5)


def test_kd_kl_ce_loss_hand_computed() -> None:
    s = torch.zeros(1, 2)
    y = torch.tensor([0])
    # teacher probabilities (3/4, 1/4) at temperature T, student uniform
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    t1 = torch.tensor([[math.log(3.0), 0.0]])
    assert L.kd_kl_ce_loss(s, t1, y, temperature=1.0).item() == pytest.approx(0.5 * kl + 0.5 * math.log(2), rel=1e-5)
    t4 = t1 * 4
    assert L.kd_kl_ce_loss(s, t4, y).item() == pytest.approx(0.5 * kl * 16 + 0.5 * math.log(2), rel=1e-5)
    assert L.kd_kl_ce_loss(s, t4, y, kd_weight=1.0).item() == pytest.approx(kl * 16, rel=1e-5)
    assert L.kd_kl_ce_loss(s, t4, y, kd_weight=0.0).item() == pytest.approx(math.log(2), rel=1e-5)


# ----------------------------------------------------------------------------- self-supervised
def test_info_nce_sanity() -> None:
    q = torch.eye(4)[:2]
    queue = torch.eye(4)[2:]  # orthogonal negatives
    tau = 0.5
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + 2 * math.exp(0)))
    assert float(L.info_nce(q, q, queue, tau)) == pytest.approx(expected, rel=1e-6)
    # a positive that equals a negative: chance level among the 1 + Q logits
    assert float(L.info_nce(q[:1], torch.eye(4)[2:3], torch.eye(4)[2:3], tau)) == pytest.approx(math.log(2), rel=1e-6)


def test_pattern_centroids_and_assignment() -> None:
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]])
    cent, counts = L.pattern_centroids(keys, torch.tensor([0, 0, 1, -1]), 3)
    r = 1 / math.sqrt(2)
    assert torch.allclose(cent, torch.tensor([[r, r], [-1.0, 0.0], [0.0, 0.0]]), atol=1e-6)
    assert counts.tolist() == [2, 1, 0]
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    # pattern 0 and 2 are class 0's, pattern 1 class 1's; pattern 2 is empty; class 2 has no pattern
    a = L.assign_to_centroids(z, torch.tensor([0, 0, 2]), cent, counts, torch.tensor([0, 1, 0]), "own_class")
    assert a.tolist() == [0, 0, -1]
    # the reference's rule: the nearest non-empty centroid of any class (z1 goes to class 1's pattern)
    a = L.assign_to_centroids(z, torch.tensor([0, 0, 2]), cent, counts, torch.tensor([0, 1, 0]))
    assert a.tolist() == [0, 1, 0]
    with pytest.raises(ValueError, match="assign"):
        L.assign_to_centroids(z, torch.tensor([0, 0, 2]), cent, counts, torch.tensor([0, 1, 0]), "nearest")


def test_clustering_loss_hand_computed() -> None:
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]])
    key_pattern = torch.tensor([0, 0, 1, -1])  # the last key has no pattern: ignored
    pattern_class = torch.tensor([0, 0])        # both patterns belong to class 0
    q = torch.tensor([[1.0, 0.0], [0.0, -1.0]])
    y = torch.tensor([0, 1])                    # class 1 has no pattern: the 2nd query contributes nothing
    # centroids: normalise((1,1)) and (-1,0); q0 is nearer the first -> pattern 0 = keys 0, 1
    d0, d1, d2 = math.sqrt(1e-6), math.sqrt(2 + 1e-6), math.sqrt(4 + 1e-6)
    expected = (d0 + d1) / 2 + (2 - d2)
    own = "own_class"
    assert float(L.clustering_loss(q, y, keys, key_pattern, pattern_class, own)) == pytest.approx(expected, rel=1e-6)
    # the query goes to the nearest centroid *of its class*: make pattern 1 class 1's only pattern
    got = L.clustering_loss(q[1:], y[1:], keys, key_pattern, torch.tensor([0, 1]), own)
    q1_term = d1 + 2 - (d1 + d2) / 2  # q1 is orthogonal to k0 and k2, opposite to k1
    assert float(got) == pytest.approx(q1_term, rel=1e-6)
    # the reference's rule (the default): every query goes to its nearest centroid of any class;
    # q1 = (0, -1) is nearer pattern 1's centroid (-1, 0) (cosine 0) than pattern 0's (cosine -0.71)
    both = L.clustering_loss(q, y, keys, key_pattern, pattern_class)
    assert float(both) == pytest.approx((expected + q1_term) / 2, rel=1e-6)
    assert float(L.clustering_loss(q, y, keys, torch.full((4,), -1), pattern_class)) == 0.0


def test_clustering_loss_has_gradient_on_queries_only() -> None:
    q = F.normalize(torch.randn(4, 3), dim=1).requires_grad_()
    keys = F.normalize(torch.randn(10, 3), dim=1).requires_grad_()
    loss = L.clustering_loss(q, torch.zeros(4, dtype=torch.long), keys, torch.arange(10) % 2, torch.tensor([0, 0]))
    loss.backward()
    assert q.grad is not None and q.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- feature matching
def test_projector_loss_is_mse() -> None:
    a, b = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[1.0, 0.0], [0.0, 4.0]])
    assert float(L.projector_loss(a, b)) == pytest.approx((0 + 4 + 9 + 0) / 4)


def test_flat_cosine_and_sfm_loss() -> None:
    f = torch.tensor([[1.0, 2.0], [-2.0, 2.0], [1.0, -4.0]])
    assert float(L.flat_cosine(f, 3 * f)) == pytest.approx(1.0)
    assert float(L.flat_cosine(f, -f)) == pytest.approx(-1.0)
    # vec f = (1, 2, −2, 2, 1, −4), |vec f|² = 30; g differs in one entry: vec g = (1, 2, −2, 2, 1, 0)
    g = f.clone()
    g[2, 1] = 0.0
    cos = (30 - 16) / (math.sqrt(30) * math.sqrt(14))
    assert float(L.flat_cosine(f, g)) == pytest.approx(cos, rel=1e-6)
    assert float(L.sfm_loss(f, g)) == pytest.approx(1 - cos, rel=1e-6)
    assert float(L.sfm_loss(f, 2 * f)) == pytest.approx(0.0, abs=1e-6)


def test_linear_ce_grad_hand_computed() -> None:
    # one sample, two classes, zero head: p = (1/2, 1/2), y = 0 -> dCE/dlogits = (−1/2, 1/2)
    x = torch.tensor([[2.0, 3.0]])
    w = torch.zeros(2, 2, requires_grad=True)
    b = torch.zeros(2, requires_grad=True)
    g = L.linear_ce_grad(x, torch.tensor([0]), w, b, create_graph=False)
    assert torch.allclose(g, torch.tensor([-1.0, -1.5, 1.0, 1.5, -0.5, 0.5]))
    xg = x.clone().requires_grad_()
    gg = L.linear_ce_grad(xg, torch.tensor([0]), w, b, create_graph=True)
    assert gg.requires_grad  # a graph through the features (LGM's synthetic side)


def test_lgm_loss() -> None:
    g = torch.tensor([1.0, 0.0, 2.0])
    assert float(L.lgm_loss(g, 5 * g)) == pytest.approx(0.0, abs=1e-7)
    assert float(L.lgm_loss(g, -g)) == pytest.approx(2.0)
    assert float(L.lgm_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- the fast paths, pinned
def _clustering_loss_as_written(q, y, keys, key_pattern, pattern_class, assign="all"):  # noqa: ANN001, ANN202
    """L_clu exactly as ddlib computed it before its per-snapshot preparation was cached and its (B, Q)
    temporaries reused in place: the fast path must give these bits."""
    num_patterns = len(pattern_class)
    ok = key_pattern >= 0
    if num_patterns == 0 or not bool(ok.any()):
        return q.sum() * 0.0
    keys, kp = keys[ok], key_pattern[ok]
    cent, counts = L.pattern_centroids(keys, kp, num_patterns)
    with torch.no_grad():
        a = L.assign_to_centroids(q.detach(), y, cent, counts, pattern_class, assign)
    has = a >= 0
    if not bool(has.any()):
        return q.sum() * 0.0
    q, a = q[has], a[has]
    d = torch.sqrt((2 - 2 * q @ keys.T).clamp_min(0) + 1e-6)
    same = kp[None, :] == a[:, None]
    n_same = same.sum(1)
    pos_sum = torch.where(same, d, torch.zeros((), dtype=d.dtype, device=d.device)).sum(1)
    pos = pos_sum / n_same.clamp_min(1)
    neg = (d.sum(1) - pos_sum) / (len(kp) - n_same).clamp_min(1)
    return (pos + (2 - neg)).mean()


def _info_nce_as_written(q, k, queue, temperature):  # noqa: ANN001, ANN202
    pos = (q * k).sum(1, keepdim=True)
    neg = q @ queue.T
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def _loss_and_grad(fn, q, *args):  # noqa: ANN001, ANN202
    q = q.clone().requires_grad_()
    loss = fn(q, *args)
    loss.backward()
    return loss.detach(), q.grad


@pytest.mark.parametrize("assign", ["all", "own_class"])
def test_clustering_loss_gives_the_bits_it_gave_before(assign: str) -> None:
    g = torch.Generator().manual_seed(3)
    q = F.normalize(torch.randn(64, 16, generator=g), dim=1)
    y = torch.randint(0, 3, (64,), generator=g)
    keys = F.normalize(torch.randn(500, 16, generator=g), dim=1)
    key_pattern = torch.randint(-1, 9, (500,), generator=g)  # some keys without a pattern
    pattern_class = torch.arange(9) // 3
    want = _loss_and_grad(_clustering_loss_as_written, q, y, keys, key_pattern, pattern_class, assign)
    got = _loss_and_grad(L.clustering_loss, q, y, keys, key_pattern, pattern_class, assign)
    snap = L.clustering_snapshot(keys, key_pattern, pattern_class)
    prepared = _loss_and_grad(L.clustering_loss_prepared, q, y, snap, assign)
    for loss, grad in (got, prepared):
        assert torch.equal(loss, want[0]) and torch.equal(grad, want[1])
    # every key with a pattern: the snapshot is used as it is, no copy
    full = torch.randint(0, 9, (500,), generator=g)
    snap = L.clustering_snapshot(keys, full, pattern_class)
    assert snap.keys.data_ptr() == keys.data_ptr()
    want = _loss_and_grad(_clustering_loss_as_written, q, y, keys, full, pattern_class, assign)
    assert all(torch.equal(a, b) for a, b in zip(_loss_and_grad(L.clustering_loss_prepared, q, y, snap, assign), want))


def test_info_nce_gives_the_bits_it_gave_before() -> None:
    g = torch.Generator().manual_seed(4)
    q, k = (F.normalize(torch.randn(32, 16, generator=g), dim=1) for _ in range(2))
    queue = F.normalize(torch.randn(300, 16, generator=g), dim=1)
    for tau in (0.5, 0.2, 0.07):
        want = _loss_and_grad(_info_nce_as_written, q, k, queue, tau)
        got = _loss_and_grad(L.info_nce, q, k, queue, tau)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
