"""BPS Stage 2: balanced centre/margin selection from one cached modelling.

Given the Stage-1 embeddings, the per-class pattern ids and the per-sample entropy of a
full-data teacher, every IPC is a few milliseconds of array work (METHODS.md §1, Stage 2;
the reference is ``stage2_selection.py`` + ``utils/engine_pretrain.py`` of the BPS code):

1. per class, slots per pattern ``round(|O_m|/|class| · IPC)``, the total repaired one slot at
   a time on the largest patterns first; patterns with 0 slots are dropped;
2. within a pattern with budget ``b``: ``int(centre_frac·b + 0.5)`` centre picks, the samples
   with the highest cosine to the (L2-normalised) pattern mean;
3. margin picks, among the pattern's remaining samples, from the teacher-entropy candidates
   with the two-component GMM noisy-label filter (:func:`margin_picks`).

A class (or a pattern) no larger than its budget is taken whole, as in the reference; the
class then has fewer than IPC images when one of its patterns is smaller than its slots.

Result: ``{"indices", "pattern", "role"}`` (lists, one entry per pick; role = "centre" |
"margin") plus ``"config"``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.mixture import GaussianMixture  # imported here so that selection times exclude the import

from ddlib.utils import check_choice, check_float, check_int, config_dict

ROLES = ("centre", "margin")
GMM_BACKENDS = ("sklearn", "numpy")


@dataclass(frozen=True)
class SelectConfig:
    """Stage-2 settings; defaults are the reference's (CIFAR: K = 10 %, half centres)."""

    ipc: int = 10
    k_ratio: float = 0.10          # candidate share of the highest entropies (0.2 for noisy data, ImageNet)
    centre_frac: float = 0.5       # share of each pattern's budget taken from its centre
    gmm_filter: bool = True        # drop the high-entropy (likely mislabelled) GMM mode
    gmm_seed: int = 1228           # the reference's default seed (GaussianMixture random_state)
    gmm_min_pool: int = 10         # filter only when the margin pool has >= this many samples
    gmm_min_candidates: int = 5    # ... and at least this many candidates
    gmm_backend: str = "sklearn"   # "sklearn" (the reference's GaussianMixture) | "numpy" (faster; see gmm_fit)

    def __post_init__(self) -> None:
        check_int("ipc", self.ipc, 1)
        check_float("k_ratio", self.k_ratio, 0.0, 1.0)
        check_float("centre_frac", self.centre_frac, 0.0, 1.0)
        if not isinstance(self.gmm_filter, bool):
            from ddlib.utils import ParamError
            raise ParamError(f"gmm_filter={self.gmm_filter!r} must be True or False")
        check_int("gmm_seed", self.gmm_seed, 0, 2**32 - 1)
        check_int("gmm_min_pool", self.gmm_min_pool, 1)
        check_int("gmm_min_candidates", self.gmm_min_candidates, 2)
        check_choice("gmm_backend", self.gmm_backend, GMM_BACKENDS)


def pattern_slots(sizes: np.ndarray | list[int], ipc: int) -> np.ndarray:
    """Slots per pattern: ``round(size/total·ipc)``, the total repaired on the largest patterns first.

    The difference ``ipc - sum`` is added (or removed) one slot at a time, cycling over the
    patterns in decreasing size (stable order on ties); negative slots are clipped to 0.
    Patterns with 0 slots are dropped by the caller. Rounding is NumPy's (half to even), as
    in the reference.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    if sizes.ndim != 1 or len(sizes) == 0 or (sizes <= 0).any():
        raise ValueError(f"sizes must be a non-empty 1-D array of positive counts, got {sizes!r}")
    ipc = check_int("ipc", ipc, 0)
    slots = np.round(sizes / sizes.sum() * ipc).astype(np.int64)
    diff = int(ipc - slots.sum())
    order = np.argsort(-sizes, kind="stable")
    for i in range(abs(diff)):
        slots[order[i % len(order)]] += int(np.sign(diff))
    return np.clip(slots, 0, None)


def centre_order(emb: torch.Tensor | np.ndarray) -> np.ndarray:
    """Local indices of a pattern's samples by decreasing cosine to the L2-normalised pattern mean."""
    e = np.asarray(emb, dtype=np.float64)
    mu = e.mean(axis=0)
    mu = mu / (np.linalg.norm(mu) + 1e-8)
    sims = e @ mu
    return np.argsort(-sims, kind="stable")


def centre_picks(emb: torch.Tensor | np.ndarray, n_pick: int) -> np.ndarray:
    """The ``n_pick`` samples with the highest cosine to the pattern mean (local indices)."""
    return centre_order(emb)[: max(0, int(n_pick))]


def gmm_fit(values: np.ndarray, seed: int = 1228, backend: str = "sklearn") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A two-component 1-D Gaussian mixture: means, variances, weights sorted by mean.

    ``backend="sklearn"``: scikit-learn's ``GaussianMixture(2, random_state=seed)`` as the reference.
    ``backend="numpy"``: the same model and EM (hard k-means start, ``reg_covar=1e-6``, E-step then
    M-step until the mean log-likelihood gains < 1e-3, at most 100 iterations) in vectorised NumPy,
    without scikit-learn's per-call overhead (~1 ms instead of ~20-50 ms per fit). Departure: its
    start is the optimal 1-D two-means split rather than scikit-learn's seeded k-means, so on data
    without two clear modes EM can stop in another local optimum and the cut can differ; on
    well-separated modes both agree. Not the default, for that reason.
    """
    if backend == "numpy":
        return _gmm_numpy(np.asarray(values, dtype=np.float64).ravel())
    v = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    gmm = GaussianMixture(n_components=2, random_state=seed).fit(v)
    order = np.argsort(gmm.means_.ravel())
    return gmm.means_.ravel()[order], gmm.covariances_.ravel()[order], gmm.weights_[order]


def _gmm_numpy(x: np.ndarray, reg: float = 1e-6, tol: float = 1e-3, max_iter: int = 100):
    n = len(x)
    if n < 2:
        raise ValueError("a two-component mixture needs at least 2 values")
    xs = np.sort(x)
    c = np.cumsum(xs)
    c2 = np.cumsum(xs * xs)
    k = np.arange(1, n)  # left part = xs[:k]
    sse = (c2[k - 1] - c[k - 1] ** 2 / k) + ((c2[-1] - c2[k - 1]) - (c[-1] - c[k - 1]) ** 2 / (n - k))
    split = xs[int(np.argmin(sse))]
    resp = np.stack([x <= split, x > split], 1).astype(np.float64)
    eps = 10 * np.finfo(np.float64).eps

    def m_step(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nk = r.sum(0) + eps
        mu = (r * x[:, None]).sum(0) / nk
        return mu, (r * (x[:, None] - mu) ** 2).sum(0) / nk + reg, nk / nk.sum()

    mu, var, w = m_step(resp)
    prev = -np.inf
    for _ in range(max_iter):  # as scikit-learn: E-step, M-step, then the convergence test
        logp = np.log(w) - 0.5 * (np.log(2 * np.pi * var) + (x[:, None] - mu) ** 2 / var)
        top = logp.max(1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(logp - top).sum(1))
        ll = lse.mean()
        mu, var, w = m_step(np.exp(logp - lse[:, None]))
        if abs(ll - prev) < tol:
            break
        prev = ll
    order = np.argsort(mu)
    return mu[order], var[order], w[order]


def gmm_cut(values: np.ndarray, seed: int = 1228, backend: str = "sklearn") -> tuple[float, float]:
    """(μ_low, cut): the low mode's mean and where the two weighted Gaussians intersect between the means.

    Solves ``w1·N(x; μ1, σ1²) = w2·N(x; μ2, σ2²)`` for x; the root in (μ_low, μ_high) is the cut,
    +inf when there is none (then nothing is filtered). Only real roots count (the reference
    compares NumPy's possibly complex roots directly).
    """
    means, var, w = gmm_fit(values, seed, backend)
    (m1, m2), (v1, v2), (w1, w2) = means, var, w
    a = 1 / (2 * v2) - 1 / (2 * v1)
    b = m1 / v1 - m2 / v2
    c = (m2 ** 2 / (2 * v2) - m1 ** 2 / (2 * v1)) + np.log(w1 * np.sqrt(v1) / (w2 * np.sqrt(v2)))
    roots = np.roots([a, b, c])
    roots = roots[np.abs(np.imag(roots)) < 1e-9].real
    valid = roots[(roots > m1) & (roots < m2)]
    return float(m1), float(valid[0]) if len(valid) else float("inf")


def margin_picks(entropies: np.ndarray, n_pick: int, k_ratio: float = 0.10, *, gmm_filter: bool = True,
                 seed: int = 1228, min_pool: int = 10, min_candidates: int = 5,
                 backend: str = "sklearn") -> np.ndarray:
    """``n_pick`` margin samples (local indices into ``entropies``), the reference's rules exactly.

    Candidates are the top ``int(max(K·n, min(10, n)))`` entropies. When n ≥ 10 and there are
    ≥ 5 candidates, a 2-component GMM on the candidates gives (μ_low, cut); samples of the whole
    pool with entropy in [μ_low, cut] are taken in ascending entropy; a shortfall is filled first
    from entropies below μ_low (descending), then from the rest (descending entropy). Without
    the filter (small pools, ``gmm_filter=False``) the highest entropies are taken.
    """
    h = np.asarray(entropies, dtype=np.float64)
    n = len(h)
    if n_pick <= 0:
        return np.zeros(0, dtype=np.int64)
    if n <= n_pick:
        return np.arange(n)
    chosen: list[int] = []
    if gmm_filter and n >= min_pool:
        n_cand = int(max(n * k_ratio, min(10, n)))
        cand = np.sort(h)[-n_cand:]
        if len(cand) >= min_candidates:
            try:
                lo, cut = gmm_cut(cand, seed, backend)
            except ValueError:  # degenerate candidates (the reference skips the filter then)
                lo, cut = None, None
            if lo is not None:
                primary = np.nonzero((h >= lo) & (h <= cut))[0]
                primary = primary[np.argsort(h[primary], kind="stable")]
                chosen = list(primary[:n_pick])
                if len(chosen) < n_pick:
                    below = np.nonzero(h < lo)[0]
                    below = below[np.argsort(-h[below], kind="stable")]
                    chosen += list(below[: n_pick - len(chosen)])
    if len(chosen) < n_pick:
        rest = np.setdiff1d(np.arange(n), np.asarray(chosen, dtype=np.int64))
        rest = rest[np.argsort(-h[rest], kind="stable")]
        chosen += list(rest[: n_pick - len(chosen)])
    return np.asarray(chosen, dtype=np.int64)


def select_pattern(emb: np.ndarray, entropies: np.ndarray, budget: int,
                   cfg: SelectConfig = SelectConfig()) -> tuple[np.ndarray, list[str]]:
    """Local indices and roles of one pattern's picks (centres first, then margins)."""
    n = len(emb)
    e = np.asarray(emb, dtype=np.float64)
    order = centre_order(e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12))
    if n <= budget:  # taken whole; roles by the same rule as if the budget were the pattern size
        n_c = int(cfg.centre_frac * n + 0.5)
        return order, ["centre"] * n_c + ["margin"] * (n - n_c)
    n_c = int(budget * cfg.centre_frac + 0.5)
    centres = order[:n_c]
    rest = np.setdiff1d(np.arange(n), centres)  # ascending local index, as the reference's mask
    margins = rest[margin_picks(entropies[rest], budget - n_c, cfg.k_ratio, gmm_filter=cfg.gmm_filter,
                                seed=cfg.gmm_seed, min_pool=cfg.gmm_min_pool,
                                min_candidates=cfg.gmm_min_candidates, backend=cfg.gmm_backend)] if budget > n_c else np.zeros(0, np.int64)
    picks = list(centres) + list(margins)
    roles = ["centre"] * len(centres) + ["margin"] * len(margins)
    if len(picks) < budget:  # reference back-fill from the centre order
        taken = set(picks)
        extra = [i for i in order if i not in taken][: budget - len(picks)]
        picks += extra
        roles += ["centre"] * len(extra)
    return np.asarray(picks, dtype=np.int64), roles


def select_bps(embeddings: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray,
               patterns: torch.Tensor | np.ndarray, entropies: torch.Tensor | np.ndarray,
               ipc: int | SelectConfig, cfg: SelectConfig | None = None) -> dict:
    """Balanced Pattern Selection: ``{"indices", "pattern", "role", "config"}`` for one IPC.

    ``patterns`` are pattern ids per sample (within-class or global: a pattern is a distinct
    (label, id) pair). ``indices`` index the rows of ``embeddings``; picks are grouped by class,
    then pattern (largest first), centres before margins.
    """
    if isinstance(ipc, SelectConfig):
        cfg = ipc
    else:
        cfg = SelectConfig(ipc=check_int("ipc", ipc, 1)) if cfg is None else cfg
        if cfg.ipc != ipc:
            cfg = SelectConfig(**{**config_dict(cfg), "ipc": ipc})
    emb = _np(embeddings)  # rows are L2-normalised per pattern, where used (no copy of the whole array)
    y, pat, h = _np(labels).astype(np.int64), _np(patterns).astype(np.int64), _np(entropies).astype(np.float64)
    if not (len(emb) == len(y) == len(pat) == len(h)):
        raise ValueError(f"embeddings, labels, patterns and entropies differ in length: "
                         f"{len(emb)}, {len(y)}, {len(pat)}, {len(h)}")
    out_i: list[int] = []
    out_p: list[int] = []
    out_r: list[str] = []
    for c in np.unique(y):
        idx = np.nonzero(y == c)[0]
        ids, counts = np.unique(pat[idx], return_counts=True)
        if len(idx) <= cfg.ipc:  # the whole class; roles per pattern as for a whole pattern
            budgets = counts
        else:
            budgets = pattern_slots(counts, cfg.ipc)
        for p in np.argsort(-counts, kind="stable"):
            if budgets[p] == 0:
                continue
            members = idx[pat[idx] == ids[p]]
            local, roles = select_pattern(emb[members], h[members], int(budgets[p]), cfg)
            out_i += members[local].tolist()
            out_p += [int(ids[p])] * len(local)
            out_r += roles
    return {"indices": out_i, "pattern": out_p, "role": out_r, "config": config_dict(cfg)}


def select_all(embeddings, labels, patterns, entropies, ipcs: list[int], cfg: SelectConfig | None = None) -> dict[int, dict]:
    """Every IPC from one modelling: ``{ipc: selection}``."""
    base = cfg or SelectConfig()
    return {k: select_bps(embeddings, labels, patterns, entropies, SelectConfig(**{**config_dict(base), "ipc": k}))
            for k in ipcs}


def _np(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
