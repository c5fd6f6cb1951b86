"""Every loss of ddlib, as pure typed functions with the formula in the docstring.

Near the bottom of the layers (imports torch only): the training loop (:mod:`ddlib.train`), the
encoders (:mod:`ddlib.encoders`), BPS (:mod:`ddlib.bps`) and SFM/LGM/CI (:mod:`ddlib.sfm`) import
their losses from here. Each is tested alone on hand-computed tensors (``tests/test_losses.py``).

Classification: :func:`cutmix_cross_entropy`, :func:`softmax_entropy`.
Distillation from a teacher, two meanings: :func:`kd_kl_loss` (BPS's students: KL·τ², no CE) and
:func:`kd_kl_ce_loss` (the SFM paper's KD baseline: w·KL·T² + (1 − w)·CE).
Self-supervised (BPS Stage 1): :func:`info_nce`, :func:`clustering_loss` (L_clu) with its helpers
:func:`pattern_centroids` and :func:`assign_to_centroids`, and its once-per-partition preparation
:func:`clustering_snapshot` (:func:`clustering_loss_prepared`).
Feature matching: :func:`projector_loss` (CI's projector), :func:`flat_cosine`, :func:`sfm_loss`,
:func:`linear_ce_grad` and :func:`lgm_loss`.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["cutmix_cross_entropy", "softmax_entropy", "kd_kl_loss", "kd_kl_ce_loss", "info_nce",
           "pattern_centroids", "assign_to_centroids", "ClusteringSnapshot", "clustering_snapshot",
           "clustering_loss_prepared", "clustering_loss", "projector_loss", "flat_cosine",
           "sfm_loss", "linear_ce_grad", "lgm_loss"]


# ----------------------------------------------------------------------------- classification
def cutmix_cross_entropy(logits: Tensor, labels: Tensor, perm: Tensor, lam: float) -> Tensor:
    """CE of a CutMix batch: ``λ·CE(s, y) + (1 − λ)·CE(s, y[perm])`` (batch means), where image i was
    mixed with image ``perm[i]`` and λ is the share of pixels it kept."""
    return lam * F.cross_entropy(logits, labels) + (1 - lam) * F.cross_entropy(logits, labels[perm.to(labels.device)])


def softmax_entropy(logits: Tensor) -> Tensor:
    """Per-row entropy (nats) of ``softmax(logits)``: ``H_i = −Σ_c p_ic log p_ic`` (computed in float32)."""
    logp = F.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(1)


# ----------------------------------------------------------------------------- distillation
def kd_kl_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """BPS's student loss: ``KL(softmax(t/τ) ‖ softmax(s/τ))·τ²``, batch mean, no hard-label term
    (the reference's ``KLDivLoss(reduction="batchmean")`` on log_softmax(s/τ) and softmax(t/τ))."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.softmax(teacher_logits / t, 1),
                    reduction="batchmean") * t * t


def kd_kl_ce_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, temperature: float = 4.0,
                  kd_weight: float = 0.5) -> Tensor:
    """The SFM paper's KD baseline: ``w·KL(softmax(t/T) ‖ softmax(s/T))·T² + (1 − w)·CE(s, y)``, batch
    means (the KL computed from both log-softmaxes)."""
    t = temperature
    kl = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                  reduction="batchmean", log_target=True)
    return kd_weight * kl * t * t + (1 - kd_weight) * F.cross_entropy(student_logits, labels)


# ----------------------------------------------------------------------------- self-supervised (Stage 1)
def info_nce(q: Tensor, k: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """MoCo's InfoNCE: ``CE([q·k⁺, q·queueᵀ] / τ, target 0)``; q, k (B, D) and queue (Q, D) L2-normalised.

    The (B, 1 + Q) logits are divided by τ in place (the same bits as ``/ τ``, one temporary fewer).
    """
    pos = (q * k).sum(1, keepdim=True)
    neg = q @ queue.T
    logits = torch.cat([pos, neg], dim=1).div_(temperature)
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def pattern_centroids(keys: Tensor, key_pattern: Tensor, num_patterns: int) -> tuple[Tensor, Tensor]:
    """L2-normalised mean key of each pattern (P, D) and each pattern's member count (P,); keys with
    pattern -1 are ignored."""
    ok = key_pattern >= 0
    cent = torch.zeros(num_patterns, keys.shape[1], device=keys.device, dtype=keys.dtype)
    cent.index_add_(0, key_pattern[ok], keys[ok])
    counts = torch.bincount(key_pattern[ok], minlength=num_patterns)
    return F.normalize(cent, dim=1), counts


#: How L_clu assigns a query to a pattern: "all" = the nearest centroid over the patterns of every
#: class (the reference's ``DINOLoss``: ``argmax`` of ``q·centroid`` over all centroids), "own_class" =
#: the nearest centroid among the patterns of the query's own class (ddlib's earlier choice).
CLU_ASSIGN = ("all", "own_class")


def assign_to_centroids(z: Tensor, y: Tensor, centroids: Tensor, counts: Tensor, pattern_class: Tensor,
                        assign: str = "all") -> Tensor:
    """The nearest (cosine) non-empty centroid of each row: over every pattern (``assign="all"``) or over
    the patterns of the row's own class y (``"own_class"``); -1 where there is none to choose."""
    if assign not in CLU_ASSIGN:
        raise ValueError(f"assign={assign!r} is not accepted; choose one of {list(CLU_ASSIGN)}")
    s = z @ centroids.T
    allowed = (counts > 0)[None, :].expand_as(s)
    if assign == "own_class":
        allowed = allowed & (pattern_class[None, :] == y[:, None])
    s = s.masked_fill(~allowed, float("-inf"))
    a = s.argmax(1)
    return torch.where(allowed.any(1), a, torch.full_like(a, -1))


class ClusteringSnapshot(NamedTuple):
    """What L_clu needs of a partitioned snapshot of keys, fixed until the next partition: the keys that
    have a pattern (the snapshot itself when all do, not a copy), their pattern ids, the patterns'
    centroids and member counts (:func:`pattern_centroids`) and the class of each pattern."""

    keys: Tensor
    key_pattern: Tensor
    centroids: Tensor
    counts: Tensor
    pattern_class: Tensor


def clustering_snapshot(keys: Tensor, key_pattern: Tensor, pattern_class: Tensor) -> ClusteringSnapshot | None:
    """The :class:`ClusteringSnapshot` of keys (Q, D) with pattern ids (-1: none) and pattern_class (P,);
    None when there is no pattern (L_clu is then 0). Compute it once per partition, not once per step."""
    ok = key_pattern >= 0
    if len(pattern_class) == 0 or not bool(ok.any()):
        return None
    if not bool(ok.all()):
        keys, key_pattern = keys[ok], key_pattern[ok]
    cent, counts = pattern_centroids(keys, key_pattern, len(pattern_class))
    return ClusteringSnapshot(keys, key_pattern, cent, counts, pattern_class)


def clustering_loss_prepared(q: Tensor, y: Tensor, snap: ClusteringSnapshot | None, assign: str = "all") -> Tensor:
    """:func:`clustering_loss` against a prepared snapshot (:func:`clustering_snapshot`).

    The (B, Q) distance temporaries are computed in place where autograd allows it: the same bits as
    the out-of-place formula, fewer large allocations.
    """
    if snap is None:
        return q.sum() * 0.0
    keys, kp = snap.keys, snap.key_pattern
    with torch.no_grad():
        a = assign_to_centroids(q.detach(), y, snap.centroids, snap.counts, snap.pattern_class, assign)
    has = a >= 0
    if not bool(has.any()):
        return q.sum() * 0.0
    if not bool(has.all()):
        q, a = q[has], a[has]
    # d = sqrt(max(2 − 2·q·k, 0) + 1e-6): −2·s is exact, then + 2 rounds as 2 − 2·s does
    d = torch.sqrt_((q @ keys.T).mul_(-2).add_(2).clamp_min(0).add_(1e-6))  # (B, Q)
    same = kp[None, :] == a[:, None]
    n_same = same.sum(1)
    pos_sum = torch.where(same, d, torch.zeros((), dtype=d.dtype, device=d.device)).sum(1)
    pos = pos_sum / n_same.clamp_min(1)
    neg = (d.sum(1) - pos_sum) / (len(kp) - n_same).clamp_min(1)
    return (pos + (2 - neg)).mean()


def clustering_loss(q: Tensor, y: Tensor, keys: Tensor, key_pattern: Tensor, pattern_class: Tensor,
                    assign: str = "all") -> Tensor:
    """L_clu of BPS: queries q (B, D) of classes y; keys (Q, D) with pattern ids (-1: none),
    pattern_class (P,) the class of each pattern id.

    Each query goes to the nearest pattern centroid (the L2-normalised mean of the pattern's keys):
    over the patterns of every class (``assign="all"``, the reference) or of its own class
    (``"own_class"``). With d = sqrt(2 − 2·q·k + 1e-6), the loss is the mean over those queries of
    [mean d to the keys of its pattern] + (2 − [mean d to all other keys]). Queries with no pattern to
    go to (an empty partition; with "own_class", a class without patterns) contribute nothing.

    A training step against a fixed snapshot should prepare it once (:func:`clustering_snapshot`) and call
    :func:`clustering_loss_prepared`: the same value, without recomputing the centroids every step.
    """
    return clustering_loss_prepared(q, y, clustering_snapshot(keys, key_pattern, pattern_class), assign)


# ----------------------------------------------------------------------------- feature matching
def projector_loss(projected: Tensor, target: Tensor) -> Tensor:
    """CI's projector loss: ``MSE(P(φ_eval(x)), φ_distill(x))``, mean over batch and features."""
    return F.mse_loss(projected, target)


def flat_cosine(a: Tensor, b: Tensor) -> Tensor:
    """``cos(vec a, vec b)`` of two same-shaped tensors flattened whole (float32, eps 1e-12), 0-d."""
    return F.cosine_similarity(a.reshape(1, -1).float(), b.reshape(1, -1).float(), dim=1, eps=1e-12)[0]


def sfm_loss(f_real: Tensor, f_syn: Tensor) -> Tensor:
    """SFM: ``1 − cos(vec F, vec F̂)`` over the whole C×D flow matrices, F the dataset's statistical flows
    and F̂ the synthetic ones (both from :func:`ddlib.sfm.stats.flows`)."""
    return 1 - flat_cosine(f_real, f_syn)


def linear_ce_grad(features: Tensor, labels: Tensor, w: Tensor, b: Tensor, create_graph: bool) -> Tensor:
    """``vec(∇_W CE, ∇_b CE)`` of the linear head ``features @ Wᵀ + b``; a graph through the features if asked."""
    out = features @ w.t() + b
    loss = F.cross_entropy(out, labels)
    gw, gb = torch.autograd.grad(loss, [w, b], create_graph=create_graph)
    return torch.cat([gw.flatten(), gb.flatten()])


def lgm_loss(g_real: Tensor, g_syn: Tensor) -> Tensor:
    """LGM: ``1 − cos(vec g_real, vec g_syn)`` of the real and synthetic head gradients."""
    return 1 - flat_cosine(g_real, g_syn)
