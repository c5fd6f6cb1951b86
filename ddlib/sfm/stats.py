"""Dataset statistics for Statistical Flow Matching: class centres and statistical flows.

SFM needs the real data only once: the class centres μ_c (mean backbone feature of class c,
not normalised) from one batched pass over the training set, and the statistical flows

    F_c = mean_{c' != c} μ_{c'} − μ_c          (from the class centre to the other centres).

Both are cached artifacts keyed by the dataset key and the backbone name, so every IPC, seed
and step count of a distillation reuses them.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ddlib import artifacts
from ddlib.losses import flat_cosine
from ddlib.utils import ParamError, check_int, get_device, progress as progress_bar, to_unit

__all__ = ["autocast_context", "match_channels", "backbone_channels", "class_means", "class_centres", "flows",
           "reference_flows", "flow_cosine", "view_flow_cosines", "dataset_stats"]


def autocast_context(device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision for feature passes: bf16 autocast on CUDA (fp16 where bf16 is unsupported), none on CPU."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def match_channels(x: Tensor, channels: int | None) -> Tensor:
    """Repeat a grey batch to 3 channels (or average RGB to grey) when the backbone expects the other."""
    if channels is None or x.shape[1] == channels:
        return x
    if x.shape[1] == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1)
    if x.shape[1] == 3 and channels == 1:
        return x.mean(dim=1, keepdim=True)
    raise ParamError(f"images with {x.shape[1]} channels cannot feed a backbone expecting {channels}")


def backbone_channels(backbone: Any) -> int | None:
    """The input channels a backbone declares (attribute ``in_channels``); None = feed images as they are."""
    c = getattr(backbone, "in_channels", None)
    return None if c is None else int(c)


def class_means(features: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Per-class mean of ``features`` (N, D) -> (C, D); classes with no sample raise ParamError."""
    counts = torch.bincount(labels, minlength=num_classes)
    if bool((counts == 0).any()):
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ParamError(f"classes {missing} have no samples; every class in range(num_classes={num_classes}) needs one")
    sums = torch.zeros(num_classes, features.shape[1], dtype=features.dtype, device=features.device)
    sums = sums.index_add(0, labels, features)
    return sums / counts.to(features.dtype).unsqueeze(1)


@torch.no_grad()
def class_centres(backbone: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, num_classes: int,
                  batch_size: int = 256, device: str | torch.device | None = None,
                  progress: bool = False) -> Tensor:
    """Class centres μ_c = mean of φ(x) over class c, (C, D) float32 on the CPU, in one batched no-grad pass.

    ``x`` is uint8 (N, C, H, W) or float in [0, 1]; batches are moved to ``device`` and run under
    bf16/fp16 autocast on CUDA; sums accumulate in float32.
    """
    num_classes = check_int("num_classes", num_classes, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    if len(x) != len(y):
        raise ParamError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    dev = get_device(device)
    y = y.long()
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ParamError(f"labels must lie in [0, num_classes={num_classes}), got [{int(y.min())}, {int(y.max())}]")
    channels = backbone_channels(backbone)
    sums: Tensor | None = None
    for start in progress_bar(range(0, len(x), batch_size), desc="class centres", enabled=progress):
        xb = to_unit(x[start:start + batch_size].to(dev, non_blocking=True))
        with autocast_context(dev):
            f = backbone(match_channels(xb, channels))
        f = f.float()
        if sums is None:
            sums = torch.zeros(num_classes, f.shape[1], device=dev)
        sums.index_add_(0, y[start:start + batch_size].to(dev), f)
    if sums is None:
        raise ParamError("x is empty; class centres need at least one image per class")
    counts = torch.bincount(y, minlength=num_classes)
    if bool((counts == 0).any()):
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ParamError(f"classes {missing} have no training images; every class needs one")
    return (sums / counts.to(dev).float().unsqueeze(1)).cpu()


def flows(centres: Tensor) -> Tensor:
    """Statistical flows F_c = mean_{c' != c} μ_{c'} − μ_c for all classes at once; (C, D) -> (C, D).

    Vectorised: with S = Σ_c μ_c, mean_{c' != c} μ_{c'} = (S − μ_c) / (C − 1).
    """
    if centres.dim() != 2 or centres.shape[0] < 2:
        raise ParamError(f"centres must be (C, D) with C >= 2 classes, got shape {tuple(centres.shape)}")
    c = centres.shape[0]
    return (centres.sum(dim=0, keepdim=True) - centres) / (c - 1) - centres


def reference_flows(class_means_: Tensor, ipc: int) -> Tensor:
    """The synthetic flows as the SFM reference code forms them (``get_flow`` of ``distillation/linear_gm.py``):
    class means μ̂_c, then (Σ_{c'≠c} μ̂_{c'}) / (N − 1) − μ̂_c with N = C·IPC; (C, D) -> (C, D).

    For IPC 1 this is :func:`flows`. For IPC > 1 the other classes' sum is divided by C·IPC − 1 instead of
    C − 1: with centres μ_c = m + δ_c (m their mean, Σ δ_c = 0) it is
    m·(C − N)/(N − 1) − δ_c·N/(N − 1) against the dataset's −δ_c·C/(C − 1), so the common component m,
    absent from the dataset flows, enters, and the direction changes even when μ̂_c = μ_c.
    """
    ipc = check_int("ipc", ipc, 1)
    if class_means_.dim() != 2 or class_means_.shape[0] < 2:
        raise ParamError(f"class means must be (C, D) with C >= 2, got shape {tuple(class_means_.shape)}")
    n = class_means_.shape[0] * ipc
    return (class_means_.sum(dim=0, keepdim=True) - class_means_) / (n - 1) - class_means_


def flow_cosine(f: Tensor, f_hat: Tensor) -> Tensor:
    """Cosine between two flow matrices, flattened over the whole C×D matrix (a 0-d tensor)."""
    if f.shape != f_hat.shape:
        raise ParamError(f"flow shapes differ: {tuple(f.shape)} vs {tuple(f_hat.shape)}")
    return flat_cosine(f, f_hat)


@torch.no_grad()
def view_flow_cosines(backbone: Callable[[Tensor], Tensor], images: Tensor, labels: Tensor, f_real: Tensor,
                      aug_cfg: Any, views: int = 32, seed: int = 0, batch_size: int = 256,
                      device: str | torch.device | None = None) -> dict[str, Any]:
    """The flow cosine of a synthetic set measured on fixed evaluation views, the same for every set of its size.

    View v of every image is drawn by ``augment(images, aug_cfg)`` with a generator seeded ``seed + v`` (so two
    sets of C·IPC images get the same crop boxes, flips and noise). Returns ``per_view`` (the cosine of
    ``flows`` of one view per image, for each of the ``views`` views: what an SFM-1 step sees, as a list),
    ``per_view_mean`` and ``per_view_std`` over views, ``mean_view`` (the cosine of the flows of each image's
    feature averaged over all views: what SFM-k sees as k grows) and ``clean`` (the un-augmented images).
    """
    from ddlib.kernels.augment import augment

    views = check_int("views", views, 1)
    dev = get_device(device)
    images, labels = to_unit(images).to(dev), labels.long().to(dev)
    num_classes, channels = int(f_real.shape[0]), backbone_channels(backbone)
    f_real = f_real.float().to(dev)

    def feats(x: Tensor) -> Tensor:
        out = []
        for s in range(0, len(x), batch_size):
            with autocast_context(dev):
                out.append(backbone(match_channels(x[s:s + batch_size], channels)).float())
        return torch.cat(out)

    def cos(f: Tensor) -> float:
        return float(flow_cosine(f_real, flows(class_means(f, labels, num_classes))))

    per_view, total = [], None
    for v in range(views):
        f = feats(augment(images, aug_cfg, generator=torch.Generator().manual_seed(seed + v)))
        per_view.append(cos(f))
        total = f if total is None else total + f
    pv = torch.tensor(per_view, dtype=torch.float64)
    return {"per_view": per_view, "per_view_mean": float(pv.mean()),
            "per_view_std": float(pv.std()) if views > 1 else 0.0, "mean_view": cos(total / views),
            "clean": cos(feats(images)), "views": views, "seed": seed}


def dataset_stats(backbone: Callable[[Tensor], Tensor], ds: Any, backbone_name: str, batch_size: int = 256,
                  device: str | torch.device | None = None, progress: bool = False,
                  use_cache: bool = True) -> dict[str, Any]:
    """Centres, flows and class counts of ``ds``'s training set under ``backbone``, as a cached artifact.

    The key is (stage "sfm-stats", ``ds.key()``, ``backbone_name``): name the backbone precisely
    (e.g. "efficientnet-lite0", "timm:vit_base_patch16_224", "inhouse:<encoder key>") since its
    weights are not hashed. Returns {"centres", "flows", "counts", "num_classes", "dataset",
    "backbone", "key"} with CPU tensors.
    """
    key = artifacts.make_key("sfm-stats", ds.key(), {"backbone": backbone_name})

    def compute() -> dict[str, Any]:
        # the clean training features are one cached bank (ddlib.features), shared with the golden head and the
        # centroid baseline: one backbone pass over the training set for all three
        from ddlib.features import view_bank

        if not isinstance(backbone, torch.nn.Module):
            mu = class_centres(backbone, ds.train_x, ds.train_y, ds.num_classes, batch_size, device, progress)
        else:
            feats = view_bank(backbone, ds, split="train", batch_size=batch_size, device=device)[0]
            mu = class_means(feats.float(), ds.train_y.long(), ds.num_classes)
        return {"centres": mu, "flows": flows(mu),
                "counts": torch.bincount(ds.train_y, minlength=ds.num_classes),
                "num_classes": ds.num_classes, "dataset": ds.key(), "backbone": backbone_name}

    stats = artifacts.cached(key, compute, meta={"dataset": ds.key(), "backbone": backbone_name},
                             enabled=use_cache)
    return {**stats, "key": key}
