"""Features of a frozen backbone over a dataset: the clean view, and banks of augmented views (cached).

A frozen pretrained backbone is expensive on a CPU (EfficientNet-Lite0 at 112 px: tens of images
per second per core), and both families need its features of the *whole* training set: BPS's
Stage 1 on a frozen backbone trains its heads on features of augmented views (two views of each
image make a MoCo pair), and Stage 2 embeds the clean view; SFM's class centres and CI's golden head
read the clean view. Each bank is computed once and cached as an artifact keyed by the dataset,
the backbone's key (:func:`ddlib.sfm.backbones.backbone_key` sets ``ddlib_key``), the augmentation
config, the number of views and the seed, so every chapter and script that asks for the same bank
loads it.

Augmented views are drawn at the dataset's own resolution (the backbone resizes inside), view by
view, batch by batch, from one ``torch.Generator`` seeded with ``seed``: the bank is a function of
its key.
"""
from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor, nn

from ddlib import artifacts
from ddlib.kernels.augment import AugmentConfig, augment, get_augment
from ddlib.utils import ParamError, check_int, config_dict, get_device

__all__ = ["BANK_VERSION", "module_key", "view_bank"]


#: The banks' own version in their cache keys (not ddlib's): a bank depends on the backbone, the data, the
#: augmentation and the seed, not on the rest of the package; bump it when the bank computation changes.
BANK_VERSION = "0.1.0"


def module_key(bb: nn.Module) -> str:
    """A stable id of a frozen module: its ``ddlib_key`` when set, else a hash of its weights."""
    key = getattr(bb, "ddlib_key", None)
    if key:
        return str(key)
    h = hashlib.sha256(type(bb).__name__.encode())
    for name, t in sorted(bb.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return f"weights-{h.hexdigest()[:24]}"


@torch.no_grad()
def _embed(backbone: nn.Module, x: Tensor, batch_size: int, device: torch.device,
           aug: AugmentConfig | None, generator: torch.Generator | None, dtype: torch.dtype) -> Tensor:
    out = []
    amp = device.type == "cuda"
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        xb = xb.float().div_(255) if xb.dtype == torch.uint8 else xb.float()
        if aug is not None:
            xb = augment(xb, aug, generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            f = backbone(xb.to(device))
        out.append(f.float().cpu().to(dtype))
    return torch.cat(out) if out else torch.zeros(0, int(getattr(backbone, "feature_dim", 0)), dtype=dtype)


def view_bank(backbone: nn.Module, ds: Any, *, split: str = "train", augment_cfg: AugmentConfig | str | None = None,
              views: int = 1, seed: int = 0, batch_size: int = 256, device: torch.device | str | None = None,
              half: bool = False, cache: bool = True) -> Tensor:
    """Features ``(views, N, D)`` of ``views`` augmented views of every image of a split (cached).

    ``augment_cfg=None`` gives the clean view (then ``views`` must be 1). ``half=True`` stores float16
    (half the memory of a 50,000 × 1,280 bank; features are read back as float32 by the caller).
    """
    if split not in ("train", "test"):
        raise ParamError(f"split={split!r} is not accepted; choose 'train' or 'test'")
    views = check_int("views", views, 1, 1000)
    aug = get_augment(augment_cfg)
    if aug is None and views != 1:
        raise ParamError(f"views={views} needs an augmentation (augment_cfg); the clean view is one view")
    dev = get_device(device)
    x = ds.train_x if split == "train" else ds.test_x
    dtype = torch.float16 if half else torch.float32
    cfg = {"split": split, "augment": None if aug is None else config_dict(aug), "views": views, "seed": seed,
           "half": half}
    key = artifacts.make_key("view-features", ds.key(), cfg, [module_key(backbone)], version=BANK_VERSION)

    def compute() -> Tensor:
        backbone.to(dev).eval()
        g = torch.Generator().manual_seed(seed)
        return torch.stack([_embed(backbone, x, batch_size, dev, aug, g, dtype) for _ in range(views)])

    return artifacts.cached(key, compute, meta={"split": split, "backbone": module_key(backbone), "n": len(x),
                                                "views": views}, enabled=cache)
