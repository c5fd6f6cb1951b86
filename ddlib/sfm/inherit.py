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
step one of the losses of :mod:`ddlib.losses`, its lr a ``CosineAnnealingLR`` stepped per epoch. The heads,
the projector (and its closed-form ridge fit) and their config :class:`ProbeConfig` live in
:mod:`ddlib.sfm.heads` (importable from here); the golden head and the evaluation here.

Choosing settings (steps, rates, a projector option) on test accuracy would select on the test set:
:func:`validation_split` moves some training images to the test split, so that every function here,
unchanged, scores on held-out training images instead.

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
from ddlib.sfm.backbones import backbone_key
from ddlib.sfm.heads import (HEAD_STD, PROJECTOR_FITS, ProbeConfig, _check_set, _linear, _threads, _Views, ci_predict,
                             train_kd, train_probe, train_projector)
from ddlib.train import Batch, Batches, LrScheduler, loop
from ddlib.utils import ParamError, check_choice, check_float, check_int, config_dict, get_device, to_unit

__all__ = ["MODES", "HEAD_STD", "PROJECTOR_FITS", "ProbeConfig", "GoldenConfig", "dataset_features", "train_probe",
           "train_projector", "train_kd", "ci_predict", "golden_head", "random_real", "centroid_real", "linear_bytes",
           "validation_split", "evaluate_synthetic", "evaluate_modes"]

MODES = ("probe", "ci", "kd")


# --------------------------------------------------------------------------------------- configs
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
def validation_split(ds: Any, per_class: int, seed: int = 0) -> Any:
    """``ds`` with ``per_class`` random training images of every class as its test split (its own test images
    dropped) and only the others as its training split: the held-out split to choose settings on.

    Everything downstream (statistics, golden head, real baselines, evaluation) then sees the reduced training
    split, and "test" accuracy is validation accuracy; ``spec`` gains ``validation_per_class`` and
    ``validation_seed``, so its cache keys differ from ``ds``'s.
    """
    import dataclasses

    per_class = check_int("per_class", per_class, 1)
    counts = torch.bincount(ds.train_y, minlength=ds.num_classes)
    if int(counts.min()) <= per_class:
        raise ParamError(f"per_class={per_class} leaves no training image in a class of {int(counts.min())}; "
                         "hold out fewer or load more")
    g = torch.Generator().manual_seed(check_int("seed", seed, 0, 2**32 - 1))
    held = torch.cat([torch.nonzero(ds.train_y == c).flatten()[torch.randperm(int(counts[c]), generator=g)[:per_class]]
                      for c in range(ds.num_classes)]).sort().values
    keep = torch.ones(len(ds.train_y), dtype=torch.bool)
    keep[held] = False
    pick = (lambda t, m: None if t is None else t[m])
    return dataclasses.replace(
        ds, train_x=ds.train_x[keep], train_y=ds.train_y[keep], test_x=ds.train_x[held], test_y=ds.train_y[held],
        train_patterns=pick(ds.train_patterns, keep), test_patterns=pick(ds.train_patterns, held),
        train_index=pick(ds.train_index if ds.train_index is not None else torch.arange(len(keep)), keep),
        spec={**dict(ds.spec), "validation_per_class": per_class, "validation_seed": seed})


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
