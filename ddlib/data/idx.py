"""Fashion-MNIST from its IDX files: ``$DDLIB_DATA``, the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``), or torchvision's download when online."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from ddlib.data.core import DataNotFoundError, Dataset, DatasetEntry, UnreadableDataError, data_root
from ddlib.utils import offline

__all__ = ["ENTRIES", "DEBIAN_FASHION_MNIST", "FASHION_CLASSES", "IDX_STEMS", "read_idx", "fashion_mnist_locations",
           "find_idx", "load_fashion_mnist", "fashion_mnist_where"]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                   "Bag", "Ankle boot"]
IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped or not) as an array of its shape."""
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


def find_idx(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz``, whichever is there."""
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def fashion_mnist_where() -> str:
    """The folder Fashion-MNIST would be read from now, or where it would be downloaded to."""
    found = next((str(f) for f in fashion_mnist_locations() if find_idx(f, IDX_STEMS[0])), None)
    net = "downloads are off (DDLIB_OFFLINE)" if offline() else "torchvision download"
    return found or f"not found in {[str(p) for p in fashion_mnist_locations()]}; {net} to {data_root()}"


def load_fashion_mnist(download: bool | None = None) -> Dataset:
    """Fashion-MNIST (60,000 + 10,000 grey 28 x 28 images, 10 classes) from the first folder of
    :func:`fashion_mnist_locations` holding the four IDX files; else torchvision's download when online."""
    for folder in fashion_mnist_locations():
        files = [find_idx(folder, s) for s in IDX_STEMS]
        if all(files):
            tx, ty, vx, vy = (read_idx(f) for f in files)  # type: ignore[arg-type]
            return Dataset("fashion-mnist", torch.from_numpy(tx.copy())[:, None],
                           torch.from_numpy(ty.astype(np.int64)), torch.from_numpy(vx.copy())[:, None],
                           torch.from_numpy(vy.astype(np.int64)), list(FASHION_CLASSES), source=str(folder))
    download = (not offline()) if download is None else download
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
        return load_fashion_mnist(download=False)
    raise DataNotFoundError(f"fashion-mnist: the IDX files were not found in {tried} (downloads are off: "
                            "DDLIB_OFFLINE is set). Install the Debian package 'dataset-fashion-mnist' "
                            "(apt-get install dataset-fashion-mnist) or put train-images-idx3-ubyte(.gz) and "
                            "its three siblings in $DDLIB_DATA.")


ENTRIES = (
    DatasetEntry("fashion-mnist", load_fashion_mnist,
                 needs="the four IDX files: the Debian package dataset-fashion-mnist or $DDLIB_DATA, else "
                       "torchvision's download when online", where=fashion_mnist_where,
                 options=("download",)),
)
