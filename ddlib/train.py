"""One train/evaluate loop for teachers, students and linear probes.

``fit`` trains any module on (images, labels) held in memory: images uint8 (N, C, H, W) or float
in [0, 1]; batches are moved to the device, augmented there with a preset of
:mod:`ddlib.kernels.augment`, and passed to cross-entropy, or to a ``batch_loss`` hook (KD
students, MSE projectors). The learning rate follows a linear warm-up then the schedule, updated
every step (the references update per epoch; per step is smoother and equal at epoch ends).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm  # plain text bars: widget outputs are dropped (with warnings) by the book build

from ddlib import book
from ddlib.kernels.augment import AUGMENTS, AugmentConfig, augment as apply_augment
from ddlib.utils import ParamError, check_choice, check_float, check_int, get_device, seed_everything

__all__ = ["TrainConfig", "OPTIMIZERS", "SCHEDULES", "fit", "evaluate", "predict", "embed", "lr_factor",
           "make_optimizer", "to_unit"]

OPTIMIZERS = ("sgd", "adam", "adamw")
#: cosine: lr * (f + (1 - f) * 0.5 * (1 + cos(pi * t))) with f = final_lr_fraction;
#: half_cosine: lr * 0.5 * (1 + cos(pi * t / 2)) (BPS's KD students: ends at lr / 2);
#: constant: lr. ``t`` runs from 0 to 1 over the epochs after warm-up.
SCHEDULES = ("cosine", "half_cosine", "constant")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``augment``: a preset name of ``AUGMENTS``, an ``AugmentConfig``, or None.

    ``final_lr_fraction`` (addition to the contract; default 0): where the cosine ends, as a
    fraction of ``lr`` (BPS Stage 1 uses 0.01). ``label_smoothing`` (addition; default 0) for CE.
    """

    epochs: int
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: int = 0
    augment: str | AugmentConfig | None = "crop_flip"
    final_lr_fraction: float = 0.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        check_int("epochs", self.epochs, 1, 100_000)
        check_int("batch_size", self.batch_size, 1, 1_000_000)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_float("lr", self.lr, 0.0, 100.0)
        if self.lr <= 0:
            raise ParamError(f"lr={self.lr!r} must be positive")
        check_float("momentum", self.momentum, 0.0, 0.999999)
        check_float("weight_decay", self.weight_decay, 0.0, 10.0)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_int("warmup_epochs", self.warmup_epochs, 0, self.epochs)
        if self.augment is not None and not isinstance(self.augment, AugmentConfig):
            check_choice("augment", self.augment, list(AUGMENTS) + [None])
        check_float("final_lr_fraction", self.final_lr_fraction, 0.0, 1.0)
        check_float("label_smoothing", self.label_smoothing, 0.0, 0.999)


def lr_factor(cfg: TrainConfig, epoch_float: float) -> float:
    """The multiplier of ``cfg.lr`` at a (fractional) epoch: linear warm-up, then the schedule."""
    if cfg.warmup_epochs > 0 and epoch_float < cfg.warmup_epochs:
        return (epoch_float + 1e-8) / cfg.warmup_epochs
    span = max(cfg.epochs - cfg.warmup_epochs, 1e-8)
    t = min(max((epoch_float - cfg.warmup_epochs) / span, 0.0), 1.0)
    if cfg.schedule == "cosine":
        f = cfg.final_lr_fraction
        return f + (1 - f) * 0.5 * (1 + math.cos(math.pi * t))
    if cfg.schedule == "half_cosine":
        return 0.5 * (1 + math.cos(math.pi * t / 2))
    return 1.0


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum), Adam or AdamW over ``params`` with ``cfg``'s lr and weight decay."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ParamError("the model has no trainable parameters (all requires_grad=False)")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def to_unit(x: Tensor) -> Tensor:
    """Images as float in [0, 1]: uint8 divided by 255, floats unchanged."""
    return x if x.is_floating_point() else x.float() / 255.0


def _check_xy(x: Tensor, y: Tensor | None = None) -> None:
    if not isinstance(x, Tensor) or x.dim() < 2:
        raise ParamError(f"x must be a tensor of images (N, C, H, W); got {type(x).__name__}")
    if y is not None and (y.dim() != 1 or len(y) != len(x)):
        raise ParamError(f"y must be a 1-d tensor with one label per image ({len(x)}); got shape {tuple(y.shape)}")


def fit(model: nn.Module, x: Tensor, y: Tensor, cfg: TrainConfig, *,
        batch_loss: Callable[[nn.Module, Tensor, Tensor], Tensor] | None = None,
        eval_data: tuple[Tensor, Tensor] | None = None, device: str | torch.device | None = None,
        seed: int = 0, progress: bool = True, eval_every: int = 1) -> dict:
    """Train ``model`` in place on (x, y) with ``cfg``; returns the history.

    ``batch_loss(model, xb_augmented, yb) -> scalar`` replaces cross-entropy. ``eval_data=(x, y)``
    is evaluated every ``eval_every`` epochs (and after the last). ``y`` may be any tensor indexed
    along the first axis (soft labels for a custom ``batch_loss``). The model is left in eval mode
    on ``device``. History: ``loss`` (mean per epoch), ``eval_acc``, ``eval_epoch``, ``lr`` (per
    epoch), ``seconds``.
    """
    if not isinstance(cfg, TrainConfig):
        raise ParamError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if not isinstance(x, Tensor) or not isinstance(y, Tensor) or len(x) != len(y) or len(x) == 0:
        raise ParamError("x and y must be non-empty tensors with the same first dimension")
    check_int("eval_every", eval_every, 1, None)
    gen = seed_everything(seed)
    dev = get_device(device)
    model.to(dev)
    opt = make_optimizer(model.parameters(), cfg)
    n = len(x)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    history: dict = {"loss": [], "eval_acc": [], "eval_epoch": [], "lr": [], "seconds": 0.0}
    start = time.perf_counter()
    bar = tqdm(range(cfg.epochs), desc="train", disable=not progress or book.in_test(), leave=False)
    for epoch in bar:
        model.train()
        order = torch.randperm(n, generator=gen)
        total, count = 0.0, 0
        for step in range(steps_per_epoch):
            factor = lr_factor(cfg, epoch + step / steps_per_epoch)
            for group in opt.param_groups:
                group["lr"] = cfg.lr * factor
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            xb = to_unit(x[idx].to(dev, non_blocking=True))
            yb = y[idx].to(dev, non_blocking=True)
            if cfg.augment is not None:
                xb = apply_augment(xb, cfg.augment, gen)
            if batch_loss is None:
                loss = F.cross_entropy(model(xb), yb, label_smoothing=cfg.label_smoothing)
            else:
                loss = batch_loss(model, xb, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        history["loss"].append(total / count)
        history["lr"].append(cfg.lr * lr_factor(cfg, epoch))
        if eval_data is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == cfg.epochs):
            acc = evaluate(model, eval_data[0], eval_data[1], device=dev)
            history["eval_acc"].append(acc)
            history["eval_epoch"].append(epoch + 1)
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", acc=f"{acc:.3f}")
        else:
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}")
    model.eval()
    history["seconds"] = time.perf_counter() - start
    return history


def _module_of(fn: Callable) -> nn.Module | None:
    if isinstance(fn, nn.Module):
        return fn
    owner = getattr(fn, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


@torch.no_grad()
def embed(fn: Callable[[Tensor], Tensor], x: Tensor, batch_size: int = 512,
          device: str | torch.device | None = None) -> Tensor:
    """``fn`` applied batch by batch to images x (uint8 or float [0, 1]) without grad; the
    concatenated outputs on the CPU. If ``fn`` is a module or a bound method of one, that module
    is moved to ``device`` and put in eval mode for the call (its mode is restored)."""
    _check_xy(x)
    check_int("batch_size", batch_size, 1, None)
    dev = get_device(device)
    module = _module_of(fn)
    was_training = None
    if module is not None:
        module.to(dev)
        was_training = module.training
        module.eval()
    try:
        outs = [fn(to_unit(x[i:i + batch_size].to(dev))).float().cpu() for i in range(0, len(x), batch_size)]
    finally:
        if module is not None and was_training:
            module.train()
    return torch.cat(outs) if outs else torch.empty(0)


def predict(model: nn.Module, x: Tensor, batch_size: int = 512, device: str | torch.device | None = None) -> Tensor:
    """The model's logits for images x, on the CPU (eval mode, no grad)."""
    return embed(model, x, batch_size, device)


def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 512,
             device: str | torch.device | None = None) -> float:
    """Top-1 accuracy (a fraction in [0, 1]) of ``model`` on (x, y)."""
    _check_xy(x, y)
    if len(x) == 0:
        raise ParamError("evaluate needs at least one image")
    logits = predict(model, x, batch_size, device)
    return float((logits.argmax(1) == y.cpu()).float().mean())
