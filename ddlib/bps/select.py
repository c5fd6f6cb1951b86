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

Model once, select every IPC: :func:`prepare` groups the samples by (class, pattern) once and
keeps, per pattern, what does not depend on the IPC (the centre order, the entropies, and the
GMM cut of each margin pool met so far); :func:`select_ipcs` then serves a list of IPCs from it,
fitting the GMMs of all of them in one batch (:mod:`ddlib.kernels.gmm`). :func:`select_bps` and
:func:`select_all` are that, for one IPC and for a list.

GMM backends: ``"sklearn"`` (scikit-learn's ``GaussianMixture``, as the reference) and
``"numpy"``, the default (:func:`ddlib.kernels.gmm.fit_batched`: scikit-learn's initialisation
and EM replicated for all pools at once, any pool with a decision that rounding could flip
refitted by scikit-learn). The picks are the same with both on the test corpus
(tests/test_select.py) and on the benchmark's data (``benchmarks/results/bench_select_cpu.json``
lists the differing cases), and ``"numpy"`` fits them all in one batch (the same record times both).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.mixture import GaussianMixture  # noqa: F401 - imported here so that selection times exclude the import

from ddlib.kernels import gmm as G
from ddlib.utils import ParamError, check_choice, check_float, check_int, config_dict

__all__ = ["ROLES", "GMM_BACKENDS", "SelectConfig", "pattern_slots", "centre_order", "centre_picks", "gmm_fit",
           "gmm_cut", "margin_picks", "Stage2Model", "prepare", "select_ipcs", "select_pattern", "pattern_picks",
           "select_bps", "select_all"]


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
    gmm_backend: str = "numpy"     # "numpy" (batched, the same picks) | "sklearn" (the reference's GaussianMixture)

    def __post_init__(self) -> None:
        check_int("ipc", self.ipc, 1)
        check_float("k_ratio", self.k_ratio, 0.0, 1.0)
        check_float("centre_frac", self.centre_frac, 0.0, 1.0)
        if not isinstance(self.gmm_filter, bool):
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


def _roles_of_budget(b: int, size: int, centre_frac: float) -> tuple[int, int]:
    """(centres, margins) of a pattern of ``size`` images given ``b`` slots, as :func:`select_ipcs` picks them
    (a pattern no larger than its budget is taken whole, its roles split by the same rule)."""
    n = min(int(b), int(size))
    n_c = int(centre_frac * n + 0.5)
    return n_c, n - n_c


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
    ``backend="numpy"``: the same initialisation (scikit-learn's seeded k-means) and EM in NumPy
    (:func:`ddlib.kernels.gmm.fit_batched`); a fit with a decision that a rounding difference could
    flip is redone by scikit-learn. Equal to the scikit-learn fit up to rounding (~1e-15 relative).
    """
    check_choice("backend", backend, GMM_BACKENDS)
    v = np.asarray(values, dtype=np.float64).ravel()
    if backend == "numpy":
        if len(v) < 2:
            raise ValueError("a two-component mixture needs at least 2 values")
        mu, var, w, delicate = G.fit_batched([v], seed)
        if not delicate[0]:
            return mu[0], var[0], w[0]
    return G.fit_sklearn(v, seed)


def gmm_cut(values: np.ndarray, seed: int = 1228, backend: str = "sklearn") -> tuple[float, float]:
    """(μ_low, cut): the low mode's mean and where the two weighted Gaussians intersect between the means.

    Solves ``w1·N(x; μ1, σ1²) = w2·N(x; μ2, σ2²)`` for x; the root in (μ_low, μ_high) is the cut,
    +inf when there is none (then nothing is filtered). Only real roots count (the reference
    compares NumPy's possibly complex roots directly). Raises ValueError where scikit-learn's fit does.
    """
    check_choice("backend", backend, GMM_BACKENDS)
    if backend == "sklearn":
        return G.cut_sklearn(values, seed)
    lo, cut = G.cuts([np.asarray(values, dtype=np.float64).ravel()], seed, backend)
    if np.isnan(lo[0]):
        raise ValueError("the two-component fit failed on these values")
    return float(lo[0]), float(cut[0])


def _margin_candidates(h: np.ndarray, n_pick: int, k_ratio: float, gmm_filter: bool, min_pool: int,
                       min_candidates: int) -> np.ndarray | None:
    """The candidate entropies a GMM is fitted to, or None when the filter does not apply."""
    n = len(h)
    if n_pick <= 0 or n <= n_pick or not gmm_filter or n < min_pool:
        return None
    n_cand = int(max(n * k_ratio, min(10, n)))
    cand = np.sort(h)[-n_cand:]
    return cand if len(cand) >= min_candidates else None


def _margin_fill(h: np.ndarray, n_pick: int, lo: float | None, cut: float | None) -> np.ndarray:
    """The reference's margin rule given the GMM's (μ_low, cut), or (None, None) without a filter."""
    n = len(h)
    if n_pick <= 0:
        return np.zeros(0, dtype=np.int64)
    if n <= n_pick:
        return np.arange(n)
    chosen: list[int] = []
    if lo is not None and not np.isnan(lo):
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
    cand = _margin_candidates(h, n_pick, k_ratio, gmm_filter, min_pool, min_candidates)
    lo = cut = None
    if cand is not None:
        try:
            lo, cut = gmm_cut(cand, seed, backend)
        except ValueError:  # degenerate candidates (the reference skips the filter then)
            lo = cut = None
    return _margin_fill(h, n_pick, lo, cut)


class Stage2Model:
    """What Stage 2 needs from one modelling, grouped once: per class its patterns, per pattern its
    members (global indices, ascending) and centre order, and the GMM cuts of the margin pools
    already met. Build it with :func:`prepare`.

    ``stats`` counts GMM fits, scikit-learn fallbacks of the batched backend and the seconds spent
    in the fits.
    """

    def __init__(self, emb: np.ndarray, y: np.ndarray, pat: np.ndarray, h: np.ndarray) -> None:
        self.emb, self.h = emb, h
        self.classes: list[tuple[int, np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]] = []
        for c in np.unique(y):
            idx = np.nonzero(y == c)[0]
            srt = np.argsort(pat[idx], kind="stable")      # members of one pattern stay in ascending order
            ids, starts, counts = np.unique(pat[idx][srt], return_index=True, return_counts=True)
            members = [idx[srt[a:a + k]] for a, k in zip(starts, counts)]
            self.classes.append((int(c), idx, ids, counts, members))
        self._order: dict[tuple[int, int], np.ndarray] = {}
        rows = max((len(m) for cls in self.classes for m in cls[4]), default=0)
        bufs = (np.empty((rows, emb.shape[1])), np.empty((rows, emb.shape[1]))) if emb.ndim == 2 else None
        for ci, cls in enumerate(self.classes):  # everything the IPC does not change, once
            for p, m in enumerate(cls[4]):
                self._order[(ci, p)] = _centre_order_rows(emb[m], bufs)
        self._cuts: dict[tuple, tuple[float | None, float | None]] = {}
        self.stats = {"fits": 0, "fallbacks": 0, "gmm_seconds": 0.0}

    def centre_order(self, ci: int, p: int) -> np.ndarray:
        """Local indices of pattern ``p`` of the ``ci``-th class by decreasing cosine to its mean."""
        return self._order[(ci, p)]


def _centre_order_rows(e32: np.ndarray, bufs: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """:func:`centre_order` of the L2-normalised rows, bit for bit the same as
    ``centre_order(e / max(‖e‖, 1e-12))`` in float64, with two reused buffers instead of four arrays."""
    if bufs is None or e32.ndim != 2:
        e = np.asarray(e32, dtype=np.float64)
        return centre_order(e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12))
    e, sq = bufs[0][:len(e32)], bufs[1][:len(e32)]
    np.copyto(e, e32)                                        # to float64 (exact)
    np.multiply(e, e, out=sq)                                # np.linalg.norm(axis=1) is sqrt(add.reduce(x*x))
    np.divide(e, np.maximum(np.sqrt(np.add.reduce(sq, axis=1, keepdims=True)), 1e-12), out=e)
    return centre_order(e)


def prepare(embeddings: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray,
            patterns: torch.Tensor | np.ndarray, entropies: torch.Tensor | np.ndarray) -> Stage2Model:
    """Group one modelling for Stage 2 (see :class:`Stage2Model`); every IPC is then served from it."""
    emb = _np(embeddings)  # rows are L2-normalised per pattern, where used (no copy of the whole array)
    y, pat, h = _np(labels).astype(np.int64), _np(patterns).astype(np.int64), _np(entropies).astype(np.float64)
    if not (len(emb) == len(y) == len(pat) == len(h)):
        raise ValueError(f"embeddings, labels, patterns and entropies differ in length: "
                         f"{len(emb)}, {len(y)}, {len(pat)}, {len(h)}")
    return Stage2Model(emb, y, pat, h)


def _plan(model: Stage2Model, cfg: SelectConfig) -> list[tuple]:
    """One IPC's per-pattern work, in output order: (ci, p, budget, centres, margin pool or None, roles...)."""
    steps = []
    for ci, (c, idx, ids, counts, members) in enumerate(model.classes):
        budgets = counts if len(idx) <= cfg.ipc else pattern_slots(counts, cfg.ipc)
        for p in np.argsort(-counts, kind="stable"):
            b = int(budgets[p])
            if b == 0:
                continue
            n = int(counts[p])
            order = model.centre_order(ci, p)
            if n <= b:  # taken whole; roles by the same rule as if the budget were the pattern size
                n_c = int(cfg.centre_frac * n + 0.5)
                steps.append((ci, p, b, order, None, ["centre"] * n_c + ["margin"] * (n - n_c)))
                continue
            n_c = int(b * cfg.centre_frac + 0.5)
            rest = np.sort(order[n_c:]) if b > n_c else None  # = setdiff1d(arange(n), centres), as the reference's mask
            steps.append((ci, p, b, order[:n_c], rest, None))
    return steps


def _gmm_key(cfg: SelectConfig, ci: int, p: int, n_c: int) -> tuple:
    return (ci, p, n_c, cfg.k_ratio, cfg.gmm_filter, cfg.gmm_min_pool, cfg.gmm_min_candidates, cfg.gmm_seed,
            cfg.gmm_backend)


def select_ipcs(model: Stage2Model, ipcs: list[int], cfg: SelectConfig | None = None) -> dict[int, dict]:
    """Every IPC of ``ipcs`` from one :class:`Stage2Model`: ``{ipc: selection}`` (as :func:`select_bps`).

    The margin pools of all IPCs are collected first and their GMMs fitted in one batch; pools
    already fitted for this model (same pattern, same number of centres) are not fitted again.
    """
    import time

    base = cfg or SelectConfig()
    cfgs = {int(k): SelectConfig(**{**config_dict(base), "ipc": check_int("ipc", k, 1)}) for k in ipcs}
    plans = {k: _plan(model, c) for k, c in cfgs.items()}
    jobs: dict[tuple, np.ndarray] = {}
    for k, steps in plans.items():
        c = cfgs[k]
        for ci, p, b, centres, rest, _ in steps:
            if rest is None:
                continue
            key = _gmm_key(c, ci, p, len(centres))
            if key in model._cuts or key in jobs:
                continue
            hp = model.h[model.classes[ci][4][p][rest]]
            cand = _margin_candidates(hp, b - len(centres), c.k_ratio, c.gmm_filter, c.gmm_min_pool,
                                      c.gmm_min_candidates)
            if cand is None:
                model._cuts[key] = (None, None)
            else:
                jobs[key] = cand
    if jobs:
        t = time.perf_counter()
        stats: dict = {}
        lo, cut = G.cuts(list(jobs.values()), base.gmm_seed, base.gmm_backend, stats)
        model.stats["gmm_seconds"] += time.perf_counter() - t
        model.stats["fits"] += stats["fits"]
        model.stats["fallbacks"] += stats["fallbacks"]
        for key, a, b in zip(jobs, lo, cut):
            model._cuts[key] = (None, None) if np.isnan(a) else (float(a), float(b))
    out = {}
    for k, steps in plans.items():
        c = cfgs[k]
        out_i: list[int] = []
        out_p: list[int] = []
        out_r: list[str] = []
        for ci, p, b, centres, rest, whole_roles in steps:
            members = model.classes[ci][4][p]
            pid = int(model.classes[ci][2][p])
            if whole_roles is not None:
                local, roles = centres, whole_roles
            else:
                picks = list(centres)
                roles = ["centre"] * len(centres)
                if rest is not None:
                    lo, cut = model._cuts[_gmm_key(c, ci, p, len(centres))]
                    margins = rest[_margin_fill(model.h[members[rest]], b - len(centres), lo, cut)]
                    picks += list(margins)
                    roles += ["margin"] * len(margins)
                if len(picks) < b:  # reference back-fill from the centre order
                    taken = set(picks)
                    extra = [i for i in model.centre_order(ci, p) if i not in taken][: b - len(picks)]
                    picks += extra
                    roles += ["centre"] * len(extra)
                local = np.asarray(picks, dtype=np.int64)
            out_i += members[local].tolist()
            out_p += [pid] * len(local)
            out_r += roles
        out[k] = {"indices": out_i, "pattern": out_p, "role": out_r, "config": config_dict(c)}
    return out


def select_pattern(emb: np.ndarray, entropies: np.ndarray, budget: int,
                   cfg: SelectConfig = SelectConfig()) -> tuple[np.ndarray, list[str]]:
    """Local indices and roles of one pattern's picks (centres first, then margins)."""
    n, budget = len(emb), int(budget)
    if budget <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64), []
    model = prepare(np.asarray(emb), np.zeros(n, np.int64), np.zeros(n, np.int64), np.asarray(entropies))
    s = select_ipcs(model, [budget], cfg)[budget]  # one class of one pattern: its budget is the IPC
    return np.asarray(s["indices"], dtype=np.int64), s["role"]


def pattern_picks(embeddings: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray,
                  patterns: torch.Tensor | np.ndarray, entropies: torch.Tensor | np.ndarray, cls: int,
                  n_patterns: int = 4, budget: int = 8, cfg: SelectConfig | None = None) -> dict:
    """What Stage 2 takes from each of the ``n_patterns`` largest patterns of class ``cls`` when it gives each
    ``budget`` slots (:func:`select_pattern`: centres first, then margins): ``{"indices" (rows of
    ``embeddings``), "pattern", "role", "sizes" (pattern -> images)}``. At a small IPC a pattern gets fewer
    slots (:func:`slots_per_pattern`); its picks are then the first of these. Chapter 2's centre/margin grid."""
    cfg = cfg or SelectConfig()
    e, y, pat, h = _np(embeddings), _np(labels).astype(np.int64), _np(patterns).astype(np.int64), _np(entropies)
    members = np.nonzero(y == check_int("cls", cls, 0))[0]
    if not len(members):
        raise ParamError(f"cls={cls}: no image of that class")
    ids, counts = np.unique(pat[members], return_counts=True)
    top = ids[np.lexsort((ids, -counts))][: check_int("n_patterns", n_patterns, 1)]
    out: dict = {"indices": [], "pattern": [], "role": [], "sizes": {}}
    for p in top.tolist():
        idx = members[pat[members] == p]
        local, roles = select_pattern(e[idx], h[idx], check_int("budget", budget, 1), cfg)
        out["indices"] += idx[local].tolist()
        out["pattern"] += [int(p)] * len(local)
        out["role"] += list(roles)
        out["sizes"][int(p)] = len(idx)
    return out


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
    return select_ipcs(prepare(embeddings, labels, patterns, entropies), [cfg.ipc], cfg)[cfg.ipc]


def select_all(embeddings, labels, patterns, entropies, ipcs: list[int], cfg: SelectConfig | None = None) -> dict[int, dict]:
    """Every IPC from one modelling: ``{ipc: selection}`` (:func:`prepare` once, then :func:`select_ipcs`)."""
    return select_ipcs(prepare(embeddings, labels, patterns, entropies), ipcs, cfg)


def _np(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
