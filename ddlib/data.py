"""Dataset registry: every loader returns uint8 images (N, C, H, W), int64 labels and class names.

Names (see :func:`available`):

- ``digits``             scikit-learn's 8x8 digits (always there; for unit tests)
- ``fashion-mnist``      IDX files from ``$DDLIB_DATA``, the Debian package ``dataset-fashion-mnist``
                         (``/usr/share/datasets/fashion-mnist``) or torchvision's download when online
- ``cifar10``/``cifar100`` torchvision's files in ``$DDLIB_DATA`` (downloaded when online), or an
                         ImageFolder/archive: ``cifar10:PATH``
- ``imagefolder:PATH``   a folder or ``.tar``/``.tar.gz``/``.tar.xz``/``.zip`` of ``train/<class>/*`` and
                         ``test/<class>/*`` (Tiny-ImageNet, ImageNet subsets, your own data)
- ``synthetic-patterns`` a generated set whose classes are mixtures of known sub-patterns of unequal
                         sizes; ``Dataset.train_patterns`` holds the sub-pattern ids (the truth)

Set ``DDLIB_OFFLINE=1`` to forbid downloads (the tests do).
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import lzma
import os
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ddlib import artifacts
from ddlib.utils import ParamError, check_float, check_int, to_unit

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot"]
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".zip")


class DataNotFoundError(FileNotFoundError):
    """The data could not be found or used; the message lists where ddlib looked and how to get it."""


class UnreadableDataError(DataNotFoundError):
    """A data file was found but cannot be read: a corrupt or truncated image, archive or IDX file.

    The message names the file (and the member inside an archive) and what to do. A subclass of
    :class:`DataNotFoundError` (so of ``FileNotFoundError``): every handler of missing data catches it.
    """


@dataclass
class Dataset:
    """Images as uint8 tensors (N, C, H, W), labels as int64, class names, and where they came from."""

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

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def mean(self) -> torch.Tensor:
        """Per-channel mean of the training images in [0, 1]."""
        return self.train_x.float().mean(dim=(0, 2, 3)) / 255

    @property
    def std(self) -> torch.Tensor:
        """Per-channel standard deviation of the training images in [0, 1] (at least 1e-3)."""
        return (self.train_x.float() / 255).std(dim=(0, 2, 3)).clamp_min(1e-3)

    def key(self) -> str:
        """A short stable identifier of this dataset (name, subsampling and content) for cache keys."""
        h = hashlib.sha256()
        for t in (self.train_y, self.test_y):
            h.update(t.numpy().tobytes())
        h.update(self.train_x[:: max(1, len(self.train_x) // 64)].numpy().tobytes())
        return f"{self.spec}|{h.hexdigest()[:16]}"

    def class_counts(self) -> dict[str, tuple[int, int]]:
        """Per class: (train count, test count)."""
        tr = torch.bincount(self.train_y, minlength=self.num_classes).tolist()
        te = torch.bincount(self.test_y, minlength=self.num_classes).tolist()
        return {c: (a, b) for c, a, b in zip(self.classes, tr, te)}


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------

def _offline() -> bool:
    return os.environ.get("DDLIB_OFFLINE", "") not in ("", "0", "false", "False")


def data_root() -> Path:
    """Where ddlib looks for and downloads data: ``$DDLIB_DATA`` or ``~/.cache/ddlib/data``."""
    return Path(os.environ.get("DDLIB_DATA") or Path.home() / ".cache" / "ddlib" / "data")


def _load_digits(**_: object) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(np.round(d.images * (255 / 16)).astype(np.uint8))[:, None]
    y = torch.from_numpy(d.target.astype(np.int64))
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(y), generator=g)
    test = torch.zeros(len(y), dtype=torch.bool)
    for c in range(10):  # a fixed stratified 80/20 split
        idx = perm[y[perm] == c]
        test[idx[: len(idx) // 5]] = True
    return Dataset("digits", x[~test], y[~test], x[test], y[test], [str(i) for i in range(10)],
                   source="sklearn.datasets.load_digits")


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise UnreadableDataError(f"{path} cannot be read ({type(e).__name__}: {e}); the file is corrupt or "
                                  "truncated: delete it and download or copy it again") from e
    if len(data) < 4 or data[:3] != b"\x00\x00\x08" or len(data) < 4 + 4 * data[3]:
        raise UnreadableDataError(f"{path} is not an IDX file of unsigned bytes (it starts with {data[:4]!r}); "
                                  "delete it and download or copy it again")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise DataNotFoundError(f"{path} is truncated: expected {shape}, found {arr.size} values")
    return arr.reshape(shape)


def fashion_mnist_locations() -> list[Path]:
    """The folders searched for Fashion-MNIST's IDX files, in order."""
    root = data_root()
    return [root / "fashion-mnist", root / "FashionMNIST" / "raw", root, DEBIAN_FASHION_MNIST]


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _load_fashion_mnist(download: bool | None = None, **_: object) -> Dataset:
    stems = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte"]
    for folder in fashion_mnist_locations():
        files = [_find_idx(folder, s) for s in stems]
        if all(files):
            tx, ty, vx, vy = (_read_idx(f) for f in files)  # type: ignore[arg-type]
            return Dataset("fashion-mnist", torch.from_numpy(tx.copy())[:, None],
                           torch.from_numpy(ty.astype(np.int64)), torch.from_numpy(vx.copy())[:, None],
                           torch.from_numpy(vy.astype(np.int64)), list(FASHION_CLASSES), source=str(folder))
    download = (not _offline()) if download is None else download
    tried = ", ".join(str(p) for p in fashion_mnist_locations())
    if download:
        from torchvision.datasets import FashionMNIST

        try:
            FashionMNIST(str(data_root()), train=True, download=True)
            FashionMNIST(str(data_root()), train=False, download=True)
        except Exception as e:  # noqa: BLE001 - report any network failure as missing data
            raise DataNotFoundError(f"fashion-mnist: not found in {tried}, and the download failed ({e}). "
                                    "Install the Debian package 'dataset-fashion-mnist' (apt-get install "
                                    "dataset-fashion-mnist) or put the four IDX files in $DDLIB_DATA.") from e
        return _load_fashion_mnist(download=False)
    raise DataNotFoundError(f"fashion-mnist: the IDX files were not found in {tried} (downloads are off: "
                            "DDLIB_OFFLINE is set). Install the Debian package 'dataset-fashion-mnist' "
                            "(apt-get install dataset-fashion-mnist) or put train-images-idx3-ubyte(.gz) and "
                            "its three siblings in $DDLIB_DATA.")


def _load_cifar(name: str, path: str | None = None, download: bool | None = None,
                image_size: int | None = None, **_: object) -> Dataset:
    n_classes = 10 if name == "cifar10" else 100
    if path:
        ds = _load_imagefolder(path, image_size=image_size)
        if len(ds.classes) != n_classes:
            raise DataNotFoundError(f"{name}:{path} has {len(ds.classes)} classes in train/, "
                                    f"expected {n_classes}")
        return dataclasses.replace(ds, name=name)
    root = data_root()
    # a JPEG/ImageFolder copy beside the other data (e.g. cifar10-jpeg.tar.xz) is used when present
    for cand in (root / f"{name}-jpeg", *(root / f"{name}-jpeg{s}" for s in ARCHIVE_SUFFIXES)):
        if cand.exists():
            return dataclasses.replace(_load_imagefolder(str(cand), image_size=image_size), name=name)
    from torchvision import datasets as tvd

    cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
    download = (not _offline()) if download is None else download
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


# ---- ImageFolder / archives -----------------------------------------------------------------

class _StrictTarInfo(tarfile.TarInfo):
    """Reads a tar header like :class:`tarfile.TarInfo`, but a short or invalid header after the first
    one is an error: :mod:`tarfile` takes it for the end of the archive, so a truncated archive would
    look like a smaller one (a cut-off ``test/`` read as "test classes not in train")."""

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tarfile_)
        except (tarfile.EmptyHeaderError, tarfile.TruncatedHeaderError, tarfile.InvalidHeaderError) as e:
            if tarfile_.offset == 0:
                raise
            raise tarfile.ReadError(f"the archive ends or breaks off at byte {tarfile_.offset} without tar's "
                                    f"end-of-archive marker ({e})") from None


# a member or folder that is no image of the data set: hidden files, macOS resource forks
def _hidden(name: str) -> bool:
    return any((part.startswith(".") and part not in (".", "..")) or part == "__MACOSX" for part in name.split("/"))


def _archive_members(path: Path) -> Iterator[tuple[str, Callable[[], bytes] | None]]:
    """(member name, reader) for every file in a tar or zip archive, in archive order; (name, None) for a folder."""
    if path.name.endswith(".zip"):
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                yield (info.filename.rstrip("/"), None) if info.is_dir() else (info.filename, lambda i=info: z.read(i))
    else:
        with tarfile.open(path, "r:*", tarinfo=_StrictTarInfo) as t:
            for m in t:
                if m.isdir():
                    yield m.name.rstrip("/"), None
                elif m.isfile():
                    yield m.name, (lambda m=m: t.extractfile(m).read())  # type: ignore[union-attr]
            # read on to the end: a compressed stream cut off after the last member (or failing its
            # checksum) shows only there
            while t.fileobj.read(1 << 20):  # type: ignore[union-attr]
                pass


def _folder_members(path: Path) -> Iterator[tuple[str, Callable[[], bytes] | None]]:
    for p in sorted(path.rglob("*")):
        if p.is_file():
            yield p.relative_to(path).as_posix(), p.read_bytes
        elif p.is_dir():
            yield p.relative_to(path).as_posix(), None


def _split_parts(name: str) -> tuple[str, str] | None:
    """('train' | 'test', class) from a member path '.../train/<class>/<file>', or None."""
    parts = name.split("/")
    for i in range(len(parts) - 2):
        if parts[i] in ("train", "test", "val") and i + 3 == len(parts):
            split = "test" if parts[i] in ("test", "val") else "train"
            return split, parts[i + 1]
    return None


def _class_folder(name: str) -> tuple[str, str] | None:
    """('train' | 'test', class) from a folder path '.../train/<class>', or None."""
    return _split_parts(name + "/x")


def _decode(data: bytes, image_size: int | None, where: str = "") -> np.ndarray:
    """An image file's bytes as uint8 (C, H, W); a file PIL cannot decode is an :class:`UnreadableDataError`."""
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(data))
        img.load()  # decode now: a truncated file fails here, with its name, not later
        img = img.convert("L" if img.mode in ("L", "1", "I;16", "I") else "RGB")
    except Exception as e:  # noqa: BLE001 - decoders raise OSError, SyntaxError, ValueError, ...: all mean unreadable
        why = str(e).split(" <_io.BytesIO")[0]  # PIL names the buffer, not the file: the file is named here
        raise UnreadableDataError(f"imagefolder: cannot decode the image {where} ({type(e).__name__}: {why}); the "
                                  "file is corrupt, truncated or not an image: replace it with a good copy or "
                                  "delete it") from e
    if image_size is not None and img.size != (image_size, image_size):
        w, h = img.size
        s = image_size / min(w, h)
        img = img.resize((max(image_size, round(w * s)), max(image_size, round(h * s))), Image.BILINEAR)
        w, h = img.size
        left, top = (w - image_size) // 2, (h - image_size) // 2
        img = img.crop((left, top, left + image_size, top + image_size))
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _tree_fingerprint(root: Path) -> str:
    """SHA-256 (16 hex) of every file's and folder's relative path, size and mtime under ``root``."""
    h = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in [*dirs, *sorted(files)]:
            full = os.path.join(folder, name)
            try:
                st = os.stat(full)
            except OSError:
                continue
            h.update(f"{os.path.relpath(full, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _load_imagefolder(path: str, image_size: int | None = None, **_: object) -> Dataset:
    if image_size is not None:
        image_size = check_int("image_size", image_size, 1, 4096)
    p = Path(path).expanduser()
    if not p.exists():
        raise DataNotFoundError(f"imagefolder: {p} does not exist; give a folder or a "
                                f"{'/'.join(ARCHIVE_SUFFIXES)} archive holding train/<class>/* and "
                                "test/<class>/*")
    is_archive = p.is_file()
    if is_archive and not p.name.endswith(ARCHIVE_SUFFIXES):
        raise DataNotFoundError(f"imagefolder: {p} is a file but not an archive of a known kind "
                                f"({', '.join(ARCHIVE_SUFFIXES)})")
    stat = p.stat()
    if is_archive and stat.st_size == 0:
        raise UnreadableDataError(f"imagefolder: {p} is an empty file (0 bytes), not an archive; an interrupted "
                                  "download or copy? Download or copy it again")
    spec = {"path": str(p.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns}
    if not is_archive:  # a folder's own mtime misses files changed, added or removed further down
        spec["tree"] = _tree_fingerprint(p)
    key = artifacts.make_key("imagefolder", spec, {"image_size": image_size})

    def build() -> dict:
        members = _archive_members(p) if is_archive else _folder_members(p)
        found: dict[str, dict[str, list[np.ndarray]]] = {"train": {}, "test": {}}
        folders: dict[str, set[str]] = {"train": set(), "test": set()}  # every class folder seen
        current = None
        try:
            for name, read in members:
                current = name
                if _hidden(name):
                    continue
                if read is None:  # a folder
                    cf = _class_folder(name)
                    if cf is not None:
                        folders[cf[0]].add(cf[1])
                    continue
                sp = _split_parts(name)
                if sp is None:
                    continue
                folders[sp[0]].add(sp[1])
                if not name.lower().endswith(IMAGE_SUFFIXES):
                    continue
                where = f"'{name}' in {p}" if is_archive else f"{p / name}"
                found[sp[0]].setdefault(sp[1], []).append(_decode(read(), image_size, where))
        except UnreadableDataError:
            raise
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, lzma.LZMAError, zlib.error, OSError) as e:
            at = f" after member '{current}'" if current else ""
            why = " ".join(str(e).split())  # tarfile's reasons span several lines
            kind = "archive" if is_archive else "folder"
            raise UnreadableDataError(
                f"imagefolder: cannot read the {kind} {p}{at} ({type(e).__name__}: {why}); it is corrupt, truncated "
                + ("or not the kind of archive its name says: download or copy it again (compare its size and "
                   "checksum with the source), or unpack it and give the folder" if is_archive else
                   "or unreadable: check the file's permissions or replace it")) from e
        empty = [f"{split}/{c}" for split in ("train", "test") for c in sorted(folders[split] - set(found[split]))]
        if empty:
            raise DataNotFoundError(f"imagefolder: {p} has class folder(s) without images: {', '.join(empty)} "
                                    f"(images end in {', '.join(IMAGE_SUFFIXES)}); add images to them or remove "
                                    "them, so that no class is dropped without a word")
        if not found["train"] or not found["test"]:
            missing = [s for s in ("train", "test") if not found[s]]
            raise DataNotFoundError(f"imagefolder: {p} has no images under {' or '.join(missing)}/<class>/; "
                                    "expected the layout train/<class>/<image> and test/<class>/<image>")
        classes = sorted(found["train"])
        if len(classes) < 2:
            raise DataNotFoundError(f"imagefolder: {p} has a single class under train/ ({classes[0]!r}); "
                                    "selection, students and accuracy need at least 2 classes")
        extra = sorted(set(found["test"]) - set(classes))
        if extra:
            raise DataNotFoundError(f"imagefolder: {p} has test classes {extra} that are not in train/")
        shapes = {a.shape for split in found.values() for imgs in split.values() for a in imgs}
        if len(shapes) > 1:
            raise DataNotFoundError(f"imagefolder: {p} holds images of several sizes {sorted(shapes)[:4]}; "
                                    "pass image_size=N to resize them to N x N")
        out = {"classes": classes}
        for split in ("train", "test"):
            xs, ys = [], []
            for c, name in enumerate(classes):
                imgs = found[split].get(name, [])
                xs.extend(imgs)
                ys.extend([c] * len(imgs))
            out[split + "_x"] = torch.from_numpy(np.stack(xs))
            out[split + "_y"] = torch.tensor(ys, dtype=torch.int64)
        return out

    d = artifacts.cached(key, build)
    return Dataset(f"imagefolder:{p}", d["train_x"], d["train_y"], d["test_x"], d["test_y"], d["classes"],
                   source=str(p))


# ---- synthetic multi-pattern data -----------------------------------------------------------

def make_synthetic_patterns(num_classes: int = 4, patterns_per_class: tuple[int, ...] = (3, 2, 4, 3),
                            n_train: int = 240, n_test: int = 60, image_size: int = 16,
                            noise: float = 0.08, seed: int = 0) -> Dataset:
    """Classes that are mixtures of known visual sub-patterns of unequal sizes.

    Class c has a colour; each of its ``patterns_per_class[c]`` sub-patterns is a distinct
    blob (at a position of its own) and stripe (at an
    orientation of its own) layout, and its share of the class decays geometrically (1, 1/2,
    1/4, ...; normalised), so the sub-patterns are unbalanced. Samples are the sub-pattern's
    prototype with a random shift of up to one pixel, brightness jitter and Gaussian noise.
    ``train_patterns``/``test_patterns`` hold each sample's sub-pattern id within its class.
    At most 9 sub-patterns per class (the distinct blob positions).
    """
    num_classes = check_int("num_classes", num_classes, 2, 100)
    n_train, n_test = check_int("n_train", n_train, 1, 100_000), check_int("n_test", n_test, 1, 100_000)
    image_size = check_int("image_size", image_size, 4, 1024)
    noise = check_float("noise", noise, 0.0, 1.0)
    seed = check_int("seed", seed, 0, 2**32 - 3)  # seed + 2 seeds the test split
    if not isinstance(patterns_per_class, (tuple, list)) or not patterns_per_class:
        raise ParamError(f"patterns_per_class={patterns_per_class!r} must be a non-empty tuple of integers >= 1")
    patterns_per_class = tuple(check_int("patterns_per_class", m, 1, 9) for m in patterns_per_class)
    if len(patterns_per_class) != num_classes:
        patterns_per_class = tuple(patterns_per_class[i % len(patterns_per_class)] for i in range(num_classes))
    g = np.random.default_rng(seed)
    s = image_size
    yy, xx = np.mgrid[0:s, 0:s] / s
    hues = np.linspace(0, 1, num_classes, endpoint=False)
    anchors = np.array([(0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75), (0.5, 0.5),
                        (0.25, 0.5), (0.75, 0.5), (0.5, 0.25), (0.5, 0.75)])

    def colour(h: float) -> np.ndarray:
        return 0.5 + 0.5 * np.cos(2 * np.pi * (h + np.array([0.0, 1 / 3, 2 / 3])))

    protos = []
    for c in range(num_classes):
        col = colour(hues[c])
        cls = []
        m = patterns_per_class[c]
        spots = g.permutation(len(anchors))  # distinct blob positions keep sub-patterns apart
        for k in range(m):
            cy, cx = anchors[spots[k % len(anchors)]] + g.uniform(-0.05, 0.05, size=2)
            r = g.uniform(0.15, 0.25)
            theta, freq = np.pi * (k + g.uniform(0, 0.3)) / m, g.uniform(2, 4)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            stripes = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (np.cos(theta) * xx + np.sin(theta) * yy))
            mask = 0.65 * blob + 0.35 * stripes * (1 - blob)
            cls.append(mask[None] * col[:, None, None] + 0.1)
        protos.append(cls)

    def sample(n_per_class: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        xs, ys, ps = [], [], []
        for c in range(num_classes):
            m = patterns_per_class[c]
            w = 0.5 ** np.arange(m)
            counts = np.floor(w / w.sum() * n_per_class).astype(int)
            counts[0] += n_per_class - counts.sum()
            for k, cnt in enumerate(counts):
                for _ in range(cnt):
                    img = np.roll(protos[c][k], shift=tuple(rng.integers(-1, 2, size=2)), axis=(1, 2))
                    img = img * rng.uniform(0.9, 1.1) + rng.normal(0, noise, img.shape)
                    xs.append(img)
                    ys.append(c)
                    ps.append(k)
        x = (np.clip(np.stack(xs), 0, 1) * 255).round().astype(np.uint8)
        return x, np.array(ys), np.array(ps)

    tx, ty, tp = sample(n_train, np.random.default_rng(seed + 1))
    vx, vy, vp = sample(n_test, np.random.default_rng(seed + 2))
    return Dataset("synthetic-patterns", torch.from_numpy(tx), torch.from_numpy(ty).long(), torch.from_numpy(vx),
                   torch.from_numpy(vy).long(), [f"class{c}" for c in range(num_classes)],
                   source="generated", train_patterns=torch.from_numpy(tp).long(),
                   test_patterns=torch.from_numpy(vp).long())


def _load_synthetic(seed: int = 0, **options: object) -> Dataset:
    allowed = {"num_classes", "patterns_per_class", "n_train", "n_test", "image_size", "noise"}
    return make_synthetic_patterns(seed=seed, **{k: v for k, v in options.items() if k in allowed})  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": _load_digits,
    "fashion-mnist": _load_fashion_mnist,
    "cifar10": lambda **kw: _load_cifar("cifar10", **kw),
    "cifar100": lambda **kw: _load_cifar("cifar100", **kw),
    "synthetic-patterns": _load_synthetic,
}
PATH_PREFIXES = ("imagefolder", "cifar10", "cifar100")


def available() -> list[str]:
    """Every accepted dataset name (``imagefolder:PATH`` and ``cifar10:PATH`` take a path)."""
    return [*DATASETS, "imagefolder:PATH", "cifar10:PATH", "cifar100:PATH"]


def validate_name(name: str) -> str:
    """Return ``name`` if it is a registry name or a ``prefix:PATH`` form, else raise :class:`ParamError`."""
    if not isinstance(name, str) or not name:
        raise ParamError(f"dataset={name!r} must be a non-empty string; choose one of {available()}")
    prefix, sep, rest = name.partition(":")
    if sep and prefix in PATH_PREFIXES and rest:
        return name
    if name not in DATASETS:
        raise ParamError(f"dataset={name!r} is not known; choose one of {available()}")
    return name


def subsample(x: torch.Tensor, y: torch.Tensor, per_class: int, seed: int,
              extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """At most ``per_class`` samples of each class, drawn with ``seed``; returns (x, y, extra, kept indices)."""
    g = torch.Generator().manual_seed(seed)
    keep = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        keep.append(idx[torch.randperm(len(idx), generator=g)[:per_class]].sort().values)
    k = torch.cat(keep).sort().values
    return x[k], y[k], (extra[k] if extra is not None else None), k


def load(name: str, per_class: int | None = None, seed: int = 0, test_per_class: int | None = None,
         **options: object) -> Dataset:
    """Load dataset ``name`` (see :func:`available`), optionally subsampled per class with ``seed``.

    ``per_class`` caps training images per class, ``test_per_class`` test images per class.
    ``options`` go to the loader (``image_size`` for folders, ``download``, and the generator
    settings of ``synthetic-patterns``).
    """
    validate_name(name)
    seed = check_int("seed", seed, 0, 2**32 - 1)
    if per_class is not None:
        per_class = check_int("per_class", per_class, 1)
    if test_per_class is not None:
        test_per_class = check_int("test_per_class", test_per_class, 1)
    prefix, sep, rest = name.partition(":")
    if sep:
        ds = _load_imagefolder(rest, **options) if prefix == "imagefolder" else DATASETS[prefix](path=rest, **options)
    elif name == "synthetic-patterns":
        ds = DATASETS[name](seed=seed, **options)
    else:
        ds = DATASETS[name](**options)
    if per_class is not None:
        ds.train_x, ds.train_y, ds.train_patterns, ds.train_index = subsample(ds.train_x, ds.train_y, per_class, seed,
                                                                             ds.train_patterns)
    if test_per_class is not None:
        ds.test_x, ds.test_y, ds.test_patterns, _ = subsample(ds.test_x, ds.test_y, test_per_class, seed,
                                                             ds.test_patterns)
    ds.spec = {"name": name, "per_class": per_class, "test_per_class": test_per_class, "seed": seed,
               **{k: v for k, v in options.items() if k != "download"}}
    return ds


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


def sources() -> list[tuple[str, str]]:
    """(dataset, where it would be loaded from now) for every registry entry; for ``python -m ddlib datasets``."""
    root = data_root()
    fm = next((str(f) for f in fashion_mnist_locations() if _find_idx(f, "train-images-idx3-ubyte")), None)
    net = "downloads are off (DDLIB_OFFLINE)" if _offline() else "torchvision download"
    rows = [("digits", "scikit-learn (bundled)"),
            ("fashion-mnist", fm or f"not found in {[str(p) for p in fashion_mnist_locations()]}; {net} to {root}")]
    for c in ("cifar10", "cifar100"):
        local = [str(p) for p in (root / f"{c}-jpeg", *(root / f"{c}-jpeg{s}" for s in ARCHIVE_SUFFIXES),
                                  root / ("cifar-10-batches-py" if c == "cifar10" else "cifar-100-python"))
                 if p.exists()]
        rows.append((c, local[0] if local else f"{net} to {root}; or {c}:PATH for an ImageFolder/archive"))
    rows.append(("synthetic-patterns", "generated in memory"))
    rows.append(("imagefolder:PATH", "a folder or .tar/.tar.gz/.tar.xz/.zip with train/<class>/ and test/<class>/"))
    return rows


def to_float(x: torch.Tensor, mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 images -> float in [0, 1], standardised per channel when ``mean``/``std`` are given."""
    out = to_unit(x)
    if mean is not None and std is not None:
        out = (out - mean.to(out.device).view(1, -1, 1, 1)) / std.to(out.device).view(1, -1, 1, 1)
    return out
