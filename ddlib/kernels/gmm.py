"""Two-component 1-D Gaussian mixtures: scikit-learn's fit, and the same fit for many value sets at once.

BPS's noisy-label filter fits ``GaussianMixture(n_components=2, random_state=seed)`` to each
pattern's candidate entropies (METHODS.md §1, Stage 2) and cuts where the two weighted Gaussians
cross. One scikit-learn fit costs milliseconds of Python overhead for a few dozen numbers;
Stage 2 makes hundreds of them. :func:`fit_batched` runs the *same algorithm* over a padded
(J, L) array of J value sets at once, in NumPy:

1. scikit-learn's k-means initialisation, replicated step by step: the values centred by their
   mean; k-means++ with ``RandomState(seed)`` (first centre ``choice(n, p=1/n)``, then 2 local
   trials drawn ``uniform(size=2)`` times the potential, the candidate with the lower potential
   kept; distances as ``-2·x·c + c² + x²`` clipped at 0, as ``_euclidean_distances``); Lloyd
   iterations (label 1 only when strictly nearer, centres = sum × (1/count), stop on unchanged
   labels or a centre shift² ≤ 1e-4 × var(x), then relabel with the last centres);
2. EM as ``GaussianMixture``: one-hot start from the k-means labels, ``reg_covar = 1e-6``, weights
   nk/n at the start and nk/Σnk after, precision 1/√var, the log-sum-exp of ``sklearn.utils._array_api``,
   E-step then M-step, stop when the mean log-likelihood changes by < 1e-3, at most 100 iterations.

The random draws depend only on the seed, so they are drawn once for all sets. The arithmetic
order of sums differs from scikit-learn's (NumPy's pairwise sums instead of BLAS dot products), so
every *decision* that a rounding difference could flip is checked: a k-means++ draw within 1e-9
of a cumulative-sum boundary, two candidate potentials within 1e-9, a value within 1e-9 of the
Lloyd midpoint, an empty cluster, a convergence test within 1e-9 of its threshold, a candidate
value within 1e-9 (relative) of μ_low or of the cut, a near-double root, two roots between the
means. Sets with such a decision are refitted with scikit-learn itself (:func:`fit_sklearn`),
so the cuts agree with scikit-learn's to rounding and the picks they imply are the same;
``stats["fallbacks"]`` counts them.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

__all__ = ["REG_COVAR", "EM_TOL", "EM_MAX_ITER", "KM_TOL", "KM_MAX_ITER", "DELICATE", "fit_sklearn", "gaussian_cut",
           "cut_sklearn", "fit_batched", "cuts"]

REG_COVAR = 1e-6   # GaussianMixture's default
EM_TOL = 1e-3      # GaussianMixture's default tol
EM_MAX_ITER = 100  # GaussianMixture's default max_iter
KM_TOL = 1e-4      # KMeans' default tol (scaled by the mean variance of the data)
KM_MAX_ITER = 300  # KMeans' default max_iter
DELICATE = 1e-9    # relative distance below which a decision counts as a possible rounding flip
_EPS10 = 10 * np.finfo(np.float64).eps
_LOG_2PI = math.log(2 * math.pi)


def fit_sklearn(values: np.ndarray, seed: int = 1228) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's ``GaussianMixture(2, random_state=seed)`` on 1-D values: (means, variances, weights) by mean."""
    from sklearn.mixture import GaussianMixture

    v = np.asarray(values, dtype=np.float64).reshape(-1, 1)
    gmm = GaussianMixture(n_components=2, random_state=seed).fit(v)
    order = np.argsort(gmm.means_.ravel())
    return gmm.means_.ravel()[order], gmm.covariances_.ravel()[order], gmm.weights_[order]


def gaussian_cut(means: np.ndarray, var: np.ndarray, w: np.ndarray) -> float:
    """Where ``w1·N(x; μ1, σ1²) = w2·N(x; μ2, σ2²)`` between μ1 < μ2 (the first real root of NumPy's
    ``roots`` in that interval, as the reference), +inf when there is none."""
    (m1, m2), (v1, v2), (w1, w2) = means, var, w
    a = 1 / (2 * v2) - 1 / (2 * v1)
    b = m1 / v1 - m2 / v2
    c = (m2 ** 2 / (2 * v2) - m1 ** 2 / (2 * v1)) + np.log(w1 * np.sqrt(v1) / (w2 * np.sqrt(v2)))
    roots = np.roots([a, b, c])
    roots = roots[np.abs(np.imag(roots)) < 1e-9].real
    valid = roots[(roots > m1) & (roots < m2)]
    return float(valid[0]) if len(valid) else float("inf")


def cut_sklearn(values: np.ndarray, seed: int = 1228) -> tuple[float, float]:
    """(μ_low, cut) of scikit-learn's fit (the reference)."""
    means, var, w = fit_sklearn(values, seed)
    return float(means[0]), gaussian_cut(means, var, w)


@lru_cache(maxsize=64)
def _draws(seed: int) -> tuple[float, float, float]:
    """The three uniforms k-means++ draws from ``RandomState(seed)`` for two clusters."""
    rs = np.random.RandomState(seed)
    u0 = float(rs.random_sample())          # choice(n, p=...) draws one random_sample
    u1, u2 = rs.uniform(size=2)             # the 2 + int(log 2) = 2 local trials
    return u0, float(u1), float(u2)


@lru_cache(maxsize=4096)
def _first_centre(n: int, u0: float) -> int:
    """``RandomState.choice(n, p=ones/n)`` given its uniform draw: searchsorted of the normalised cdf."""
    p = np.ones(n) / n
    cdf = p.cumsum()
    cdf /= cdf[-1]
    return int(cdf.searchsorted(u0, side="right"))


def _pad(sets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = np.array([len(s) for s in sets], dtype=np.int64)
    x = np.zeros((len(sets), int(n.max())), dtype=np.float64)
    mask = np.arange(x.shape[1])[None, :] < n[:, None]
    x[mask] = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in sets])
    return x, mask, n


def _kmeans_labels(x: np.ndarray, mask: np.ndarray, n: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's KMeans(2, n_init=1) labels per set (J, L) and a flag per set whose run had a delicate decision."""
    J, L = x.shape
    rows = np.arange(J)
    delicate = np.zeros(J, dtype=bool)
    nf = n.astype(np.float64)
    xs = np.where(mask, x, 0.0)
    mean = xs.sum(1) / nf
    var = np.where(mask, (x - mean[:, None]) ** 2, 0.0).sum(1) / nf
    km_tol = var * KM_TOL
    xc = np.where(mask, x - mean[:, None], 0.0)          # KMeans centres the data first
    xsq = xc * xc
    scale = np.abs(xc).max(1) + 1e-300
    u0, u1, u2 = _draws(int(seed))
    # --- k-means++: first centre, then the better of two candidates drawn by D² weighting
    i0 = np.array([_first_centre(int(k), u0) for k in n])
    c0 = xc[rows, i0]
    d0 = np.where(mask, np.maximum((-2 * (c0[:, None] * xc) + c0[:, None] * c0[:, None]) + xsq, 0.0), 0.0)
    pot = d0.sum(1)
    cum = np.cumsum(d0, axis=1)
    cum = np.where(mask, cum, np.inf)
    cand, cpot = [], []
    for u in (u1, u2):
        rv = u * pot
        ci = np.minimum((cum < rv[:, None]).sum(1), n - 1)  # searchsorted(cum, rv, side="left")
        tol = DELICATE * (pot + 1e-300)
        hi = cum[rows, ci]
        lo = np.where(ci > 0, cum[rows, np.maximum(ci - 1, 0)], -np.inf)
        delicate |= (np.abs(hi - rv) <= tol) | (np.abs(rv - lo) <= tol)
        cv = xc[rows, ci]
        dc = np.maximum((-2 * (cv[:, None] * xc) + cv[:, None] * cv[:, None]) + xsq, 0.0)
        cand.append(ci)
        cpot.append(np.where(mask, np.minimum(d0, dc), 0.0).sum(1))
    va, vb = xc[rows, cand[0]], xc[rows, cand[1]]
    c1 = np.where(cpot[1] < cpot[0], vb, va)             # argmin: the first on ties
    # two candidates of (mathematically) equal potential, e.g. the two outliers above a tight group:
    # rounding picks one; run Lloyd from both and flag the set only if the labels differ
    tie = (va != vb) & (np.abs(cpot[0] - cpot[1]) <= DELICATE * (pot + 1e-300))
    t = np.flatnonzero(tie)
    cen = np.concatenate([np.stack([c0, c1], 1), np.stack([c0[t], np.where(c1[t] == va[t], vb[t], va[t])], 1)])
    sel = np.concatenate([rows, t])
    labels, flag = _lloyd(xc[sel], mask[sel], cen, km_tol[sel], scale[sel])
    delicate |= flag[:J]
    delicate[t] |= flag[J:] | (labels[:J][t] != labels[J:]).any(1)
    return labels[:J], delicate


def _lloyd(xc: np.ndarray, mask: np.ndarray, cen: np.ndarray, km_tol: np.ndarray,
           scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's Lloyd iterations from centres (J, 2): labels (J, L) and the delicate flags."""
    J, L = xc.shape
    cen = cen.copy()
    delicate = np.zeros(J, dtype=bool)
    labels = np.full((J, L), -1, dtype=np.int64)
    active = np.ones(J, dtype=bool)
    strict = np.zeros(J, dtype=bool)

    def assign(xa, ma, ca, a):
        pd0 = ca[:, :1] * ca[:, :1] + (-2.0) * (xa * ca[:, :1])  # the gemm of lloyd_iter_chunked_dense
        pd1 = ca[:, 1:] * ca[:, 1:] + (-2.0) * (xa * ca[:, 1:])
        delicate[a] |= (ma & (np.abs(pd1 - pd0) <= DELICATE * scale[a, None] ** 2)).any(1)
        return (pd1 < pd0).astype(np.int64)                    # label 1 only when strictly nearer

    for _ in range(KM_MAX_ITER):
        a = np.flatnonzero(active)
        if len(a) == 0:
            break
        xa, ma, ca = xc[a], mask[a], cen[a]
        new = assign(xa, ma, ca, a)
        cnt1 = (ma & (new == 1)).sum(1)
        cnt0 = ma.sum(1) - cnt1
        delicate[a] |= (cnt0 == 0) | (cnt1 == 0)         # an empty cluster: scikit-learn relocates it
        s1 = np.where(ma & (new == 1), xa, 0.0).sum(1)
        s0 = np.where(ma & (new == 0), xa, 0.0).sum(1)
        newc = np.stack([s0 * (1.0 / np.maximum(cnt0, 1)), s1 * (1.0 / np.maximum(cnt1, 1))], 1)
        shift2 = ((newc - ca) ** 2).sum(1)
        same = ((new == labels[a]) | ~ma).all(1)
        labels[a] = np.where(ma, new, -1)
        cen[a] = newc
        stop_tol = ~same & (shift2 <= km_tol[a])
        delicate[a] |= ~same & (np.abs(shift2 - km_tol[a]) <= DELICATE * (km_tol[a] + 1e-300))
        strict[a] = same
        active[a] = ~(same | stop_tol)
    delicate |= active                                     # did not converge in max_iter: leave it to scikit-learn
    r = np.flatnonzero(~strict)                            # without strict convergence: relabel with the last centres
    if len(r):
        labels[r] = np.where(mask[r], assign(xc[r], mask[r], cen[r], r), -1)
    return labels, delicate


def _logsumexp2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sklearn.utils._array_api._logsumexp`` over two columns: max + log1p(sum of the others' exp / count) + log(count)."""
    m = np.maximum(a, b)
    tie = a == b
    other = np.where(tie, -np.inf, np.minimum(a, b))
    shift = np.where(np.isfinite(m), m, 0.0)
    s = np.exp(other - shift)
    cnt = np.where(tie, 2.0, 1.0)
    s = np.where(s == 0, s, s / cnt)
    return np.log1p(s) + np.log(cnt) + m


def fit_batched(sets: list[np.ndarray], seed: int = 1228) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's two-component fit on each value set: means, variances, weights (J, 2) sorted by mean,
    and a flag per set whose fit had a decision a rounding difference could flip (see the module docstring).

    Sets need at least 2 values.
    """
    if len(sets) == 0:
        z = np.zeros((0, 2))
        return z, z, z, np.zeros(0, dtype=bool)
    x, mask, n = _pad(sets)
    if (n < 2).any():
        raise ValueError("a two-component mixture needs at least 2 values per set")
    J = len(n)
    nf = n.astype(np.float64)
    labels, delicate = _kmeans_labels(x, mask, n, seed)
    r1 = (mask & (labels == 1)).astype(np.float64)
    r0 = (mask & (labels == 0)).astype(np.float64)

    def m_step(r0, r1, rows):
        xa, ma = x[rows], mask[rows]
        nk = np.stack([r0.sum(1), r1.sum(1)], 1) + _EPS10
        mu = np.stack([(r0 * xa).sum(1), (r1 * xa).sum(1)], 1) / nk
        d0, d1 = np.where(ma, xa - mu[:, :1], 0.0), np.where(ma, xa - mu[:, 1:], 0.0)
        var = np.stack([(r0 * d0 * d0).sum(1), (r1 * d1 * d1).sum(1)], 1) / nk + REG_COVAR
        return nk, mu, var

    nk, mu, var = m_step(r0, r1, np.arange(J))
    w = nk / nf[:, None]                                   # _initialize: weights /= n_samples
    lb = np.full(J, -np.inf)
    active = np.ones(J, dtype=bool)
    for _ in range(EM_MAX_ITER):
        a = np.flatnonzero(active)
        if len(a) == 0:
            break
        xa, ma = x[a], mask[a]
        prec = 1.0 / np.sqrt(var[a])
        logdet = np.log(prec)
        lw = np.log(w[a])
        y0 = xa * prec[:, :1] - mu[a, :1] * prec[:, :1]
        y1 = xa * prec[:, 1:] - mu[a, 1:] * prec[:, 1:]
        lp0 = -0.5 * (_LOG_2PI + y0 * y0) + logdet[:, :1] + lw[:, :1]
        lp1 = -0.5 * (_LOG_2PI + y1 * y1) + logdet[:, 1:] + lw[:, 1:]
        lpn = _logsumexp2(lp0, lp1)
        new_lb = np.where(ma, lpn, 0.0).sum(1) / nf[a]
        with np.errstate(under="ignore"):
            q0 = np.where(ma, np.exp(lp0 - lpn), 0.0)
            q1 = np.where(ma, np.exp(lp1 - lpn), 0.0)
        nk_a, mu[a], var[a] = m_step(q0, q1, a)
        w[a] = nk_a / nk_a.sum(1, keepdims=True)
        change = np.abs(new_lb - lb[a])
        delicate[a] |= np.abs(change - EM_TOL) <= DELICATE * np.maximum(1.0, np.abs(new_lb))
        lb[a] = new_lb
        active[a] = ~(change < EM_TOL)
    delicate |= active                                     # EM did not converge in max_iter
    swap = mu[:, 1] < mu[:, 0]                              # argsort of the two means (stable on ties)
    idx = np.stack([swap.astype(int), (~swap).astype(int)], 1)
    take = np.take_along_axis
    return take(mu, idx, 1), take(var, idx, 1), take(w, idx, 1), delicate


def _cuts(mu: np.ndarray, var: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised :func:`gaussian_cut` by the stable quadratic formula, and a flag where NumPy's
    ``roots`` could decide otherwise (a near-double root, a root at a mean, two roots between the means)."""
    m1, m2, v1, v2, w1, w2 = mu[:, 0], mu[:, 1], var[:, 0], var[:, 1], w[:, 0], w[:, 1]
    a = 1 / (2 * v2) - 1 / (2 * v1)
    b = m1 / v1 - m2 / v2
    c = (m2 ** 2 / (2 * v2) - m1 ** 2 / (2 * v1)) + np.log(w1 * np.sqrt(v1) / (w2 * np.sqrt(v2)))
    disc = b * b - 4 * a * c
    scale = np.abs(m1) + np.abs(m2) + 1e-300
    with np.errstate(divide="ignore", invalid="ignore"):
        sq = np.sqrt(np.abs(disc))
        q = -0.5 * (b + np.where(b >= 0, 1.0, -1.0) * sq)
        quad = a != 0
        ra = np.where(quad, q / a, np.where(b != 0, -c / b, np.nan))
        rb = np.where(quad, c / q, np.nan)
        # complex pair: NumPy keeps the real part when |imag| < 1e-9
        imag = np.where(quad, sq / (2 * np.abs(a)), 0.0)
        real_pair = (disc >= 0) | (imag < 1e-9)
        re = np.where(quad, -b / (2 * a), np.nan)
    ra = np.where(real_pair, np.where(disc >= 0, ra, re), np.nan)
    rb = np.where(real_pair, np.where(disc >= 0, rb, re), np.nan)
    delicate = quad & ((np.abs(disc) <= DELICATE * b * b) | (np.abs(imag - 1e-9) <= 1e-12))
    delicate |= ~np.isfinite(a) | ~np.isfinite(b) | ~np.isfinite(c)
    ok_a = (ra > m1) & (ra < m2)
    ok_b = (rb > m1) & (rb < m2)
    for r in (ra, rb):
        delicate |= np.isfinite(r) & ((np.abs(r - m1) <= DELICATE * scale) | (np.abs(r - m2) <= DELICATE * scale))
    delicate |= ok_a & ok_b & (np.abs(ra - rb) > DELICATE * scale)  # which one NumPy lists first: ask it
    cut = np.where(ok_a, ra, np.where(ok_b, rb, np.inf))
    return cut, delicate


def cuts(sets: list[np.ndarray], seed: int = 1228, backend: str = "numpy",
         stats: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(μ_low, cut) per value set, as :func:`cut_sklearn` gives them; NaN for a set whose fit failed
    (scikit-learn's ValueError: the reference then skips the filter).

    ``backend="sklearn"`` fits each set with scikit-learn; ``"numpy"`` with :func:`fit_batched`,
    refitting with scikit-learn the sets flagged delicate or with a candidate value within 1e-9
    (relative) of μ_low or of the cut. ``stats`` (optional) receives ``fits`` and ``fallbacks``.
    """
    J = len(sets)
    lo = np.full(J, np.nan)
    cut = np.full(J, np.nan)
    redo = np.ones(J, dtype=bool)
    if backend == "numpy" and J:
        with np.errstate(all="ignore"):  # non-finite sets are refitted (scikit-learn rejects them)
            mu, var, w, delicate = fit_batched(sets, seed)
            c, dcut = _cuts(mu, var, w)
            lo[:], cut[:] = mu[:, 0], c
            x, mask, _ = _pad(sets)
            scale = np.abs(np.where(mask, x, 0.0)).max(1) + 1e-300
            near = mask & ((np.abs(x - lo[:, None]) <= DELICATE * scale[:, None])
                           | (np.abs(x - cut[:, None]) <= DELICATE * scale[:, None]))
            xmin = np.where(mask, x, np.inf).min(1)  # a pool value just below the candidates could sit at μ_low
            finite = np.where(mask, np.isfinite(x), True).all(1)  # scikit-learn rejects NaN / inf: its ValueError
            redo = delicate | dcut | near.any(1) | (np.abs(lo - xmin) <= 2 * DELICATE * scale) | ~finite
    elif backend != "sklearn":
        raise ValueError(f"backend={backend!r}; accepted: 'sklearn', 'numpy'")
    for j in np.flatnonzero(redo):
        try:
            lo[j], cut[j] = cut_sklearn(sets[j], seed)
        except ValueError:
            lo[j] = cut[j] = np.nan
    if stats is not None:
        stats["fits"] = stats.get("fits", 0) + J
        stats["fallbacks"] = stats.get("fallbacks", 0) + (int(redo.sum()) if backend == "numpy" else 0)
    return lo, cut
