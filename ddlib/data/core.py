"""The :class:`Dataset` every loader returns, the data errors, where data lives, and what works on any dataset
(per-class subsampling, positions between subsamples, float conversion)."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ddlib.utils import ParamError, to_unit

__all__ = ["Dataset", "DatasetEntry", "TREE_OPTIONS", "DataNotFoundError", "UnreadableDataError", "DataLoadWarning",
           "data_root", "subsample", "positions_in", "to_float"]


class DataNotFoundError(FileNotFoundError):
    """The data could not be found or used; the message lists where ddlib looked and how to get it."""


class UnreadableDataError(DataNotFoundError):
    """A data file was found but cannot be read: a corrupt or truncated image, archive or IDX file.

    The message names the file (and the member inside an archive) and what to do. A subclass of
    :class:`DataNotFoundError` (so of ``FileNotFoundError``): every handler of missing data catches it.
    """


class DataLoadWarning(UserWarning):
    """A loader skipped files or changed images (e.g. greyscale made RGB); ``Dataset.report`` has the counts."""


@dataclass
class Dataset:
    """Images as uint8 (N, C, H, W), labels as int64, class names, and where they came from.

    ``train_x``/``test_x`` are tensors, or for a streamed folder an :class:`ddlib.data.stream.ImageStore`
    (indexed like the tensor, decoding from disk). ``report`` is the loader's account of the files it
    read, skipped or converted (empty for the built-in sets).
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    source: str
    spec: dict = field(default_factory=dict)
    train_patterns: torch.Tensor | None = None  # known sub-pattern ids (synthetic-patterns only)
    train_index: torch.Tensor | None = None     # positions in the loader's whole training split (None: all of it)
    test_patterns: torch.Tensor | None = None
    report: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def streamed(self) -> bool:
        """Whether the training images are read from disk when indexed (an ImageStore) rather than held."""
        return not isinstance(self.train_x, torch.Tensor)

    @property
    def mean(self) -> torch.Tensor:
        """Per-channel mean of the training images in [0, 1] (streamed: of an even sample, see ImageStore)."""
        if self.streamed:
            return self.train_x.channel_stats()[0]  # type: ignore[attr-defined]
        return self.train_x.float().mean(dim=(0, 2, 3)) / 255

    @property
    def std(self) -> torch.Tensor:
        """Per-channel standard deviation of the training images in [0, 1] (at least 1e-3)."""
        if self.streamed:
            return self.train_x.channel_stats()[1]  # type: ignore[attr-defined]
        return (self.train_x.float() / 255).std(dim=(0, 2, 3)).clamp_min(1e-3)

    def key(self) -> str:
        """A short stable identifier of this dataset (name, subsampling and content) for cache keys."""
        h = hashlib.sha256()
        for t in (self.train_y, self.test_y):
            h.update(t.numpy().tobytes())
        if self.streamed:  # the files (paths, sizes, times) and the decoding, not 64 decoded images
            h.update(self.train_x.fingerprint().encode())  # type: ignore[attr-defined]
        else:
            h.update(self.train_x[:: max(1, len(self.train_x) // 64)].numpy().tobytes())
        return f"{self.spec}|{h.hexdigest()[:16]}"

    def class_counts(self) -> dict[str, tuple[int, int]]:
        """Per class: (train count, test count)."""
        tr = torch.bincount(self.train_y, minlength=self.num_classes).tolist()
        te = torch.bincount(self.test_y, minlength=self.num_classes).tolist()
        return {c: (a, b) for c, a, b in zip(self.classes, tr, te)}


#: the options of every loader that reads an image folder or archive (see ddlib.data.folder.load_tree)
TREE_OPTIONS = ("image_size", "channels", "stream", "skip_unreadable")


@dataclass(frozen=True)
class DatasetEntry:
    """One data set of the registry: its loader, whether a name takes a ``:PATH`` (``path``: 'none',
    'optional' or 'required'), the options the loader accepts, what a user must provide (``needs``, one
    line) and where it would be loaded from now (``where()``, for ``python -m ddlib datasets``).
    ``seeded``: the loader takes the load's ``seed`` (a generated set). Calling the entry calls the loader."""

    name: str
    loader: Callable[..., Dataset]
    needs: str
    where: Callable[[], str]
    path: str = "none"
    options: tuple[str, ...] = ()
    seeded: bool = False

    def __call__(self, **kw: Any) -> Dataset:
        return self.loader(**kw)

    @property
    def usage(self) -> str:
        """How the name is written: ``digits``, ``imagefolder:PATH``, ``cifar10[:PATH]``."""
        return {"none": self.name, "optional": f"{self.name}[:PATH]", "required": f"{self.name}:PATH"}[self.path]


def data_root() -> Path:
    """Where ddlib looks for and downloads data: ``$DDLIB_DATA`` or ``~/.cache/ddlib/data``."""
    return Path(os.environ.get("DDLIB_DATA") or Path.home() / ".cache" / "ddlib" / "data")


def subsample(x: torch.Tensor, y: torch.Tensor, per_class: int, seed: int, extra: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """At most ``per_class`` samples of each class, drawn with ``seed``; returns (x, y, extra, kept indices).

    A streamed ``x`` (an ImageStore) stays streamed: its subset is taken, nothing is decoded."""
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        keep.append(idx[torch.randperm(len(idx), generator=g)[:per_class]].sort().values)
    k = torch.cat(keep).sort().values
    xs = x[k] if isinstance(x, torch.Tensor) else x.subset(k)  # type: ignore[attr-defined]
    return xs, y[k], (extra[k] if extra is not None else None), k


def positions_in(sub: Dataset, full: Dataset) -> torch.Tensor:
    """For each training image of ``sub``, its position in ``full``'s training set, when both were loaded
    from the same data (``sub`` a per-class subsample of it or equal to it): e.g. to read a score computed
    on the full training set (a teacher's forgetting counts) for the images of a selection pool."""
    a = torch.arange(len(sub.train_y)) if sub.train_index is None else sub.train_index
    if full.train_index is None:
        pos = a
    else:
        where = {int(i): j for j, i in enumerate(full.train_index.tolist())}
        missing = [int(i) for i in a.tolist() if int(i) not in where]
        if missing:
            raise ParamError(f"{len(missing)} training images of {sub.spec} are not in {full.spec}; "
                             "the larger set must contain the smaller one (same data, same seed)")
        pos = torch.tensor([where[int(i)] for i in a.tolist()], dtype=torch.long)
    if len(pos) and (int(pos.max()) >= len(full.train_y) or not torch.equal(full.train_y[pos], sub.train_y)):
        raise ParamError(f"the training images of {sub.spec} do not line up with those of {full.spec}")
    return pos


def to_float(x: torch.Tensor, mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 images -> float in [0, 1], standardised per channel when ``mean``/``std`` are given."""
    out = to_unit(x)
    if mean is not None and std is not None:
        out = (out - mean.to(out.device).view(1, -1, 1, 1)) / std.to(out.device).view(1, -1, 1, 1)
    return out
