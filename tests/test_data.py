"""Every loader of the dataset registry, the archive forms, subsampling and the error paths."""
from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddlib import data
from ddlib.utils import ParamError
from tests.conftest import SHARED_DATA

CIFAR_ARCHIVE = SHARED_DATA / "cifar10-jpeg.tar.xz"


def _check(ds: data.Dataset, channels: int, size: int, classes: int) -> None:
    for x, y in ((ds.train_x, ds.train_y), (ds.test_x, ds.test_y)):
        assert x.dtype == torch.uint8 and y.dtype == torch.int64
        assert x.shape[1:] == (channels, size, size) and len(x) == len(y)
        assert int(y.min()) >= 0 and int(y.max()) < classes
    assert ds.num_classes == classes == len(ds.classes)


def _png(rgb: tuple[int, int, int], size: int = 6, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (size, size), rgb if mode == "RGB" else rgb[0]).save(buf, format="PNG")
    return buf.getvalue()


def _layout(n_train: int = 3, n_test: int = 2, size: int = 6) -> dict[str, bytes]:
    files = {}
    for c, colour in (("cat", (200, 10, 10)), ("dog", (10, 200, 10)), ("eel", (10, 10, 200))):
        for split, n in (("train", n_train), ("test", n_test)):
            for i in range(n):
                files[f"toy/{split}/{c}/{i:03d}.png"] = _png(colour, size)
    return files


def _write_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, blob in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(blob)
    return root / next(iter(files)).split("/")[0]


def _write_tar(path: Path, files: dict[str, bytes], mode: str) -> Path:
    with tarfile.open(path, mode) as t:
        for name, blob in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            t.addfile(info, io.BytesIO(blob))
    return path


def _write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in files.items():
            z.writestr(name, blob)
    return path


def test_digits() -> None:
    ds = data.load("digits")
    _check(ds, 1, 8, 10)
    assert len(ds.train_x) + len(ds.test_x) == 1797
    assert int(ds.train_x.max()) == 255


def test_fashion_mnist_from_debian_package() -> None:
    if not data.DEBIAN_FASHION_MNIST.exists():
        pytest.skip("Debian package dataset-fashion-mnist not installed (make test installs it)")
    ds = data.load("fashion-mnist", per_class=20, test_per_class=5, seed=1)
    _check(ds, 1, 28, 10)
    assert torch.bincount(ds.train_y).tolist() == [20] * 10
    assert torch.bincount(ds.test_y).tolist() == [5] * 10
    assert ds.classes[0] == "T-shirt/top"


def test_fashion_mnist_from_ddlib_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """IDX files (gzipped) in $DDLIB_DATA are found first."""
    import gzip

    def idx(arr: np.ndarray) -> bytes:
        head = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        return gzip.compress(head + arr.astype(np.uint8).tobytes())

    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        (tmp_path / f"{prefix}-images-idx3-ubyte.gz").write_bytes(idx(rng.integers(0, 256, (n, 28, 28))))
        (tmp_path / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(idx(np.arange(n) % 10))
    monkeypatch.setenv("DDLIB_DATA", str(tmp_path))
    ds = data.load("fashion-mnist")
    _check(ds, 1, 28, 10)
    assert len(ds.train_x) == 30 and ds.source == str(tmp_path)


@pytest.mark.parametrize("form", ["folder", "tar", "tar.gz", "tar.xz", "zip"])
def test_imagefolder_forms(tmp_path: Path, form: str) -> None:
    files = _layout()
    if form == "folder":
        path = _write_folder(tmp_path, files)
    elif form == "zip":
        path = _write_zip(tmp_path / "toy.zip", files)
    else:
        mode = {"tar": "w", "tar.gz": "w:gz", "tar.xz": "w:xz"}[form]
        path = _write_tar(tmp_path / f"toy.{form}", files, mode)
    ds = data.load(f"imagefolder:{path}")
    _check(ds, 3, 6, 3)
    assert ds.classes == ["cat", "dog", "eel"]
    assert torch.bincount(ds.train_y).tolist() == [3, 3, 3]
    # the colour of each class survives decoding
    assert int(ds.train_x[ds.train_y == 1][:, 1].float().mean()) == 200
    again = data.load(f"imagefolder:{path}")  # second load comes from the cache
    assert torch.equal(again.train_x, ds.train_x)


def test_imagefolder_resizes_mixed_sizes(tmp_path: Path) -> None:
    files = _layout()
    files["toy/train/cat/big.png"] = _png((200, 10, 10), size=12)
    path = _write_folder(tmp_path, files)
    with pytest.raises(data.DataNotFoundError, match="image_size"):
        data.load(f"imagefolder:{path}")
    ds = data.load(f"imagefolder:{path}", image_size=4)
    _check(ds, 3, 4, 3)


def test_imagefolder_grayscale(tmp_path: Path) -> None:
    files = {f"g/{s}/{c}/{i}.png": _png((40 * (k + 1), 0, 0), 5, mode="L")
             for s in ("train", "test") for k, c in enumerate("ab") for i in range(2)}
    ds = data.load(f"imagefolder:{_write_folder(tmp_path, files)}")
    _check(ds, 1, 5, 2)


@pytest.mark.parametrize("case, match", [
    ("missing", "does not exist"),
    ("no_test", "no images under test"),
    ("not_archive", "not an archive"),
])
def test_imagefolder_errors(tmp_path: Path, case: str, match: str) -> None:
    if case == "missing":
        path = tmp_path / "nope"
    elif case == "no_test":
        path = _write_folder(tmp_path, {k: v for k, v in _layout().items() if "/train/" in k})
    else:
        path = tmp_path / "toy.rar"
        path.write_bytes(b"x")
    with pytest.raises(data.DataNotFoundError, match=match):
        data.load(f"imagefolder:{path}")


def test_wrong_layout_does_not_cache(tmp_path: Path) -> None:
    """A failed load leaves nothing in the cache."""
    from ddlib import artifacts

    before = set(artifacts.cache_dir().iterdir())
    path = _write_folder(tmp_path, {"toy/images/a/1.png": _png((1, 2, 3))})
    with pytest.raises(data.DataNotFoundError):
        data.load(f"imagefolder:{path}")
    assert set(artifacts.cache_dir().iterdir()) == before


def test_cifar10_jpeg_archive() -> None:
    if not CIFAR_ARCHIVE.exists():
        pytest.skip(f"{CIFAR_ARCHIVE} not present")
    ds = data.load(f"cifar10:{CIFAR_ARCHIVE}", per_class=10, test_per_class=10)
    _check(ds, 3, 32, 10)
    assert ds.classes == data.CIFAR10_CLASSES
    assert torch.bincount(ds.train_y).tolist() == [10] * 10


def test_cifar_wrong_class_count(tmp_path: Path) -> None:
    path = _write_folder(tmp_path, _layout())
    with pytest.raises(data.DataNotFoundError, match="expected 10"):
        data.load(f"cifar10:{path}")


def test_offline_errors_say_how_to_get_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DDLIB_DATA", str(tmp_path))
    monkeypatch.setattr(data, "DEBIAN_FASHION_MNIST", tmp_path / "absent")
    with pytest.raises(data.DataNotFoundError, match="dataset-fashion-mnist"):
        data.load("fashion-mnist")
    with pytest.raises(data.DataNotFoundError, match="cifar10:PATH"):
        data.load("cifar10")


def test_synthetic_patterns_truth() -> None:
    ds = data.load("synthetic-patterns", seed=3)
    _check(ds, 3, 16, 4)
    assert ds.train_patterns is not None and ds.test_patterns is not None
    for c, m in enumerate((3, 2, 4, 3)):
        sizes = torch.bincount(ds.train_patterns[ds.train_y == c]).tolist()
        assert len(sizes) == m and all(s > 0 for s in sizes)
        assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]  # unequal sizes
    # sub-patterns are visually distinct: nearest prototype (per-pattern mean) recovers the id
    x = ds.train_x.float().flatten(1)
    correct = 0
    for c in range(4):
        xc, pc = x[ds.train_y == c], ds.train_patterns[ds.train_y == c]
        means = torch.stack([xc[pc == k].mean(0) for k in range(int(pc.max()) + 1)])
        correct += int((torch.cdist(xc, means).argmin(1) == pc).sum())
    assert correct == len(x)
    assert torch.equal(data.load("synthetic-patterns", seed=3).train_x, ds.train_x)
    assert not torch.equal(data.load("synthetic-patterns", seed=4).train_x, ds.train_x)


def test_subsampling_is_seeded_and_keeps_patterns() -> None:
    a = data.load("synthetic-patterns", per_class=30, seed=0)
    b = data.load("synthetic-patterns", per_class=30, seed=0)
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.train_patterns, b.train_patterns)
    assert torch.bincount(a.train_y).tolist() == [30] * 4
    d1, d2 = data.load("digits", per_class=5, seed=1), data.load("digits", per_class=5, seed=2)
    assert not torch.equal(d1.train_x, d2.train_x)
    assert d1.key() != d2.key()


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "mnist-fancy"}, "dataset='mnist-fancy' is not known; choose one of"),
    ({"name": ""}, "dataset"),
    ({"name": "digits", "per_class": 0}, "per_class=0"),
    ({"name": "digits", "seed": -1}, "seed=-1"),
    ({"name": "digits", "test_per_class": 2.5}, "test_per_class"),
])
def test_bad_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ParamError, match=match):
        data.load(**kwargs)


def test_sources_lists_every_dataset() -> None:
    names = [n for n, _ in data.sources()]
    assert set(data.DATASETS) <= set(names) and "imagefolder:PATH" in names


def test_cli_datasets(capsys: pytest.CaptureFixture) -> None:
    from ddlib.cli import main

    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "fashion-mnist" in out and "imagefolder:PATH" in out


def test_to_float_standardises() -> None:
    ds = data.load("digits")
    x = data.to_float(ds.train_x, ds.mean, ds.std)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(1), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(1), atol=1e-3)
