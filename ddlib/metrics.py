"""Metrics of a selection and of a student: accuracy, fill distance, MMD, centre/margin share, purity.

All embedding-space metrics work per class on L2-normalised embeddings (the space BPS
selects in) and return ``{"per_class": [...], "mean": float}``.

Centre/margin role of any pick (:func:`assign_roles`): within its pattern (or its whole class
when no patterns are given), a pick is a *centre* when its cosine to the L2-normalised pattern
mean is at least the pattern's median cosine, else a *margin*. The same criterion is applied
to every selector, BPS included, so the shares are comparable; BPS's own ``role`` field (the
algorithm's centre/margin picks) is reported beside it.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = ["RULES", "accuracy", "fill_distance", "mmd", "mmd_reference", "assign_roles", "centre_margin_share", "pattern_coverage",
           "pattern_purity", "METRICS", "paired_difference", "verdict", "paired_stats", "improvement_over_random",
           "hard_label_recovery"]

#: The two ways a student's accuracy is read: ``best_last``, the reference's best test accuracy over its last
#: evaluated epochs (it looks at the test set that many times), and ``final``, the last epoch's.
RULES = {"best_last": "best of the last epochs", "final": "final epoch"}


def accuracy(logits_or_pred: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray) -> float:
    """Top-1 accuracy as a fraction in [0, 1]; accepts logits (N, C) or predicted labels (N,)."""
    p = torch.as_tensor(np.asarray(logits_or_pred) if not isinstance(logits_or_pred, torch.Tensor) else logits_or_pred)
    if p.ndim == 2:
        p = p.argmax(1)
    t = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    return float((p.cpu() == t.cpu()).float().mean()) if len(t) else 0.0


def _norm(emb: torch.Tensor | np.ndarray) -> torch.Tensor:
    e = torch.as_tensor(np.asarray(emb) if not isinstance(emb, torch.Tensor) else emb).float()
    return torch.nn.functional.normalize(e, dim=1)


def _classes(labels) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels).astype(np.int64)
    return y, np.unique(y)


def fill_distance(embeddings, labels, indices: Sequence[int], block: int = 4096) -> dict:
    """Per class, ``sup_{x in class} min_{s in selection ∩ class} ||x - s||`` (Euclidean, normalised embeddings).

    The covering radius of the selection: small when every sample of the class has a selected
    sample nearby (BPS's Proposition 2). A class with no pick has fill distance ``inf``.
    """
    e = _norm(embeddings)
    y, classes = _classes(labels)
    idx = np.asarray(indices, dtype=np.int64)
    per = []
    for c in classes:
        members = np.nonzero(y == c)[0]
        sel = idx[y[idx] == c] if len(idx) else idx
        if len(sel) == 0:
            per.append(float("inf"))
            continue
        s = e[sel]
        worst = 0.0
        for i in range(0, len(members), block):
            d = torch.cdist(e[members[i:i + block]], s).min(dim=1).values
            worst = max(worst, float(d.max()))
        per.append(worst)
    return {"per_class": per, "mean": float(np.mean(per))}


def _median_sq_dist(x: torch.Tensor, max_points: int = 1000, seed: int = 0) -> float:
    if len(x) > max_points:
        g = torch.Generator().manual_seed(seed)
        x = x[torch.randperm(len(x), generator=g)[:max_points]]
    d = torch.cdist(x, x).pow(2)
    iu = torch.triu_indices(len(x), len(x), 1)
    v = d[iu[0], iu[1]]
    return float(v.median()) if len(v) else 1.0


def mmd_reference(embeddings, labels, max_class: int = 5000, seed: int = 0) -> dict:
    """What :func:`mmd` computes of each class whatever the selection: its (sub)sample, the RBF bandwidth and
    the class's own kernel mean ``E k(x, x')`` (the costly term: a kernel of ``max_class`` by ``max_class``
    entries). Compute it once and
    pass it as ``mmd(..., reference=...)`` to score many selections of the same embeddings (a selection table
    of six methods at three IPCs computes it once instead of eighteen times; the results are the same)."""
    e = _norm(embeddings)
    y, classes = _classes(labels)
    g = torch.Generator().manual_seed(seed)
    per = {}
    for c in classes:
        members = torch.as_tensor(np.nonzero(y == c)[0])
        if len(members) > max_class:
            members = members[torch.randperm(len(members), generator=g)[:max_class]]
        x = e[members]
        bw = max(_median_sq_dist(x, seed=seed), 1e-12)
        per[int(c)] = (x, bw, torch.exp(-torch.cdist(x, x).pow(2) / bw).mean())
    return {"embeddings": e, "labels": y, "classes": per}


def mmd(embeddings, labels, indices: Sequence[int], max_class: int = 5000, seed: int = 0,
        reference: dict | None = None) -> dict:
    """Per class, the (biased) squared MMD between the selection and the whole class, RBF kernel.

    Bandwidth by the median heuristic: ``k(a, b) = exp(-||a-b||² / median²)`` with the median
    squared pairwise distance of the class (1,000 samples drawn with ``seed``). Classes larger
    than ``max_class`` are compared through ``max_class`` samples drawn with ``seed``. ``reference``:
    :func:`mmd_reference` of the same embeddings, labels, ``max_class`` and ``seed``, computed once for many
    selections (``embeddings`` and ``labels`` are then not read again).
    """
    ref = reference if reference is not None else mmd_reference(embeddings, labels, max_class, seed)
    e, y = ref["embeddings"], ref["labels"]
    idx = np.asarray(indices, dtype=np.int64)
    per = []
    for c, (x, bw, kxx) in ref["classes"].items():
        sel = idx[y[idx] == c] if len(idx) else idx
        if len(sel) == 0:
            per.append(float("nan"))
            continue
        s = e[sel]
        kss = torch.exp(-torch.cdist(s, s).pow(2) / bw).mean()
        kxs = torch.exp(-torch.cdist(x, s).pow(2) / bw).mean()
        per.append(float(max(kxx + kss - 2 * kxs, 0.0)))
    return {"per_class": per, "mean": float(np.nanmean(per))}


def assign_roles(embeddings, labels, indices: Sequence[int], patterns=None) -> list[str]:
    """The centre/margin role of each pick by the common criterion (see the module docstring)."""
    e = _norm(embeddings)
    y, _ = _classes(labels)
    pat = np.zeros(len(y), dtype=np.int64) if patterns is None else np.asarray(
        patterns.cpu() if isinstance(patterns, torch.Tensor) else patterns).astype(np.int64)
    idx = np.asarray(indices, dtype=np.int64)
    roles: list[str] = []
    cache: dict[tuple[int, int], tuple[torch.Tensor, float]] = {}
    for k in idx:
        key = (int(y[k]), int(pat[k]))
        if key not in cache:
            members = np.nonzero((y == key[0]) & (pat == key[1]))[0]
            mu = torch.nn.functional.normalize(e[members].mean(0), dim=0)
            cache[key] = (mu, float(np.median((e[members] @ mu).numpy())))
        mu, med = cache[key]
        roles.append("centre" if float(e[k] @ mu) >= med else "margin")
    return roles


def centre_margin_share(roles: Sequence[str]) -> dict[str, float]:
    """Share of centre and margin picks (fractions summing to 1)."""
    n = max(len(roles), 1)
    c = sum(r == "centre" for r in roles)
    return {"centre": c / n, "margin": (len(roles) - c) / n}


def pattern_coverage(labels, indices: Sequence[int], patterns) -> float:
    """Fraction of (class, pattern) pairs that have at least one pick."""
    y, _ = _classes(labels)
    pat = np.asarray(patterns.cpu() if isinstance(patterns, torch.Tensor) else patterns).astype(np.int64)
    all_pairs = set(zip(y.tolist(), pat.tolist()))
    idx = np.asarray(indices, dtype=np.int64)
    hit = set(zip(y[idx].tolist(), pat[idx].tolist()))
    return len(hit) / max(len(all_pairs), 1)


def pattern_purity(found, truth, labels=None) -> dict:
    """NMI between found patterns and known sub-patterns; per class when ``labels`` are given.

    Returns ``{"per_class": [...], "mean": float}`` (mean weighted by class size), or with no
    labels ``{"per_class": [nmi], "mean": nmi}`` over all samples.
    """
    from sklearn.metrics import normalized_mutual_info_score

    f = np.asarray(found.cpu() if isinstance(found, torch.Tensor) else found)
    t = np.asarray(truth.cpu() if isinstance(truth, torch.Tensor) else truth)
    if labels is None:
        v = float(normalized_mutual_info_score(t, f))
        return {"per_class": [v], "mean": v}
    y, classes = _classes(labels)
    per, w = [], []
    for c in classes:
        m = y == c
        per.append(float(normalized_mutual_info_score(t[m], f[m])))
        w.append(int(m.sum()))
    return {"per_class": per, "mean": float(np.average(per, weights=w))}


METRICS = {"fill_distance": fill_distance, "mmd": mmd}


# ----------------------------------------------------------------------------- comparisons over seeds
def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean of the paired differences ``a[i] - b[i]`` over seeds with its Student-t confidence interval.

    Seed ``i`` of ``a`` and of ``b`` must share everything but the compared factor (the student's
    initialisation and augmentation stream; for random selection, a fresh draw per seed). With
    ``d = a - b`` over ``n`` seeds: ``diff_mean = mean(d)``, ``sd = std(d, ddof=1)``,
    ``half = t_{(1+confidence)/2, n-1} · sd / sqrt(n)``, ``ci = (diff_mean - half, diff_mean + half)``.
    The interval needs ``n >= 2``; with ``n = 1`` it is ``(nan, nan)``. ``excludes_zero`` says whether
    the interval lies wholly on one side of 0 (the two cannot be told apart when it does not).
    """
    from scipy import stats

    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError(f"paired_difference needs two equal-length 1-d sequences; got {x.shape} and {y.shape}")
    if not np.all(np.isfinite(x)) or not np.all(np.isfinite(y)):
        raise ValueError("paired_difference: every accuracy must be finite")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r} must be in (0, 1)")
    d = x - y
    n = len(d)
    mean = float(d.mean())
    if n < 2:
        lo = hi = sd = float("nan")
    else:
        sd = float(d.std(ddof=1))
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / np.sqrt(n)
        lo, hi = mean - half, mean + half
    return {"n": n, "diff_mean": mean, "diff_sd": sd, "ci": (lo, hi), "confidence": confidence,
            "excludes_zero": bool(n >= 2 and (lo > 0 or hi < 0))}


def verdict(name: str, baseline: str, diff: dict, unit: float = 100.0, points: str = "points") -> str:
    """A sentence computed from a :func:`paired_difference` result, never typed by hand.

    ``"bps beats random by 2.1 ± 0.8 points"`` (mean ± half-width of the interval) when the interval
    lies above 0, ``"bps trails random by …"`` when below, else ``"bps and random cannot be told
    apart (difference 0.3 ± 1.2 points)"``. ``unit`` scales fractions to percentage points.
    """
    lo, hi = diff["ci"]
    m = diff["diff_mean"] * unit
    if not np.isfinite(lo):
        return f"{name} vs {baseline}: {m:+.1f} {points} from a single seed (no interval)"
    half = (hi - lo) / 2 * unit
    if lo > 0:
        return f"{name} beats {baseline} by {m:.1f} ± {half:.1f} {points}"
    if hi < 0:
        return f"{name} trails {baseline} by {-m:.1f} ± {half:.1f} {points}"
    return f"{name} and {baseline} cannot be told apart (difference {m:+.1f} ± {half:.1f} {points})"


def paired_stats(a: Sequence[float], b: Sequence[float], name: str, baseline: str,
                 confidence: float = 0.95) -> dict:
    """A paired comparison as a table row's statistics: ``n_seeds``, ``diff_mean``, ``ci95`` (low, high),
    ``excludes_zero`` and its ``verdict`` sentence (:func:`paired_difference`, :func:`verdict`)."""
    d = paired_difference(a, b, confidence)
    return {"n_seeds": d["n"], "diff_mean": d["diff_mean"], "ci95": list(d["ci"]),
            "excludes_zero": d["excludes_zero"], "verdict": verdict(name, baseline, d)}


def improvement_over_random(method_acc: Sequence[float], random_acc: Sequence[float],
                            confidence: float = 0.95) -> dict:
    """DD-Ranking's IOR = Acc(syn, any protocol) − Acc(random, same protocol), paired over seeds.

    Higher is better: how much the selection beats a fresh random subset of the same size trained
    the same way (KD here). A :func:`paired_difference`.
    """
    return paired_difference(method_acc, random_acc, confidence)


def hard_label_recovery(full_data_hard_acc: float, method_hard_acc: Sequence[float],
                        confidence: float = 0.95) -> dict:
    """DD-Ranking's HLR = Acc(real full data, hard labels) − Acc(syn, hard labels).

    Lower is better: how far hard-label students on the selection stay below a model of the same
    architecture trained on all the data with hard labels. ``full_data_hard_acc`` is one number
    (one full-data run), so the interval reflects the selection's seed-to-seed spread only.
    """
    m = np.asarray(method_hard_acc, dtype=np.float64)
    return paired_difference(np.full(len(m), float(full_data_hard_acc)), m, confidence)
