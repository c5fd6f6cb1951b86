"""The ImageNet family the papers use: Tiny-ImageNet-200, ImageNette and ImageWoof (fast.ai), and ImageNet-1K,
each a :class:`~ddlib.data.folder.Layout` of the one folder loader, found in ``$DDLIB_DATA`` or given as
``NAME:PATH``, downloaded (checksum checked) where the licence allows."""
from __future__ import annotations

import dataclasses
import io
import re
import warnings
from pathlib import Path
from typing import Any

from ddlib.data.core import TREE_OPTIONS, DataLoadWarning, DataNotFoundError, Dataset, DatasetEntry, data_root
from ddlib.utils import offline
from ddlib.data.download import Archive, download_and_extract
from ddlib.data.folder import IMAGEFOLDER, Layout, load_tree
from ddlib.utils import check_choice

__all__ = ["ENTRIES", "TINY_IMAGENET", "IMAGENETTE", "IMAGEWOOF", "IMAGENETTE_CLASSES", "IMAGEWOOF_CLASSES",
           "FASTAI_SIZES", "SUBSET_IMAGE_SIZE", "IMAGENET_IMAGE_SIZE", "load_tiny_imagenet", "load_imagenette",
           "load_imagewoof", "load_imagenet", "tiny_imagenet_where", "imagenette_where", "imagewoof_where", "imagenet_where"]

# Checksums. Tiny-ImageNet's MD5 is the one every loader of it checks (and a recorded download of 248,100,043 bytes
# matched); ImageNette's are torchvision's (datasets.Imagenette._ARCHIVES in torchvision 0.29). ImageWoof's are TO BE
# CONFIRMED (confirmed=False): torchvision has no ImageWoof, and fast.ai has re-uploaded these archives (its own
# checks.txt and other loaders list other MD5s for the same URLs); these are catalyst's. A mismatch says so.
TINY_IMAGENET = Archive("http://cs231n.stanford.edu/tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de")
_S3 = "https://s3.amazonaws.com/fast-ai-imageclas"
IMAGENETTE = {"160px": Archive(f"{_S3}/imagenette2-160.tgz", "e793b78cc4c9e9a4ccc0c1155377a412"),
              "320px": Archive(f"{_S3}/imagenette2-320.tgz", "3df6f0d01a2c9592104656642f5e78a3"),
              "full": Archive(f"{_S3}/imagenette2.tgz", "fe2fc210e6bb7c5664d602c3cd71e612")}
IMAGEWOOF = {"160px": Archive(f"{_S3}/imagewoof2-160.tgz", "3d200a7be99704a0d7509be2a9fbfe15", confirmed=False),
             "320px": Archive(f"{_S3}/imagewoof2-320.tgz", "0f46d997ec2264e97609196c95897a44", confirmed=False),
             "full": Archive(f"{_S3}/imagewoof2.tgz", "9aafe18bcdb1632c4249a76c458465ba", confirmed=False)}
FASTAI_SIZES = tuple(IMAGENETTE)
SUBSET_IMAGE_SIZE = 128    # ImageNette/ImageWoof images differ in size: the DD literature's 128 x 128 unless given
IMAGENET_IMAGE_SIZE = 224  # ImageNet-1K: torchvision's crop unless given

IMAGENETTE_CLASSES = {"n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
                      "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
                      "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
                      "n03888257": "parachute"}
IMAGEWOOF_CLASSES = {"n02086240": "Shih-Tzu", "n02087394": "Rhodesian ridgeback", "n02088364": "beagle",
                     "n02089973": "English foxhound", "n02093754": "Border terrier", "n02096294": "Australian terrier",
                     "n02099601": "golden retriever", "n02105641": "Old English sheepdog", "n02111889": "Samoyed",
                     "n02115641": "dingo"}
_WNID = re.compile(r"n\d{8}")


def _first_names(text: bytes) -> dict[str, str]:
    """wnid -> its first name, from lines 'n01440764<TAB or space>tench, Tinca tinca' (words.txt,
    LOC_synset_mapping.txt)."""
    out = {}
    for line in text.decode("utf-8", "replace").splitlines():
        wnid, _, names = line.strip().replace("\t", " ").partition(" ")
        if _WNID.fullmatch(wnid) and names.strip():
            out[wnid] = names.split(",")[0].strip()
    return out


def _names_from_files(wnids: list[str], side: dict[str, bytes]) -> list[str]:
    """Class names from the first naming file the tree holds (words.txt, LOC_synset_mapping.txt, torchvision's
    meta.bin); a wnid no file names keeps its id."""
    names: dict[str, str] = {}
    for f in ("words.txt", "LOC_synset_mapping.txt"):
        if f in side:
            names = _first_names(side[f])
            break
    else:
        if "meta.bin" in side:
            import torch

            meta = torch.load(io.BytesIO(side["meta.bin"]), weights_only=True)
            names = {w: str(c[0] if isinstance(c, (list, tuple)) else c) for w, c in dict(meta[0]).items()}
    return [names.get(w, w) for w in wnids]


TINY_LAYOUT = Layout(name="tiny-imagenet", splits={"train": "train", "val": "test", "test": None}, flat=("val",),
                     annotations="val_annotations.txt", own_files=(".txt",), side_files=("words.txt", "wnids.txt"),
                     class_names=_names_from_files)
IMAGENET_LAYOUT = dataclasses.replace(IMAGEFOLDER, name="imagenet", side_files=("LOC_synset_mapping.txt", "words.txt",
                                                                              "meta.bin"),
                                      class_names=_names_from_files)


def _fixed_names(name: str, classes: dict[str, str]) -> Layout:
    return dataclasses.replace(IMAGEFOLDER, name=name,
                               class_names=lambda wnids, side: [classes.get(w, w) for w in wnids])


def _tree_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: options[k] for k in TREE_OPTIONS if options.get(k) is not None}


def _named(ds: Dataset, name: str) -> Dataset:
    return dataclasses.replace(ds, name=name)


# ---- Tiny-ImageNet-200 ------------------------------------------------------------------------------

def tiny_imagenet_where() -> Path:
    return data_root() / "tiny-imagenet-200"


def load_tiny_imagenet(path: str | None = None, download: bool | None = None, **options: Any) -> Dataset:
    """Tiny-ImageNet-200: ``train/<wnid>/images/*.JPEG`` (500 per class) as the training split, ``val/images``
    labelled by ``val/val_annotations.txt`` (50 per class) as the test split; ``test/`` has no labels and is
    left out (counted in ``ds.report``). 64 x 64 px, mostly RGB (the few greyscale images are made RGB).
    From ``path``, or ``$DDLIB_DATA/tiny-imagenet-200`` (downloaded and unpacked there when online)."""
    if path is None:
        folder = tiny_imagenet_where()
        if not folder.is_dir():
            download_and_extract(TINY_IMAGENET, folder.parent, "tiny-imagenet", download)
        path = str(folder)
    ds = load_tree(path, layout=TINY_LAYOUT, label="tiny-imagenet", **_tree_options(options))
    return _named(ds, "tiny-imagenet")


# ---- ImageNette and ImageWoof (fast.ai) --------------------------------------------------------------

def _fastai_folder(archives: dict[str, Archive], size: str) -> Path:
    return data_root() / archives[size].filename.removesuffix(".tgz")


def _load_fastai(name: str, archives: dict[str, Archive], classes: dict[str, str], path: str | None,
                 download: bool | None, size: str, options: dict[str, Any]) -> Dataset:
    check_choice("size", size, FASTAI_SIZES)
    if path is None:
        folder = _fastai_folder(archives, size)
        if not folder.is_dir():
            download_and_extract(archives[size], folder.parent, name, download)
        path = str(folder)
    opts = {"image_size": SUBSET_IMAGE_SIZE, **_tree_options(options)}
    ds = load_tree(path, layout=_fixed_names(name, classes), label=name, **opts)
    found = ds.report["class_folders"]
    if found != sorted(classes):
        raise DataNotFoundError(f"{name}: {path} has the classes {found[:12]} under train/, expected the "
                                f"{len(classes)} WordNet ids of {name} ({', '.join(sorted(classes))}); for another "
                                "subset use imagefolder:PATH")
    return _named(ds, name)


def imagenette_where(size: str = "160px") -> Path:
    return _fastai_folder(IMAGENETTE, size)


def imagewoof_where(size: str = "160px") -> Path:
    return _fastai_folder(IMAGEWOOF, size)


def load_imagenette(path: str | None = None, download: bool | None = None, size: str = "160px",
                    **options: Any) -> Dataset:
    """ImageNette (fast.ai's 10 easy ImageNet classes): ``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG`` (the
    test split), resized to ``image_size`` (default 128) px. ``size`` picks the release: '160px' (shorter side
    160, 94 MB), '320px' or 'full'; from ``path`` or ``$DDLIB_DATA/imagenette2-160`` (-320, none for full),
    downloaded from fast.ai's S3 bucket when online."""
    return _load_fastai("imagenette", IMAGENETTE, IMAGENETTE_CLASSES, path, download, size, options)


def load_imagewoof(path: str | None = None, download: bool | None = None, size: str = "160px",
                   **options: Any) -> Dataset:
    """ImageWoof (fast.ai's 10 hard ImageNet dog breeds), as :func:`load_imagenette`; ``$DDLIB_DATA/imagewoof2-160``."""
    return _load_fastai("imagewoof", IMAGEWOOF, IMAGEWOOF_CLASSES, path, download, size, options)


# ---- ImageNet-1K ---------------------------------------------------------------------------------------

def imagenet_where() -> Path:
    return data_root() / "imagenet"


def load_imagenet(path: str | None = None, download: bool | None = None, **options: Any) -> Dataset:
    """ImageNet-1K (ILSVRC 2012) from its folder layout ``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG`` (the
    validation images sorted into class folders, as torchvision's ImageFolder expects), resized to
    ``image_size`` (default 224) px; streamed from disk when its decoded images exceed
    :data:`~ddlib.data.folder.STREAM_ABOVE_BYTES` (the whole set at 224 px: about 190 GB). Class names
    from ``LOC_synset_mapping.txt``, ``words.txt`` or torchvision's ``meta.bin`` when the folder holds one.
    Never downloaded (its licence asks each user to sign up at image-net.org)."""
    if download:
        raise DataNotFoundError("imagenet: ImageNet cannot be downloaded by ddlib (its terms ask each user to register "
                                f"at https://image-net.org); put train/<wnid>/ and val/<wnid>/ in {imagenet_where()} "
                                "or give imagenet:PATH")
    if path is None:
        folder = imagenet_where()
        if not (folder / "train").is_dir():
            raise DataNotFoundError(
                f"imagenet: {folder / 'train'} does not exist. Get ILSVRC2012 from https://image-net.org (a free "
                f"account), unpack train/<wnid>/*.JPEG and val/<wnid>/*.JPEG into {folder} (the validation images "
                "sorted into class folders, e.g. with torchvision.datasets.ImageNet or the usual valprep.sh), or give "
                "imagenet:PATH")
        path = str(folder)
    opts = {"image_size": IMAGENET_IMAGE_SIZE, **_tree_options(options)}
    ds = load_tree(path, layout=IMAGENET_LAYOUT, label="imagenet", **opts)
    wnids = ds.report["class_folders"]
    bad = [c for c in wnids if not _WNID.fullmatch(c)]
    if bad:
        raise DataNotFoundError(f"imagenet: {path} has class folders that are not WordNet ids ({bad[:5]}); ImageNet's "
                                "are train/n01440764/ ...; for other data use imagefolder:PATH")
    if len(wnids) != 1000:
        warnings.warn(f"imagenet: {path} has {len(wnids)} classes under train/, ImageNet-1K has 1000 (a subset?)",
                      DataLoadWarning, stacklevel=2)
    return _named(ds, "imagenet")


def _found_or_fetched(folder: Path, archive: Archive | None) -> str:
    if folder.is_dir():
        return str(folder)
    if archive is None:
        return f"not found: put train/<wnid>/ and val/<wnid>/ in {folder}, or give imagenet:PATH"
    how = "downloads are off (DDLIB_OFFLINE)" if offline() else f"downloaded from {archive.url} when loaded"
    return f"not found at {folder}; {how}"


ENTRIES = (
    DatasetEntry("tiny-imagenet", load_tiny_imagenet, needs="tiny-imagenet-200.zip (cs231n.stanford.edu, 248 MB, MD5 "
                 "checked), downloaded when online, or tiny-imagenet:PATH", path="optional",
                 where=lambda: _found_or_fetched(tiny_imagenet_where(), TINY_IMAGENET),
                 options=("download", *TREE_OPTIONS)),
    DatasetEntry("imagenette", load_imagenette, needs="fast.ai's imagenette2-160.tgz (size='320px'/'full' for the "
                 "others; MD5 checked), downloaded when online, or imagenette:PATH; 128 px unless image_size",
                 path="optional", where=lambda: _found_or_fetched(imagenette_where(), IMAGENETTE["160px"]),
                 options=("download", "size", *TREE_OPTIONS)),
    DatasetEntry("imagewoof", load_imagewoof, needs="fast.ai's imagewoof2-160.tgz (size='320px'/'full'; MD5 to be "
                 "confirmed), downloaded when online, or imagewoof:PATH; 128 px unless image_size", path="optional",
                 where=lambda: _found_or_fetched(imagewoof_where(), IMAGEWOOF["160px"]),
                 options=("download", "size", *TREE_OPTIONS)),
    DatasetEntry("imagenet", load_imagenet, needs="ILSVRC2012 from image-net.org (never downloaded): train/<wnid>/ and "
                 "val/<wnid>/ folders, or imagenet:PATH; 224 px unless image_size, streamed", path="optional",
                 where=lambda: _found_or_fetched(imagenet_where(), None), options=("download", *TREE_OPTIONS)),
)
