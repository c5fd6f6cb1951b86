"""Linear layers on frozen features of augmented synthetic views: the probe and KD heads, and CI's projector.

The reference trains every one of them the same way (``distillation/eval.py`` of the LGM code and
``distillation/eval_syn.py`` of the SFM code): Adam at lr·B/256, a cosine schedule over the epochs, batches of
augmented synthetic images passed through the frozen backbones (:class:`ProbeConfig`). Here the inputs are
features: :class:`_Views` embeds the views (fresh at every step, or a bank of K views embedded once), and
:func:`_train_linear` runs :func:`ddlib.train.loop` on them.

CI's projector P: d_eval → d_distill is a regression fit on C·IPC·views pairs (φ_eval(view), φ_distill(view)),
with d_eval·d_distill weights (1280² ≈ 1.6 M for EfficientNet-Lite): far more weights than pairs at a small IPC.
Besides the reference's Adam fit (``projector_fit="adam"``, optionally with weight decay and early stopping on
held-out views), :func:`fit_ridge` fits it in closed form (``projector_fit="ridge"``): the least-squares map
with an intercept and an L2 penalty λ·‖W‖², its λ chosen on held-out views. :mod:`ddlib.sfm.inherit` uses
these to evaluate a synthetic set.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddlib.losses import kd_kl_ce_loss, projector_loss
from ddlib.train import Batch, Batches, Hook, LoopState, LrScheduler, Step, loop
from ddlib.utils import ADDED_FIELD, ParamError, check_choice, check_float, check_int, get_device, progress, to_unit

__all__ = ["HEAD_STD", "PROJECTOR_FITS", "RIDGE_GRID", "ProbeConfig", "train_probe", "train_projector", "train_kd",
           "ci_predict", "fit_ridge", "ridge_projector"]

#: the standard deviation new heads' weights are drawn with (the reference's ``LinearClassifier``; bias 0)
HEAD_STD = 0.01
#: how CI's projector is fit: the reference's Adam loop, or the closed-form ridge regression
PROJECTOR_FITS = ("adam", "ridge")
#: the ridge penalties tried when ``projector_ridge`` is None, relative to the mean eigenvalue of the centred
#: φ_eval Gram matrix (λ = α · ‖Z − z̄‖²_F / d_eval)
RIDGE_GRID = tuple(10.0 ** k for k in range(-5, 3))


# --------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class ProbeConfig:
    """How a head (probe, KD student) or a CI projector is trained on augmented synthetic images.

    Defaults are the LGM reference evaluation (``distillation/eval.py``): Adam with no weight decay
    at lr = 1e-3 · B / 256 (the linear scaling rule, B = min(batch_size, N)), batches of at most 100
    synthetic images, cosine annealing to 0 over 1,000 epochs, augmentation = RandomResizedCrop
    (0.08–1) + horizontal flip, and the mean of 5 runs (seeds ``seed + r``), each scored at its last
    epoch (the reference keeps the best test accuracy of periodic evaluations; we do not select on the
    test set). Heads start from W ~ N(0, 0.01²), b = 0 (the reference's ``LinearClassifier``).
    ``views=None`` draws fresh augmentations at every step as the reference does; ``views=K``
    embeds K augmented views once (CPU budgets; see the module docstring). The CI projector (an
    ``nn.Linear`` with PyTorch's default init, as the reference's) uses the same schedule with Adam at
    ``projector_lr``·B/256, ten times the head's rate (``distillation/eval_syn.py`` of the SFM code:
    0.01·B/256); KD uses ``temperature`` T = 4 and ``kd_weight`` 0.5 (loss = w·KL·T² + (1 − w)·CE).

    Options of the CI projector beyond the reference (defaults: the reference's fit):
    ``projector_fit`` "adam" (the loop above) or "ridge" (:func:`fit_ridge`, closed form on the bank of
    ``views``); ``projector_weight_decay``: Adam's L2 weight decay on the projector alone (reference 0);
    ``projector_holdout``: the share of each image's banked views held out of the fit: with "adam" the
    projector of the epoch with the least held-out MSE is kept (early stopping), with "ridge" λ is chosen
    on them from :data:`RIDGE_GRID` and the map refit on every view; ``projector_ridge``: a fixed relative λ
    for "ridge" instead (α of :data:`RIDGE_GRID`'s scale). Ridge and the held-out views need ``views``.
    """

    epochs: int = 1000
    batch_size: int = 100
    lr: float = 1e-3
    projector_lr: float = 1e-2
    weight_decay: float = 0.0
    crop_scale: tuple[float, float] | None = (0.08, 1.0)
    flip_p: float = 0.5
    noise_std: float = 0.0
    views: int | None = None
    runs: int = 5
    temperature: float = 4.0
    kd_weight: float = 0.5
    seed: int = 0
    eval_batch: int = 256
    progress: bool = False
    projector_fit: str = field(default="adam", metadata=ADDED_FIELD)
    projector_weight_decay: float = field(default=0.0, metadata=ADDED_FIELD)
    projector_holdout: float = field(default=0.0, metadata=ADDED_FIELD)
    projector_ridge: float | None = field(default=None, metadata=ADDED_FIELD)

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, 1, 10**6)
        check_int("batch_size", self.batch_size, 1, 10**6)
        check_float("lr", self.lr, 1e-9, 10.0)
        check_float("projector_lr", self.projector_lr, 1e-9, 100.0)
        check_float("weight_decay", self.weight_decay, 0.0, 1.0)
        if self.crop_scale is not None:
            if not isinstance(self.crop_scale, (tuple, list)) or len(self.crop_scale) != 2:
                raise ParamError(f"crop_scale={self.crop_scale!r} must be a pair (low, high) in (0, 1] or None")
            check_float("crop_scale[0]", self.crop_scale[0], 1e-6, 1.0)
            check_float("crop_scale[1]", self.crop_scale[1], self.crop_scale[0], 1.0)
        check_float("flip_p", self.flip_p, 0.0, 1.0)
        check_float("noise_std", self.noise_std, 0.0, 10.0)
        if self.views is not None:
            check_int("views", self.views, 1, 10**5)
        check_int("runs", self.runs, 1, 100)
        check_float("temperature", self.temperature, 1e-3, 1e3)
        check_float("kd_weight", self.kd_weight, 0.0, 1.0)
        check_int("seed", self.seed, 0, 2**32 - 1)
        check_int("eval_batch", self.eval_batch, 1, 10**6)
        check_choice("projector_fit", self.projector_fit, PROJECTOR_FITS)
        check_float("projector_weight_decay", self.projector_weight_decay, 0.0, 10.0)
        check_float("projector_holdout", self.projector_holdout, 0.0, 0.9)
        if self.projector_ridge is not None:
            check_float("projector_ridge", self.projector_ridge, 0.0, 1e6)
        if self.views is None and (self.projector_fit == "ridge" or self.projector_holdout > 0):
            name = ("projector_fit='ridge'" if self.projector_fit == "ridge"
                    else f"projector_holdout={self.projector_holdout}")
            raise ParamError(f"{name} fits on a bank of augmented views: set views (e.g. 10), not None")
        if self.projector_holdout > 0 and round(self.projector_holdout * self.views) < 1:  # type: ignore[operator]
            raise ParamError(f"projector_holdout={self.projector_holdout} holds out no view of views={self.views}; "
                             "raise it or the views")

    def augment_config(self) -> Any:
        from ddlib.kernels.augment import AugmentConfig

        return AugmentConfig(crop_scale=None if self.crop_scale is None else tuple(self.crop_scale),
                             flip_p=self.flip_p, noise_std=self.noise_std)



# --------------------------------------------------------------------------------------- views
class _Views:
    """Features of augmented synthetic views through one or more frozen backbones, one draw shared by all.

    ``views=None``: a fresh augmentation at every call (the reference); ``views=K``: a bank of K views
    per image embedded once, a random one per image at every call.
    """

    def __init__(self, backbones: Sequence[nn.Module], images: Tensor, cfg: ProbeConfig,
                 device: torch.device) -> None:
        from ddlib.kernels.augment import augment

        self.backbones = [b.to(device).eval() for b in backbones]
        self.images = to_unit(images).to(device)
        self.aug = cfg.augment_config()
        self.augment = augment
        self.device = device
        self.eval_batch = cfg.eval_batch
        self.bank: list[Tensor] | None = None
        if cfg.views is not None:
            g = torch.Generator().manual_seed(cfg.seed + 7919)
            banks: list[list[Tensor]] = [[] for _ in self.backbones]
            for _ in progress(range(cfg.views), desc="embed views", enabled=cfg.progress):
                feats = self._embed_views(torch.arange(len(self.images)), g)
                for b, f in zip(banks, feats):
                    b.append(f)
            self.bank = [torch.stack(b) for b in banks]  # (V, N, D) each

    @torch.no_grad()
    def _embed_views(self, idx: Tensor, g: torch.Generator) -> list[Tensor]:
        outs: list[list[Tensor]] = [[] for _ in self.backbones]
        for i in range(0, len(idx), self.eval_batch):
            x = self.augment(self.images[idx[i:i + self.eval_batch]], self.aug, g)
            for o, bb in zip(outs, self.backbones):
                o.append(bb(x).float())
        return [torch.cat(o) for o in outs]

    def split(self, held_out: int) -> tuple[_Views, list[Tensor]]:
        """The banked views without their last ``held_out`` (a shallow copy to train on), and those held out,
        flattened to (held_out·N, D) per backbone."""
        if self.bank is None or not 0 < held_out < self.bank[0].shape[0]:
            raise ParamError(f"cannot hold out {held_out} of {0 if self.bank is None else self.bank[0].shape[0]} views")
        train = copy.copy(self)
        train.bank = [b[:-held_out] for b in self.bank]
        return train, [b[-held_out:].reshape(-1, b.shape[-1]) for b in self.bank]

    def batch(self, idx: Tensor, g: torch.Generator) -> list[Tensor]:
        if self.bank is None:
            return self._embed_views(idx, g)
        v = torch.randint(self.bank[0].shape[0], (len(idx),), generator=g)
        return [b[v.to(b.device), idx.to(b.device)] for b in self.bank]

# --------------------------------------------------------------------------------------- training
def _train_linear(module: nn.Module, views: _Views, labels: Tensor, cfg: ProbeConfig, seed: int, step: Step,
                  desc: str, lr: float | None = None, weight_decay: float | None = None,
                  hooks: Sequence[Hook] = ()) -> list[float]:
    """The reference loop on :func:`ddlib.train.loop`: Adam (lr·B/256, ``lr`` default ``cfg.lr``), cosine over
    epochs (stepped per epoch), shuffled batches of B = min(batch_size, N) of view features
    ``[φ_eval, φ_distill, ...]``; returns the mean loss per epoch."""
    n = len(labels)
    bs = min(cfg.batch_size, n)
    opt = torch.optim.Adam(module.parameters(), lr=(cfg.lr if lr is None else lr) * bs / 256,
                           weight_decay=cfg.weight_decay if weight_decay is None else weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs, eta_min=0.0)
    g = torch.Generator().manual_seed(seed)
    labels = labels.to(views.device)
    source = Batches(n, bs, lambda idx, gen: Batch(idx, views.batch(idx, gen), labels[idx.to(labels.device)]))
    # tiny linear steps on precomputed features: thread start-up dominates, one CPU thread is fastest
    with _threads(1 if views.bank is not None and views.device.type == "cpu" else None):
        hist = loop(module, opt, source, step, cfg.epochs, g, hooks=[LrScheduler(sched), *hooks], progress=cfg.progress,
                    desc=desc)
    return hist["loss"]


class _threads:
    """Temporarily run PyTorch's CPU ops on ``n`` threads (None: leave as is)."""

    def __init__(self, n: int | None) -> None:
        self.n, self.old = n, torch.get_num_threads()

    def __enter__(self) -> None:
        if self.n is not None:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.old)


def _linear(d_in: int, d_out: int, seed: int, device: torch.device, head: bool = True) -> nn.Linear:
    """A linear layer drawn from ``seed`` (the global RNG left as it was): a classifier head (``head``) from
    W ~ N(0, 0.01²), b = 0 as the reference's ``LinearClassifier``; else PyTorch's default init (the
    reference's CI projector)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = nn.Linear(d_in, d_out)
        if head:
            with torch.no_grad():
                layer.weight.normal_(0.0, HEAD_STD)
                layer.bias.zero_()
        return layer.to(device)


def _check_set(images: Tensor, labels: Tensor) -> None:
    if not isinstance(images, Tensor) or images.dim() != 4:
        raise ParamError(f"images must be a tensor (N, C, H, W); got {getattr(images, 'shape', type(images))}")
    if not isinstance(labels, Tensor) or labels.dim() != 1 or len(labels) != len(images) or len(labels) == 0:
        raise ParamError(f"labels must be a non-empty 1-D tensor with one label per image; got "
                         f"{getattr(labels, 'shape', type(labels))} for {len(images)} images")


def train_probe(backbone: nn.Module, images: Tensor, labels: Tensor, cfg: ProbeConfig | None = None,
                num_classes: int | None = None, seed: int | None = None, device: torch.device | None = None,
                views: _Views | None = None) -> nn.Linear:
    """A new linear head on φ(backbone) trained with CE on augmented synthetic images; returns it (on CPU)."""
    cfg = cfg or ProbeConfig()
    _check_set(images, labels)
    device = get_device(device)
    views = views or _Views([backbone], images, cfg, device)
    c = int(num_classes or int(labels.max()) + 1)
    head = _linear(backbone.feature_dim, c, cfg.seed if seed is None else seed, device)
    head.history = _train_linear(head, views, labels, cfg, cfg.seed if seed is None else seed,  # type: ignore[attr-defined]
                                 lambda m, b: (F.cross_entropy(m(b.x[0]), b.y), None), "probe")
    return head.cpu()


def train_projector(eval_backbone: nn.Module, distill_backbone: nn.Module, images: Tensor,
                    cfg: ProbeConfig | None = None, seed: int | None = None,
                    device: torch.device | None = None, views: _Views | None = None) -> nn.Linear:
    """CI's projector P: d_eval → d_distill fit by MSE(P(φ_eval(x)), φ_distill(x)) on augmented synthetic views.

    Each step both backbones see the same augmented view; Adam at ``cfg.projector_lr``·B/256 (the reference's
    0.01·B/256, ten times the probe's), weight decay ``cfg.projector_weight_decay``. ``P.history`` holds the
    per-epoch MSE. With ``cfg.projector_holdout`` the last share of each image's banked views is held out and
    the projector of the epoch with the least held-out MSE is returned (``P.holdout_mse`` per epoch,
    ``P.best_epoch``). ``cfg.projector_fit="ridge"``: :func:`ridge_projector` instead.
    """
    cfg = cfg or ProbeConfig()
    if not isinstance(images, Tensor) or images.dim() != 4 or len(images) == 0:
        raise ParamError(f"images must be a non-empty tensor (N, C, H, W); got {getattr(images, 'shape', None)}")
    device = get_device(device)
    views = views or _Views([eval_backbone, distill_backbone], images, cfg, device)
    held = round(cfg.projector_holdout * views.bank[0].shape[0]) if views.bank is not None else 0
    if cfg.projector_fit == "ridge":
        return ridge_projector(views, held, cfg.projector_ridge)
    s = cfg.seed if seed is None else seed
    proj = _linear(eval_backbone.feature_dim, distill_backbone.feature_dim, s, device, head=False)
    dummy = torch.zeros(len(images), dtype=torch.long)
    hooks: list[Hook] = []
    if held:
        views, (z_out, g_out) = views.split(held)
        hooks.append(_KeepBest(z_out, g_out))
    proj.history = _train_linear(proj, views, dummy, cfg, s,  # type: ignore[attr-defined]
                                 lambda m, b: (projector_loss(m(b.x[0]), b.x[1]), None), "projector",
                                 lr=cfg.projector_lr, weight_decay=cfg.projector_weight_decay, hooks=hooks)
    if held:
        hooks[0].restore(proj)  # type: ignore[attr-defined]
    return proj.cpu()


class _KeepBest(Hook):
    """Early stopping on held-out views: after every epoch the MSE on (z_out, g_out); the best epoch's
    weights are restored by :meth:`restore` (the loop itself runs all its epochs)."""

    def __init__(self, z_out: Tensor, g_out: Tensor) -> None:
        self.z_out, self.g_out = z_out, g_out
        self.curve: list[float] = []
        self.best: dict[str, Tensor] | None = None

    @torch.no_grad()
    def epoch_end(self, state: LoopState) -> None:
        mse = float(projector_loss(state.model(self.z_out), self.g_out))
        if not self.curve or mse < min(self.curve):
            self.best = {k: v.detach().clone() for k, v in state.model.state_dict().items()}
        self.curve.append(mse)

    def restore(self, module: nn.Module) -> None:
        module.load_state_dict(self.best)  # type: ignore[arg-type]
        module.holdout_mse = self.curve  # type: ignore[attr-defined]
        module.best_epoch = 1 + min(range(len(self.curve)), key=self.curve.__getitem__)  # type: ignore[attr-defined]


def fit_ridge(z: Tensor, g: Tensor, alphas: Sequence[float], z_out: Tensor | None = None
              ) -> tuple[list[tuple[Tensor, Tensor]], list[Tensor]]:
    """Closed-form ridge regressions of ``g`` (n, d_out) on ``z`` (n, d_in) with an intercept, one per α.

    For each relative penalty α, with λ = α·‖Z − z̄‖²_F / d_in, (W, b) minimises
    Σ_i ‖W z_i + b − g_i‖² + λ‖W‖²_F: from the thin SVD Z − z̄ = U S Vᵀ, Wᵀ = V diag(s/(s² + λ)) Uᵀ (G − ḡ) and
    b = ḡ − W z̄ (as λ → 0 the least-squares map of least norm; weights outside the span of the centred
    features are 0; singular values below 1e-6 of the largest count as 0). Computed in float64. Returns
    ([(W, b) per α], [predictions on ``z_out`` per α] — empty when ``z_out`` is None).
    """
    if z.dim() != 2 or g.dim() != 2 or len(z) != len(g) or len(z) < 2:
        raise ParamError(f"z and g must be (n, d) with the same n >= 2; got {tuple(z.shape)} and {tuple(g.shape)}")
    z64, g64 = z.double(), g.double()
    zm, gm = z64.mean(0), g64.mean(0)
    u, s, vh = torch.linalg.svd(z64 - zm, full_matrices=False)
    scale = float((s * s).sum()) / z.shape[1]
    s_min = 1e-6 * float(s.max())  # below: float32 round-off (centring alone removes one direction), not data
    utg = u.T @ (g64 - gm)
    proj_out = (z_out.double() - zm) @ vh.T if z_out is not None else None
    fits, preds = [], []
    for a in alphas:
        shrink = torch.where(s > s_min, s / (s * s + check_float("alpha", a, 0.0) * scale + 1e-300), 0.0)
        w_t = vh.T @ (shrink[:, None] * utg)
        fits.append((w_t.T.float(), (gm - zm @ w_t).float()))
        if proj_out is not None:
            preds.append((proj_out @ (shrink[:, None] * utg) + gm).float())
    return fits, preds


def ridge_projector(views: _Views, held_out: int = 0, alpha: float | None = None) -> nn.Linear:
    """CI's projector by :func:`fit_ridge` on every banked view pair (φ_eval, φ_distill) of ``views``.

    α is ``alpha`` when given; else the α of :data:`RIDGE_GRID` with the least MSE on the last ``held_out``
    views of every image when the others are fit (``held_out`` >= 1), and the map is then refit on all views.
    ``P.history`` is [the MSE on the fitted pairs]; ``P.ridge_alpha`` the α used, ``P.holdout_mse`` the
    held-out MSE per α of the grid (empty when ``alpha`` was given).
    """
    if views.bank is None:
        raise ParamError("a ridge projector fits on a bank of augmented views: set views (e.g. 10), not None")
    z, g = (b.reshape(-1, b.shape[-1]) for b in views.bank)
    curve: list[float] = []
    if alpha is None:
        if held_out < 1:
            raise ParamError("projector_ridge=None chooses λ on held-out views: set projector_holdout > 0")
        train, (z_out, g_out) = views.split(held_out)
        zt, gt = (b.reshape(-1, b.shape[-1]) for b in train.bank)  # type: ignore[union-attr]
        curve = [float(projector_loss(p, g_out)) for p in fit_ridge(zt, gt, RIDGE_GRID, z_out)[1]]
        alpha = RIDGE_GRID[min(range(len(curve)), key=curve.__getitem__)]
    (w, b), = fit_ridge(z, g, [alpha])[0]
    proj = nn.Linear(w.shape[1], w.shape[0])
    with torch.no_grad():
        proj.weight.copy_(w)
        proj.bias.copy_(b)
        proj.history = [float(projector_loss(proj(z.float()), g))]  # type: ignore[attr-defined]
    proj.ridge_alpha, proj.holdout_mse = alpha, curve  # type: ignore[attr-defined]
    return proj.cpu()


def train_kd(eval_backbone: nn.Module, golden: nn.Linear, distill_backbone: nn.Module, images: Tensor,
             labels: Tensor, cfg: ProbeConfig | None = None, seed: int | None = None,
             device: torch.device | None = None, views: _Views | None = None) -> nn.Linear:
    """A new head on φ_eval taught by the inherited head: loss 0.5·KL·T² + 0.5·CE with T = 4 (``cfg``),
    the teacher's logits = golden(φ_distill(view)) on the same augmented view as the student's."""
    cfg = cfg or ProbeConfig()
    _check_set(images, labels)
    device = get_device(device)
    views = views or _Views([eval_backbone, distill_backbone], images, cfg, device)
    s = cfg.seed if seed is None else seed
    teacher = golden.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    head = _linear(eval_backbone.feature_dim, golden.out_features, s, device)

    def loss(m: nn.Module, b: Batch) -> tuple[Tensor, None]:
        with torch.no_grad():
            t = teacher(b.x[1])
        return kd_kl_ce_loss(m(b.x[0]), t, b.y, cfg.temperature, cfg.kd_weight), None

    head.history = _train_linear(head, views, labels, cfg, s, loss, "kd")  # type: ignore[attr-defined]
    golden.cpu()
    return head.cpu()


def ci_predict(golden: nn.Linear, projector: nn.Linear, eval_features: Tensor) -> Tensor:
    """Logits of Classifier Inheritance: golden(P(φ_eval(x))), from precomputed φ_eval features."""
    with torch.no_grad():
        return golden.cpu()(projector.cpu()(eval_features.float()))
