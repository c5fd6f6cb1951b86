"""Image folders and archives to a :class:`Dataset`: ``train/<class>/**`` and ``test/<class>/**`` (or ``val/``),
read recursively as torchvision's ImageFolder does, in memory or streamed from disk (:mod:`ddlib.data.stream`).

Every file under a split folder that is not loaded is counted in ``Dataset.report`` (and a
:class:`DataLoadWarning` names the first few), and named in the error when nothing can be loaded. A
:class:`Layout` says where a data set's images and labels are; the named loaders of ImageNet-like sets
(:mod:`ddlib.data.imagenet`) are layouts of this one loader.
"""
from __future__ import annotations

import lzma
import tarfile
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddlib import artifacts
from ddlib.data.archives import ARCHIVE_SUFFIXES, Member, archive_members, folder_members, hidden, tree_fingerprint
from ddlib.data.core import TREE_OPTIONS, DataLoadWarning, DataNotFoundError, Dataset, DatasetEntry, UnreadableDataError
from ddlib.data.images import decode, header, is_image_name, majority_channels, to_channels
from ddlib.data.stream import ImageStore
from ddlib.utils import ParamError, check_choice, check_int

__all__ = ["ENTRIES", "Layout", "IMAGEFOLDER", "STREAM_ABOVE_BYTES", "load_tree", "load_imagefolder",
           "check_tree_options"]

#: a folder whose decoded images would take more than this many bytes is streamed unless ``stream=False``
STREAM_ABOVE_BYTES = 2 * 1024**3
EXAMPLES = 5  # skipped files named in a warning or an error


@dataclass(frozen=True)
class Layout:
    """Where a data set's images and labels are. A file's split folder is the first folder on its path named
    like a key of ``splits`` (its value: the split it feeds, or None for a split without labels, left out);
    its class is the next folder, at any depth below it, except in a ``flat`` split, whose images are labelled
    by the ``annotations`` file (lines ``file<TAB>class...``). Files ending in ``own_files`` belong to the
    layout (box lists, annotations) and are left out without a warning; ``side_files`` are read for
    ``class_names(folder names, {file name: bytes})``."""

    name: str = "imagefolder"
    splits: dict[str, str | None] = field(default_factory=lambda: {"train": "train", "test": "test", "val": "test"})
    flat: tuple[str, ...] = ()
    annotations: str | None = None
    own_files: tuple[str, ...] = ()
    side_files: tuple[str, ...] = ()
    class_names: Callable[[list[str], dict[str, bytes]], list[str]] | None = None


IMAGEFOLDER = Layout()


@dataclass
class _Walk:
    """What a walk over a tree found: the images to load, class folders, side files and what was left out."""

    images: list[list[Any]] = field(default_factory=list)  # [split, class (None: flat), member name, payload]
    folders: dict[str, set[str]] = field(default_factory=lambda: {"train": set(), "test": set()})
    side: dict[str, bytes] = field(default_factory=dict)
    skipped: Counter = field(default_factory=Counter)     # unexpected: warned about
    ignored: Counter = field(default_factory=Counter)     # expected by the layout: counted only
    examples: list[str] = field(default_factory=list)
    current: str = ""                                       # the member being read (for error messages)

    def skip(self, reason: str, name: str) -> None:
        self.skipped[reason] += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(name)


def _locate(name: str, layout: Layout) -> tuple[str, tuple[str, ...]] | None:
    """(split folder, the path below it) for a member under a split folder, else None."""
    parts = name.split("/")
    for i, part in enumerate(parts[:-1]):
        if part in layout.splits:
            return part, tuple(parts[i + 1:])
    return None


def _walk(members: Iterable[Member], layout: Layout, payload: Callable[[str, Callable[[], bytes]], Any],
          w: _Walk) -> _Walk:
    """Sort every member into ``w``: images (``payload(name, read)`` kept; None from it means skipped), class
    folders, side files, and files left out (counted by reason)."""
    for name, read in members:
        w.current = name
        base = name.rsplit("/", 1)[-1]
        if read is not None and base in layout.side_files + ((layout.annotations,) if layout.annotations else ()):
            w.side.setdefault(base, read())
        where = _locate(name, layout)
        if where is None:
            continue  # outside the split folders: READMEs, class lists, the archive's wrapper folder
        split_dir, rest = where
        split = layout.splits[split_dir]
        if hidden(name):
            if read is not None:
                w.ignored["hidden files"] += 1
            continue
        if read is None:  # a folder: the first one below a split folder is a class folder
            if split is not None and split_dir not in layout.flat:
                w.folders[split].add(rest[0])
            continue
        cls = None if split_dir in layout.flat or len(rest) < 2 else rest[0]
        if split is not None and cls is not None:
            w.folders[split].add(cls)  # a class folder, even if none of its files is an image
        if split is None:
            w.ignored[f"{split_dir}/ (no labels)"] += 1
        elif base.endswith(layout.own_files) and layout.own_files:
            w.ignored["the layout's own files"] += 1
        elif not is_image_name(base):
            w.skip("not an image file", name)
        elif cls is None and split_dir not in layout.flat:
            w.skip(f"not in a class folder of {split_dir}/", name)
        else:
            got = payload(name, read)
            if got is None:
                w.skip("unreadable", name)
            else:
                w.images.append([split, cls, name, got])
    _label_flat(w, layout)
    return w


def _label_flat(w: _Walk, layout: Layout) -> None:
    """Give the images of flat splits their class from the annotation file; the others are skipped."""
    if not any(img[1] is None for img in w.images):
        return
    labels: dict[str, str] = {}
    for line in w.side.get(layout.annotations or "", b"").decode("utf-8", "replace").splitlines():
        cols = line.split("\t") if "\t" in line else line.split()
        if len(cols) >= 2:
            labels[cols[0].strip()] = cols[1].strip()
    kept = []
    for img in w.images:
        if img[1] is None:
            img[1] = labels.get(img[2].rsplit("/", 1)[-1])
            if img[1] is None:
                w.skip(f"no label in {layout.annotations}", img[2])
                continue
        kept.append(img)
    w.images = kept


def _summary(w: _Walk) -> str:
    if not w.skipped:
        return ""
    counts = ", ".join(f"{n} {reason}" for reason, n in w.skipped.most_common())
    return f"; skipped {sum(w.skipped.values())} file(s) ({counts}), e.g. {', '.join(w.examples)}"


def _classes(w: _Walk, p: Path, label: str) -> list[str]:
    """The classes (sorted folder names of train/), after every check that the tree is a data set."""
    have = {s: {img[1] for img in w.images if img[0] == s} for s in ("train", "test")}
    empty = [f"{s}/{c}" for s in ("train", "test") for c in sorted(w.folders[s] - have[s])]
    if empty:
        raise DataNotFoundError(f"{label}: {p} has class folder(s) without images: {', '.join(empty)} (images "
                                f"end in .jpg, .png, ...){_summary(w)}; add images to them or remove them, so that no "
                                "class is dropped without a word")
    missing = [s for s in ("train", "test") if not have[s]]
    if missing:
        raise DataNotFoundError(f"{label}: {p} has no images under {' or '.join(missing)}/<class>/{_summary(w)}; "
                                "expected the layout train/<class>/<image> and test/<class>/<image> (or val/)")
    classes = sorted(have["train"])
    if len(classes) < 2:
        raise DataNotFoundError(f"{label}: {p} has a single class under train/ ({classes[0]!r}); "
                                "selection, students and accuracy need at least 2 classes")
    extra = sorted(have["test"] - set(classes))
    if extra:
        raise DataNotFoundError(f"{label}: {p} has test classes {extra} that are not in train/")
    return classes


def _report(w: _Walk, out: dict, counts: Counter, channels: int | None, streamed: bool) -> dict:
    """The load's account: images loaded per split, files skipped (warned about) and ignored (the layout's own,
    hidden), by reason, and how many images were converted to the channel count ``out["channels"]``."""
    c = out["channels"]
    return {"loaded": {s: len(out[s + "_y"]) for s in ("train", "test")}, "skipped": dict(w.skipped),
            "skipped_examples": list(w.examples), "ignored": dict(w.ignored), "channels": c,
            "channels_given": channels is not None, "converted": sum(n for k, n in counts.items() if k != c),
            "streamed": streamed}


def _warn(label: str, p: Path, report: dict) -> None:
    """One warning naming what was skipped or converted (the report has the counts)."""
    words = []
    if report["skipped"]:
        counts = ", ".join(f"{n} {r}" for r, n in sorted(report["skipped"].items(), key=lambda kv: -kv[1]))
        words.append(f"skipped {sum(report['skipped'].values())} file(s) ({counts}), e.g. "
                     f"{', '.join(report['skipped_examples'])}")
    if report["converted"]:
        to = "RGB" if report["channels"] == 3 else "greyscale"
        why = (f"(channels={report['channels']})" if report["channels_given"] else
               f"the channels most images have (channels={4 - report['channels']} converts the others instead)")
        words.append(f"converted {report['converted']} image(s) to {to}, {why}")
    if words:
        warnings.warn(f"{label}: {p}: " + "; ".join(words) + " (see ds.report)", DataLoadWarning, stacklevel=3)


def check_tree_options(image_size: Any, channels: Any, stream: Any, skip_unreadable: Any) -> int | None:
    """Check a folder loader's options before any work; returns ``image_size`` as an int (or None)."""
    if channels is not None:
        check_choice("channels", channels, (1, 3))
    check_choice("stream", stream, (None, True, False))
    check_choice("skip_unreadable", skip_unreadable, (True, False))
    return None if image_size is None else check_int("image_size", image_size, 1, 4096)


def load_tree(path: str | Path, *, layout: Layout = IMAGEFOLDER, label: str = "imagefolder",
              image_size: int | None = None, channels: int | None = None, stream: bool | None = None,
              skip_unreadable: bool = False) -> Dataset:
    """A folder or archive in ``layout`` as a :class:`Dataset` named ``label:PATH``.

    ``image_size``: resize (shorter side) and centre-crop every image to N x N (needed when sizes differ).
    ``channels``: 1 or 3; None converts the images with the other count to the count most images have (RGB on
    a tie). ``stream``: read the images from disk when indexed instead of holding them (folders only); None
    streams a folder whose decoded images exceed :data:`STREAM_ABOVE_BYTES`. ``skip_unreadable``: skip (and
    count) image files PIL cannot read instead of stopping at the first.
    """
    image_size = check_tree_options(image_size, channels, stream, skip_unreadable)
    p = Path(path).expanduser()
    if not p.exists():
        raise DataNotFoundError(f"{label}: {p} does not exist; give a folder or a {'/'.join(ARCHIVE_SUFFIXES)} "
                                "archive holding train/<class>/* and test/<class>/*")
    is_archive = p.is_file()
    if is_archive and not p.name.endswith(ARCHIVE_SUFFIXES):
        raise DataNotFoundError(f"{label}: {p} is a file but not an archive of a known kind "
                                f"({', '.join(ARCHIVE_SUFFIXES)})")
    stat = p.stat()
    if is_archive and stat.st_size == 0:
        raise UnreadableDataError(f"{label}: {p} is an empty file (0 bytes), not an archive; an interrupted "
                                  "download or copy? Download or copy it again")
    if is_archive and stream:
        raise ParamError(f"stream=True reads images from a folder, and {p} is an archive: unpack it (e.g. "
                         "tar -xf, unzip) and give the folder, or load it with stream=False")
    spec = {"path": str(p.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns}
    opts = {"image_size": image_size, "channels": channels, "skip_unreadable": skip_unreadable, "layout": layout.name}
    decoding = _Decoding(p, layout, label, image_size, channels, skip_unreadable, is_archive)
    if is_archive:
        d = artifacts.cached(artifacts.make_key("imagefolder", spec, opts), decoding.in_memory)
        return _dataset(label, p, d, layout)
    spec["tree"] = tree_fingerprint(p)  # a folder's own mtime misses files changed, added or removed further down
    keys = {s: artifacts.make_key("imagefolder-index" if s else "imagefolder", spec, opts) for s in (True, False)}
    listing: list[_Walk] = []

    def listed() -> _Walk:  # the folder's files, sorted by split and class, none read yet (once)
        if not listing:
            listing.append(decoding.walk(lambda name, read: name))
        return listing[0]

    size_key, size = artifacts.make_key("imagefolder-bytes", spec, opts), None
    if stream is None:  # the decoded images' size decides (stored after a good load: the next one lists no files)
        size = artifacts.load(size_key) if artifacts.exists(size_key) else None
        size = _decoded_bytes(p, listed(), image_size) if size is None else size
        stream = size > STREAM_ABOVE_BYTES
    if stream:
        d = artifacts.cached(keys[True], lambda: decoding.index(listed(), keys[True]))
    else:
        d = artifacts.cached(keys[False], lambda: decoding.in_memory(listing[0] if listing else None))
    if size is not None:
        artifacts.cached(size_key, lambda: size)
    return _dataset(label, p, d, layout)


def load_imagefolder(path: str, **options: Any) -> Dataset:
    """``imagefolder:PATH``: a folder or archive of ``train/<class>/**`` and ``test/<class>/**`` (:func:`load_tree`)."""
    return load_tree(path, **options)


@dataclass(frozen=True)
class _Decoding:
    """One load's settings, and its two ways: decode every image into memory, or index the files to stream."""

    p: Path
    layout: Layout
    label: str
    image_size: int | None
    channels: int | None
    skip_unreadable: bool
    is_archive: bool

    def walk(self, payload: Callable[[str, Callable[[], bytes]], Any]) -> _Walk:
        """Walk the folder or archive; an archive or file system error becomes an UnreadableDataError."""
        w = _Walk()
        members = archive_members(self.p) if self.is_archive else folder_members(self.p)
        try:
            return _walk(members, self.layout, payload, w)
        except UnreadableDataError:
            raise
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, lzma.LZMAError, zlib.error, OSError) as e:
            at = f" after member '{w.current}'" if w.current else ""
            why = " ".join(str(e).split())  # tarfile's reasons span several lines
            kind = "archive" if self.is_archive else "folder"
            raise UnreadableDataError(
                f"{self.label}: cannot read the {kind} {self.p}{at} ({type(e).__name__}: {why}); it is corrupt, "
                + ("truncated or not the kind of archive its name says: download or copy it again (compare its size "
                   "and checksum with the source), or unpack it and give the folder" if self.is_archive else
                   "truncated or unreadable: check the file's permissions or replace it")) from e

    def _decode(self, name: str, read: Callable[[], bytes]) -> np.ndarray | None:
        where = f"'{name}' in {self.p}" if self.is_archive else f"{self.p / name}"
        try:
            try:
                data = read()
            except OSError as e:
                if self.is_archive:
                    raise  # the walk names the archive
                raise UnreadableDataError(f"{self.label}: cannot read {where} ({type(e).__name__}: {e.strerror or e}); "
                                          "check the file's permissions or replace it") from e
            return decode(data, self.image_size, where)
        except UnreadableDataError:
            if self.skip_unreadable:
                return None
            raise

    def in_memory(self, listing: _Walk | None = None) -> dict:
        """Every image decoded, as uint8 tensors (the cached form of an in-memory load)."""
        if listing is None:
            w = self.walk(self._decode)
        else:  # a folder already listed: read and decode its images now
            w = listing
            arrays = [self._decode(img[2], (self.p / img[2]).read_bytes) for img in w.images]
            for img, a in zip(w.images, arrays):
                if a is None:
                    w.skip("unreadable", img[2])
            w.images = [[*img[:3], a] for img, a in zip(w.images, arrays) if a is not None]
        classes = _classes(w, self.p, self.label)
        counts = Counter(img[3].shape[0] for img in w.images)
        c = self.channels or majority_channels(counts)
        shapes = {img[3].shape[1:] for img in w.images}
        if len(shapes) > 1:
            raise DataNotFoundError(f"{self.label}: {self.p} holds images of several sizes {sorted(shapes)[:4]} "
                                    "(height, width); pass image_size=N to resize them to N x N")
        index = {name: i for i, name in enumerate(classes)}
        out: dict[str, Any] = {"classes": classes, "side": w.side, "channels": c}
        for split in ("train", "test"):
            imgs = sorted((img for img in w.images if img[0] == split), key=lambda img: index[img[1]])  # stable
            out[split + "_x"] = torch.from_numpy(np.stack([to_channels(img[3], c) for img in imgs]))
            out[split + "_y"] = torch.tensor([index[img[1]] for img in imgs], dtype=torch.int64)
        out["report"] = _report(w, out, counts, self.channels, False)
        return out

    def index(self, listing: _Walk, key: str) -> dict:
        """A streamed folder's index: its image files by split and class, read from their headers only."""
        w = listing
        heads = []
        for img in w.images:
            try:
                heads.append(header(self.p / img[2], str(self.p / img[2])))
            except UnreadableDataError:
                if not self.skip_unreadable:
                    raise
                heads.append(None)
                w.skip("unreadable", img[2])
        w.images = [img for img, h in zip(w.images, heads) if h is not None]
        heads = [h for h in heads if h is not None]
        classes = _classes(w, self.p, self.label)
        counts = Counter(h[0] for h in heads)
        c = self.channels or majority_channels(counts)
        sizes = {(h[1][1], h[1][0]) for h in heads}
        if self.image_size is None and len(sizes) > 1:
            raise DataNotFoundError(f"{self.label}: {self.p} holds images of several sizes {sorted(sizes)[:4]} "
                                    "(height, width); pass image_size=N to resize them to N x N")
        hw = (self.image_size, self.image_size) if self.image_size is not None else sizes.pop()
        index = {name: i for i, name in enumerate(classes)}
        out: dict[str, Any] = {"classes": classes, "side": w.side, "channels": c, "hw": hw,
                               "image_size": self.image_size, "tag": key}
        for split in ("train", "test"):
            imgs = sorted((img for img in w.images if img[0] == split), key=lambda img: index[img[1]])
            out[split + "_names"] = [img[2] for img in imgs]
            out[split + "_y"] = torch.tensor([index[img[1]] for img in imgs], dtype=torch.int64)
        out["report"] = _report(w, out, counts, self.channels, True)
        return out


def _decoded_bytes(p: Path, w: _Walk, image_size: int | None) -> int:
    """An upper bound of the decoded images' size: 3 channels at ``image_size`` or at the first image's size."""
    if not w.images:
        return 0
    if image_size is None:
        try:
            _, (width, height) = header(p / w.images[0][2], str(p / w.images[0][2]))
        except UnreadableDataError:
            return 0  # the in-memory load names the file
        return 3 * width * height * len(w.images)
    return 3 * image_size * image_size * len(w.images)


def _dataset(label: str, p: Path, d: dict, layout: Layout) -> Dataset:
    _warn(label, p, d["report"])
    if "train_names" in d:
        xs = [ImageStore(p, d[s + "_names"], d["channels"], d["hw"], d["image_size"], d["tag"])
              for s in ("train", "test")]
    else:
        xs = [d["train_x"], d["test_x"]]
    classes = layout.class_names(list(d["classes"]), d["side"]) if layout.class_names else list(d["classes"])
    return Dataset(f"{label}:{p}", xs[0], d["train_y"], xs[1], d["test_y"], classes, source=str(p),
                   report={**d["report"], "class_folders": list(d["classes"])})


ENTRIES = (
    DatasetEntry("imagefolder", load_imagefolder, needs="PATH: a folder or .tar/.tar.gz/.tar.xz/.zip holding "
                 "train/<class>/** and test/<class>/** (or val/)", where=lambda: "the PATH given",
                 path="required", options=TREE_OPTIONS),
)
