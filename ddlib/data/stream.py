"""A lazy image store: the uint8 images (N, C, H, W) of a folder data set, decoded from disk when indexed,
so that a data set of ImageNet's size never sits in memory. It stands where the library uses ``ds.train_x``."""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddlib.data.images import decode
from ddlib.utils import ParamError

__all__ = ["ImageStore", "STATS_SAMPLE", "EXACT_STATS_BYTES"]

STATS_SAMPLE = 2048  # images (evenly spaced) that a streamed set's per-channel mean/std are read from
#: a set this small (decoded, uint8) is decoded whole for its mean/std, which then equal the in-memory Dataset's bit for
#: bit; its float copies take 8 times as much for a moment
EXACT_STATS_BYTES = 4 * 2**20


class _Names:
    """Many relative file names held compactly: one UTF-8 buffer and the offsets into it."""

    def __init__(self, names: Sequence[str]) -> None:
        enc = [n.encode() for n in names]
        self.blob = b"".join(enc)
        self.offsets = np.zeros(len(enc) + 1, dtype=np.int64)
        np.cumsum([len(e) for e in enc], out=self.offsets[1:])

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return self.blob[self.offsets[i]:self.offsets[i + 1]].decode()

    def take(self, positions: np.ndarray) -> _Names:
        return _Names([self[int(i)] for i in positions])


class ImageStore:
    """uint8 images (N, C, H, W) read from files under ``root`` when indexed; no image is kept in memory.

    Behaves like the image tensor where the library reads ``ds.train_x``: ``len``, ``.shape``, ``.dtype``,
    ``.dim()``, and indexing by an int, a slice, a list, a NumPy array or a tensor of positions (or a bool
    mask) returns the decoded images as a uint8 tensor. :meth:`subset` gives a lazy store of some images
    (per-class subsampling stays lazy). Every image is converted to ``channels`` and, with ``image_size``,
    resized (shorter side) and centre-cropped to a square, exactly as the in-memory loader does. Whole-set
    conversions (``.float()``, ``.numpy()``, ``.to()``...) are refused: they would decode everything.
    """

    def __init__(self, root: str | Path, names: Sequence[str] | _Names, channels: int, size: tuple[int, int],
                 image_size: int | None, tag: str = "") -> None:
        self.root = Path(root)
        self.names = names if isinstance(names, _Names) else _Names(list(names))
        self.channels, self.hw, self.image_size, self.tag = int(channels), (int(size[0]), int(size[1])), image_size, tag
        self._stats: tuple[torch.Tensor, torch.Tensor] | None = None

    # ---- the tensor's face
    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), self.channels, *self.hw))

    def size(self, dim: int | None = None) -> Any:
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return 4

    ndim = property(dim)
    dtype = torch.uint8
    device = torch.device("cpu")

    def is_floating_point(self) -> bool:
        return False

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        c, h, w = self.shape[1:]
        return f"ImageStore({len(self)} images {c}x{h}x{w} streamed from {self.root})"

    def __getitem__(self, key: Any) -> torch.Tensor:
        if isinstance(key, (int, np.integer)) or (isinstance(key, torch.Tensor) and key.dim() == 0):
            return torch.from_numpy(np.array(self._decode(self._positions(int(key))[0])))
        pos = self._positions(key)
        if len(pos) == 0:
            return torch.empty((0, *self.shape[1:]), dtype=torch.uint8)
        return torch.from_numpy(np.stack([self._decode(int(i)) for i in pos]))

    def subset(self, key: Any) -> ImageStore:
        """A lazy store of the images at ``key`` (positions, a slice or a bool mask), nothing decoded."""
        return ImageStore(self.root, self.names.take(self._positions(key)), self.channels, self.hw,
                          self.image_size, self.tag)

    # ---- what a dataset needs
    def fingerprint(self) -> str:
        """A stable identifier of these images: the index they came from, the file names, the decoding."""
        h = hashlib.sha256(f"{self.tag}|{self.channels}|{self.hw}|{self.image_size}|".encode())
        h.update(self.names.blob)
        h.update(self.names.offsets.tobytes())
        return h.hexdigest()[:16]

    def channel_stats(self, sample: int = STATS_SAMPLE, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel (mean, std) in [0, 1] of ``sample`` evenly spaced images (all when fewer), read in
        batches; std at least 1e-3, as ``Dataset.std``. Computed once per store. A set of at most ``sample``
        images and :data:`EXACT_STATS_BYTES` is decoded whole and gives the in-memory Dataset's numbers exactly,
        so a model normalised with them is the in-memory one bit for bit."""
        if self._stats is None:
            n = len(self)
            if n == 0:
                raise ParamError("the streamed image set is empty; mean and std need at least one image")
            if n <= sample and n * self.channels * self.hw[0] * self.hw[1] <= EXACT_STATS_BYTES:
                x = self[:].float()
                self._stats = (x.mean(dim=(0, 2, 3)) / 255, (x / 255).std(dim=(0, 2, 3)).clamp_min(1e-3))
                return self._stats
            pos = np.unique(np.linspace(0, n - 1, min(n, sample)).round().astype(np.int64))
            s = torch.zeros(self.channels, dtype=torch.float64)
            s2 = torch.zeros(self.channels, dtype=torch.float64)
            for i in range(0, len(pos), batch):
                xb = self[pos[i:i + batch]].float().div_(255)
                s += xb.sum(dim=(0, 2, 3), dtype=torch.float64)
                s2 += xb.square_().sum(dim=(0, 2, 3), dtype=torch.float64)
            count = len(pos) * self.hw[0] * self.hw[1]
            mean = s / count
            var = (s2 - count * mean * mean) / max(count - 1, 1)
            self._stats = (mean.float(), var.clamp_min(0).sqrt().float().clamp_min(1e-3))
        return self._stats

    # ---- internals
    def _positions(self, key: Any) -> np.ndarray:
        n = len(self)
        if isinstance(key, slice):
            return np.arange(n)[key]
        if isinstance(key, torch.Tensor):
            key = key.cpu().numpy()
        arr = np.asarray(key)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise IndexError(f"a bool mask of shape {arr.shape} cannot index {n} images")
            return np.nonzero(arr)[0]
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise IndexError(f"images are indexed by integers, a slice or a bool mask; got {arr.dtype}")
        arr = arr.astype(np.int64).reshape(-1)
        if arr.size and (arr.min() < -n or arr.max() >= n):
            raise IndexError(f"index out of range for {n} images (got {int(arr.min())}..{int(arr.max())})")
        return np.where(arr < 0, arr + n, arr)

    def _decode(self, i: int) -> np.ndarray:
        path = self.root / self.names[i]
        arr = decode(path, self.image_size, str(path), self.channels)
        if arr.shape[1:] != self.hw:
            from ddlib.data.core import UnreadableDataError

            raise UnreadableDataError(f"imagefolder: {path} is {arr.shape[2]}x{arr.shape[1]} px, not the "
                                      f"{self.hw[1]}x{self.hw[0]} px it had when the folder was indexed; the file "
                                      "changed: load the data set again (or give image_size=N to resize every image)")
        return arr

    def _whole(self, op: str) -> Any:
        raise ParamError(f"{op}() would decode all {len(self)} images of a streamed data set ({self.root}) into "
                         "memory; index it in batches instead (x[idx], x[i:j]), or load it with stream=False")

    def float(self, *_: Any, **__: Any) -> Any:
        return self._whole("float")

    def numpy(self, *_: Any, **__: Any) -> Any:
        return self._whole("numpy")

    def to(self, *_: Any, **__: Any) -> Any:
        return self._whole("to")

    def clone(self, *_: Any, **__: Any) -> Any:
        return self._whole("clone")

    def contiguous(self, *_: Any, **__: Any) -> Any:
        return self._whole("contiguous")

    def flatten(self, *_: Any, **__: Any) -> Any:
        return self._whole("flatten")

    def __array__(self, *_: Any, **__: Any) -> Any:
        return self._whole("__array__")
