"""The one training loop of ddlib and the parts around it (book: chapter 2's students, chapter 1's encoder).

- :mod:`ddlib.train.config`: :class:`Recipe` (the training fields every run shares), :class:`TrainConfig`,
  :class:`Accel` (speed options), the learning-rate schedules and optimisers;
- :mod:`ddlib.train.batches`: the data side, sources of :class:`Batch` es (images, tensors, stacks);
- :mod:`ddlib.train.loop`: :func:`loop`, its steps (the loss side) and hooks;
- :mod:`ddlib.train.fit`: :func:`fit` (supervised training on images in memory), :func:`embed`,
  :func:`predict`, :func:`evaluate`.

Every model ddlib trains goes through :func:`loop` (teachers, probes, students, the forgetting run, the
MoCo encoder, CI's heads, stacked students); only SFM/LGM's pixel optimiser keeps its own.
"""
from ddlib.train.batches import Batch, Batches, BatchSource, StackedBatches, image_batches, tensor_batches
from ddlib.train.config import (COMPILE_BACKENDS, OPTIMIZERS, SCHEDULES, Accel, Recipe, TrainConfig, cosine_factor,
                                lr_factor, make_optimizer, set_lr)
from ddlib.train.fit import embed, evaluate, fit, predict
from ddlib.train.loop import (Evaluate, Hook, LoopState, LrPerEpoch, LrPerStep, LrScheduler, Step, ce_step,
                              cutmix_ce_step, kd_step, loop, loss_step)
from ddlib.utils import to_unit

__all__ = ["Recipe", "TrainConfig", "Accel", "COMPILE_BACKENDS", "OPTIMIZERS", "SCHEDULES", "fit", "evaluate", "predict",
           "embed", "lr_factor", "cosine_factor", "make_optimizer", "to_unit", "loop", "Batch", "Batches", "BatchSource",
           "LoopState", "Hook", "LrPerStep", "LrPerEpoch", "LrScheduler", "Evaluate", "image_batches", "tensor_batches",
           "StackedBatches", "Step", "ce_step", "loss_step", "kd_step", "cutmix_ce_step", "set_lr"]
