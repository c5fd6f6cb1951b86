"""The one training loop (:func:`loop`), its loss side (steps) and its pluggable moments (hooks).

One epoch::

    model.train(); hook.epoch_start(state)
    for batch in source(epoch, gen):            # the data side (ddlib.train.batches)
        hook.step_start(state)
        loss, out = step(model, batch)          # the loss side
        opt.zero_grad(); loss.backward(); opt.step()
        hook.step_end(state, batch, loss, out)
    hook.epoch_end(state)

A new training procedure supplies a source, a step (``step(model, batch) -> (loss, out)``; ``out`` goes to
the hooks) and hooks, not a loop. Every random draw happens in the source, the step or a hook in this order,
so a procedure ported onto the loop consumes the generators exactly as its own loop did
(``tests/test_train_ports.py``). Under torchrun, ``parallel=ddlib.distributed.data_parallel(model, device)``
trains data-parallel: every rank draws the global batch and keeps its share.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ddlib import distributed
from ddlib.losses import cutmix_cross_entropy, kd_kl_loss
from ddlib.train.batches import Batch, BatchSource
from ddlib.train.config import Accel, set_lr
from ddlib.utils import check_int, progress as progress_bar

__all__ = ["Step", "ce_step", "loss_step", "kd_step", "cutmix_ce_step", "LoopState", "Hook", "LrPerStep", "LrPerEpoch",
           "LrScheduler", "Evaluate", "loop"]


def _nhwc_weights(model: nn.Module) -> None:
    """The model's 4-D parameters and buffers in channels-last order, in place (``Module.to(memory_format=)``
    fails on the 5-D weights of a stacked model, :mod:`ddlib.stack`)."""
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if t.dim() == 4:
                t.data = t.data.contiguous(memory_format=torch.channels_last)


def _nhwc(x: Any) -> Any:
    """The 4-D tensors of a batch's input (a tensor, or a tuple of them) in channels-last memory order."""
    if isinstance(x, Tensor):
        return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
    if isinstance(x, tuple):
        return tuple(_nhwc(v) for v in x)
    return x



#: The loss side of :func:`loop`: ``step(model, batch) -> (loss, out)``.
Step = Callable[[nn.Module, Batch], tuple[Tensor, Any]]


def ce_step(label_smoothing: float = 0.0) -> Step:
    """Cross-entropy of ``model(batch.x)`` against ``batch.y``; ``out`` = the logits."""
    def step(model: nn.Module, batch: Batch) -> tuple[Tensor, Any]:
        out = model(batch.x)
        return F.cross_entropy(out, batch.y, label_smoothing=label_smoothing), out
    return step


def loss_step(batch_loss: Callable[[nn.Module, Tensor, Tensor], Tensor]) -> Step:
    """``batch_loss(model, x, y)`` as a step (``out`` = None)."""
    def step(model: nn.Module, batch: Batch) -> tuple[Tensor, Any]:
        return batch_loss(model, batch.x, batch.y), None
    return step


def kd_step(teacher: nn.Module, temperature: float) -> Step:
    """The per-step teacher: it relabels the (augmented, mixed) batch the student sees; loss
    :func:`ddlib.losses.kd_kl_loss` (KL·τ², no CE); ``out`` = the student's logits."""
    def step(model: nn.Module, batch: Batch) -> tuple[Tensor, Any]:
        out = model(batch.x)
        with torch.no_grad():
            t_logits = teacher(batch.x)
        return kd_kl_loss(out, t_logits, temperature), out
    return step


def cutmix_ce_step() -> Step:
    """CE on the hard labels of a CutMix batch (:func:`ddlib.losses.cutmix_cross_entropy`)."""
    def step(model: nn.Module, batch: Batch) -> tuple[Tensor, Any]:
        out = model(batch.x)
        perm, lam = batch.mix if batch.mix is not None else (torch.arange(len(batch), device=out.device), 1.0)
        return cutmix_cross_entropy(out, batch.y, perm, lam), out
    return step


@dataclass
class LoopState:
    """What hooks see: the model and optimiser, the generator, where the loop is, the history it
    returns, and ``postfix`` (shown on the progress bar)."""

    model: nn.Module
    opt: torch.optim.Optimizer
    gen: Any
    epochs: int
    steps_per_epoch: int
    epoch: int = 0
    step: int = 0
    history: dict = field(default_factory=dict)
    postfix: dict = field(default_factory=dict)


class Hook:
    """A pluggable part of :func:`loop`; override any of the four moments (each does nothing here)."""

    def epoch_start(self, state: LoopState) -> None:
        """After ``model.train()``, before the epoch's first batch is drawn."""

    def step_start(self, state: LoopState) -> None:
        """After the step's batch is drawn, before its loss."""

    def step_end(self, state: LoopState, batch: Batch, loss: Tensor, out: Any) -> None:
        """After the optimiser step, with the step's batch, loss and ``out``."""

    def epoch_end(self, state: LoopState) -> None:
        """After the epoch's last step (and after its mean loss is recorded)."""


class LrPerStep(Hook):
    """lr = ``fn(epoch, step, steps_per_epoch)``, set before every step."""

    def __init__(self, fn: Callable[[int, int, int], float]) -> None:
        self.fn = fn

    def step_start(self, state: LoopState) -> None:
        set_lr(state.opt, self.fn(state.epoch, state.step, state.steps_per_epoch))


class LrPerEpoch(Hook):
    """lr = ``fn(epoch)``, set at the start of every epoch."""

    def __init__(self, fn: Callable[[int], float]) -> None:
        self.fn = fn

    def epoch_start(self, state: LoopState) -> None:
        set_lr(state.opt, self.fn(state.epoch))


class LrScheduler(Hook):
    """A torch lr scheduler (e.g. ``CosineAnnealingLR``) stepped at the end of every epoch."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def epoch_end(self, state: LoopState) -> None:
        self.scheduler.step()


class Evaluate(Hook):
    """At the end of every epoch ``e`` (0-based) with ``when(e)``: ``fn(model)`` appended to
    ``history["eval_acc"]`` and ``e + 1`` to ``history["eval_epoch"]``."""

    def __init__(self, fn: Callable[[nn.Module], float], when: Callable[[int], bool]) -> None:
        self.fn, self.when = fn, when

    def epoch_start(self, state: LoopState) -> None:
        state.history.setdefault("eval_acc", [])
        state.history.setdefault("eval_epoch", [])

    def epoch_end(self, state: LoopState) -> None:
        if self.when(state.epoch):
            acc = self.fn(state.model)
            state.history["eval_acc"].append(acc)
            state.history["eval_epoch"].append(state.epoch + 1)
            state.postfix["acc"] = f"{acc:.3f}"


def loop(model: nn.Module, opt: torch.optim.Optimizer, source: BatchSource, step: Step, epochs: int,
         gen: Any = None, *, hooks: Sequence[Hook] = (), progress: bool = False, desc: str = "train",
         step_bar: bool = False, parallel: distributed.DataParallel | None = None, accel: Accel | None = None) -> dict:
    """Train ``model`` in place for ``epochs`` epochs (see the module docstring); returns the history.

    History: ``loss`` (per epoch, the mean of the step losses weighted by batch length), ``seconds``,
    and whatever the hooks add. ``progress``: a text bar per epoch (``step_bar``: per step), shown
    neither in the test-suite nor when False. The model is left in train mode. ``parallel``: a
    :class:`ddlib.distributed.DataParallel` of ``model`` (data-parallel under torchrun; the step gets
    ``parallel.net``, the hooks ``model`` and the rank's share of each batch). ``accel``: the
    :class:`Accel` speed options (None: plain); the hooks get ``model`` itself, never its compiled form.
    """
    check_int("epochs", epochs, 1)
    accel = accel or Accel()
    if accel.channels_last:
        _nhwc_weights(model)
    net = model if parallel is None else parallel.net
    if accel.compile:
        net = torch.compile(net, backend=accel.compile)
    first = next(iter(model.parameters()), None)
    amp_device = first.device.type if first is not None else "cpu"
    if parallel is not None:
        source = parallel.shard(source)
    state = LoopState(model, opt, gen, epochs, source.steps_per_epoch, history={"loss": []})
    bar = progress_bar(total=epochs * source.steps_per_epoch if step_bar else epochs, desc=desc, enabled=progress,
                       **({"mininterval": 5.0} if step_bar else {}))
    start = time.perf_counter()
    for epoch in range(epochs):
        state.epoch = epoch
        model.train()
        for h in hooks:
            h.epoch_start(state)
        total, count = 0.0, 0
        for i, batch in enumerate(source(epoch, gen)):
            state.step = i
            for h in hooks:
                h.step_start(state)
            if accel.channels_last:
                batch = replace(batch, x=_nhwc(batch.x))
            with torch.autocast(amp_device, dtype=torch.bfloat16) if accel.amp else contextlib.nullcontext():
                loss, out = step(net, batch)
            opt.zero_grad(set_to_none=True)
            if parallel is None:
                loss.backward()
            else:
                parallel.backward(loss, batch)
            opt.step()
            value = float(loss.detach())
            total += value * len(batch)
            count += len(batch)
            for h in hooks:
                h.step_end(state, batch, loss, out)
            if step_bar:
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{value:.3f}")
        if parallel is not None:
            state.history["loss"].append(parallel.epoch_mean(total, count))
        else:
            state.history["loss"].append(total / count if count else float("nan"))
        for h in hooks:
            h.epoch_end(state)
        if not step_bar:
            bar.update(1)
            bar.set_postfix(loss=f"{state.history['loss'][-1]:.3f}", **state.postfix)
    bar.close()
    state.history["seconds"] = time.perf_counter() - start
    return state.history

