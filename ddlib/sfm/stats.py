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


def flow_cosine(f: Tensor, f_hat: Tensor) -> Tensor:
    """Cosine between two flow matrices, flattened over the whole C×D matrix (a 0-d tensor)."""
    if f.shape != f_hat.shape:
        raise ParamError(f"flow shapes differ: {tuple(f.shape)} vs {tuple(f_hat.shape)}")
    return flat_cosine(f, f_hat)


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
        mu = class_centres(backbone, ds.train_x, ds.train_y, ds.num_classes, batch_size, device, progress)
        return {"centres": mu, "flows": flows(mu),
                "counts": torch.bincount(ds.train_y, minlength=ds.num_classes),
                "num_classes": ds.num_classes, "dataset": ds.key(), "backbone": backbone_name}

    stats = artifacts.cached(key, compute, meta={"dataset": ds.key(), "backbone": backbone_name},
                             enabled=use_cache)
    return {**stats, "key": key}
