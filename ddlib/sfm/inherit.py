"""Evaluating a synthetic set on frozen backbones: linear probe, Classifier Inheritance (CI) and KD.

Three ways to turn C·IPC synthetic images into a classifier on an evaluation backbone φ_eval
(METHODS.md §2):

- ``probe``: a new linear head trained with CE on augmented synthetic images (the LGM reference
  protocol, :class:`ProbeConfig`).
- ``ci``: the *golden* head — the linear classifier trained once on the full training set on the
  distillation backbone φ_distill (:func:`golden_head`) — is inherited; only a linear projector
  P: d_eval → d_distill is trained, with MSE(P(φ_eval(x)), φ_distill(x)) on augmented synthetic
  images (:func:`train_projector`); predictions are golden(P(φ_eval(x))) (:func:`ci_predict`).
- ``kd``: a new head on φ_eval trained with 0.5·KL·T² + 0.5·CE, T = 4, whose teacher is the golden
  head on φ_distill of the same augmented view (:func:`train_kd`).

Real-image baselines in the same shape as a synthetic set: :func:`random_real` and
:func:`centroid_real` (their home is :mod:`ddlib.baselines`, beside the coreset selectors; the
centroids here are taken in φ's feature space). :func:`evaluate_synthetic` runs one mode end to end
and returns the test accuracy, the bytes each part takes and the configuration.

Every head, projector and the golden head is trained by the one loop of :mod:`ddlib.train`: its
inputs are feature banks (several tensors per batch: φ_eval and φ_distill of the same view), its
step one of the losses of :mod:`ddlib.losses`, its lr a ``CosineAnnealingLR`` stepped per epoch.

Views of the synthetic images. The reference augments every batch afresh and passes it through the
frozen backbone at every step (``views=None`` here). On a CPU that costs a backbone forward per
image per epoch (1,000 epochs), so ``views=K`` instead embeds K augmented views of every image once
(one draw shared by all backbones, so the projector and the KD teacher see the same view as the
student) and each step samples one of them per image: the head then sees a finite pool of K
augmentations instead of a fresh one each time. A departure for CPU budgets, named in every result.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddlib import artifacts
from ddlib.baselines import centroid_real_from_features, random_real
from ddlib.losses import kd_kl_ce_loss, projector_loss
from ddlib.sfm.backbones import backbone_key
from ddlib.train import Batch, Batches, LrScheduler, Step, loop
from ddlib.utils import ParamError, check_choice, check_float, check_int, config_dict, get_device, progress, to_unit

__all__ = ["MODES", "HEAD_STD", "ProbeConfig", "GoldenConfig", "dataset_features", "train_probe", "train_projector", "train_kd",
           "ci_predict", "golden_head", "random_real", "centroid_real", "linear_bytes", "evaluate_synthetic",
           "evaluate_modes"]

MODES = ("probe", "ci", "kd")
#: the standard deviation new heads' weights are drawn with (the reference's ``LinearClassifier``; bias 0)
HEAD_STD = 0.01


# --------------------------------------------------------------------------------------- configs
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

    def augment_config(self) -> Any:
        from ddlib.kernels.augment import AugmentConfig

        return AugmentConfig(crop_scale=None if self.crop_scale is None else tuple(self.crop_scale),
                             flip_p=self.flip_p, noise_std=self.noise_std)


@dataclass(frozen=True)
class GoldenConfig:
    """The golden head: the linear classifier on φ_distill trained on the full training set.

    Defaults are the reference's (``baselines/full_dataset.py`` and ``distillation/eval_full.py`` of the SFM
    code): augmented images (``augment``, a preset of ``AUGMENTS``: "kd" is flip + RandomResizedCrop
    0.08–1, its ``AugBasic``), 10 epochs of batches of 128, Adam at lr·B/256 = 1e-3·128/256 without weight
    decay, cosine to 0, the head from W ~ N(0, 0.01²), b = 0, scored at the last epoch.

    ``views=None`` augments every batch afresh and runs it through the frozen backbone (the reference:
    ``epochs`` backbone passes over the training set). ``views=K`` (CPU budgets, a departure) trains on a
    cached bank of K augmented views of every training image (:func:`ddlib.features.view_bank`, drawn at
    the dataset's resolution, the backbone resizing inside), one view per image per epoch picked at
    random: a finite pool of augmentations instead of a fresh one each epoch. ``augment=None`` trains on
    the clean view (ddlib's earlier head).
    """

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    augment: str | None = "kd"
    views: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        from ddlib.kernels.augment import AUGMENTS

        check_int("epochs", self.epochs, 1, 10**5)
        check_int("batch_size", self.batch_size, 1, 10**7)
        check_float("lr", self.lr, 1e-9, 10.0)
        check_float("weight_decay", self.weight_decay, 0.0, 1.0)
        if self.augment is not None:
            check_choice("augment", self.augment, sorted(AUGMENTS))
        if self.views is not None:
            check_int("views", self.views, 1, 1000)
        check_int("seed", self.seed, 0, 2**32 - 1)


# --------------------------------------------------------------------------------------- features
def dataset_features(backbone: nn.Module, ds: Any, split: str = "train", batch_size: int = 256,
                     device: torch.device | None = None, progress: bool = False) -> Tensor:
    """φ of a dataset split (the un-augmented view), float32 on the CPU: the clean-view bank of
    :func:`ddlib.features.view_bank` (cached by dataset, split and backbone), shared with the SFM statistics."""
    from ddlib.features import view_bank

    check_choice("split", split, ("train", "test"))
    return view_bank(backbone, ds, split=split, batch_size=batch_size, device=device)[0]


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

    def batch(self, idx: Tensor, g: torch.Generator) -> list[Tensor]:
        if self.bank is None:
            return self._embed_views(idx, g)
        v = torch.randint(self.bank[0].shape[0], (len(idx),), generator=g)
        return [b[v.to(b.device), idx.to(b.device)] for b in self.bank]


# --------------------------------------------------------------------------------------- training
def _train_linear(module: nn.Module, views: _Views, labels: Tensor, cfg: ProbeConfig, seed: int, step: Step,
                  desc: str, lr: float | None = None) -> list[float]:
    """The reference loop on :func:`ddlib.train.loop`: Adam (lr·B/256, ``lr`` default ``cfg.lr``), cosine over
    epochs (stepped per epoch), shuffled batches of B = min(batch_size, N) of view features
    ``[φ_eval, φ_distill, ...]``; returns the mean loss per epoch."""
    n = len(labels)
    bs = min(cfg.batch_size, n)
    opt = torch.optim.Adam(module.parameters(), lr=(cfg.lr if lr is None else lr) * bs / 256,
                           weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs, eta_min=0.0)
    g = torch.Generator().manual_seed(seed)
    labels = labels.to(views.device)
    source = Batches(n, bs, lambda idx, gen: Batch(idx, views.batch(idx, gen), labels[idx.to(labels.device)]))
    # tiny linear steps on precomputed features: thread start-up dominates, one CPU thread is fastest
    with _threads(1 if views.bank is not None and views.device.type == "cpu" else None):
        hist = loop(module, opt, source, step, cfg.epochs, g, hooks=[LrScheduler(sched)], progress=cfg.progress,
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
    0.01·B/256, ten times the probe's). ``P.history`` holds the per-epoch MSE.
    """
    cfg = cfg or ProbeConfig()
    if not isinstance(images, Tensor) or images.dim() != 4 or len(images) == 0:
        raise ParamError(f"images must be a non-empty tensor (N, C, H, W); got {getattr(images, 'shape', None)}")
    device = get_device(device)
    views = views or _Views([eval_backbone, distill_backbone], images, cfg, device)
    s = cfg.seed if seed is None else seed
    proj = _linear(eval_backbone.feature_dim, distill_backbone.feature_dim, s, device, head=False)
    dummy = torch.zeros(len(images), dtype=torch.long)
    proj.history = _train_linear(proj, views, dummy, cfg, s,  # type: ignore[attr-defined]
                                 lambda m, b: (projector_loss(m(b.x[0]), b.x[1]), None), "projector",
                                 lr=cfg.projector_lr)
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


def _golden_source(backbone: nn.Module, ds: Any, cfg: GoldenConfig, device: torch.device) -> Batches:
    """Batches of (φ_distill of a view, label) over the training set, as :class:`GoldenConfig` says."""
    from ddlib.features import view_bank
    from ddlib.kernels.augment import AUGMENTS, augment

    y = ds.train_y.to(device)
    bs = min(cfg.batch_size, len(y))
    if cfg.augment is None:
        feats = dataset_features(backbone, ds, "train", device=device).to(device)
        return Batches(len(y), bs, lambda idx, gen: Batch(idx, [feats[idx.to(device)]], y[idx.to(device)]))
    aug = AUGMENTS[cfg.augment]
    if cfg.views is not None:  # CPU departure: a cached bank of K views, one picked per image per epoch
        bank = view_bank(backbone, ds, augment_cfg=aug, views=cfg.views, seed=cfg.seed, device=device)

        def fetch_bank(idx: Tensor, gen: torch.Generator) -> Batch:
            v = torch.randint(bank.shape[0], (len(idx),), generator=gen)
            return Batch(idx, [bank[v, idx].to(device).float()], y[idx.to(device)])
        return Batches(len(y), bs, fetch_bank)

    backbone = backbone.to(device).eval()

    @torch.no_grad()
    def fetch_fresh(idx: Tensor, gen: torch.Generator) -> Batch:  # the reference: a fresh view every time
        x = augment(to_unit(ds.train_x[idx]).to(device), aug, gen)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            f = backbone(x)
        return Batch(idx, [f.float()], y[idx.to(device)])
    return Batches(len(y), bs, fetch_fresh)


def golden_head(backbone: nn.Module, ds: Any, cfg: GoldenConfig | None = None,
                device: torch.device | None = None, progress: bool = False) -> nn.Linear:
    """The full-data linear classifier on φ_distill (:class:`GoldenConfig`; a cached artifact).

    Trained by :func:`ddlib.train.loop` with CE on views of the training set; ``head.cache_key`` names the
    artifact, ``head.train_acc`` is its accuracy on the clean training features, ``head.cached`` says
    whether it was loaded rather than trained by this call, and ``head.train_seconds`` is the time its
    training took (None for an artifact written before that was stored).
    """
    cfg = cfg or GoldenConfig()
    device = get_device(device)
    key = artifacts.make_key("golden-head", ds.key(), cfg, [backbone_key(backbone)])

    trained: list[bool] = []

    def compute() -> dict:
        trained.append(True)
        t0 = time.perf_counter()
        head = _linear(int(backbone.feature_dim), ds.num_classes, cfg.seed, device)
        source = _golden_source(backbone, ds, cfg, device)
        bs = min(cfg.batch_size, len(ds.train_y))
        opt = torch.optim.Adam(head.parameters(), lr=cfg.lr * bs / 256, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs, eta_min=0.0)
        g = torch.Generator().manual_seed(cfg.seed)
        on_features = cfg.augment is None or cfg.views is not None
        with _threads(1 if on_features and device.type == "cpu" else None):  # tiny linear steps on features
            loop(head, opt, source, lambda m, b: (F.cross_entropy(m(b.x[0]), b.y), None), cfg.epochs, g,
                 hooks=[LrScheduler(sched)], progress=progress, desc="golden head")
        head = head.cpu()
        feats = dataset_features(backbone, ds, "train", device=device, progress=progress)
        with torch.no_grad():
            acc = (head(feats).argmax(1) == ds.train_y).float().mean().item()
        return {"state_dict": head.state_dict(), "in": feats.shape[1], "out": ds.num_classes, "train_acc": acc,
                "train_seconds": time.perf_counter() - t0}

    rec = artifacts.cached(key, compute, meta={"backbone": backbone_key(backbone)})
    head = nn.Linear(rec["in"], rec["out"])
    head.load_state_dict(rec["state_dict"])
    head.requires_grad_(False)
    head.cache_key = key  # type: ignore[attr-defined]
    head.train_acc = rec["train_acc"]  # type: ignore[attr-defined]
    head.cached = not trained  # type: ignore[attr-defined]
    head.train_seconds = rec.get("train_seconds")  # type: ignore[attr-defined]
    return head


# --------------------------------------------------------------------------------------- baselines
def centroid_real(backbone: nn.Module, ds: Any, ipc: int, device: torch.device | None = None,
                  progress: bool = False) -> dict[str, Any]:
    """Per class the ``ipc`` training images whose φ is nearest (Euclidean) to the class centre μ_c
    (:func:`ddlib.baselines.centroid_real_from_features` on φ's cached training features).

    For IPC 1 this is the reference ``centroids`` baseline; for IPC > 1 we take the IPC nearest (the
    reference only builds IPC 1).
    """
    ipc = check_int("ipc", ipc, 1)
    feats = dataset_features(backbone, ds, "train", device=device, progress=progress)
    return centroid_real_from_features(ds, feats, ipc, {"backbone": backbone_key(backbone)})


# --------------------------------------------------------------------------------------- evaluation
def linear_bytes(layer: nn.Linear, bytes_per_value: int = 4) -> int:
    """Storage of a linear layer's weight and bias (float32 by default)."""
    return sum(p.numel() for p in layer.parameters()) * bytes_per_value


def _accuracy(logits: Tensor, y: Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean())


def evaluate_synthetic(images: Tensor, labels: Tensor, ds: Any, distill_backbone: nn.Module | None,
                       eval_backbone: nn.Module, mode: str = "probe", cfg: ProbeConfig | None = None,
                       golden_cfg: GoldenConfig | None = None, device: torch.device | None = None
                       ) -> dict[str, Any]:
    """Test accuracy of a synthetic set on ``eval_backbone`` under ``mode`` (probe | ci | kd).

    ``ds`` supplies the test split (and, for ci/kd, the training split the golden head is fit on).
    Returns ``acc`` (mean over ``cfg.runs``), ``acc_std``, ``accs``; ``bytes`` of the stored images
    (uint8), a probe head on φ_eval, the golden head and the CI projector, and ``stored_bytes`` (what
    this mode must keep beside the images: nothing for probe, the golden head for ci/kd); for ci/kd
    ``golden_acc`` (the golden head on φ_distill of the test set: the full-data ceiling); the loss
    curve of the last run; and the configs.
    """
    check_choice("mode", mode, MODES)
    return evaluate_modes(images, labels, ds, distill_backbone, eval_backbone, (mode,), cfg, golden_cfg,
                          device)[mode]


def evaluate_modes(images: Tensor, labels: Tensor, ds: Any, distill_backbone: nn.Module | None,
                   eval_backbone: nn.Module, modes: Sequence[str] = MODES, cfg: ProbeConfig | None = None,
                   golden_cfg: GoldenConfig | None = None, device: torch.device | None = None
                   ) -> dict[str, dict[str, Any]]:
    """:func:`evaluate_synthetic` for several modes at once, sharing the test features, the golden head
    and (with ``cfg.views``) one bank of augmented views through both backbones; {mode: result}."""
    modes = tuple(modes)
    if not modes:
        raise ParamError(f"modes={modes!r} is empty; choose among {list(MODES)}")
    for m in modes:
        check_choice("mode", m, MODES)
    cfg = cfg or ProbeConfig()
    golden_cfg = golden_cfg or GoldenConfig()
    _check_set(images, labels)
    needs_distill = any(m != "probe" for m in modes)
    if needs_distill and distill_backbone is None:
        raise ParamError(f"mode={[m for m in modes if m != 'probe'][0]!r} needs distill_backbone "
                         "(the backbone the golden head lives on)")
    if int(labels.max()) >= ds.num_classes:
        raise ParamError(f"labels reach {int(labels.max())} but the dataset has {ds.num_classes} classes")
    device = get_device(device)
    t0 = time.perf_counter()
    test_eval = dataset_features(eval_backbone, ds, "test", device=device, progress=cfg.progress)
    c = ds.num_classes
    d_eval = int(eval_backbone.feature_dim)
    d_distill = int(distill_backbone.feature_dim) if distill_backbone is not None else None
    common: dict[str, Any] = {"eval_backbone": backbone_key(eval_backbone),
                              "distill_backbone": backbone_key(distill_backbone) if distill_backbone is not None
                              else None, "num_images": len(images), "num_classes": c}
    golden = None
    if needs_distill:
        golden = golden_head(distill_backbone, ds, golden_cfg, device, cfg.progress)
        test_distill = dataset_features(distill_backbone, ds, "test", device=device, progress=cfg.progress)
        common.update(golden_acc=_accuracy(golden(test_distill), ds.test_y), golden_train_acc=golden.train_acc,
                      golden_key=golden.cache_key)
    views = _Views([eval_backbone, distill_backbone] if needs_distill else [eval_backbone], images, cfg, device)
    t_shared = time.perf_counter() - t0
    image_bytes = int(images[0].numel()) * len(images)  # stored as 8-bit pixels
    head_b = (d_eval + 1) * c * 4
    golden_b = (d_distill + 1) * c * 4 if d_distill is not None else None
    proj_b = (d_eval + 1) * d_distill * 4 if d_distill is not None else None
    out: dict[str, dict[str, Any]] = {}
    for mode in modes:
        t1 = time.perf_counter()
        accs: list[float] = []
        curve: list[float] = []
        for r in range(cfg.runs):
            if mode == "probe":
                head = train_probe(eval_backbone, images, labels, cfg, c, cfg.seed + r, device, views)
                accs.append(_accuracy(head(test_eval), ds.test_y))
                curve = head.history
            elif mode == "ci":
                proj = train_projector(eval_backbone, distill_backbone, images, cfg, cfg.seed + r, device, views)
                accs.append(_accuracy(ci_predict(golden, proj, test_eval), ds.test_y))
                curve = proj.history
            else:
                head = train_kd(eval_backbone, golden, distill_backbone, images, labels, cfg, cfg.seed + r,
                                device, views)
                accs.append(_accuracy(head(test_eval), ds.test_y))
                curve = head.history
        res = {"mode": mode, **common}
        if mode == "probe":
            for k in ("golden_acc", "golden_train_acc", "golden_key"):
                res.pop(k, None)
        res.update({
            "acc": float(torch.tensor(accs).mean()), "acc_std": float(torch.tensor(accs).std(unbiased=False)),
            "accs": accs, "loss_curve": curve,
            "bytes": {"images_uint8": image_bytes, "probe_head": head_b, "golden_head": golden_b,
                      "projector": proj_b},
            "stored_bytes": image_bytes + (golden_b if mode != "probe" and golden_b else 0),
            "views": "fresh augmentation every step (reference)" if cfg.views is None
            else f"{cfg.views} augmented views per image, embedded once (CPU departure)",
            "config": config_dict(cfg), "golden_config": config_dict(golden_cfg) if mode != "probe" else None,
            "test_size": len(ds.test_y), "train_size": len(ds.train_y),
            "wall_s": time.perf_counter() - t1 + t_shared / len(modes),
        })
        out[mode] = res
    return out
