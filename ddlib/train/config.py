"""What a training run is told: :class:`Recipe` (the fields every run shares), :class:`TrainConfig`
(``fit``'s), :class:`Accel` (the loop's speed options), and the learning-rate schedules and optimisers.

The teacher, the forgetting run (:mod:`ddlib.bps.distill`, :mod:`ddlib.baselines`) and ``fit`` all extend
:class:`Recipe`, so a training field is defined, checked and documented once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch

from ddlib.kernels.augment import AUGMENTS, AugmentConfig
from ddlib.utils import ParamError, check_choice, check_float, check_int

__all__ = ["OPTIMIZERS", "SCHEDULES", "Recipe", "TrainConfig", "COMPILE_BACKENDS", "Accel", "cosine_factor", "lr_factor",
           "make_optimizer", "set_lr"]

OPTIMIZERS = ("sgd", "adam", "adamw")
#: cosine: lr * (f + (1 - f) * 0.5 * (1 + cos(pi * t))) with f = final_lr_fraction;
#: half_cosine: lr * 0.5 * (1 + cos(pi * t / 2)) (BPS's KD students: ends at lr / 2);
#: constant: lr. ``t`` runs from 0 to 1 over the epochs after warm-up.
SCHEDULES = ("cosine", "half_cosine", "constant")



@dataclass(frozen=True)
class Recipe:
    """The training fields every supervised run of ddlib shares: epochs, batch size, SGD's learning rate,
    momentum (``nesterov``) and weight decay, the schedule (:data:`SCHEDULES`) and the augmentation preset
    (a name of ``AUGMENTS``, an ``AugmentConfig``, or None). Subclasses set their own defaults; ``_label``
    prefixes the field names in their error messages (``"teacher epochs=0 ..."``)."""

    _label: ClassVar[str] = ""

    epochs: int
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: str = "cosine"
    augment: str | AugmentConfig | None = "crop_flip"

    def __post_init__(self) -> None:
        n = f"{self._label} " if self._label else ""
        check_int(f"{n}epochs", self.epochs, 1, 100_000)
        check_int(f"{n}batch_size", self.batch_size, 1, 1_000_000)
        check_float(f"{n}lr", self.lr, 0.0, 100.0)
        if self.lr <= 0:
            raise ParamError(f"{n}lr={self.lr!r} must be positive")
        check_float(f"{n}momentum", self.momentum, 0.0, 0.999999)
        check_float(f"{n}weight_decay", self.weight_decay, 0.0, 10.0)
        if not isinstance(self.nesterov, bool):
            raise ParamError(f"{n}nesterov={self.nesterov!r} must be True or False")
        if self.nesterov and self.momentum <= 0:
            raise ParamError(f"{n}nesterov=True needs momentum > 0 (momentum={self.momentum!r})")
        check_choice(f"{n}schedule", self.schedule, SCHEDULES)
        if self.augment is not None and not isinstance(self.augment, AugmentConfig):
            check_choice(f"{n}augment", self.augment, list(AUGMENTS) + [None])

    def recipe(self) -> dict[str, Any]:
        """The :class:`Recipe` fields of this config, e.g. to build a :class:`TrainConfig` from a teacher's."""
        return {f.name: getattr(self, f.name) for f in fields(Recipe)}


@dataclass(frozen=True)
class TrainConfig(Recipe):
    """How :func:`ddlib.train.fit` trains: a :class:`Recipe` and the optimiser (``sgd`` | ``adam`` |
    ``adamw``), a linear warm-up, where the cosine ends (``final_lr_fraction``, a fraction of ``lr``;
    BPS Stage 1 uses 0.01) and CE's ``label_smoothing``."""

    optimizer: str = "sgd"
    warmup_epochs: int = 0
    final_lr_fraction: float = 0.0
    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_int("warmup_epochs", self.warmup_epochs, 0, self.epochs)
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


def cosine_factor(t: float, final_fraction: float = 0.0) -> float:
    """``f + (1 − f)·0.5·(1 + cos(π·t))`` for t in [0, 1]: from 1 down to ``final_fraction`` = f."""
    f = final_fraction
    return f + (1 - f) * 0.5 * (1 + math.cos(math.pi * t))


def lr_factor(cfg: Any, epoch_float: float, *, warmup_offset: float = 1e-8) -> float:
    """The multiplier of ``cfg.lr`` at a (fractional) epoch: a linear warm-up over ``cfg.warmup_epochs``
    (``(e + warmup_offset) / w``), then ``cfg.schedule`` (cosine to ``cfg.final_lr_fraction`` when the config has
    no schedule, as BPS's Stage 1: :class:`ddlib.encoders.EncoderConfig`, whose warm-up has no offset)."""
    w = cfg.warmup_epochs
    if w > 0 and epoch_float < w:
        return (epoch_float + warmup_offset) / w
    span = max(cfg.epochs - w, 1e-8)
    t = min(max((epoch_float - w) / span, 0.0), 1.0)
    schedule = getattr(cfg, "schedule", "cosine")
    if schedule == "cosine":
        return cosine_factor(t, cfg.final_lr_fraction)
    if schedule == "half_cosine":
        return 0.5 * (1 + math.cos(math.pi * t / 2))
    return 1.0


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov), Adam or AdamW over ``params`` with ``cfg``'s lr and weight decay."""
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ParamError("the model has no trainable parameters (all requires_grad=False)")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.nesterov)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate to ``lr``."""
    for group in opt.param_groups:
        group["lr"] = lr

