"""BPS Stage 3: the full-data teacher, its entropies, and the students trained on a selection.

Teacher (METHODS.md §1 Stage 3; the reference CIFAR ResNet-18 recipe): 200 epochs of SGD lr 0.1,
momentum 0.9, wd 5e-4, cosine, batch 128, crop + flip, on the full training set, through
:func:`ddlib.train.fit`. It is a cached artifact (its state_dict), keyed by the dataset and config.

KD student (``loss="kd"``, the reference ``stage3_training.py``): the same architecture from
scratch, trained on the selected images only. Each batch: RandomResizedCrop(min_crop, 1) + flip,
then CutMix (α = 1); the teacher relabels the *mixed* batch on the fly; loss
``KL(log_softmax(s/τ) ‖ softmax(t/τ))·τ²`` (batch mean), τ = 20, no hard-label CE. AdamW lr 1e-3,
wd 0.01, 500 epochs, lr factor ``0.5(1 + cos(π·e/E/2))`` set once per epoch (as the reference's
LambdaLR). (min_crop, batch) depend on the IPC (:data:`KD_TABLE`). Reported: the best test
accuracy over the last 21 epochs (evaluated only then, as the reference).

CE student (``loss="ce"``, for the hard-label comparison): the same protocol, with the CutMix
cross-entropy ``λ·CE(y) + (1-λ)·CE(y[perm])`` on the hard labels instead of the teacher.

Both student losses are steps of the one training loop (:func:`ddlib.train.loop`): the data side is
:func:`ddlib.train.image_batches` with the KD augmentation and CutMix, the teacher relabels each
mixed batch in :func:`ddlib.train.kd_step`, the lr is set once per epoch (:class:`~ddlib.train.LrPerEpoch`)
and the students are evaluated only in their last ``last_epochs`` epochs (:class:`~ddlib.train.Evaluate`).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ddlib import artifacts, data, distributed, models
from ddlib.kernels.augment import AUGMENTS
from ddlib.losses import softmax_entropy
from ddlib.train import (Batches, Evaluate, LrPerEpoch, Recipe, TrainConfig, cutmix_ce_step, evaluate, fit, image_batches,
                         kd_step, loop, make_optimizer, predict)
from ddlib.utils import (ParamError, check_choice, check_float, check_int, config_dict, get_device,
                         seed_everything)

#: (min_crop, batch size) per IPC, from the reference's ``get_training_config``; IPCs not listed
#: use the reference's defaults (0.2, 128). Datasets other than these use the table of the same
#: class count (10 classes -> CIFAR-10's: our choice for Fashion-MNIST and digits).
KD_TABLE: dict[str, dict[int, tuple[float, int]]] = {
    "cifar10": {10: (0.1, 16), 50: (0.2, 16), 100: (0.2, 32), 250: (0.4, 32), 500: (0.6, 64),
                1000: (0.9, 128), 1500: (1.0, 128)},
    "cifar100": {10: (0.2, 32), 25: (0.4, 32), 50: (0.6, 64), 100: (0.9, 128), 150: (1.0, 128)},
    "tinyimagenet": {10: (0.2, 32), 50: (0.6, 64), 100: (0.9, 128)},
    "imagenet": {10: (0.2, 128), 50: (0.2, 256), 100: (0.2, 512)},
}
KD_DEFAULT = (0.2, 128)
_BY_CLASSES = {10: "cifar10", 100: "cifar100", 200: "tinyimagenet", 1000: "imagenet"}
LOSSES = ("kd", "ce")


def kd_setting(dataset: str, num_classes: int, ipc: int) -> tuple[float, int]:
    """(min_crop, batch size) for a dataset name and IPC (see :data:`KD_TABLE`)."""
    name = data.split_name(dataset)[0].lower().replace("-", "")
    table = KD_TABLE.get(name) or KD_TABLE.get(_BY_CLASSES.get(num_classes, ""), {})
    return table.get(ipc, KD_DEFAULT)


def _model_kw(width: int | None, depth: int | None) -> dict:
    return {k: v for k, v in (("width", width), ("depth", depth)) if v is not None}


def build_model(ds, name: str, width: int | None = None, depth: int | None = None) -> nn.Module:
    """A classifier for ``ds`` (channels, size, mean/std from the dataset)."""
    return models.create(name, ds.num_classes, ds.image_shape[0], ds.image_shape[1], ds.mean.tolist(),
                         ds.std.tolist(), **_model_kw(width, depth))


# ----------------------------------------------------------------------------- teacher
@dataclass(frozen=True)
class TeacherConfig(Recipe):
    """The full-data teacher: a :class:`~ddlib.train.Recipe` (SGD, cosine) and its architecture; defaults are
    the reference CIFAR ResNet-18 recipe (200 epochs, lr 0.1, momentum 0.9, wd 5e-4, batch 128, crop + flip)."""

    _label: ClassVar[str] = "teacher"

    epochs: int = 200
    lr: float = 0.1
    model: str = "resnet18"
    width: int | None = None
    depth: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_model(self.model, self.width, self.depth)
        check_int("teacher seed", self.seed, 0, 2**32 - 1)

    def train_config(self) -> TrainConfig:
        return TrainConfig(**self.recipe(), optimizer="sgd")


def _check_model(name: str, width: int | None, depth: int | None) -> None:
    models.check_model(name)  # a ParamError naming "model" and the registry's names
    if width is not None:
        check_int("width", width, 1, 4096)
    if depth is not None:
        check_int("depth", depth, 1, 8)


def _el2n_epoch(cfg: TeacherConfig, el2n_epoch: int | None) -> int:
    from ddlib.baselines import ForgettingConfig

    e = ForgettingConfig.el2n_epoch if el2n_epoch is None else check_int("el2n_epoch", el2n_epoch, 1)
    return min(e, cfg.epochs)


def teacher_key(ds, cfg: TeacherConfig, el2n_epoch: int | None = None) -> str:
    """The teacher's artifact key: its data and config, and the epoch its stored EL2N scores were read at."""
    return artifacts.make_key("teacher", ds.key(), cfg, [f"el2n_epoch={_el2n_epoch(cfg, el2n_epoch)}"])


def train_teacher(ds, cfg: TeacherConfig = TeacherConfig(), device=None, progress: bool = True,
                  cache: bool = True, el2n_epoch: int | None = None) -> nn.Module:
    """The teacher trained on all of ``ds``'s training images (cached), in eval mode on ``device``. Under
    torchrun every rank trains it together (``fit(data_parallel=True)``), rank 0 stores it.

    As it trains it scores every image for the forgetting baseline (``ForgettingConfig(source="teacher")``):
    forgetting events, and EL2N read after ``el2n_epoch`` (the run's ``ForgettingConfig.el2n_epoch``; None:
    that config's default), no later than the last epoch; ``model.scores`` holds them."""
    dev = get_device(device)
    el2n_at = _el2n_epoch(cfg, el2n_epoch)

    def compute() -> dict:
        from ddlib.baselines import scores_from_hooks, scoring_hooks

        seed_everything(cfg.seed)  # the initial weights follow cfg.seed, not the caller's RNG state
        model = build_model(ds, cfg.model, cfg.width, cfg.depth)
        # the teacher's own forgetting events and EL2N, for ForgettingConfig(source="teacher"); the hooks draw
        # nothing from any generator, so the teacher is the one trained without them
        el2n_epoch = el2n_at
        scoring = scoring_hooks(ds.train_x, ds.train_y, ds.num_classes, el2n_epoch, dev)
        hist = fit(model, ds.train_x, ds.train_y, cfg.train_config(), device=dev, seed=cfg.seed, progress=progress,
                   hooks=scoring, data_parallel=True)
        acc = evaluate(model, ds.test_x, ds.test_y, device=dev)
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "test_acc": acc,
                "seconds": hist["seconds"], "config": config_dict(cfg),
                "scores": scores_from_hooks(scoring, el2n_epoch)}

    key = teacher_key(ds, cfg, el2n_at)
    obj = artifacts.cached(key, compute, meta={"dataset": ds.spec}, enabled=cache, collective=True)
    model = build_model(ds, cfg.model, cfg.width, cfg.depth)
    model.load_state_dict(obj["state_dict"])
    model.ddlib_key = key  # type: ignore[attr-defined]  # names the teacher in the keys of its students
    model.test_acc = obj["test_acc"]  # type: ignore[attr-defined]
    model.train_seconds = obj["seconds"]  # type: ignore[attr-defined]
    model.scores = obj.get("scores")  # type: ignore[attr-defined]  # forgetting/EL2N of its run (None: older artifact)
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(dev).eval()


def teacher_entropies(teacher: nn.Module, x: torch.Tensor, device=None) -> torch.Tensor:
    """Entropy of the teacher's softmax on each (un-augmented) image: BPS's margin score (under torchrun
    the logits are computed sharded over the ranks and gathered)."""
    return softmax_entropy(predict(teacher, x, device=device, shard=True))


# ----------------------------------------------------------------------------- students
@dataclass(frozen=True)
class StudentConfig:
    """The Stage-3 student protocol; defaults are the reference's (KD, ResNet-18, 500 epochs).

    ``min_crop``/``batch_size`` None take :func:`kd_setting` for the dataset and IPC.
    """

    model: str = "resnet18"
    width: int | None = None
    depth: int | None = None
    loss: str = "kd"
    epochs: int = 500
    lr: float = 1e-3
    weight_decay: float = 0.01
    temperature: float = 20.0
    cutmix_alpha: float = 1.0
    min_crop: float | None = None
    batch_size: int | None = None
    last_epochs: int = 21

    def __post_init__(self) -> None:
        _check_model(self.model, self.width, self.depth)
        check_choice("loss", self.loss, LOSSES)
        check_int("epochs", self.epochs, 1, 100_000)
        check_float("lr", self.lr, 1e-12, 10.0)
        check_float("weight_decay", self.weight_decay, 0.0, 10.0)
        check_float("temperature", self.temperature, 1e-3, 1e4)
        check_float("cutmix_alpha", self.cutmix_alpha, 0.0)
        if self.min_crop is not None:
            check_float("min_crop", self.min_crop, 1e-3, 1.0)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, 1)
        check_int("last_epochs", self.last_epochs, 1)

    def resolved(self, dataset: str, num_classes: int, ipc: int) -> StudentConfig:
        """This config with ``min_crop`` and ``batch_size`` filled from the IPC table."""
        mc, bs = kd_setting(dataset, num_classes, ipc)
        return replace(self, min_crop=mc if self.min_crop is None else self.min_crop,
                       batch_size=bs if self.batch_size is None else self.batch_size)


def student_batches(x: torch.Tensor, y: torch.Tensor, cfg: StudentConfig, device) -> Batches:
    """A student's data side of the loop (``cfg`` resolved): batches of ``cfg.batch_size`` in a fresh order
    per epoch, RandomResizedCrop(min_crop, 1) + flip, then CutMix with ``cfg.cutmix_alpha``."""
    aug = replace(AUGMENTS["kd"], crop_scale=(cfg.min_crop, 1.0))
    return image_batches(x, y, cfg.batch_size, device, augment=aug, cutmix_alpha=cfg.cutmix_alpha)


def student_lr(cfg: StudentConfig, epoch: int) -> float:
    """A student's learning rate in ``epoch`` (0-based): ``lr·0.5·(1 + cos(π·epoch/epochs/2))``."""
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * epoch / cfg.epochs / 2))


def train_student(ds, indices, cfg: StudentConfig, teacher: nn.Module | None = None, seed: int = 0,
                  device=None, progress: bool = True) -> dict:
    """Train one student on ``ds.train_x[indices]`` with ``cfg``; returns best-of-last-epochs accuracy.

    ``cfg`` must be resolved (``min_crop``/``batch_size`` set); ``teacher`` is needed for ``loss="kd"``.
    Returns ``{"best_acc", "last_acc", "accs" (the evaluated epochs), "seconds"}``.
    """
    if cfg.min_crop is None or cfg.batch_size is None:
        raise ParamError("train_student needs a resolved StudentConfig (use cfg.resolved(dataset, classes, ipc))")
    if cfg.loss == "kd" and teacher is None:
        raise ParamError("loss='kd' needs a teacher")
    idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
    if len(idx) == 0:
        raise ParamError("the selection is empty")
    dev = get_device(device)
    gen = seed_everything(seed)
    x, y = ds.train_x[idx], ds.train_y[idx]
    student = build_model(ds, cfg.model, cfg.width, cfg.depth).to(dev)
    opt = make_optimizer(student.parameters(), TrainConfig(epochs=cfg.epochs, optimizer="adamw", lr=cfg.lr,
                                                           weight_decay=cfg.weight_decay))
    if teacher is not None:
        teacher = teacher.to(dev).eval()
    source = student_batches(x, y, cfg, dev)
    step = kd_step(teacher, cfg.temperature) if cfg.loss == "kd" else cutmix_ce_step()
    first_eval = max(cfg.epochs - cfg.last_epochs, 0)
    hooks = [LrPerEpoch(lambda epoch: student_lr(cfg, epoch)),
             Evaluate(lambda m: evaluate(m, ds.test_x, ds.test_y, device=dev), lambda epoch: epoch >= first_eval)]
    start = time.perf_counter()
    hist = loop(student, opt, source, step, cfg.epochs, gen, hooks=hooks, progress=progress,
                desc=f"student {cfg.loss}")
    accs = hist["eval_acc"]
    return {"best_acc": max(accs), "last_acc": accs[-1], "accs": accs, "seconds": time.perf_counter() - start}


def evaluate_selection(ds, indices, cfg: StudentConfig = StudentConfig(), seeds: int | list[int] = 3,
                       teacher: nn.Module | None = None, teacher_cfg: TeacherConfig | None = None,
                       ipc: int | None = None, device=None, progress: bool = True) -> dict:
    """Student test accuracy on a selection over seeds: ``{"mean", "std", "per_seed", "config", ...}``.

    ``seeds``: a count (seeds 0..n-1) or a list. ``ipc`` (for the (min_crop, batch) table) defaults
    to the selection's images per class (the largest class count). The teacher (KD) is trained or
    loaded from the cache with ``teacher_cfg`` when not given. ``std`` is the population standard
    deviation (NumPy's default, as the reference). Accuracies are fractions. Under torchrun the seeds are
    split over the ranks (:func:`ddlib.distributed.split_map`: each student with its own seed, wherever it trains).
    """
    seed_list = list(range(check_int("seeds", seeds, 1, 1000))) if isinstance(seeds, (int, np.integer)) else list(seeds)
    if not seed_list:
        raise ParamError("seeds must name at least one seed")
    idx = np.asarray(indices, dtype=np.int64)
    if len(idx) == 0 or idx.min() < 0 or idx.max() >= len(ds.train_y):
        raise ParamError(f"indices must be non-empty and within [0, {len(ds.train_y) - 1}] (the training set)")
    if ipc is None:
        ipc = int(np.bincount(ds.train_y[idx].numpy()).max())
    rcfg = cfg.resolved(ds.name, ds.num_classes, ipc)
    t_info = None
    if rcfg.loss == "kd" and teacher is None:
        teacher = train_teacher(ds, teacher_cfg or TeacherConfig(), device=device, progress=progress)
    if teacher is not None and rcfg.loss == "kd":
        t_info = {"test_acc": getattr(teacher, "test_acc", None),
                  "config": config_dict(teacher_cfg) if teacher_cfg is not None else None}
    runs = distributed.split_map(
        lambda seeds: [train_student(ds, idx, rcfg, teacher, seed=s, device=device, progress=progress) for s in seeds],
        seed_list)
    accs = [r["best_acc"] for r in runs]
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "per_seed": accs, "seeds": seed_list,
            "last_acc": [r["last_acc"] for r in runs], "seconds": [r["seconds"] for r in runs],
            "ipc": ipc, "n_images": int(len(idx)), "config": config_dict(rcfg), "teacher": t_info}
