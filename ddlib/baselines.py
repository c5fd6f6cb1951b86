"""Coreset baselines under BPS's result shape (random, herding, k-center, forgetting/EL2N, centroids),
and the real-image sets of the SFM chapters (:func:`random_real`, :func:`centroid_real_from_features`).

Every selector takes a :class:`SelectionInputs` (the one modelling every method shares: the
Stage-1 embeddings, labels, the per-class patterns, and for some methods per-sample scores)
and returns ``{"indices", "pattern", "role", "config"}`` like :func:`ddlib.bps.select.select_bps`.
Feature-based baselines (herding, k-center, centroids) work in the same L2-normalised Stage-1
embedding space BPS selects in, so the comparison isolates the selection rule.

``role`` of a baseline's pick is given by the common criterion of
:func:`ddlib.metrics.assign_roles` (cosine to its pattern's mean at or above the pattern's
median: "centre", else "margin"), ``pattern`` is the pick's Stage-1 pattern id (-1 when no
patterns are given).

Every selector needs at least 2 classes and at least ``ipc`` images in each: a smaller class is a
``ParamError`` naming it and its size, unless the caller passes ``cap=True`` (then it is taken whole,
and ``config`` records ``"cap": True`` and ``"capped": {label: size}``).

Forgetting (Toneva et al. 2019): a model is trained on the full data; a *forgetting event* is a
sample that was classified correctly when last seen in a minibatch and is misclassified now; per
class the most-forgotten samples are picked. Samples the model never classified correctly have no
event, and the two codes differ on them (``ForgettingConfig.never_learned``):

- ``"deepcore"`` (the default): they keep 0 events and so sort last, as DeepCore
  (``deepcore/methods/forgetting.py``), the library the coreset literature's baseline tables come from;
- ``"toneva"``: they count as forgotten infinitely often and are taken first, as Toneva et al.'s own
  code (``example_forgetting``); on a short run these are mostly images whose label the model rejects.

When events are too few to rank (fewer than ``ipc`` samples with a non-zero score in some class —
typical of short CPU runs), the score falls back to EL2N (Paul et al. 2021):
``||softmax(f(x)) - onehot(y)||₂`` at an early epoch, highest first (a ddlib addition; the result says
which, ``config["score"]``). The model is trained by the one loop of :mod:`ddlib.train`; the forgetting
counter (each step's indices and logits) and the EL2N read-out are its hooks. Ties are broken by a
seeded random order (DeepCore: by index).

Herding follows Welling (2009) and iCaRL: each step takes the *argmin* of ``‖(t+1)μ − Σ − f‖`` (the
image that brings the running mean closest to the class mean). DeepCore's ``herding.py`` takes the
argmax (the farthest image) instead; ddlib keeps the published rule.

Each selector registers itself in the one registry, :mod:`ddlib.selectors`, with what it needs (the
Stage-1 features, a scoring run); BPS registers there from :mod:`ddlib.bps.pipeline`, above this module.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ddlib import distributed
from ddlib.selectors import register
from ddlib.train import Batch, Hook, LoopState, LrScheduler, Recipe, ce_step, image_batches, loop
from ddlib.utils import (ParamError, check_choice, check_int, check_ipc, config_dict, get_device,
                         seed_everything, to_unit)

__all__ = ["SelectionInputs", "select_random", "herding_order", "select_herding", "kcenter_order", "select_kcenter",
           "select_by_score", "forgetting_counts", "select_forgetting", "select_centroids", "random_real",
           "centroid_real_from_features", "BASELINES", "FORGETTING_SOURCES", "NEVER_LEARNED", "FORGETTING_SCHEDULES",
           "ForgettingConfig", "DEEPCORE_FORGETTING", "forgetting_scores", "scoring_hooks", "scores_from_hooks"]


@dataclass
class SelectionInputs:
    """What the selectors draw on: one modelling shared by all methods (arrays of length N)."""

    embeddings: torch.Tensor | np.ndarray
    labels: torch.Tensor | np.ndarray
    patterns: torch.Tensor | np.ndarray | None = None
    entropies: torch.Tensor | np.ndarray | None = None   # teacher entropies (BPS)
    scores: dict = field(default_factory=dict)          # e.g. {"forgetting": ..., "el2n": ...}
    classes: list[str] | None = None                    # class names, for messages (label -> name)

    def __post_init__(self) -> None:
        n = len(self.labels)
        for name in ("embeddings", "patterns", "entropies"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ValueError(f"{name} has {len(v)} rows, labels {n}")


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _feats(inp: SelectionInputs) -> np.ndarray:
    e = _np(inp.embeddings).astype(np.float64)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def _result(inp: SelectionInputs, indices: list[int], config: dict) -> dict:
    from ddlib.metrics import assign_roles

    y = _np(inp.labels)
    pat = None if inp.patterns is None else _np(inp.patterns)
    roles = assign_roles(_feats(inp), y, indices, pat) if len(indices) else []
    pattern = [int(pat[i]) for i in indices] if pat is not None else [-1] * len(indices)
    return {"indices": [int(i) for i in indices], "pattern": pattern, "role": roles, "config": config}


def _per_class(labels, ipc: int, pick: Callable[[np.ndarray, int], np.ndarray], *, cap: bool = False,
               names: list[str] | None = None, classes=None, pick_full: bool = False) -> tuple[list[int], dict]:
    """Apply ``pick(class_indices, ipc)`` per class; return the picks and what to record about the budget.

    The classes are the labels present (ascending), or ``classes`` when given (then a class with no
    image counts as a class of size 0). A class of exactly ``ipc`` images is taken whole without calling
    ``pick``, unless ``pick_full`` (the real-image sets, whose draws must stay as recorded). A class with
    fewer than ``ipc`` images is a :class:`ParamError` naming the class (``names``: label -> name) and its size (see :func:`ddlib.utils.check_ipc`),
    unless ``cap=True``: then it is taken whole and the record says so (``{"cap": True, "capped":
    {label: size}}``), so an output never claims an IPC it does not hold.
    """
    y = _np(labels)
    capped = check_ipc(ipc, y, names, cap)
    order = np.unique(y) if classes is None else list(classes)
    missing = [int(c) for c in order if not np.any(y == c)]
    if missing and not cap:
        raise ParamError(f"ipc={ipc} exceeds class {missing[0]} (0 images); every class needs at least {ipc} images")
    out: list[int] = []
    for c in order:
        idx = np.nonzero(y == c)[0]
        if len(idx) < ipc or (len(idx) == ipc and not pick_full):
            out += idx.tolist()  # whole (only cap=True lets a smaller class by)
        else:
            out += idx[pick(idx, ipc)].tolist()
    return out, ({"cap": True, "capped": {str(c): n for c, n in capped.items()}} if cap else {})


# ----------------------------------------------------------------------------- selectors
@register("random", needs=("features",), summary="uniformly at random")
def select_random(inp: SelectionInputs, ipc: int, seed: int = 0, cap: bool = False) -> dict:
    """``ipc`` samples per class uniformly at random (NumPy generator seeded with ``seed``)."""
    rng = np.random.default_rng(seed)
    idx, budget = _per_class(inp.labels, ipc, lambda members, n: rng.choice(len(members), n, replace=False), cap=cap, names=inp.classes)
    return _result(inp, idx, {"method": "random", "ipc": ipc, "seed": seed, **budget})


def herding_order(feats: np.ndarray, n: int) -> np.ndarray:
    """Greedy feature-moment matching (Welling 2009; iCaRL): each step adds the sample that brings the
    running mean of the selection closest to the class mean, the argmin of ``‖(t+1)μ − Σ − f‖``.
    DeepCore's ``herding.py`` takes the argmax there (the farthest sample); this is the published rule."""
    f = torch.as_tensor(feats, dtype=torch.float64)
    mu = f.mean(0)
    chosen: list[int] = []
    free = torch.ones(len(f), dtype=torch.bool)
    total = torch.zeros_like(mu)
    for t in range(n):
        target = (t + 1) * mu - total
        d = (f - target).pow(2).sum(1)
        d[~free] = float("inf")
        i = int(d.argmin())
        chosen.append(i)
        free[i] = False
        total += f[i]
    return np.asarray(chosen, dtype=np.int64)


@register("herding", needs=("features",), summary="greedily, the images whose running mean tracks the class mean (moment matching)")
def select_herding(inp: SelectionInputs, ipc: int, seed: int = 0, cap: bool = False) -> dict:
    """Herding per class in the Stage-1 embedding space (deterministic; ``seed`` unused)."""
    f = _feats(inp)
    idx, budget = _per_class(inp.labels, ipc, lambda members, n: herding_order(f[members], n), cap=cap, names=inp.classes)
    return _result(inp, idx, {"method": "herding", "ipc": ipc, "seed": seed, **budget})


def kcenter_order(feats: np.ndarray, n: int, first: int) -> np.ndarray:
    """k-center greedy (Sener & Savarese 2018): from ``first``, repeatedly add the sample farthest from the selection."""
    f = torch.as_tensor(feats, dtype=torch.float64)
    chosen = [first]
    mind = torch.cdist(f, f[first:first + 1]).squeeze(1)
    for _ in range(n - 1):
        i = int(mind.argmax())
        chosen.append(i)
        mind = torch.minimum(mind, torch.cdist(f, f[i:i + 1]).squeeze(1))
    return np.asarray(chosen, dtype=np.int64)


@register("kcenter", needs=("features",), summary="greedily, the image farthest from those already picked (covering)")
def select_kcenter(inp: SelectionInputs, ipc: int, seed: int = 0, cap: bool = False) -> dict:
    """k-center greedy per class in the Stage-1 embedding space; the first centre drawn with ``seed`` (as DeepCore)."""
    f = _feats(inp)
    rng = np.random.default_rng(seed)
    idx, budget = _per_class(inp.labels, ipc, lambda members, n: kcenter_order(f[members], n, int(rng.integers(len(members)))),
                             cap=cap, names=inp.classes)
    return _result(inp, idx, {"method": "kcenter", "ipc": ipc, "seed": seed, **budget})


def select_by_score(inp: SelectionInputs, ipc: int, score: np.ndarray, name: str, seed: int = 0,
                    extra: dict | None = None, cap: bool = False) -> dict:
    """Per class the ``ipc`` highest scores (ties broken by a seeded random order)."""
    s = np.asarray(score, dtype=np.float64)
    rng = np.random.default_rng(seed)
    tie = rng.random(len(s))
    idx, budget = _per_class(inp.labels, ipc, lambda members, n: np.lexsort((tie[members], -s[members]))[:n], cap=cap, names=inp.classes)
    return _result(inp, idx, {"method": name, "ipc": ipc, "seed": seed, **budget, **(extra or {})})


def forgetting_counts(scores: dict, never_learned: str = "deepcore") -> np.ndarray:
    """Each sample's forgetting score under a rule for never-learned samples (see the module docstring):
    ``"deepcore"`` gives them 0 events (they sort last), ``"toneva"`` infinitely many (they sort first).

    ``scores`` is :func:`forgetting_scores`'s result: ``forgetting`` holds the events, ``learned`` whether
    each sample was ever classified correctly (artifacts written before ``learned`` existed marked
    never-learned samples with ``inf``, which is read the same way)."""
    check_choice("never_learned", never_learned, NEVER_LEARNED)
    forg = np.asarray(scores["forgetting"], dtype=np.float64)
    learned = np.asarray(scores["learned"], dtype=bool) if "learned" in scores else np.isfinite(forg)
    out = np.where(np.isfinite(forg), forg, 0.0)
    out[~learned] = float("inf") if never_learned == "toneva" else 0.0
    return out


@register("forgetting", needs=("forgetting",), summary="the images a model forgets most often while training (EL2N when events are too few)")
def select_forgetting(inp: SelectionInputs, ipc: int, seed: int = 0, cap: bool = False) -> dict:
    """Most-forgotten samples per class; EL2N when forgetting events are too few (see the module docstring).

    Needs ``inp.scores`` from :func:`forgetting_scores` (keys ``forgetting``, ``el2n``; ``never_learned``,
    the rule for samples never classified correctly, default ``"deepcore"``).
    """
    if "forgetting" not in inp.scores or "el2n" not in inp.scores:
        raise ParamError("method='forgetting' needs scores from ddlib.baselines.forgetting_scores(ds, cfg) "
                         "in SelectionInputs.scores")
    rule = inp.scores.get("never_learned", "deepcore")
    forg = forgetting_counts(inp.scores, rule)
    y = _np(inp.labels)
    check_ipc(ipc, y, inp.classes, cap)  # before the counts below: a clear error, not a min() of nothing
    nonzero = min(int(((y == c) & (forg > 0)).sum()) for c in np.unique(y))
    need = min(ipc, min(int((y == c).sum()) for c in np.unique(y)))
    never = int((~np.asarray(inp.scores["learned"], dtype=bool)).sum()) if "learned" in inp.scores \
        else int((~np.isfinite(np.asarray(inp.scores["forgetting"], dtype=np.float64))).sum())
    extra = {"never_learned": rule, "never_learned_samples": never, "min_class_nonzero": nonzero}
    if nonzero >= need:
        return select_by_score(inp, ipc, forg, "forgetting", seed, {"score": "forgetting", **extra}, cap=cap)
    return select_by_score(inp, ipc, np.asarray(inp.scores["el2n"]), "forgetting", seed,
                           {"score": "el2n", **extra, "el2n_epoch": inp.scores.get("el2n_epoch")}, cap=cap)


@register("centroids", needs=("features",), summary="the real image nearest each of IPC k-means centroids")
def select_centroids(inp: SelectionInputs, ipc: int, seed: int = 0, cap: bool = False) -> dict:
    """Class-centroid nearest real images: per class, k-means with ``ipc`` clusters (k-means++ seeded,
    scikit-learn) in the embedding space, then the real sample nearest each centroid (distinct).

    For ``ipc = 1`` this is the sample nearest the class mean (LGM's "class centroids (real)").
    """
    from sklearn.cluster import KMeans

    f = _feats(inp)

    def pick(members: np.ndarray, n: int) -> np.ndarray:
        x = f[members]
        centres = x.mean(0, keepdims=True) if n == 1 else KMeans(n, n_init=3, random_state=seed).fit(x).cluster_centers_
        d = ((x[:, None, :] - centres[None]) ** 2).sum(-1) if len(x) * n < 5e7 else None
        chosen: list[int] = []
        for j in range(n):
            dj = d[:, j].copy() if d is not None else ((x - centres[j]) ** 2).sum(1)
            dj[chosen] = np.inf
            chosen.append(int(dj.argmin()))
        return np.asarray(chosen, dtype=np.int64)

    idx, budget = _per_class(inp.labels, ipc, pick, cap=cap, names=inp.classes)
    return _result(inp, idx, {"method": "centroids", "ipc": ipc, "seed": seed, **budget})


# ----------------------------------------------------------------------------- real-image sets
def _real_set(ds, idx: list[int], config: dict) -> dict:
    """Real training images shaped like a synthetic set: float [0, 1] images, labels, indices, config."""
    t = torch.tensor(idx, dtype=torch.long)
    return {"images": to_unit(ds.train_x[t]), "labels": ds.train_y[t].clone(), "indices": t,
            "config": {**config, "dataset": ds.spec}}


def random_real(ds, ipc: int, seed: int = 0) -> dict:
    """``ipc`` random training images per class as a set shaped like a synthetic one (images in [0, 1],
    labels, indices, config): the LGM reference's ``random_reals``. Each class in turn is permuted
    by one torch generator seeded with ``seed``; every class must hold ``ipc`` images.

    Same idea as :func:`select_random`, kept with its own draw (a torch generator; the recorded sets
    of the SFM chapters depend on it) and shape (the set, not the selection record).
    """
    ipc = check_int("ipc", ipc, 1)
    seed = check_int("seed", seed, 0, 2**32 - 1)
    g = torch.Generator().manual_seed(seed)
    idx, _ = _per_class(ds.train_y, ipc, lambda members, n: torch.randperm(len(members), generator=g)[:n].numpy(),
                        classes=range(ds.num_classes), names=ds.classes, pick_full=True)
    return _real_set(ds, idx, {"method": "random-real", "ipc": ipc, "seed": seed})


def centroid_real_from_features(ds, features: torch.Tensor, ipc: int, config: dict | None = None) -> dict:
    """Per class the ``ipc`` training images whose feature (a row of ``features``, raw, not normalised)
    is nearest (Euclidean) to the class mean, as a set shaped like a synthetic one.

    For IPC 1 this is the LGM reference's ``centroids`` baseline; for IPC > 1 the IPC nearest (the
    reference only builds IPC 1). Unlike :func:`select_centroids` (k-means in the L2-normalised
    Stage-1 space, BPS's result shape), one centre per class in the given feature space.
    ``config`` adds to the record's config (e.g. the backbone).
    """
    ipc = check_int("ipc", ipc, 1)

    def pick(members: np.ndarray, n: int) -> np.ndarray:
        f = features[torch.as_tensor(members)]
        return (f - f.mean(0, keepdim=True)).norm(dim=1).argsort()[:n].numpy()

    idx, _ = _per_class(ds.train_y, ipc, pick, classes=range(ds.num_classes), names=ds.classes, pick_full=True)
    return _real_set(ds, idx, {"method": "centroid-real", "ipc": ipc, **(config or {})})


#: The baselines of the one selector registry (:mod:`ddlib.selectors`; BPS registers in :mod:`ddlib.bps.pipeline`).
BASELINES = ("random", "herding", "kcenter", "forgetting", "centroids")


# ----------------------------------------------------------------------------- forgetting scores
#: where forgetting events are counted: a run of their own (DeepCore) or the full-data teacher's run
FORGETTING_SOURCES = ("separate", "teacher")
#: the rule for samples never classified correctly: 0 events (DeepCore, the default) or infinitely many (Toneva)
NEVER_LEARNED = ("deepcore", "toneva")
#: the scoring run's learning-rate schedules
FORGETTING_SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class ForgettingConfig(Recipe):
    """The run that counts forgetting events (a :class:`~ddlib.train.Recipe` and its architecture), and how
    its counts are read.

    Two recipes (presets ``forgetting_recipe`` of :func:`ddlib.presets.bps`):

    - ``source="separate"`` (the defaults, :data:`DEEPCORE_FORGETTING`): a run of its own, DeepCore's
      selection run (``main.py``): 40 epochs, SGD lr 0.1 held constant, momentum 0.9 with Nesterov, weight
      decay 5e-4, batch 256, no augmentation.
    - ``source="teacher"`` (the chapters' default on a CPU): the events are counted on the full-data
      teacher's own training run (:func:`ddlib.bps.distill.train_teacher` records them as it trains),
      saving one full-data training; the training fields then describe the teacher's recipe.

    ``never_learned``: the rule for samples never classified correctly (module docstring): ``"deepcore"``
    (0 events, the default) or ``"toneva"`` (infinitely many). ``el2n_epoch``: the epoch after which the
    EL2N fallback is read, no later than the run's last (Paul et al.: early in training).
    """

    _label: ClassVar[str] = "forgetting"

    epochs: int = 40
    batch_size: int = 256
    lr: float = 0.1
    nesterov: bool = True
    schedule: str = "constant"
    augment: str = "none"
    model: str = "resnet18"
    width: int | None = None       # ConvNet width (None: the model's default)
    depth: int | None = None
    el2n_epoch: int = 20           # EL2N is read after this epoch
    source: str = "separate"       # "separate": a run of its own (DeepCore) | "teacher": the teacher's run
    never_learned: str = "deepcore"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("source", self.source, FORGETTING_SOURCES)
        check_choice("never_learned", self.never_learned, NEVER_LEARNED)
        check_choice("forgetting schedule", self.schedule, FORGETTING_SCHEDULES)
        check_int("el2n_epoch", self.el2n_epoch, 1)
        if self.width is not None:
            check_int("width", self.width, 1)
        if self.depth is not None:
            check_int("depth", self.depth, 1)


#: DeepCore's selection run for forgetting (``main.py``: ``--selection_epochs 40``, SGD lr 0.1, momentum 0.9,
#: Nesterov, wd 5e-4, batch 256; no augmentation during selection), on the reference's ResNet-18
DEEPCORE_FORGETTING = ForgettingConfig()


def forgetting_scores(ds, cfg: ForgettingConfig = ForgettingConfig(), seed: int = 0, device=None,
                      progress: bool = True, cache: bool = True) -> dict:
    """Forgetting counts and EL2N scores of every training sample (a cached artifact).

    Returns ``{"forgetting": (N,) events, "learned": (N,) bool, "el2n": (N,), "el2n_epoch": int, "events": int,
    "never_learned": cfg.never_learned}``; the rule for never-learned samples is applied at selection
    (:func:`forgetting_counts`), so it does not enter the cache key.
    """
    import dataclasses

    from ddlib import artifacts

    run = dataclasses.replace(cfg, never_learned="deepcore")  # the run does not depend on the reading rule
    key = artifacts.make_key("forgetting", ds.key(), run, [f"seed={seed}"])
    scores = artifacts.cached(key, lambda: _forgetting(ds, run, seed, device, progress), enabled=cache)
    return {**scores, "never_learned": cfg.never_learned}


def _model_kw(cfg) -> dict:
    return {k: v for k, v in (("width", cfg.width), ("depth", cfg.depth)) if v is not None}


def scoring_hooks(x: torch.Tensor, y: torch.Tensor, num_classes: int, el2n_epoch: int, device) -> list[Hook]:
    """The two hooks that score every training image while a model trains on (x, y): the forgetting counter
    and the EL2N read-out after ``el2n_epoch``; :func:`scores_from_hooks` turns them into the scores."""
    return [_ForgettingCounter(y), _EL2N(x, y, num_classes, el2n_epoch, device)]


def scores_from_hooks(hooks: list[Hook], el2n_epoch: int) -> dict:
    """``{"forgetting", "learned", "el2n", "el2n_epoch", "events"}`` from :func:`scoring_hooks` after training:
    the raw event counts (0 for a never-learned sample) and whether each sample was ever correct."""
    counter, el2n = hooks
    return {"forgetting": counter.events.clone().numpy(), "learned": counter.learned.clone().numpy(),
            "el2n": el2n.scores.numpy(), "el2n_epoch": el2n_epoch, "events": int(counter.events.sum())}


class _ForgettingCounter(Hook):
    """Forgetting events (a sample correct when last seen in a minibatch, wrong now), from each step's
    batch indices and logits; ``learned``: correct at least once."""

    def __init__(self, y: torch.Tensor) -> None:
        n = len(y)
        self.y = y
        self.last = torch.zeros(n, dtype=torch.bool)
        self.learned = torch.zeros(n, dtype=torch.bool)
        self.events = torch.zeros(n)

    def step_end(self, state: LoopState, batch: Batch, loss: torch.Tensor, out: torch.Tensor) -> None:
        b = batch.index
        correct = (out.argmax(1).cpu() == self.y[b])
        if batch.full is not None:  # data-parallel: every rank's share, so each counts the whole batch
            b, correct = batch.full.index, distributed.gather_rows(correct, distributed.share_sizes(len(batch.full)))
        self.events[b] += (self.last[b] & ~correct).float()
        self.last[b] = correct
        self.learned[b] |= correct


class _EL2N(Hook):
    """EL2N ``||softmax(f(x)) − onehot(y)||₂`` of every training image, after epoch ``epoch`` (1-based)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, num_classes: int, epoch: int, device: torch.device) -> None:
        self.x, self.y, self.num_classes, self.epoch, self.device = x, y, num_classes, epoch, device
        self.scores = torch.zeros(len(y))

    def epoch_end(self, state: LoopState) -> None:
        if state.epoch + 1 != self.epoch:
            return
        model = state.model
        model.eval()
        with torch.no_grad():
            for i in range(0, len(self.y), 512):
                p = F.softmax(model(to_unit(self.x[i:i + 512].to(self.device))), 1).cpu()
                self.scores[i:i + 512] = (p - F.one_hot(self.y[i:i + 512], self.num_classes).float()).norm(dim=1)


def _forgetting(ds, cfg: ForgettingConfig, seed: int, device, progress: bool) -> dict:
    from ddlib import models

    dev = get_device(device)
    g = seed_everything(seed)
    model = models.create(cfg.model, ds.num_classes, ds.image_shape[0], ds.image_shape[1],
                          ds.mean.tolist(), ds.std.tolist(), **_model_kw(cfg)).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          nesterov=cfg.nesterov and cfg.momentum > 0)
    x, y = ds.train_x, ds.train_y
    el2n_epoch = min(cfg.el2n_epoch, cfg.epochs)
    counter, el2n = scoring_hooks(x, y, ds.num_classes, el2n_epoch, dev)
    hooks: list[Hook] = [counter]
    if cfg.schedule == "cosine":
        hooks.append(LrScheduler(torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs)))
    augment = None if cfg.augment == "none" else cfg.augment
    source = image_batches(x, y, cfg.batch_size, dev, augment=augment, global_rng_augment_on_gpu=True)
    loop(model, opt, source, ce_step(), cfg.epochs, g, hooks=[*hooks, el2n], progress=progress, desc="forgetting")
    return {**scores_from_hooks([counter, el2n], el2n_epoch), "config": config_dict(cfg)}
