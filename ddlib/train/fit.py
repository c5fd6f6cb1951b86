"""Supervised training and inference on images held in memory: :func:`fit` (cross-entropy or a custom batch
loss, warm-up then the schedule, updated every step), :func:`embed`, :func:`predict`, :func:`evaluate`."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ddlib import distributed
from ddlib.data.stream import ImageStore
from ddlib.train.batches import image_batches
from ddlib.train.config import Accel, TrainConfig, lr_factor, make_optimizer
from ddlib.train.loop import Evaluate, Hook, LrPerStep, ce_step, loop, loss_step
from ddlib.utils import ParamError, check_int, get_device, progress as progress_bar, seed_everything, to_unit

__all__ = ["fit", "embed", "predict", "evaluate"]


def _images(x: Any) -> bool:
    """A tensor of images, or a streamed data set's ImageStore (indexed in batches, decoded from disk)."""
    return isinstance(x, (Tensor, ImageStore))


def _check_xy(x: Tensor, y: Tensor | None = None) -> None:
    if not _images(x) or x.dim() < 2:
        raise ParamError(f"x must be a tensor of images (N, C, H, W); got {type(x).__name__}")
    if y is not None and (y.dim() != 1 or len(y) != len(x)):
        raise ParamError(f"y must be a 1-d tensor with one label per image ({len(x)}); got shape {tuple(y.shape)}")


def fit(model: nn.Module, x: Tensor, y: Tensor, cfg: TrainConfig, *,
        batch_loss: Callable[[nn.Module, Tensor, Tensor], Tensor] | None = None,
        eval_data: tuple[Tensor, Tensor] | None = None, device: str | torch.device | None = None,
        seed: int = 0, progress: bool = True, eval_every: int = 1, hooks: Sequence[Hook] = (),
        data_parallel: bool = False, accel: Accel | None = None) -> dict:
    """Train ``model`` in place on (x, y) with ``cfg``; returns the history. ``x`` may be a streamed
    data set's :class:`~ddlib.data.ImageStore` (batches decoded as drawn).

    ``batch_loss(model, xb_augmented, yb) -> scalar`` replaces cross-entropy. ``eval_data=(x, y)``
    is evaluated every ``eval_every`` epochs (and after the last). ``y`` may be any tensor indexed
    along the first axis (soft labels for a custom ``batch_loss``). ``hooks``: more :class:`Hook` s of the
    loop (after the learning rate and the evaluation), e.g. the forgetting counter. The model is left in eval mode
    on ``device``. History: ``loss`` (mean per epoch), ``eval_acc``, ``eval_epoch``, ``lr`` (per
    epoch), ``seconds``. ``data_parallel``: under torchrun, every rank trains this model together
    (:class:`ddlib.distributed.DataParallel`; every rank must call ``fit`` alike); ignored in one process.
    ``accel``: the loop's :class:`Accel` speed options (None: plain).
    """
    if not isinstance(cfg, TrainConfig):
        raise ParamError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if not _images(x) or not isinstance(y, Tensor) or len(x) != len(y) or len(x) == 0:
        raise ParamError("x and y must be non-empty tensors (x may be a streamed ImageStore) with the same first "
                         "dimension")
    check_int("eval_every", eval_every, 1, None)
    gen = seed_everything(seed)
    dev = get_device(device)
    model.to(dev)
    opt = make_optimizer(model.parameters(), cfg)
    lr_eval: list[Hook] = [LrPerStep(lambda epoch, step, steps: cfg.lr * lr_factor(cfg, epoch + step / steps))]
    if eval_data is not None:
        lr_eval.append(Evaluate(lambda m: evaluate(m, eval_data[0], eval_data[1], device=dev),
                              lambda e: (e + 1) % eval_every == 0 or e + 1 == cfg.epochs))
    if data_parallel:
        distributed.check_split("batch_size", min(cfg.batch_size, len(x)))
    step = ce_step(cfg.label_smoothing) if batch_loss is None else loss_step(batch_loss)
    hist = loop(model, opt, image_batches(x, y, cfg.batch_size, dev, augment=cfg.augment), step, cfg.epochs, gen,
                hooks=[*lr_eval, *hooks], progress=progress, desc="train",
                parallel=distributed.data_parallel(model, dev) if data_parallel else None, accel=accel)
    model.eval()
    return {"loss": hist["loss"], "eval_acc": hist.get("eval_acc", []), "eval_epoch": hist.get("eval_epoch", []),
            "lr": [cfg.lr * lr_factor(cfg, e) for e in range(cfg.epochs)], "seconds": hist["seconds"]}


# ----------------------------------------------------------------------------- embed, predict, evaluate
def _module_of(fn: Callable) -> nn.Module | None:
    if isinstance(fn, nn.Module):
        return fn
    owner = getattr(fn, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


@torch.no_grad()
def embed(fn: Callable[[Tensor], Tensor], x: Tensor, batch_size: int = 512,
          device: str | torch.device | None = None, *, autocast: bool = False, normalize: bool = False,
          progress: bool = False, desc: str = "embed", shard: bool = False) -> Tensor:
    """``fn`` applied batch by batch to images x (uint8 or float [0, 1]) without grad; the concatenated
    outputs as float32 on the CPU.

    If ``fn`` is a module or a bound method of one, that module is moved to ``device`` and put in eval
    mode for the call (its mode is restored). ``autocast``: bf16 autocast on CUDA (frozen backbones;
    no effect on the CPU). ``normalize``: L2-normalise the rows (BPS's Stage-2 embeddings). An empty
    ``x`` gives ``(0, feature_dim)`` (0 columns when the module has no ``feature_dim``). ``shard``: under
    torchrun each rank embeds its contiguous share of ``x`` and the shares are gathered, in order, to every
    rank (every rank must call it alike); ignored in one process.
    """
    _check_xy(x)
    check_int("batch_size", batch_size, 1, None)
    world = distributed.world_size()
    if shard and 1 < world <= len(x):
        lo, hi = distributed.bounds(len(x))
        share = x[lo:hi] if isinstance(x, Tensor) else x.subset(slice(lo, hi))  # a streamed set stays streamed
        mine = embed(fn, share, batch_size, device, autocast=autocast, normalize=normalize, progress=progress,
                     desc=desc)
        return distributed.gather_rows(mine, distributed.share_sizes(len(x)))
    dev = get_device(device)
    module = _module_of(fn)
    was_training = None
    if module is not None:
        module.to(dev)
        was_training = module.training
        module.eval()
    amp = autocast and dev.type == "cuda"
    outs = []
    try:
        for i in progress_bar(range(0, len(x), batch_size), desc=desc, enabled=progress):
            xb = to_unit(x[i:i + batch_size].to(dev))
            with torch.autocast(dev.type, dtype=torch.bfloat16) if amp else contextlib.nullcontext():
                f = fn(xb)
            outs.append(f.float().cpu())
    finally:
        if module is not None and was_training:
            module.train()
    if not outs:
        return torch.zeros(0, int(getattr(module, "feature_dim", 0)))
    out = torch.cat(outs)
    return F.normalize(out, dim=1) if normalize else out


def predict(model: nn.Module, x: Tensor, batch_size: int = 512, device: str | torch.device | None = None,
            shard: bool = False) -> Tensor:
    """The model's logits for images x, on the CPU (eval mode, no grad); ``shard`` as :func:`embed`'s."""
    return embed(model, x, batch_size, device, shard=shard)


def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 512,
             device: str | torch.device | None = None) -> float:
    """Top-1 accuracy (a fraction in [0, 1]) of ``model`` on (x, y)."""
    _check_xy(x, y)
    if len(x) == 0:
        raise ParamError("evaluate needs at least one image")
    logits = predict(model, x, batch_size, device)
    return float((logits.argmax(1) == y.cpu()).float().mean())
