"""Synthetic images for a frozen backbone: Statistical Flow Matching (SFM) and Linear Gradient Matching (LGM).

Both methods share the image parameterisation (:class:`ImageParams`: a Laplacian-style pyramid
or plain pixels, colour decorrelation, ``sigmoid(2x)`` decode) and the differentiable
augmentation (``AUGMENTS["sfm"]``: RandomResizedCrop(0.08–1), flip, Gaussian noise), so a
comparison between them isolates the loss.

SFM (``method="sfm"``)
    Per step: augment each synthetic image once, average its features per class to ŝ_c, form
    the synthetic flows F̂_c = mean_{c'≠c} ŝ_{c'} − ŝ_c and minimise 1 − cos(vec F, vec F̂)
    over the whole C×D matrix, where F are the dataset's statistical flows (:mod:`ddlib.sfm.stats`).
    No real image is touched while distilling.

    *Departure from the reference:* the reference code normalises the synthetic feature sums by
    N = C·IPC, the number of all synthetic images, where a class mean divides by the class's own
    count; METHODS.md records this as wrong for IPC > 1. We use per-class means
    ŝ_c = (1/n_c) Σ_{y_i=c} φ(aug(x_i)), which is what the derivation from LGM's zero-head
    gradient gives (see below) and is right for any IPC, equal or not across classes.

    *Beyond the reference (memory):* the loss depends on the images only through ŝ (C×D).
    With ``chunk_size`` set, pass 1 runs the backbone without a graph in chunks to get ŝ and
    G = ∂loss/∂ŝ; pass 2 re-runs each chunk with a graph and back-propagates the surrogate
    Σ_i ⟨φ(aug(x_i)), G_{y_i}/n_{y_i}⟩, whose gradient w.r.t. the images equals the full one.
    Both passes use the same augmentation draw (a generator per chunk, seeded from
    (seed, step, chunk)), so peak memory is set by the chunk size, not by C·IPC.
    The augmentation is always drawn chunk by chunk (one chunk when ``chunk_size`` is None).

LGM (``method="lgm"``)
    Per step: a fresh head W ~ N(0, 0.01²), b = 0; a class-balanced real batch of IPC·C·augs
    images (IPC·augs per class; the reference draws a shuffled, not balanced, batch), each
    augmented once, ∇_{W,b} CE without a graph; the synthetic images repeated
    ``augs_per_batch`` times and augmented, ∇_{W,b} CE with ``create_graph``; loss =
    1 − cos(vec g_real, vec g_syn), back-propagated through φ to the images.

At a zero head and with a balanced batch, ∇_W CE has rows (C−1)/C² · (mean_{c'≠c} z̄_{c'} − z̄_c)
and ∇_b CE = 0 (z̄_c: the batch's class means of φ), so with dataset means in place of batch
means it is (C−1)/C² · F: SFM is LGM without the real images and the random heads.

This module holds the configuration, the two steps (:func:`sfm_backward`, :func:`lgm_backward`) and
the optimisation loop over the images (:func:`distill`: Adam on the pyramid levels, reset when the
pyramid grows; not :func:`ddlib.train.loop`, which trains models). Elsewhere: the image
parameterisation in :mod:`ddlib.sfm.params`, the losses (:func:`~ddlib.losses.sfm_loss`,
:func:`~ddlib.losses.lgm_loss`, :func:`~ddlib.losses.linear_ce_grad`) in :mod:`ddlib.losses`, saving
and loading a synthetic set in :mod:`ddlib.sfm.sets`, the peak-memory meter in
:class:`ddlib.utils.PeakMemory` (each name is also importable from here).
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F_nn
from torch import Tensor

from ddlib.losses import lgm_loss, linear_ce_grad, sfm_loss
from ddlib.sfm.params import INITS, PARAMETERISATIONS, ImageParams, pyramid_resolutions
from ddlib.sfm.sets import load_synthetic, save_synthetic
from ddlib.sfm.stats import (autocast_context, backbone_channels, class_means, dataset_stats, flow_cosine,
                             flows, match_channels)
from ddlib.utils import (ParamError, PeakMemory, check_choice, check_float, check_int, config_dict, get_device,
                         progress as progress_bar, seed_everything, to_unit)

__all__ = ["METHODS", "SynthConfig", "sfm_backward", "lgm_backward", "balanced_indices", "resize_images",
           "default_image_sizes", "real_init_images", "distill", "distill_cached",
           # defined elsewhere (see the module docstring), importable from here
           "ImageParams", "pyramid_resolutions", "PARAMETERISATIONS", "INITS", "save_synthetic", "load_synthetic",
           "PeakMemory", "sfm_loss", "lgm_loss", "linear_ce_grad"]

METHODS = ("sfm", "lgm")


@dataclass(frozen=True)
class SynthConfig:
    """How to distil IPC synthetic images per class (defaults: METHODS.md §2 and the reference code).

    method: "sfm" | "lgm"; ipc: images per class (>= 1); steps: optimisation steps (5,000);
    lr: Adam learning rate (2e-3); image_size: synthetic resolution (256); crop: output size of
    the RandomResizedCrop augmentation (224; None = image_size); augment: a key of
    ``ddlib.kernels.augment.AUGMENTS`` ("sfm": flip, crop 0.08–1, Gaussian noise);
    augs_per_batch: LGM's synthetic views per step and real-batch multiplier (10);
    parameterisation: "pyramid" | "pixels"; grow_every: steps between pyramid levels (200);
    start_res: the coarsest level's resolution (1); decorrelate: colour decorrelation (3
    channels only); init: "noise" | "zero" | "real" (real images, decode inverted);
    chunk_size: SFM's two-pass chunked step with this many images per chunk (None = direct);
    head_std: LGM's random head scale (0.01); channels: 3 (or 1 for grey backbones);
    seed; feature_batch: batch size of the statistics pass.
    """

    method: str = "sfm"
    ipc: int = 1
    steps: int = 5000
    lr: float = 2e-3
    image_size: int = 256
    crop: int | None = 224
    augment: str = "sfm"
    augs_per_batch: int = 10
    parameterisation: str = "pyramid"
    grow_every: int = 200
    start_res: int = 1
    decorrelate: bool = True
    init: str = "noise"
    chunk_size: int | None = None
    head_std: float = 0.01
    channels: int = 3
    seed: int = 0
    feature_batch: int = 256

    def __post_init__(self) -> None:
        check_choice("method", self.method, METHODS)
        check_int("ipc", self.ipc, 1)
        check_int("steps", self.steps, 1)
        check_float("lr", self.lr, 1e-12)
        check_int("image_size", self.image_size, 2, 4096)
        if self.crop is not None:
            check_int("crop", self.crop, 2, 4096)
        from ddlib.kernels.augment import AUGMENTS

        check_choice("augment", self.augment, sorted(AUGMENTS))
        check_int("augs_per_batch", self.augs_per_batch, 1)
        check_choice("parameterisation", self.parameterisation, PARAMETERISATIONS)
        check_int("grow_every", self.grow_every, 1)
        check_int("start_res", self.start_res, 1, self.image_size)
        check_choice("decorrelate", self.decorrelate, (True, False))
        check_choice("init", self.init, INITS)
        if self.chunk_size is not None:
            check_int("chunk_size", self.chunk_size, 1)
            if self.method != "sfm":
                raise ParamError(f"chunk_size={self.chunk_size!r} applies to method='sfm' only; use None for 'lgm'")
        check_float("head_std", self.head_std, 1e-12)
        check_choice("channels", self.channels, (1, 3))
        check_int("seed", self.seed, 0, 2**32 - 1)
        check_int("feature_batch", self.feature_batch, 1)

    @property
    def crop_size(self) -> int:
        return self.crop if self.crop is not None else self.image_size



# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------

def _aug_config(cfg: SynthConfig) -> Any:
    from ddlib.kernels.augment import AUGMENTS

    return dataclasses.replace(AUGMENTS[cfg.augment], size=cfg.crop_size)


def _generator(device: torch.device, *parts: int) -> torch.Generator:
    seed = 0
    for p in parts:
        seed = (seed * 1_000_003 + int(p)) % (2**63 - 1)
    return torch.Generator(device=device).manual_seed(seed)


def _features(backbone: Callable[[Tensor], Tensor], x: Tensor, device: torch.device) -> Tensor:
    with autocast_context(device):
        f = backbone(match_channels(x, backbone_channels(backbone)))
    return f.float()


def _chunks(n: int, chunk_size: int | None) -> list[slice]:
    size = n if chunk_size is None else chunk_size
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def sfm_backward(params: ImageParams, backbone: Callable[[Tensor], Tensor], f_real: Tensor, labels: Tensor,
                 num_classes: int, aug_cfg: Any, step_seed: tuple[int, ...], chunk_size: int | None = None,
                 two_pass: bool | None = None) -> tuple[float, Tensor]:
    """One SFM loss evaluation with gradients accumulated into ``params``; returns (loss, ŝ detached).

    The augmentation is drawn per chunk of ``chunk_size`` images (one chunk when None) with a
    generator seeded from ``step_seed`` and the chunk index. ``two_pass`` (default: chunk_size
    is not None) selects the memory-lean two-pass computation; False builds one graph over
    all chunks (the direct step). Both give the same gradient for the same draw.
    """
    from ddlib.kernels.augment import augment

    dev = params.levels[0].device
    two_pass = chunk_size is not None if two_pass is None else two_pass
    chunks = _chunks(params.num_images, chunk_size)
    counts = torch.bincount(labels, minlength=num_classes).to(dev).float()

    def views(k: int, sl: slice) -> Tensor:
        return augment(params.decode(sl), aug_cfg, generator=_generator(dev, *step_seed, k))

    if not two_pass:
        feats = torch.cat([_features(backbone, views(k, sl), dev) for k, sl in enumerate(chunks)])
        s_hat = class_means(feats, labels, num_classes)
        loss = sfm_loss(f_real, flows(s_hat))
        loss.backward()
        return float(loss.detach()), s_hat.detach()

    sums = None
    with torch.no_grad():
        for k, sl in enumerate(chunks):
            f = _features(backbone, views(k, sl), dev)
            sums = torch.zeros(num_classes, f.shape[1], device=dev) if sums is None else sums
            sums.index_add_(0, labels[sl], f)
    s_hat = (sums / counts.unsqueeze(1)).requires_grad_(True)  # type: ignore[operator]
    loss = sfm_loss(f_real, flows(s_hat))
    (grad_s,) = torch.autograd.grad(loss, s_hat)
    weight = grad_s / counts.unsqueeze(1)  # ∂loss/∂φ(x_i) = G_{y_i} / n_{y_i}
    for k, sl in enumerate(chunks):
        f = _features(backbone, views(k, sl), dev)
        (f * weight[labels[sl]]).sum().backward()
    return float(loss.detach()), s_hat.detach()


def balanced_indices(y: Tensor, num_classes: int, per_class: int, generator: torch.Generator) -> Tensor:
    """``per_class`` random indices of each class (without replacement when the class is large enough)."""
    out = []
    for c in range(num_classes):
        idx = torch.nonzero(y == c).flatten()
        if len(idx) == 0:
            raise ParamError(f"class {c} has no training images; LGM needs real images of every class")
        if len(idx) >= per_class:
            pick = idx[torch.randperm(len(idx), generator=generator)[:per_class]]
        else:
            pick = idx[torch.randint(len(idx), (per_class,), generator=generator)]
        out.append(pick)
    return torch.cat(out)


def resize_images(x: Tensor, size: int) -> Tensor:
    """uint8 or float images -> float [0, 1] at ``size``×``size`` (bilinear, antialiased when shrinking)."""
    x = to_unit(x)
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F_nn.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                            antialias=size < x.shape[-1]).clamp(0, 1)


def lgm_backward(params: ImageParams, backbone: Callable[[Tensor], Tensor], real_x: Tensor, real_y: Tensor,
                 labels: Tensor, num_classes: int, feature_dim: int, cfg: SynthConfig, aug_cfg: Any,
                 step_seed: tuple[int, ...]) -> tuple[float, Tensor]:
    """One LGM loss evaluation with gradients accumulated into ``params``; returns (loss, synthetic class means)."""
    from ddlib.kernels.augment import augment

    dev = params.levels[0].device
    g = _generator(dev, *step_seed, 0)
    w = (torch.randn(num_classes, feature_dim, generator=g, device=dev) * cfg.head_std).requires_grad_(True)
    b = torch.zeros(num_classes, device=dev, requires_grad=True)
    # real side: one augmentation per image, gradient without a graph through φ
    xr = augment(resize_images(real_x.to(dev), cfg.image_size), aug_cfg, generator=_generator(dev, *step_seed, 1))
    with torch.no_grad():
        fr = _features(backbone, xr, dev)
    g_real = linear_ce_grad(fr, real_y.to(dev), w, b, create_graph=False).detach()
    # synthetic side: augs_per_batch views of every image, gradient with a graph
    xs = params.decode().repeat(cfg.augs_per_batch, 1, 1, 1)
    ys = labels.repeat(cfg.augs_per_batch)
    fs = _features(backbone, augment(xs, aug_cfg, generator=_generator(dev, *step_seed, 2)), dev)
    g_syn = linear_ce_grad(fs, ys, w, b, create_graph=True)
    loss = lgm_loss(g_real, g_syn)
    loss.backward()
    with torch.no_grad():
        s_hat = class_means(fs.detach(), ys, num_classes)
    return float(loss.detach()), s_hat



# --------------------------------------------------------------------------------------------
# Distillation
# --------------------------------------------------------------------------------------------

def default_image_sizes(backbone_size: int) -> tuple[int, int]:
    """(image_size, crop) for a backbone that sees ``backbone_size`` px: the reference's 256 -> 224 ratio
    (8/7) for backbones of 112 px or more, the backbone's own size (no crop margin) for small ones."""
    if backbone_size >= 112:
        return round(backbone_size * 8 / 7), backbone_size
    return backbone_size, backbone_size


def _is_dataset(obj: Any) -> bool:
    return hasattr(obj, "train_x") and hasattr(obj, "train_y")


def real_init_images(x: Tensor, y: Tensor, num_classes: int, ipc: int, image_size: int, channels: int,
                     generator: torch.Generator) -> Tensor:
    """IPC random real images per class (class-major order), float [0, 1] at ``image_size``, ``channels``."""
    idx = balanced_indices(y, num_classes, ipc, generator)
    return match_channels(resize_images(x[idx], image_size), channels).contiguous()


def distill(backbone: Callable[[Tensor], Tensor], ds_or_stats: Any, cfg: SynthConfig, *,
            backbone_name: str | None = None, device: str | torch.device | None = None,
            progress: bool = True, callback: Callable[[int, dict], None] | None = None) -> dict[str, Any]:
    """Distil ``cfg.ipc`` images per class for the frozen ``backbone`` with SFM or LGM.

    ``ds_or_stats``: a :class:`ddlib.data.Dataset` (its class centres are computed once and
    cached when ``backbone_name`` is given), or, for SFM with a noise/zero init, the dict of
    :func:`ddlib.sfm.stats.dataset_stats` (then no real image is needed at all). LGM needs
    the dataset. Returns {"images" (C·IPC, ch, S, S) float [0, 1] on the CPU, "labels",
    "history" {"loss", "flow_cos", "step_time"}, "wall_time" (the optimisation loop, s),
    "stats_time" (class centres, s; 0 when given or cached), "peak_mem" (bytes, see
    :class:`PeakMemory`), "peak_mem_kind", "config", "levels"}.
    """
    if not isinstance(cfg, SynthConfig):
        raise ParamError(f"cfg must be a SynthConfig, got {type(cfg).__name__}")
    dev = get_device(device)
    is_ds = _is_dataset(ds_or_stats)
    if not is_ds and not (isinstance(ds_or_stats, dict) and "flows" in ds_or_stats):
        raise ParamError("ds_or_stats must be a ddlib Dataset or the dict of ddlib.sfm.stats.dataset_stats")
    if not is_ds and (cfg.method == "lgm" or cfg.init == "real"):
        raise ParamError(f"method={cfg.method!r} with init={cfg.init!r} needs real images: pass the Dataset, "
                         "not its statistics")
    gen = seed_everything(cfg.seed)
    if hasattr(backbone, "eval"):
        backbone.eval()  # type: ignore[union-attr]
    if hasattr(backbone, "to"):
        backbone.to(dev)  # type: ignore[union-attr]

    t0 = time.perf_counter()
    if is_ds:
        num_classes = ds_or_stats.num_classes
        if backbone_name is not None:
            stats = dataset_stats(backbone, ds_or_stats, backbone_name, cfg.feature_batch, dev, progress)
        else:
            mu = _centres_uncached(backbone, ds_or_stats, cfg.feature_batch, dev, progress)
            stats = {"centres": mu, "flows": flows(mu)}
    else:
        stats = ds_or_stats
        num_classes = int(stats["flows"].shape[0])
    stats_time = time.perf_counter() - t0
    f_real = stats["flows"].float().to(dev)
    feature_dim = int(f_real.shape[1])

    n = num_classes * cfg.ipc
    labels = torch.arange(num_classes).repeat_interleave(cfg.ipc).to(dev)
    real = None
    if cfg.init == "real":
        real = real_init_images(ds_or_stats.train_x, ds_or_stats.train_y, num_classes, cfg.ipc, cfg.image_size,
                                cfg.channels, gen)
    params = ImageParams.create(n, cfg.channels, cfg.image_size, cfg.parameterisation, cfg.init, cfg.start_res,
                                cfg.decorrelate, generator=gen, device=dev, real=real)
    opt = torch.optim.Adam(params.parameters(), lr=cfg.lr)
    aug_cfg = _aug_config(cfg)
    history: dict[str, list[float]] = {"loss": [], "flow_cos": [], "step_time": []}
    per_class = cfg.ipc * cfg.augs_per_batch
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    start = time.perf_counter()
    with PeakMemory(dev) as mem:
        for step in progress_bar(range(cfg.steps), desc=f"{cfg.method.upper()} distil", enabled=progress):
            ts = time.perf_counter()
            if step > 0 and step % cfg.grow_every == 0 and params.grow(gen):
                opt = torch.optim.Adam(params.parameters(), lr=cfg.lr)  # reset on growth, as the reference
            opt.zero_grad(set_to_none=True)
            seed = (cfg.seed, step)
            if cfg.method == "sfm":
                loss, s_hat = sfm_backward(params, backbone, f_real, labels, num_classes, aug_cfg, seed,
                                           cfg.chunk_size)
            else:
                idx = balanced_indices(ds_or_stats.train_y, num_classes, per_class, gen)
                loss, s_hat = lgm_backward(params, backbone, ds_or_stats.train_x[idx], ds_or_stats.train_y[idx],
                                           labels, num_classes, feature_dim, cfg, aug_cfg, seed)
            opt.step()
            cos = 1 - loss if cfg.method == "sfm" else float(flow_cosine(f_real, flows(s_hat)))
            history["loss"].append(loss)
            history["flow_cos"].append(cos)
            history["step_time"].append(time.perf_counter() - ts)
            if callback is not None:
                callback(step, {"loss": loss, "flow_cos": cos, "params": params})
    wall = time.perf_counter() - start
    with torch.no_grad():
        images = params.decode().detach().float().cpu()
    return {"images": images, "labels": labels.cpu(), "history": history, "wall_time": wall,
            "stats_time": stats_time, "peak_mem": mem.peak_bytes, "peak_mem_kind": mem.kind,
            "config": config_dict(cfg), "levels": [lv.shape[-1] for lv in params.levels],
            "num_classes": num_classes, "device": str(dev)}


def _centres_uncached(backbone: Callable[[Tensor], Tensor], ds: Any, batch: int, dev: torch.device,
                      progress: bool) -> Tensor:
    from ddlib.sfm.stats import class_centres

    return class_centres(backbone, ds.train_x, ds.train_y, ds.num_classes, batch, dev, progress)



def distill_cached(backbone: Callable[[Tensor], Tensor], ds: Any, cfg: SynthConfig, backbone_name: str, *,
                   device: str | torch.device | None = None, progress: bool = True,
                   use_cache: bool = True) -> dict[str, Any]:
    """:func:`distill` on a dataset, cached as an artifact keyed by (dataset, config, backbone name).

    A cached result keeps the wall time, peak memory and device of the run that made it.
    """
    from ddlib import artifacts

    key = artifacts.make_key("sfm-images", ds.key(), cfg, [backbone_name])
    res = artifacts.cached(key, lambda: distill(backbone, ds, cfg, backbone_name=backbone_name, device=device,
                                                progress=progress),
                           meta={"backbone": backbone_name, "method": cfg.method}, enabled=use_cache)
    return {**res, "key": key}
