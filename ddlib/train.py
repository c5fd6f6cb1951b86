"""The one training loop of ddlib (:func:`loop`), the pluggable parts around it, and ``fit``/``embed``.

How a new loop plugs in
-----------------------
Every model ddlib trains goes through :func:`loop` — teachers and probes (:func:`fit`), BPS's KD and
CE students (:mod:`ddlib.bps.distill`), the forgetting-score model (:mod:`ddlib.baselines`), the
MoCo encoder (:mod:`ddlib.encoders`), the feature-level heads of CI (:mod:`ddlib.sfm.inherit`), and many
students at once as one stacked model (:mod:`ddlib.bps.grid`).
Only SFM/LGM's image optimiser (:mod:`ddlib.sfm.synth`) keeps its own loop: it optimises pixels, not a
model. One epoch of the loop is::

    model.train(); hook.epoch_start(state)
    for batch in source(epoch, gen):            # the data side
        hook.step_start(state)
        loss, out = step(model, batch)          # the loss side
        opt.zero_grad(); loss.backward(); opt.step()
        hook.step_end(state, batch, loss, out)
    hook.epoch_end(state)

A new training procedure supplies parts, not a loop:

- a **source**: ``source(epoch, gen)`` yields :class:`Batch` es and ``source.steps_per_epoch`` says how
  many. :class:`Batches` builds one from a fetch function ``(indices, gen) -> Batch`` over a fresh
  shuffle per epoch; :func:`image_batches` (images in memory: to [0, 1], augmentation, two views,
  CutMix) and :func:`tensor_batches` (precomputed features) are built on it. ``gen`` is passed through
  untouched, so a stacked ensemble's source may take one generator per member: :class:`StackedBatches`
  runs S sources in lockstep (the student grid, :mod:`ddlib.bps.grid`);
- a **step**: ``step(model, batch) -> (loss, out)``; ``out`` is handed to the hooks (logits for the
  forgetting counter, keys for MoCo's queue). Here: :func:`ce_step`, :func:`loss_step`,
  :func:`kd_step` (the teacher relabels the augmented, CutMix-ed batch), :func:`cutmix_ce_step`;
- **hooks**: :class:`Hook` subclasses. Here: the learning rate per step (:class:`LrPerStep`), per
  epoch (:class:`LrPerEpoch`) or by a torch scheduler stepped at epoch ends (:class:`LrScheduler`),
  and evaluation at chosen epochs (:class:`Evaluate`). A hook may write into ``state.history``.

Every random draw happens in the source, the step or a hook, in the order written above, so a
procedure ported onto the loop consumes the torch generator and the global RNG exactly as its own
loop did (``tests/test_train_ports.py`` pins the ports to outputs recorded before they were ported).

Data-parallel (under torchrun): ``loop(..., parallel=ddlib.distributed.data_parallel(model, device))``. Every
rank draws the same global batch and keeps its share (``batch.full`` is the whole of it), the step calls the
model through DistributedDataParallel, each rank's loss is scaled so that the averaged gradient is the
global batch's, and the loss history is the global batch's (:class:`ddlib.distributed.DataParallel`).
``parallel=None`` (one process) is the loop as written above.

``fit`` trains any module on (images, labels) held in memory: images uint8 (N, C, H, W) or float
in [0, 1]; batches are moved to the device, augmented there with a preset of
:mod:`ddlib.kernels.augment`, and passed to cross-entropy, or to a ``batch_loss`` hook (MSE
probes). The learning rate follows a linear warm-up then the schedule, updated every step (the
references update per epoch; per step is smoother and equal at epoch ends).
"""
from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ddlib import distributed
from ddlib.data.stream import ImageStore
from ddlib.kernels.augment import AUGMENTS, AugmentConfig, augment as apply_augment, cutmix
from ddlib.losses import cutmix_cross_entropy, kd_kl_loss
from ddlib.utils import (ParamError, check_choice, check_float, check_int, get_device, progress as progress_bar,
                         seed_everything, to_unit)

__all__ = ["TrainConfig", "Accel", "COMPILE_BACKENDS", "OPTIMIZERS", "SCHEDULES", "fit", "evaluate", "predict", "embed", "lr_factor",
           "make_optimizer", "to_unit", "loop", "Batch", "Batches", "BatchSource", "LoopState", "Hook",
           "LrPerStep", "LrPerEpoch", "LrScheduler", "Evaluate", "image_batches", "tensor_batches", "StackedBatches",
           "ce_step", "loss_step", "kd_step", "cutmix_ce_step", "set_lr"]

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


#: ``torch.compile`` backends :class:`Accel` accepts ("" = no compilation; "eager" wraps the model
#: without generating code, for tests)
COMPILE_BACKENDS = ("", "inductor", "eager", "aot_eager", "cudagraphs")


@dataclass(frozen=True)
class Accel:
    """Speed options of :func:`loop` (issue 12), each measured against the plain loop in the same run
    (``benchmarks/bench_stage1.py --accel``) before any default uses it.

    - ``amp``: the step (forward and loss; the backward follows the autocast graph) under bf16 autocast
      on the model's device; weights, gradients and the optimiser stay float32, and bf16 needs no loss
      scaling. The numbers change within bf16 rounding, so nothing trained with it is cached: the cached
      stage functions (``train_encoder``, the teachers, the students) take no ``accel``.
    - ``channels_last``: the model's parameters and every 4-D input tensor of a batch in NHWC memory
      order (cuDNN's fast convolutions on CUDA; the same numbers up to the kernels' summation order).
    - ``compile``: the model called through ``torch.compile`` with this backend (:data:`COMPILE_BACKENDS`);
      the first steps pay the compilation, which a benchmark times inside its run.
    """

    amp: bool = False
    channels_last: bool = False
    compile: str = ""

    def __post_init__(self) -> None:
        check_choice("compile", self.compile, COMPILE_BACKENDS)

    @property
    def plain(self) -> bool:
        return not (self.amp or self.channels_last or self.compile)

    @classmethod
    def parse(cls, text: str) -> Accel:
        """From ``plain``, ``amp``, ``channels_last``, ``compile`` (inductor), ``compile:<backend>``, or a
        ``+`` of them (``amp+channels_last``)."""
        kw: dict[str, Any] = {}
        for part in str(text).split("+"):
            name, _, backend = part.strip().partition(":")
            if name == "amp" and not backend:
                kw["amp"] = True
            elif name == "channels_last" and not backend:
                kw["channels_last"] = True
            elif name == "compile":
                kw["compile"] = backend or "inductor"
            elif name != "plain" or backend:
                raise ParamError(f"accel={text!r}: {part.strip()!r} is not accepted; choose plain, amp, channels_last, "
                                 f"compile[:backend] (backends {COMPILE_BACKENDS[1:]}) or a '+' of them")
        return cls(**kw)

    def __str__(self) -> str:
        parts = (["amp"] if self.amp else []) + (["channels_last"] if self.channels_last else []) + \
            ([f"compile:{self.compile}"] if self.compile else [])
        return "+".join(parts) or "plain"


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


def cosine_factor(t: float, final_fraction: float = 0.0) -> float:
    """``f + (1 − f)·0.5·(1 + cos(π·t))`` for t in [0, 1]: from 1 down to ``final_fraction`` = f."""
    f = final_fraction
    return f + (1 - f) * 0.5 * (1 + math.cos(math.pi * t))


def lr_factor(cfg: TrainConfig, epoch_float: float) -> float:
    """The multiplier of ``cfg.lr`` at a (fractional) epoch: linear warm-up, then the schedule."""
    if cfg.warmup_epochs > 0 and epoch_float < cfg.warmup_epochs:
        return (epoch_float + 1e-8) / cfg.warmup_epochs
    span = max(cfg.epochs - cfg.warmup_epochs, 1e-8)
    t = min(max((epoch_float - cfg.warmup_epochs) / span, 0.0), 1.0)
    if cfg.schedule == "cosine":
        return cosine_factor(t, cfg.final_lr_fraction)
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


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate to ``lr``."""
    for group in opt.param_groups:
        group["lr"] = lr


# ----------------------------------------------------------------------------- the loop's parts
@dataclass
class Batch:
    """One step's data: ``index`` (the samples' positions in the source), ``x`` (the model's input: a
    tensor, or a tuple of tensors such as two views or several feature banks), ``y`` (targets) and
    ``mix`` = (perm, λ) when the images were CutMix-ed (image i mixed with image perm[i]). In a data-parallel
    run a batch is one rank's share of the step's global batch, ``full`` (None in one process)."""

    index: Tensor
    x: Any
    y: Any = None
    mix: tuple[Tensor, float] | None = None
    full: Batch | None = None

    def __len__(self) -> int:
        return len(self.index)

    @property
    def share(self) -> float:
        """The fraction of the step's global batch this batch holds (1 in one process)."""
        return 1.0 if self.full is None else len(self) / len(self.full)


class BatchSource(Protocol):
    """The data side of :func:`loop`: ``source(epoch, gen)`` yields the epoch's batches."""

    steps_per_epoch: int

    def __call__(self, epoch: int, gen: Any) -> Iterator[Batch]: ...


class Batches:
    """A :class:`BatchSource` over ``n`` samples: every epoch a fresh ``randperm(n, generator=gen)`` (drawn
    when the epoch's first batch is asked for), cut into runs of ``batch_size`` (the last one partial
    unless ``drop_last``), each turned into a :class:`Batch` by ``fetch(indices, gen)``; the permutation
    is moved to ``perm_device`` first when given."""

    def __init__(self, n: int, batch_size: int, fetch: Callable[[Tensor, Any], Batch], drop_last: bool = False,
                 perm_device: torch.device | str | None = None) -> None:
        self.n = check_int("n", n, 1)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.fetch = fetch
        self.perm_device = perm_device
        self.steps_per_epoch = n // batch_size if drop_last else math.ceil(n / batch_size)

    def __call__(self, epoch: int, gen: Any) -> Iterator[Batch]:
        order = torch.randperm(self.n, generator=gen)
        if self.perm_device is not None:
            order = order.to(self.perm_device)
        bs = self.batch_size
        for s in range(self.steps_per_epoch):
            yield self.fetch(order[s * bs:(s + 1) * bs], gen)


def image_batches(x: Tensor, y: Tensor, batch_size: int, device: torch.device, *,
                  augment: str | AugmentConfig | None = None, views: int = 1, cutmix_alpha: float | None = None,
                  drop_last: bool = False, global_rng_augment_on_gpu: bool = False) -> Batches:
    """Shuffled batches of images (a uint8 or float [0, 1] tensor, or a streamed data set's
    :class:`~ddlib.data.ImageStore`, whose batches are decoded from disk as they are drawn), on ``device``
    as float [0, 1].

    ``augment`` (a preset or config) is drawn from the loop's generator; ``views=2`` gives the batch as
    two independently augmented views (MoCo's query and key) instead of one; ``cutmix_alpha`` mixes
    the augmented batch (α > 0: CutMix; 0: no mixing, ``mix`` = (identity, 1)); None: no ``mix``.
    ``global_rng_augment_on_gpu``: off the CPU, draw the augmentation from the global RNG instead
    (the forgetting-score model's recorded behaviour, kept for its cached scores).
    """
    dev = torch.device(device)

    def fetch(idx: Tensor, gen: Any) -> Batch:
        xb = to_unit(x[idx].to(dev, non_blocking=True))
        yb = y[idx].to(dev, non_blocking=True)
        g = None if global_rng_augment_on_gpu and dev.type != "cpu" else gen
        if views > 1:
            return Batch(idx, tuple(apply_augment(xb, augment, g) for _ in range(views)), yb)
        if augment is not None:
            xb = apply_augment(xb, augment, g)
        mix = None
        if cutmix_alpha is not None:
            if cutmix_alpha > 0:
                xb, perm, lam = cutmix(xb, cutmix_alpha, g)
                mix = (perm, lam)
            else:
                mix = (torch.arange(len(idx), device=dev), 1.0)
        return Batch(idx, xb, yb, mix)

    if views > 1 and augment is None:
        raise ParamError(f"views={views} needs an augmentation (the views would be identical)")
    return Batches(len(x), batch_size, fetch, drop_last=drop_last)


def tensor_batches(x: Tensor, y: Tensor, batch_size: int, device: torch.device | None = None) -> Batches:
    """Shuffled batches of precomputed tensors (e.g. features) indexed as they are (the permutation is
    moved to ``device``, where x and y should already be)."""
    return Batches(len(y), batch_size, lambda idx, gen: Batch(idx, x[idx], y[idx]), perm_device=device)


class StackedBatches:
    """S sources in lockstep, for a stacked ensemble (e.g. :class:`ddlib.stack.ModelStack`): called with
    one generator per member, ``source(epoch, gens)``; member j draws from ``gens[j]`` exactly what its
    source draws alone. Each step's :class:`Batch` has ``x`` the members' inputs stacked (S, B, ...),
    ``y`` the members' own batches (a tuple: their targets and CutMix pairings) and ``index`` their
    positions as columns (B, S), so the loop weighs the step by the batch length as for one member.
    The members must have the same number of steps per epoch and the same batch shapes."""

    def __init__(self, sources: Sequence[BatchSource]) -> None:
        self.sources = list(sources)
        if not self.sources:
            raise ParamError("sources must name at least one batch source")
        steps = sorted({s.steps_per_epoch for s in self.sources})
        if len(steps) != 1:
            raise ParamError(f"sources must have the same steps_per_epoch to run in lockstep; got {steps}")
        self.steps_per_epoch = steps[0]

    def __call__(self, epoch: int, gen: Any) -> Iterator[Batch]:
        gens = list(gen) if isinstance(gen, (list, tuple)) else None
        if gens is None or len(gens) != len(self.sources):
            raise ParamError(f"gen must be a list of one generator per member ({len(self.sources)})")
        for members in zip(*(s(epoch, g) for s, g in zip(self.sources, gens))):
            yield Batch(torch.stack([b.index for b in members], 1), torch.stack([b.x for b in members]), members)


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


# ----------------------------------------------------------------------------- fit
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
