"""BPS Stage 1: the multi-visual-pattern encoder (METHODS.md §1), then embeddings and partitions.

The encoder is a backbone (CIFAR ResNet-18 by default, or the DD ConvNet) with two heads on its
feature: the class head Linear(D→C) and a projector D→512→ReLU→128. It is trained with

    L = ce_weight·CE + con_weight·InfoNCE + r(e)·clu_weight·L_clu      (0.5, 1.0, 1.0)

- InfoNCE: MoCo v2. Two MoCo-v2 views of each image; the query view through the encoder, the key
  view through a momentum copy (m = 0.999); logits [q·k⁺, q·queue] / τ1 (τ1 = 0.5), target 0; a
  queue of 65,536 keys (with their labels).
- L_clu: per class, the queued keys are partitioned into patterns with the kNN + Infomap recipe of
  :mod:`ddlib.bps.patterns`; pattern centroids are the L2-normalised means of the queued keys of each
  pattern; each query goes to the nearest centroid of its class; with d = sqrt(2 − 2·q·k + 1e-6),
  L_clu = mean d to the keys of that pattern + (2 − mean d to every other queued key).
- r(e) = 0 for the first 5 epochs, then a linear ramp to 1.
- SGD (momentum 0.9, wd 1e-4), lr 0.02, 5-epoch linear warm-up then cosine to 0.01·lr, 30 epochs.

Setting ``ce_weight=0`` and ``clu_weight=0`` gives plain MoCo v2 (a self-supervised encoder).

Choices where METHODS.md is silent or the reference cannot be followed (each a config field):

- The partitions are refreshed at the start of every epoch in which L_clu is active (the reference
  does it when the queue wraps, ≈ once an epoch); keys enqueued between two refreshes join the
  nearest centroid of their class, so every queued key always has a pattern.
- The ramp reaches 1 at the last epoch (``clu_ramp_epochs=None``); give a number to reach 1 sooner.
- The learning rate is updated every step (warm-up linear in fractional epochs), equal to the
  per-epoch schedule at epoch ends.
- One process, one device: no shuffled BatchNorm across GPUs (MoCo's trick against BN leakage);
  the key encoder runs in train mode on the whole key batch.
- ``batch_size=256`` is MoCo v2's default; METHODS.md does not state the reference's.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from ddlib import artifacts, book, models
from ddlib.bps.patterns import PatternConfig, partition_info
from ddlib.kernels.augment import AUGMENTS, augment
from ddlib.utils import (ParamError, check_choice, check_float, check_int, config_dict, get_device,
                         seed_everything)

BACKBONES = ("resnet18", "convnet")


@dataclass(frozen=True)
class EncoderConfig:
    """Every Stage-1 hyperparameter; the defaults are the reference's (METHODS.md §1)."""

    backbone: str = "resnet18"          # "resnet18" (CIFAR) | "convnet" (DD-standard)
    convnet_width: int = 128            # ConvNet only
    convnet_depth: int = 3              # ConvNet only
    proj_hidden: int = 512              # projector D -> 512 -> ReLU -> 128
    proj_dim: int = 128
    momentum: float = 0.999             # key-encoder EMA
    queue_size: int = 65536             # MoCo queue (131,072 for ImageNet)
    temperature: float = 0.5            # tau_1
    ce_weight: float = 0.5
    con_weight: float = 1.0
    clu_weight: float = 1.0
    clu_warmup_epochs: int = 5          # r(e) = 0 for these epochs
    clu_ramp_epochs: int | None = None  # then linear to 1 over this many epochs (None: by the last epoch)
    augment: str = "moco_v2"            # the views (a preset of ddlib.kernels.augment.AUGMENTS)
    epochs: int = 30
    batch_size: int = 256
    lr: float = 0.02                    # 0.04 for ImageNet
    sgd_momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: int = 5              # linear lr warm-up
    final_lr_fraction: float = 0.01     # cosine ends at 0.01 * lr
    pattern: PatternConfig = field(default_factory=PatternConfig)  # partitions of the queued keys
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("backbone", self.backbone, BACKBONES)
        check_int("convnet_width", self.convnet_width, 1, 4096)
        check_int("convnet_depth", self.convnet_depth, 1, 8)
        check_int("proj_hidden", self.proj_hidden, 1, 65536)
        check_int("proj_dim", self.proj_dim, 1, 65536)
        check_float("momentum", self.momentum, 0.0, 1.0)
        check_int("queue_size", self.queue_size, 1, 10_000_000)
        check_float("temperature", self.temperature, 1e-4, 100.0)
        for name in ("ce_weight", "con_weight", "clu_weight"):
            check_float(name, getattr(self, name), 0.0, 1000.0)
        check_int("clu_warmup_epochs", self.clu_warmup_epochs, 0, 100_000)
        if self.clu_ramp_epochs is not None:
            check_int("clu_ramp_epochs", self.clu_ramp_epochs, 1, 100_000)
        check_choice("augment", self.augment, list(AUGMENTS))
        check_int("epochs", self.epochs, 1, 100_000)
        check_int("batch_size", self.batch_size, 2, 1_000_000)
        check_float("lr", self.lr, 1e-12, 100.0)
        check_float("sgd_momentum", self.sgd_momentum, 0.0, 0.999999)
        check_float("weight_decay", self.weight_decay, 0.0, 10.0)
        check_int("warmup_epochs", self.warmup_epochs, 0, 100_000)
        check_float("final_lr_fraction", self.final_lr_fraction, 0.0, 1.0)
        if not isinstance(self.pattern, PatternConfig):
            raise ParamError(f"pattern must be a PatternConfig, got {type(self.pattern).__name__}")
        check_int("seed", self.seed, 0, 2**32 - 1)


# ----------------------------------------------------------------------------- schedules
def lr_factor(cfg: EncoderConfig, epoch_float: float) -> float:
    """Multiplier of ``cfg.lr`` at a fractional epoch: linear warm-up, then cosine to ``final_lr_fraction``."""
    w = cfg.warmup_epochs
    if w > 0 and epoch_float < w:
        return min(epoch_float / w, 1.0)
    span = max(cfg.epochs - w, 1e-8)
    t = min(max((epoch_float - w) / span, 0.0), 1.0)
    f = cfg.final_lr_fraction
    return f + (1 - f) * 0.5 * (1 + math.cos(math.pi * t))


def clu_ramp(cfg: EncoderConfig, epoch: int) -> float:
    """r(e): 0 for ``clu_warmup_epochs`` epochs, then linear up to 1 (epochs count from 0)."""
    w = cfg.clu_warmup_epochs
    if epoch < w:
        return 0.0
    span = cfg.clu_ramp_epochs if cfg.clu_ramp_epochs is not None else max(cfg.epochs - w, 1)
    return min(1.0, (epoch - w + 1) / span)


# ----------------------------------------------------------------------------- losses
def info_nce(q: Tensor, k: Tensor, queue: Tensor, temperature: float) -> Tensor:
    """MoCo's InfoNCE: CE of [q·k, q·queue]/τ against index 0. q, k (B, D) and queue (Q, D) L2-normalised."""
    pos = (q * k).sum(1, keepdim=True)
    neg = q @ queue.T
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def pattern_centroids(keys: Tensor, key_pattern: Tensor, num_patterns: int) -> tuple[Tensor, Tensor]:
    """L2-normalised mean key of each pattern (P, D) and each pattern's member count (P,); keys with
    pattern -1 are ignored."""
    ok = key_pattern >= 0
    cent = torch.zeros(num_patterns, keys.shape[1], device=keys.device, dtype=keys.dtype)
    cent.index_add_(0, key_pattern[ok], keys[ok])
    counts = torch.bincount(key_pattern[ok], minlength=num_patterns)
    return F.normalize(cent, dim=1), counts


def assign_to_centroids(z: Tensor, y: Tensor, centroids: Tensor, counts: Tensor, pattern_class: Tensor) -> Tensor:
    """The nearest (cosine) non-empty centroid of each row's own class; -1 where the class has none."""
    s = z @ centroids.T
    allowed = (pattern_class[None, :] == y[:, None]) & (counts > 0)[None, :]
    s = s.masked_fill(~allowed, float("-inf"))
    a = s.argmax(1)
    return torch.where(allowed.any(1), a, torch.full_like(a, -1))


def clustering_loss(q: Tensor, y: Tensor, keys: Tensor, key_pattern: Tensor, pattern_class: Tensor) -> Tensor:
    """L_clu of BPS: queries q (B, D) of classes y; queued keys (Q, D) with pattern ids (-1: none),
    pattern_class (P,) the class of each pattern id.

    Each query goes to the nearest centroid of its class (among patterns that have queued keys);
    with d = sqrt(2 − 2·q·k + 1e-6), the loss is mean over those queries of
    [mean d to the keys of its pattern] + (2 − [mean d to all other queued keys]).
    Queries whose class has no pattern yet contribute nothing.
    """
    num_patterns = len(pattern_class)
    ok = key_pattern >= 0
    if num_patterns == 0 or not bool(ok.any()):
        return q.sum() * 0.0
    keys, kp = keys[ok], key_pattern[ok]
    cent, counts = pattern_centroids(keys, kp, num_patterns)
    with torch.no_grad():
        a = assign_to_centroids(q.detach(), y, cent, counts, pattern_class)
    has = a >= 0
    if not bool(has.any()):
        return q.sum() * 0.0
    q, a = q[has], a[has]
    d = torch.sqrt((2 - 2 * q @ keys.T).clamp_min(0) + 1e-6)  # (B, Q)
    same = kp[None, :] == a[:, None]
    n_same = same.sum(1)
    pos_sum = torch.where(same, d, torch.zeros((), dtype=d.dtype, device=d.device)).sum(1)
    pos = pos_sum / n_same.clamp_min(1)
    neg = (d.sum(1) - pos_sum) / (len(kp) - n_same).clamp_min(1)
    return (pos + (2 - neg)).mean()


# ----------------------------------------------------------------------------- the model
class Encoder(nn.Module):
    """Backbone (``.backbone``: ``.features``, ``.head``, ``.feature_dim``) + projector; forward = logits."""

    def __init__(self, cfg: EncoderConfig, num_classes: int, in_channels: int, image_size: int,
                 mean=None, std=None) -> None:  # noqa: ANN001
        super().__init__()
        kw = {"width": cfg.convnet_width, "depth": cfg.convnet_depth} if cfg.backbone == "convnet" else {}
        self.backbone = models.create(cfg.backbone, num_classes, in_channels=in_channels, image_size=image_size,
                                      mean=mean, std=std, **kw)
        self.feature_dim = int(self.backbone.feature_dim)
        self.image_size = image_size
        self.projector = nn.Sequential(nn.Linear(self.feature_dim, cfg.proj_hidden), nn.ReLU(inplace=True),
                                       nn.Linear(cfg.proj_hidden, cfg.proj_dim))

    def features(self, x: Tensor) -> Tensor:
        """The backbone feature (N, D) of images in [0, 1]."""
        return self.backbone.features(x)

    def project(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(L2-normalised projection (N, proj_dim), backbone feature (N, D))."""
        h = self.backbone.features(x)
        return F.normalize(self.projector(h), dim=1), h

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone.head(self.backbone.features(x))


def build_encoder(cfg: EncoderConfig, num_classes: int, in_channels: int, image_size: int,
                  mean=None, std=None) -> Encoder:  # noqa: ANN001
    """A freshly initialised :class:`Encoder` for data of this shape."""
    return Encoder(cfg, num_classes, in_channels, image_size, mean, std)


def _build_for(ds, cfg: EncoderConfig) -> Encoder:  # noqa: ANN001
    c, h, _ = ds.image_shape
    return build_encoder(cfg, ds.num_classes, c, h, mean=ds.mean.tolist(), std=ds.std.tolist())


# ----------------------------------------------------------------------------- the queue
class KeyQueue:
    """MoCo's queue of L2-normalised keys with their labels and pattern ids (ring buffer)."""

    def __init__(self, size: int, dim: int, device: torch.device, generator: torch.Generator | None = None) -> None:
        self.keys = F.normalize(torch.randn(size, dim, generator=generator), dim=1).to(device)  # MoCo's random start
        self.labels = torch.full((size,), -1, dtype=torch.long, device=device)  # -1: never filled
        self.pattern = torch.full((size,), -1, dtype=torch.long, device=device)
        self.pattern_class = torch.zeros(0, dtype=torch.long, device=device)
        self.ptr = 0
        self.wraps = 0

    def __len__(self) -> int:
        return len(self.keys)

    @torch.no_grad()
    def enqueue(self, k: Tensor, y: Tensor, pattern: Tensor | None = None) -> None:
        """Write keys k (B, D) with labels y over the oldest entries (wrapping around)."""
        b = len(k)
        if b > len(self):  # keep only the newest
            k, y = k[-len(self):], y[-len(self):]
            pattern = None if pattern is None else pattern[-len(self):]
            b = len(self)
        pos = (self.ptr + torch.arange(b, device=self.keys.device)) % len(self)
        self.keys[pos] = k
        self.labels[pos] = y
        self.pattern[pos] = -1 if pattern is None else pattern
        if self.ptr + b >= len(self):
            self.wraps += 1
        self.ptr = (self.ptr + b) % len(self)

    @torch.no_grad()
    def refresh_patterns(self, cfg: PatternConfig) -> dict[int, int]:
        """Partition the filled queue per class with kNN + Infomap; return {class: number of patterns}."""
        filled = torch.nonzero(self.labels >= 0).reshape(-1)
        self.pattern.fill_(-1)
        if len(filled) == 0:
            self.pattern_class = torch.zeros(0, dtype=torch.long, device=self.keys.device)
            return {}
        ids, info = partition_info(self.keys[filled], self.labels[filled].cpu(), cfg)  # kNN on the keys' device
        classes = sorted(info)
        offset = {c: 0 for c in classes}
        total = 0
        for c in classes:
            offset[c] = total
            total += info[c].num_patterns
        lab = self.labels[filled].cpu()
        glob = ids + torch.tensor([offset[int(c)] for c in lab.tolist()], dtype=torch.long)
        self.pattern[filled] = glob.to(self.keys.device)
        self.pattern_class = torch.tensor([c for c in classes for _ in range(info[c].num_patterns)],
                                          dtype=torch.long, device=self.keys.device)
        return {c: info[c].num_patterns for c in classes}

    @torch.no_grad()
    def assign(self, k: Tensor, y: Tensor) -> Tensor:
        """Pattern ids for new keys: the nearest current centroid of their class (-1 if none)."""
        if len(self.pattern_class) == 0:
            return torch.full((len(k),), -1, dtype=torch.long, device=k.device)
        cent, counts = pattern_centroids(self.keys, self.pattern, len(self.pattern_class))
        return assign_to_centroids(k, y, cent, counts, self.pattern_class)


# ----------------------------------------------------------------------------- training
@torch.no_grad()
def _momentum_update(key_model: nn.Module, model: nn.Module, m: float) -> None:
    for pk, pq in zip(key_model.parameters(), model.parameters()):
        pk.mul_(m).add_(pq.detach(), alpha=1 - m)


def _to_unit(x: Tensor) -> Tensor:
    return x if x.is_floating_point() else x.float() / 255.0


def fit_encoder(model: Encoder, x: Tensor, y: Tensor, cfg: EncoderConfig, device: str | torch.device | None = None,
                progress: bool = True) -> dict:
    """Train ``model`` in place on images x (uint8 or [0, 1]) with labels y; return the history."""
    if len(x) != len(y) or len(x) < 2:
        raise ParamError("x and y must hold the same number (>= 2) of images")
    gen = seed_everything(cfg.seed)
    dev = get_device(device)
    model.to(dev).train()
    key_model = copy.deepcopy(model)
    for p in key_model.parameters():
        p.requires_grad_(False)
    queue = KeyQueue(cfg.queue_size, cfg.proj_dim, dev, gen)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.sgd_momentum, weight_decay=cfg.weight_decay)
    n = len(x)
    bs = min(cfg.batch_size, n)
    steps = n // bs  # MoCo drops the last partial batch
    hist: dict = {k: [] for k in ("loss", "ce", "con", "clu", "r", "lr", "patterns", "epoch_seconds")}
    y = y.long()
    start = time.perf_counter()
    bar = tqdm(total=cfg.epochs * steps, desc="stage 1", disable=not progress or book.in_test(), leave=False,
               mininterval=5.0)
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        r = clu_ramp(cfg, epoch)
        use_clu = r > 0 and cfg.clu_weight > 0
        found = queue.refresh_patterns(cfg.pattern) if use_clu else {}
        hist["patterns"].append(found)
        order = torch.randperm(n, generator=gen)
        sums = {"loss": 0.0, "ce": 0.0, "con": 0.0, "clu": 0.0}
        for step in range(steps):
            lr = cfg.lr * lr_factor(cfg, epoch + (step + 1) / steps)
            for g in opt.param_groups:
                g["lr"] = lr
            idx = order[step * bs:(step + 1) * bs]
            xb = _to_unit(x[idx].to(dev, non_blocking=True))
            yb = y[idx].to(dev, non_blocking=True)
            xq, xk = augment(xb, cfg.augment, gen), augment(xb, cfg.augment, gen)
            q, h = model.project(xq)
            with torch.no_grad():
                _momentum_update(key_model, model, cfg.momentum)
                k, _ = key_model.project(xk)
            zero = q.sum() * 0.0
            ce = F.cross_entropy(model.backbone.head(h), yb) if cfg.ce_weight > 0 else zero
            con = info_nce(q, k, queue.keys, cfg.temperature) if cfg.con_weight > 0 else zero
            clu = clustering_loss(q, yb, queue.keys, queue.pattern, queue.pattern_class) if use_clu else zero
            loss = cfg.ce_weight * ce + cfg.con_weight * con + r * cfg.clu_weight * clu
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            queue.enqueue(k, yb, queue.assign(k, yb) if use_clu else None)
            for name, v in (("loss", loss), ("ce", ce), ("con", con), ("clu", clu)):
                sums[name] += float(v.detach())
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{float(loss.detach()):.3f}")
        for name, v in sums.items():
            hist[name].append(v / max(steps, 1))
        hist["r"].append(r)
        hist["lr"].append(cfg.lr * lr_factor(cfg, epoch + 1))
        hist["epoch_seconds"].append(time.perf_counter() - t0)
    bar.close()
    model.eval()
    hist["seconds"] = time.perf_counter() - start
    hist["queue_wraps"] = queue.wraps
    return hist


def encoder_key(ds, cfg: EncoderConfig) -> str:  # noqa: ANN001
    """The artifact key of the encoder trained on ``ds`` with ``cfg``."""
    return artifacts.make_key("bps-encoder", ds.key(), cfg)


def train_encoder(ds, cfg: EncoderConfig | None = None, device: str | torch.device | None = None,
                  progress: bool = True) -> tuple[Encoder, dict]:
    """Stage 1 on ``ds.train_x/train_y``: the trained encoder (eval mode, on CPU) and its history.

    Cached as an artifact (state_dict + history) keyed by the dataset and the config: a second call
    with the same inputs loads it instead of training.
    """
    cfg = cfg or EncoderConfig()
    if not isinstance(cfg, EncoderConfig):
        raise ParamError(f"cfg must be an EncoderConfig, got {type(cfg).__name__}")
    key = encoder_key(ds, cfg)

    def compute() -> dict:
        seed_everything(cfg.seed)  # the initial weights follow cfg.seed, not the caller's RNG state
        model = _build_for(ds, cfg)
        hist = fit_encoder(model, ds.train_x, ds.train_y, cfg, device=device, progress=progress)
        return {"state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "history": hist,
                "config": config_dict(cfg)}

    record = artifacts.cached(key, compute, meta={"stage": "bps-encoder", "dataset": ds.spec})
    model = _build_for(ds, cfg)
    model.load_state_dict(record["state_dict"])
    model.eval()
    return model, record["history"]


@torch.no_grad()
def embed_dataset(model: nn.Module, x: Tensor, batch_size: int = 512,
                  device: str | torch.device | None = None) -> Tensor:
    """L2-normalised backbone features (N, D) of images x with the test transform (none), on CPU."""
    dev = get_device(device)
    was = model.training
    model.to(dev).eval()
    feats = model.features if hasattr(model, "features") else model
    out = [feats(_to_unit(x[i:i + batch_size].to(dev))).float().cpu() for i in range(0, len(x), batch_size)]
    model.train(was)
    return F.normalize(torch.cat(out), dim=1) if out else torch.empty(0)


def model_patterns(ds, enc_cfg: EncoderConfig | None = None, pat_cfg: PatternConfig | None = None,
                   device: str | torch.device | None = None, progress: bool = True) -> dict:
    """Stage 1 end to end, cached: train (or load) the encoder, embed the train set, partition each class.

    Returns ``{"embeddings": (N, D) L2-normalised, "patterns": (N,) per-class ids (0 = the class's
    largest), "num_patterns": {class: M}, "info": {class: {...}}, "encoder_key", "key",
    "seconds": {...}}``. Stage 2 reuses this one result for every IPC.
    """
    enc_cfg = enc_cfg or EncoderConfig()
    pat_cfg = pat_cfg or PatternConfig()
    if not isinstance(pat_cfg, PatternConfig):
        raise ParamError(f"pat_cfg must be a PatternConfig, got {type(pat_cfg).__name__}")
    ekey = encoder_key(ds, enc_cfg)
    key = artifacts.make_key("bps-patterns", ds.key(), pat_cfg, upstream=[ekey])

    def compute() -> dict:
        t0 = time.perf_counter()
        model, _ = train_encoder(ds, enc_cfg, device=device, progress=progress)
        t1 = time.perf_counter()
        emb = embed_dataset(model, ds.train_x, device=device)
        t2 = time.perf_counter()
        ids, info = partition_info(emb.to(get_device(device)), ds.train_y, pat_cfg)  # kNN on the GPU when there is one
        t3 = time.perf_counter()
        return {"embeddings": emb, "patterns": ids,
                "num_patterns": {c: p.num_patterns for c, p in info.items()},
                "info": {c: {"num_patterns": p.num_patterns, "num_singletons": p.num_singletons,
                             "num_links": p.num_links, "codelength": p.codelength,
                             "one_level_codelength": p.one_level_codelength} for c, p in info.items()},
                "encoder_key": ekey, "key": key,
                "seconds": {"encoder": t1 - t0, "embed": t2 - t1, "partition": t3 - t2}}

    return artifacts.cached(key, compute, meta={"stage": "bps-patterns", "dataset": ds.spec})
