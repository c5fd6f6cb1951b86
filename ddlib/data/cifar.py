"""CIFAR-10 and CIFAR-100: torchvision's files in ``$DDLIB_DATA`` (downloaded when online), a JPEG copy beside
them (``cifar10-jpeg[.tar.xz]``), or any ImageFolder/archive given as ``cifar10:PATH``."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from ddlib.data.archives import ARCHIVE_SUFFIXES
from ddlib.data.core import TREE_OPTIONS, DataNotFoundError, Dataset, DatasetEntry, data_root
from ddlib.utils import offline
from ddlib.data.folder import load_tree

__all__ = ["ENTRIES", "CIFAR10_CLASSES", "load_cifar", "cifar_where"]

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
_TORCHVISION_FOLDER = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}


def _jpeg_copies(name: str) -> list:
    root = data_root()
    return [root / f"{name}-jpeg", *(root / f"{name}-jpeg{s}" for s in ARCHIVE_SUFFIXES)]


def cifar_where(name: str) -> str:
    """Where ``cifar10``/``cifar100`` would be read from now, or how it would be got."""
    root = data_root()
    local = [str(p) for p in (*_jpeg_copies(name), root / _TORCHVISION_FOLDER[name]) if p.exists()]
    net = "downloads are off (DDLIB_OFFLINE)" if offline() else "torchvision download"
    return local[0] if local else f"{net} to {root}; or {name}:PATH for an ImageFolder/archive"


def load_cifar(name: str, path: str | None = None, download: bool | None = None, **options: Any) -> Dataset:
    """CIFAR-10 (``name='cifar10'``) or CIFAR-100 from ``path`` (an ImageFolder or archive with that many
    classes; ``options`` as :func:`ddlib.data.folder.load_tree`), a JPEG copy in ``$DDLIB_DATA``, or torchvision."""
    n_classes = 10 if name == "cifar10" else 100
    if path:
        ds = load_tree(path, label=name, **options)
        if len(ds.classes) != n_classes:
            raise DataNotFoundError(f"{name}:{path} has {len(ds.classes)} classes in train/, expected {n_classes}")
        return dataclasses.replace(ds, name=name)
    # a JPEG/ImageFolder copy beside the other data (e.g. cifar10-jpeg.tar.xz) is used when present
    for cand in _jpeg_copies(name):
        if cand.exists():
            return dataclasses.replace(load_tree(cand, label=name, **options), name=name)
    from torchvision import datasets as tvd

    root = data_root()
    cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
    download = (not offline()) if download is None else download
    try:
        tr = cls(str(root), train=True, download=download)
        te = cls(str(root), train=False, download=download)
    except Exception as e:  # noqa: BLE001
        raise DataNotFoundError(
            f"{name}: torchvision's files were not found in {root} and "
            + ("the download failed" if download else "downloads are off (DDLIB_OFFLINE)")
            + f" ({e}). Give an ImageFolder or archive instead: '{name}:PATH' "
              f"(e.g. {name}:../shared/data/cifar10-jpeg.tar.xz), or set DDLIB_DATA.") from e

    def conv(d: object) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.from_numpy(np.asarray(d.data)).permute(0, 3, 1, 2).contiguous()  # type: ignore[attr-defined]
        return x, torch.tensor(d.targets, dtype=torch.int64)  # type: ignore[attr-defined]

    (tx, ty), (vx, vy) = conv(tr), conv(te)
    return Dataset(name, tx, ty, vx, vy, list(tr.classes), source=str(root))


ENTRIES = tuple(
    DatasetEntry(n, lambda n=n, **kw: load_cifar(n, **kw),
                 needs=f"torchvision's files (downloaded when online), a JPEG copy {n}-jpeg[.tar.xz] in $DDLIB_DATA, "
                       f"or {n}:PATH (an ImageFolder or archive)",
                 where=lambda n=n: cifar_where(n), path="optional", options=("download", *TREE_OPTIONS))
    for n in ("cifar10", "cifar100"))
