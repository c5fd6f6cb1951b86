"""Synthetic images for a frozen backbone: Statistical Flow Matching (SFM) and Linear Gradient Matching (LGM).

Both methods share the image parameterisation (:class:`ImageParams`: a Laplacian-style pyramid
or plain pixels, colour decorrelation, ``sigmoid(2x)`` decode) and the differentiable
augmentation (``AUGMENTS["sfm"]``: RandomResizedCrop(0.08–1), flip, Gaussian noise), so a
comparison between them isolates the loss.

SFM (``method="sfm"``)
    Per step: augment each synthetic image k = ``augs_per_batch`` times (SFM-k; k = 1 by default, the
    paper's SFM), average each image's features over its k views, average those per class to ŝ_c, form
    the synthetic flows F̂_c = mean_{c'≠c} ŝ_{c'} − ŝ_c and minimise 1 − cos(vec F, vec F̂)
    over the whole C×D matrix, where F are the dataset's statistical flows (:mod:`ddlib.sfm.stats`).
    No real image is touched while distilling.

    *Departure from the reference:* the reference code forms class means ŝ_c but divides the sum of the
    *other* classes' means by N − 1 with N = C·IPC, where the mean over the other classes divides by
    C − 1 (as its dataset flows do). For IPC > 1 this shrinks the non-target term against the target
    one, and since backbone features share a large common component the synthetic flow then points
    elsewhere than the dataset flow even when ŝ_c = μ_c exactly (:func:`ddlib.sfm.stats.reference_flows`;
    chapter 3 computes the cosine). We divide by C − 1, which is what the derivation from LGM's
    zero-head gradient gives (see below) and is right for any IPC.

    *Beyond the reference (memory):* the loss depends on the images only through ŝ (C×D).
    With ``chunk_size`` set, pass 1 runs the backbone without a graph in chunks to get ŝ and
    G = ∂loss/∂ŝ; pass 2 re-runs each chunk with a graph and back-propagates the surrogate
    Σ_i ⟨φ(aug(x_i)), G_{y_i}/n_{y_i}⟩, whose gradient w.r.t. the images equals the full one.
    Both passes use the same augmentation draw (a generator per chunk, seeded from
    (seed, step, chunk)), so the activations' peak memory is set by the chunk size, not by C·IPC;
    the images' own state (pyramid levels, their gradients and Adam's two moments:
    :func:`ddlib.sfm.params.pyramid_state_bytes`, about 4 MiB per 256-px RGB image) still grows
    with C·IPC whatever the chunking. The augmentation is always drawn chunk by chunk (one chunk when
    ``chunk_size`` is None), so a chunked run sees other views than the direct run: the two follow the same
    loss on two augmentation streams, and their images differ as runs of two seeds do (with the same chunks,
    one graph and the two passes give the same run: ``tests/test_sfm.py``; on chapter 3's settings the two
    final sets cannot be told apart on fixed evaluation views: ``results/sfm_flow_cosine_cpu.json``).

LGM (``method="lgm"``)
    Per step: a fresh head W ~ N(0, 0.01²), b = 0; a class-balanced real batch of IPC·C·augs
    images (IPC·augs per class, :class:`BalancedSampler`; the reference draws a shuffled, not
    balanced, batch), each augmented once, ∇_{W,b} CE without a graph; the synthetic images repeated
    ``augs_per_batch`` times (10 by default) and augmented, ∇_{W,b} CE with ``create_graph``; loss =
    1 − cos(vec g_real, vec g_syn), back-propagated through φ to the images.

At a zero head and with a balanced batch, ∇_W CE has rows (C−1)/C² · (mean_{c'≠c} z̄_{c'} − z̄_c)
and ∇_b CE = 0 (z̄_c: the batch's class means of φ), so with dataset means in place of batch
means it is (C−1)/C² · F: SFM is LGM without the real images and the random heads.

This module holds the configuration, the two steps (:func:`sfm_backward`, :func:`lgm_backward`) and
the optimisation loop over the images (:func:`distill`: Adam on the pyramid levels, reset when the
pyramid grows; not :func:`ddlib.train.loop`, which trains models). Elsewhere: the image
parameterisation in :mod:`ddlib.sfm.params`, LGM's balanced real batches and the real initialisation in
:mod:`ddlib.sfm.real`, the losses (:func:`~ddlib.losses.sfm_loss`,
:func:`~ddlib.losses.lgm_loss`, :func:`~ddlib.losses.linear_ce_grad`) in :mod:`ddlib.losses`, saving
and loading a synthetic set in :mod:`ddlib.sfm.sets`, the peak-memory meter in
:class:`ddlib.utils.PeakMemory` (each name is also importable from here).
"""
from __future__ import annotations

import contextlib

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ddlib.losses import lgm_loss, linear_ce_grad, sfm_loss
from ddlib.sfm.params import INITS, PARAMETERISATIONS, ImageParams, pyramid_resolutions, pyramid_state_bytes
from ddlib.sfm.real import BalancedSampler, balanced_indices, real_init_images, resize_images
from ddlib.sfm.sets import load_synthetic, save_synthetic
from ddlib.sfm.stats import (autocast_context, backbone_channels, class_means, dataset_stats, flow_cosine,
                             flows, match_channels)
from ddlib.utils import (ParamError, PeakMemory, check_choice, check_float, check_int, config_dict, get_device,
                         progress as progress_bar, seed_everything)

__all__ = ["METHODS", "DEFAULT_AUGS", "SynthConfig", "sfm_backward", "lgm_backward",
           "default_image_sizes", "distill", "distill_cached", "images_key", "run_times",
           # defined elsewhere (see the module docstring), importable from here
           "ImageParams", "pyramid_resolutions", "pyramid_state_bytes", "PARAMETERISATIONS", "INITS", "save_synthetic",
           "load_synthetic", "BalancedSampler", "balanced_indices", "resize_images", "real_init_images",
           "PeakMemory", "sfm_loss", "lgm_loss", "linear_ce_grad"]

METHODS = ("sfm", "lgm")
#: ``augs_per_batch`` when not given: SFM-1 (the paper's SFM) and LGM's 10 views (the LGM code's default)
DEFAULT_AUGS = {"sfm": 1, "lgm": 10}


@dataclass(frozen=True)
class SynthConfig:
    """How to distil IPC synthetic images per class (defaults: METHODS.md §2 and the reference code).

    method: "sfm" | "lgm"; ipc: images per class (>= 1); steps: optimisation steps (5,000);
    lr: Adam learning rate (2e-3); image_size: synthetic resolution (256); crop: output size of
    the RandomResizedCrop augmentation (224; None = image_size); augment: a key of
    ``ddlib.kernels.augment.AUGMENTS`` ("sfm": flip, crop 0.08–1, the reference's Gaussian noise);
    augs_per_batch: augmented views of each synthetic image per step — SFM-k averages each image's
    features over its k views, LGM repeats the images k times and draws k times as many real images;
    None = :data:`DEFAULT_AUGS` (SFM 1, LGM 10), resolved by :meth:`resolved` (which every run, record
    and cache key uses);
    parameterisation: "pyramid" | "pixels"; grow_every: steps between pyramid levels (200);
    start_res: the coarsest level's resolution (1); decorrelate: colour decorrelation (3
    channels only); init: "noise" | "zero" | "real" (the random real images of ``seed``,
    :func:`ddlib.sfm.real.real_init_images`, decode inverted);
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
    augs_per_batch: int | None = None
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
        if self.augs_per_batch is not None:
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

    @property
    def augs(self) -> int:
        """The views per synthetic image per step: ``augs_per_batch``, or the method's default."""
        return self.augs_per_batch if self.augs_per_batch is not None else DEFAULT_AUGS[self.method]

    def resolved(self) -> SynthConfig:
        """This config with ``augs_per_batch`` set to the value used (what runs, records and keys carry)."""
        return self if self.augs_per_batch is not None else dataclasses.replace(self, augs_per_batch=self.augs)



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
                 two_pass: bool | None = None, views: int = 1) -> tuple[float, Tensor]:
    """One SFM-k loss evaluation (k = ``views``) with gradients accumulated into ``params``; returns (loss, ŝ).

    Each image's feature is the mean of φ over its ``views`` augmented views (SFM-k; 1: SFM). The
    augmentation is drawn per chunk of ``chunk_size`` images (one chunk when None; a chunk's images
    repeated ``views`` times, view-major) with a generator seeded from ``step_seed`` and the chunk
    index. ``two_pass`` (default: chunk_size is not None) selects the memory-lean two-pass
    computation; False builds one graph over all chunks (the direct step). Both give the same
    gradient for the same draw.
    """
    from ddlib.kernels.augment import augment

    dev = params.levels[0].device
    two_pass = chunk_size is not None if two_pass is None else two_pass
    chunks = _chunks(params.num_images, chunk_size)
    counts = torch.bincount(labels, minlength=num_classes).to(dev).float()

    def image_features(k: int, sl: slice) -> Tensor:
        x = params.decode(sl)
        x = x if views == 1 else x.repeat(views, 1, 1, 1)
        f = _features(backbone, augment(x, aug_cfg, generator=_generator(dev, *step_seed, k)), dev)
        return f if views == 1 else f.view(views, -1, f.shape[1]).mean(0)

    if not two_pass:
        feats = torch.cat([image_features(k, sl) for k, sl in enumerate(chunks)])
        s_hat = class_means(feats, labels, num_classes)
        loss = sfm_loss(f_real, flows(s_hat))
        loss.backward()
        return float(loss.detach()), s_hat.detach()

    sums = None
    with torch.no_grad():
        for k, sl in enumerate(chunks):
            f = image_features(k, sl)
            sums = torch.zeros(num_classes, f.shape[1], device=dev) if sums is None else sums
            sums.index_add_(0, labels[sl], f)
    s_hat = (sums / counts.unsqueeze(1)).requires_grad_(True)  # type: ignore[operator]
    loss = sfm_loss(f_real, flows(s_hat))
    (grad_s,) = torch.autograd.grad(loss, s_hat)
    weight = grad_s / counts.unsqueeze(1)  # ∂loss/∂φ(x_i) = G_{y_i} / n_{y_i}
    for k, sl in enumerate(chunks):
        f = image_features(k, sl)
        (f * weight[labels[sl]]).sum().backward()
    return float(loss.detach()), s_hat.detach()



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
    xs = params.decode().repeat(cfg.augs, 1, 1, 1)
    ys = labels.repeat(cfg.augs)
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



def distill(backbone: Callable[[Tensor], Tensor], ds_or_stats: Any, cfg: SynthConfig, *,
            backbone_name: str | None = None, device: str | torch.device | None = None,
            progress: bool = True, callback: Callable[[int, dict], None] | None = None,
            snapshots: Sequence[int] = ()) -> dict[str, Any]:
    """Distil ``cfg.ipc`` images per class for the frozen ``backbone`` with SFM or LGM.

    ``ds_or_stats``: a :class:`ddlib.data.Dataset` (its class centres are computed once and
    cached when ``backbone_name`` is given), or, for SFM with a noise/zero init, the dict of
    :func:`ddlib.sfm.stats.dataset_stats` (then no real image is needed at all). LGM needs
    the dataset. Returns {"images" (C·IPC, ch, S, S) float [0, 1] on the CPU, "labels",
    "history" {"loss", "flow_cos", "step_time"}, "wall_time" (the optimisation loop, s),
    "stats_time" (class centres, s; 0 when given or cached), "peak_mem" (bytes, see
    :class:`PeakMemory`), "peak_mem_kind", "config", "levels"}; with ``snapshots`` (step counts in
    1..steps) also "snapshots" {s: the images after s steps} (the last step's are "images").

    ``history["flow_cos"]`` is each step's own estimate, taken before the step's update and on that step's
    views: for SFM-k one minus its loss (the flows of k views per image averaged), for LGM the flows of the
    class means of its ``augs_per_batch`` views per image. The two are different estimators on different
    views (a mean over 10 views has a far higher cosine than one view), so neither a last value nor the
    curves compare SFM with LGM: score final sets on the same fixed views with
    :func:`ddlib.sfm.stats.view_flow_cosines` (``results/sfm_flow_cosine_cpu.json``).
    """
    if not isinstance(cfg, SynthConfig):
        raise ParamError(f"cfg must be a SynthConfig, got {type(cfg).__name__}")
    cfg = cfg.resolved()
    snapshots = sorted({check_int("snapshot step", s, 1, cfg.steps) for s in snapshots})
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
        real = real_init_images(ds_or_stats, cfg.ipc, cfg.image_size, cfg.channels, cfg.seed)
    params = ImageParams.create(n, cfg.channels, cfg.image_size, cfg.parameterisation, cfg.init, cfg.start_res,
                                cfg.decorrelate, generator=gen, device=dev, real=real)
    opt = torch.optim.Adam(params.parameters(), lr=cfg.lr)
    aug_cfg = _aug_config(cfg)
    history: dict[str, list[float]] = {"loss": [], "flow_cos": [], "step_time": []}
    snaps: dict[int, Tensor] = {}
    sampler = (BalancedSampler(ds_or_stats.train_y, num_classes, cfg.ipc * cfg.augs, gen) if cfg.method == "lgm"
               else None)
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
                                           cfg.chunk_size, views=cfg.augs)
            else:
                idx = sampler.draw()  # type: ignore[union-attr]
                loss, s_hat = lgm_backward(params, backbone, ds_or_stats.train_x[idx], ds_or_stats.train_y[idx],
                                           labels, num_classes, feature_dim, cfg, aug_cfg, seed)
            opt.step()
            cos = 1 - loss if cfg.method == "sfm" else float(flow_cosine(f_real, flows(s_hat)))
            history["loss"].append(loss)
            history["flow_cos"].append(cos)
            history["step_time"].append(time.perf_counter() - ts)
            if step + 1 in snapshots:
                with torch.no_grad():
                    snaps[step + 1] = params.decode().detach().float().cpu()
            if callback is not None:
                callback(step, {"loss": loss, "flow_cos": cos, "params": params})
    wall = time.perf_counter() - start
    with torch.no_grad():
        images = params.decode().detach().float().cpu()
    out = {"images": images, "labels": labels.cpu(), "history": history, "wall_time": wall,
           "stats_time": stats_time, "peak_mem": mem.peak_bytes, "peak_mem_kind": mem.kind,
           "config": config_dict(cfg), "levels": [lv.shape[-1] for lv in params.levels],
           "num_classes": num_classes, "device": str(dev)}
    if snapshots:
        out["snapshots"] = snaps
    return out


def _centres_uncached(backbone: Callable[[Tensor], Tensor], ds: Any, batch: int, dev: torch.device,
                      progress: bool) -> Tensor:
    from ddlib.sfm.stats import class_centres

    return class_centres(backbone, ds.train_x, ds.train_y, ds.num_classes, batch, dev, progress)



def images_key(ds: Any, cfg: SynthConfig, backbone_name: str, snapshots: Sequence[int] = ()) -> str:
    """The artifact key of :func:`distill_cached`: dataset, resolved config, the augmentation it names, the
    snapshot steps (when any) and the backbone's name."""
    from ddlib import artifacts
    from ddlib.kernels.augment import AUGMENTS

    cfg = cfg.resolved()
    spec: dict[str, Any] = {"config": cfg, "augment": config_dict(AUGMENTS[cfg.augment])}
    if cfg.init == "real":  # the starting images are baselines.random_real's draw of the seed (since 2026-12)
        spec["real_init"] = "random_real"
    if snapshots:
        spec["snapshots"] = sorted(set(int(s) for s in snapshots))
    return artifacts.make_key("sfm-images", ds.key(), spec, [backbone_name])


def distill_cached(backbone: Callable[[Tensor], Tensor], ds: Any, cfg: SynthConfig, backbone_name: str, *,
                   device: str | torch.device | None = None, progress: bool = True,
                   use_cache: bool = True, snapshots: Sequence[int] = ()) -> dict[str, Any]:
    """:func:`distill` on a dataset, cached as an artifact keyed by (dataset, resolved config, the augmentation
    it names, backbone name).

    The result keeps the wall time, peak memory and device of the run that made it (``wall_time``);
    ``cached`` says whether it was loaded, and ``load_s`` how long this call took. A record of a loaded
    run must not pass ``wall_time`` off as new: :func:`run_times` gives both, named.
    """
    from ddlib import artifacts

    if not isinstance(cfg, SynthConfig):
        raise ParamError(f"cfg must be a SynthConfig, got {type(cfg).__name__}")
    cfg = cfg.resolved()
    key = images_key(ds, cfg, backbone_name, snapshots)
    t0 = time.perf_counter()
    res = artifacts.load(key) if use_cache else None
    cached = res is not None
    if res is None:
        # another process distilling the same set (chapters 4 and 5 side by side): wait for it, then load
        with artifacts.computing(key) if use_cache else contextlib.nullcontext():
            res = artifacts.load(key) if use_cache else None
            cached = res is not None
            if res is None:
                res = distill(backbone, ds, cfg, backbone_name=backbone_name, device=device, progress=progress,
                              snapshots=snapshots)
                if use_cache:
                    artifacts.save(key, res, meta={"backbone": backbone_name, "method": cfg.method})
    return {**res, "key": key, "cached": cached, "load_s": time.perf_counter() - t0}


def run_times(res: dict[str, Any], elapsed_s: float | None = None) -> dict[str, Any]:
    """The times a record may write for a :func:`distill_cached` result: ``wall_s`` (this call: the run's own
    loop time when computed now, ``elapsed_s`` or ``load_s`` — about 0 — when loaded), and for a loaded
    result ``cached: True`` with the run that made it under ``original_wall_s``."""
    if res.get("cached"):
        return {"wall_s": float(res.get("load_s", 0.0) if elapsed_s is None else elapsed_s), "cached": True,
                "original_wall_s": float(res["wall_time"])}
    return {"wall_s": float(res["wall_time"]), "cached": False}
