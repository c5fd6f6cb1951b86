"""The in-house MoCo v2 encoder that both methods use: BPS Stage 1 (chapter 1) and SFM's ``"inhouse"`` backbone
(chapters 3 and 4).

The encoder is a backbone (any network of :data:`ddlib.models.BACKBONES`: the CIFAR ResNet-18 by default, the
DD ConvNet, the reference's ImageNet ResNet-18, ...) with two heads on its pooled feature: the class head
Linear(D→C) and a projector D→512→ReLU→128. It is trained with

    L = ce_weight·CE + con_weight·InfoNCE + r(e)·clu_weight·L_clu      (BPS: 0.5, 0.5, 1.0)

- InfoNCE (:func:`ddlib.losses.info_nce`): MoCo v2. Two MoCo-v2 views of each image; the query view
  through the encoder, the key view through a momentum copy (m = 0.999); logits [q·k⁺, q·queue] / τ1
  (τ1 = 0.5), target 0; a queue of 65,536 keys (with their labels).
- L_clu (:func:`ddlib.losses.clustering_loss`), BPS's clustering term: per class, a snapshot of the queued
  keys is partitioned into patterns (taken at every queue wrap, as the reference); each query goes to the
  nearest pattern centroid of any class (the reference; ``clu_assign="own_class"``: of its own).
- r(e) = 0 for the first 5 epochs, then a linear ramp to 1 (:func:`clu_ramp`).
- SGD (momentum 0.9, wd 1e-4), lr 0.02, 5-epoch linear warm-up then cosine to 0.01·lr, 30 epochs.

Setting ``ce_weight=0`` and ``clu_weight=0`` gives plain MoCo v2 (a self-supervised encoder: SFM's
in-house backbone, :func:`ddlib.sfm.backbones.inhouse_encoder`).

Layout: :mod:`~ddlib.encoders.config` (the configs and schedules), :mod:`~ddlib.encoders.build` (the
networks), :mod:`~ddlib.encoders.moco` (the queue and the MoCo step), :mod:`~ddlib.encoders.training`
(training and the cached artifact); this package re-exports their public names.

Layering. This package sits below :mod:`ddlib.bps` and :mod:`ddlib.sfm` and imports neither. What only
BPS has — partitioning the queued keys into patterns with kNN + Infomap and assigning new keys to
them — plugs in as a :class:`ClusteringTerm` (``ddlib.bps.encoder.PATTERN_CLUSTERING``), passed to
:func:`fit_moco`/:func:`train_moco` as ``clustering=`` (BPS's :func:`ddlib.bps.encoder.fit_encoder` and
:func:`~ddlib.bps.encoder.train_encoder` do); the loss L_clu itself is pure and lives
in :mod:`ddlib.losses`. Without a clustering term, a config whose clustering term would act
(``clu_weight > 0`` and r(e) > 0 in some epoch) is refused. The config of the partition,
:class:`PatternConfig`, lives with :class:`EncoderConfig` (:mod:`ddlib.encoders.config` says why).

The training runs on the one loop of :mod:`ddlib.train`: the data side is
:func:`ddlib.train.image_batches` with two views (the last partial batch dropped, as MoCo does), the
learning rate an :class:`~ddlib.train.LrPerStep` hook, and the MoCo step with its queue one object
(:class:`MoCoStep`) that is both the loop's step and a hook (the momentum update inside the step,
enqueue after the optimiser step, partition refresh at epoch start, the ramp per epoch).

Choices where METHODS.md is silent or the reference cannot be followed (each a config field):

- The partition is of a snapshot of the queued keys, taken each time the queue wraps (the reference's
  ``_info_cluster``, ≈ once an epoch; ``clu_refresh="epoch"``: at every epoch start instead) and when the
  term first turns on; keys enqueued after a snapshot are not assigned to its patterns. Each query is
  assigned to the nearest pattern centroid over the patterns of *every* class (``clu_assign="all"``, the
  reference; ``"own_class"`` restricts it to the query's class).
- The ramp reaches 1 at the last epoch (``clu_ramp_epochs=None``); give a number to reach 1 sooner.
- The learning rate is updated every step (warm-up linear in fractional epochs), equal to the
  per-epoch schedule at epoch ends.
- In one process the key encoder runs in train mode on the whole key batch. Under torchrun
  (:mod:`ddlib.distributed`) the query encoder trains in DistributedDataParallel on each rank's share of
  the global batch (``batch_size`` is the global batch, as MoCo's), the key encoder runs on a shuffled
  share of the whole key batch (MoCo's shuffled BatchNorm), every rank's keys are gathered so every rank
  enqueues the global batch and holds the same queue, and the re-partition runs on rank 0, its partition
  broadcast. Without batch norm (the DD ConvNet) the run is the one-process run up to float rounding.
- ``batch_size=256`` is MoCo v2's default; METHODS.md does not state the reference's.
"""

from ddlib.encoders.build import (Encoder, FrozenEncoder, NeckEncoder, build_encoder, build_for, frozen_backbone,
                                  make_trunk)
from ddlib.encoders.config import CLU_REFRESH, EncoderConfig, PatternConfig, clu_ramp, views_augment
from ddlib.encoders.moco import ClusteringTerm, KeyQueue, MoCoStep, bank_pairs, check_clustering
from ddlib.encoders.training import encoder_key, fit_moco, fit_neck, train_embeddings, train_moco, view_banks

__all__ = ["PatternConfig", "EncoderConfig", "CLU_REFRESH", "clu_ramp", "views_augment",
           "make_trunk", "Encoder", "NeckEncoder", "FrozenEncoder", "build_encoder", "build_for", "frozen_backbone",
           "KeyQueue", "ClusteringTerm", "MoCoStep", "check_clustering", "bank_pairs",
           "fit_moco", "fit_neck", "encoder_key", "view_banks", "train_moco", "train_embeddings"]
