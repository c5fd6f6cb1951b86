"""The one registry of data sets (:data:`DATASETS`, collected from each family's ``ENTRIES``), the one parser of
dataset names (``name`` or ``name:PATH``), and :func:`load`, which checks every input before any work."""
from __future__ import annotations

from typing import Any

from ddlib.data import builtin, cifar, folder, idx, imagenet
from ddlib.data.core import Dataset, DatasetEntry, subsample
from ddlib.utils import ParamError, check_int

__all__ = ["DATASETS", "PATH_PREFIXES", "split_name", "parse_name", "available", "validate_name", "load", "sources"]

#: every data set, by name; a family's module lists its entries in ENTRIES (a new data set: one entry there)
DATASETS: dict[str, DatasetEntry] = {e.name: e for m in (builtin, idx, cifar, folder, imagenet) for e in m.ENTRIES}
PATH_PREFIXES = tuple(n for n, e in DATASETS.items() if e.path != "none")
NOT_IN_SPEC = ("download", "stream")  # how to get the data, not which data: not part of the dataset's spec


def split_name(name: str) -> tuple[str, str | None]:
    """(registry name, path or None) of a dataset name, without checking it: ``'cifar10:/d/c.tar.xz'`` ->
    ``('cifar10', '/d/c.tar.xz')``; a name without a path-taking prefix is returned whole, ``('digits', None)``.
    The one place the ``name:PATH`` form is read (records' labels and the KD table use it too)."""
    head, sep, rest = str(name).partition(":")
    if sep and head in PATH_PREFIXES:
        return head, rest
    return str(name), None


def available() -> list[str]:
    """Every accepted dataset name; ``X:PATH`` for those that take a path."""
    out = []
    for n, e in DATASETS.items():
        out += {"none": [n], "optional": [n, f"{n}:PATH"], "required": [f"{n}:PATH"]}[e.path]
    return out


def parse_name(name: Any) -> tuple[DatasetEntry, str | None]:
    """The registry entry and path of a dataset name, or a :class:`ParamError` naming the accepted names."""
    if not isinstance(name, str) or not name:
        raise ParamError(f"dataset={name!r} must be a non-empty string; choose one of {available()}")
    head, path = split_name(name)
    entry = DATASETS.get(head)
    if entry is None:
        prefix = head.partition(":")[0]
        if prefix in DATASETS:
            raise ParamError(f"dataset={name!r}: {prefix} takes no path; choose one of {available()}")
        raise ParamError(f"dataset={name!r} is not known; choose one of {available()}")
    if path == "" or (path is None and entry.path == "required"):
        raise ParamError(f"dataset={name!r} needs a path: {entry.name}:PATH ({entry.needs})")
    return entry, path


def validate_name(name: str) -> str:
    """Return ``name`` if it is a registry name or a ``prefix:PATH`` form, else raise :class:`ParamError`."""
    parse_name(name)
    return name


def load(name: str, per_class: int | None = None, seed: int = 0, test_per_class: int | None = None,
         **options: Any) -> Dataset:
    """Load dataset ``name`` (see :func:`available`), optionally subsampled per class with ``seed``.

    ``per_class`` caps training images per class, ``test_per_class`` test images per class. ``options`` go
    to the loader: ``download``; for image folders and archives ``image_size``, ``channels``, ``stream`` and
    ``skip_unreadable`` (:func:`ddlib.data.folder.load_tree`); ``size`` for ImageNette/ImageWoof; the generator
    settings of ``synthetic-patterns``. An option the data set does not take is a :class:`ParamError`
    (None counts as not given). A streamed set stays streamed when subsampled.
    """
    entry, path = parse_name(name)
    seed = check_int("seed", seed, 0, 2**32 - 1)
    if per_class is not None:
        per_class = check_int("per_class", per_class, 1)
    if test_per_class is not None:
        test_per_class = check_int("test_per_class", test_per_class, 1)
    unknown = sorted(k for k, v in options.items() if k not in entry.options and v is not None)
    if unknown:
        raise ParamError(f"{unknown[0]}={options[unknown[0]]!r} is not an option of dataset {entry.name!r}; "
                         f"it takes {list(entry.options) or 'no options'}")
    if "image_size" in entry.options and "stream" in entry.options:  # a folder's options, checked before any download
        skip = options.get("skip_unreadable")
        folder.check_tree_options(options.get("image_size"), options.get("channels"), options.get("stream"),
                                  False if skip is None else skip)
    kw = {k: v for k, v in options.items() if k in entry.options}
    if entry.path != "none":
        kw["path"] = path
    if entry.seeded:
        kw["seed"] = seed
    ds = entry(**kw)
    if per_class is not None:
        ds.train_x, ds.train_y, ds.train_patterns, ds.train_index = subsample(ds.train_x, ds.train_y, per_class, seed,
                                                                             ds.train_patterns)
    if test_per_class is not None:
        ds.test_x, ds.test_y, ds.test_patterns, _ = subsample(ds.test_x, ds.test_y, test_per_class, seed,
                                                             ds.test_patterns)
    ds.spec = {"name": name, "per_class": per_class, "test_per_class": test_per_class, "seed": seed,
               **{k: v for k, v in options.items() if k not in NOT_IN_SPEC}}
    return ds


def sources() -> list[tuple[str, str]]:
    """(dataset as written, where it would be loaded from now) for every registry entry."""
    return [(e.usage, e.where()) for e in DATASETS.values()]
