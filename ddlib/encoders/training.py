"""Training the encoder (chapter 1's Stage 1, chapter 3's in-house backbone) and its cached artifact:
:func:`fit_moco` (images), :func:`fit_neck` (a bank of frozen features), :func:`train_moco` (a dataset, cached
under :func:`encoder_key`) and the Stage-2 embeddings (:func:`train_embeddings`). BPS plugs its clustering
term in through :mod:`ddlib.bps.encoder`."""
from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ddlib import artifacts, distributed
from ddlib.encoders.build import Encoder, FrozenEncoder, NeckEncoder, build_for, frozen_backbone
from ddlib.encoders.config import EncoderConfig, views_augment
from ddlib.encoders.moco import ClusteringTerm, KeyQueue, MoCoStep, bank_pairs, check_clustering
from ddlib.train import Accel, LrPerStep, image_batches, loop, lr_factor
from ddlib.utils import ParamError, config_dict, get_device, seed_everything

__all__ = ["fit_moco", "fit_neck", "encoder_key", "view_banks", "train_moco", "train_embeddings"]


def _fit(model: nn.Module, source: Any, n: int, cfg: EncoderConfig, dev: torch.device, gen: torch.Generator,
         clustering: ClusteringTerm | None, progress: bool, accel: Accel | None = None) -> dict:
    distributed.check_split("batch_size", cfg.batch_size)  # under torchrun: the global batch, split over ranks
    key_model = copy.deepcopy(model)
    for p in key_model.parameters():
        p.requires_grad_(False)
    queue = KeyQueue(cfg.queue_size, cfg.proj_dim, dev, gen)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, momentum=cfg.sgd_momentum,
                          weight_decay=cfg.weight_decay)
    moco = MoCoStep(model, key_model, queue, cfg, clustering)
    lr = LrPerStep(lambda epoch, step, steps: cfg.lr * lr_factor(cfg, epoch + (step + 1) / steps, warmup_offset=0.0))
    # under torchrun every rank trains the query encoder together (the classifier idles when ce_weight = 0)
    par = distributed.data_parallel(model, dev, find_unused_parameters=cfg.ce_weight == 0)
    run = loop(model, opt, source, moco, cfg.epochs, gen, hooks=[lr, moco], progress=progress, desc="stage 1",
               step_bar=True, parallel=par, accel=accel)
    model.eval()
    return {**moco.history, "seconds": run["seconds"], "queue_wraps": queue.wraps}


def fit_moco(model: Encoder, x: Tensor, y: Tensor, cfg: EncoderConfig, device: str | torch.device | None = None,
             progress: bool = True, clustering: ClusteringTerm | None = None, accel: Accel | None = None) -> dict:
    """Train ``model`` in place on images x (uint8 or [0, 1]) with labels y; return the history.

    ``clustering``: the term L_clu plugs in (BPS: ``ddlib.bps.encoder.PATTERN_CLUSTERING``); required
    when ``cfg.clu_weight > 0`` and the ramp r(e) is positive in some epoch. ``accel``: the loop's
    :class:`~ddlib.train.Accel` (not cached: :func:`train_moco` trains plain).
    """
    if len(x) != len(y) or len(x) < 2:
        raise ParamError("x and y must hold the same number (>= 2) of images")
    check_clustering(cfg, clustering)
    gen = seed_everything(cfg.seed)
    dev = get_device(device)
    model.to(dev).train()
    bs = min(cfg.batch_size, len(x))
    source = image_batches(x, y.long(), bs, dev, augment=views_augment(cfg, int(x.shape[-1])), views=2,
                           drop_last=True)  # MoCo drops the last partial batch
    return _fit(model, source, len(x), cfg, dev, gen, clustering, progress, accel)


def fit_neck(model: NeckEncoder, bank: Tensor, y: Tensor, cfg: EncoderConfig, device: str | torch.device | None = None,
             progress: bool = True, clustering: ClusteringTerm | None = None) -> dict:
    """Train a :class:`NeckEncoder` in place on a bank of augmented views' features ``(V, N, D)``."""
    if bank.dim() != 3 or bank.shape[0] < 2 or bank.shape[1] != len(y) or len(y) < 2:
        raise ParamError(f"bank must be (views >= 2, N, D) with N = len(y) >= 2; got {tuple(bank.shape)} for {len(y)}")
    check_clustering(cfg, clustering)
    gen = seed_everything(cfg.seed)
    dev = get_device(device)
    model.to(dev).train()
    source = bank_pairs(bank, y.long(), min(cfg.batch_size, len(y)), dev)
    return _fit(model, source, len(y), cfg, dev, gen, clustering, progress)


def encoder_key(ds, cfg: EncoderConfig) -> str:  # noqa: ANN001
    """The artifact key of the encoder trained on ``ds`` with ``cfg`` (stage name ``bps-encoder``: the
    encoder was BPS's first, and the name keeps existing caches valid)."""
    return artifacts.make_key("bps-encoder", ds.key(), cfg)


def view_banks(ds, cfg: EncoderConfig, device=None) -> tuple[nn.Module, Tensor]:  # noqa: ANN001
    """A frozen encoder's inputs: its backbone and the cached bank of ``cfg.frozen_views`` augmented views
    of every training image (float16, ``(V, N, D)``; :func:`ddlib.features.view_bank`)."""
    from ddlib.features import view_bank

    bb = frozen_backbone(cfg, int(ds.image_shape[0]))
    bank = view_bank(bb, ds, augment_cfg=views_augment(cfg, int(ds.image_shape[-1])), views=cfg.frozen_views,
                     seed=cfg.seed, half=True, device=device)
    return bb, bank


def train_moco(ds, cfg: EncoderConfig | None = None, device: str | torch.device | None = None,
               progress: bool = True, clustering: ClusteringTerm | None = None) -> tuple[nn.Module, dict]:
    """Train on ``ds.train_x/train_y``: the trained encoder (eval mode, on CPU) and its history.

    Cached as an artifact (state_dict + history) keyed by the dataset and the config: a second call
    with the same inputs loads it instead of training. ``clustering`` as in :func:`fit_moco`. With
    ``cfg.freeze_backbone`` the result is a :class:`FrozenEncoder` whose neck and heads were trained on
    cached features of augmented views (:func:`view_banks`).
    """
    cfg = cfg or EncoderConfig()
    if not isinstance(cfg, EncoderConfig):
        raise ParamError(f"cfg must be an EncoderConfig, got {type(cfg).__name__}")
    check_clustering(cfg, clustering)
    key = encoder_key(ds, cfg)
    if cfg.freeze_backbone:
        bb, bank = view_banks(ds, cfg, device)

        def compute_neck() -> dict:
            seed_everything(cfg.seed)
            neck = NeckEncoder(cfg, bank.shape[-1], ds.num_classes)
            hist = fit_neck(neck, bank, ds.train_y, cfg, device=device, progress=progress, clustering=clustering)
            return {"state_dict": {k: v.cpu() for k, v in neck.state_dict().items()}, "history": hist,
                    "config": config_dict(cfg), "in_dim": int(bank.shape[-1])}

        record = artifacts.cached(key, compute_neck, meta={"stage": "bps-encoder", "dataset": ds.spec},
                                  collective=True)
        neck = NeckEncoder(cfg, record["in_dim"], ds.num_classes)
        neck.load_state_dict(record["state_dict"])
        return FrozenEncoder(bb, neck).eval(), record["history"]

    def compute() -> dict:
        seed_everything(cfg.seed)  # the initial weights follow cfg.seed, not the caller's RNG state
        model = build_for(ds, cfg)
        hist = fit_moco(model, ds.train_x, ds.train_y, cfg, device=device, progress=progress,
                        clustering=clustering)
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "history": hist,
                "config": config_dict(cfg)}

    record = artifacts.cached(key, compute, meta={"stage": "bps-encoder", "dataset": ds.spec}, collective=True)
    model = build_for(ds, cfg)
    model.load_state_dict(record["state_dict"])
    model.eval()
    return model, record["history"]


def train_embeddings(model: nn.Module, ds, cfg: EncoderConfig, device=None) -> Tensor:  # noqa: ANN001
    """The L2-normalised Stage-2 embeddings ``(N, D)`` of ``ds``'s training images (the test-time view):
    for a frozen encoder, its neck over the cached clean-view features; else the encoder's pooled feature."""
    from ddlib.train import embed

    if isinstance(model, FrozenEncoder):
        from ddlib.features import view_bank

        clean = view_bank(model.frozen, ds, views=1, seed=0, half=True, device=device)[0]
        with torch.no_grad():
            model.head.eval()
            return F.normalize(torch.cat([model.head.features(clean[i:i + 4096]) for i in range(0, len(clean), 4096)]),
                               dim=1)
    return embed(model.features, ds.train_x, device=device, normalize=True, shard=True)
