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
    monkeypatch.setattr(data.idx, "DEBIAN_FASHION_MNIST", tmp_path / "absent")
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
    assert names == [e.usage for e in data.DATASETS.values()]
    assert {"digits", "imagefolder:PATH", "cifar10[:PATH]", "tiny-imagenet[:PATH]", "imagenet[:PATH]"} <= set(names)


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


# ---- issue 14: corrupt images, unreadable archives, silent drops -------------------------------

def _cache_entries() -> set:
    from ddlib import artifacts

    return {p.name for p in artifacts.cache_dir().iterdir()}


def _full_layout() -> dict[str, bytes]:
    return _layout(n_train=12, n_test=6)


@pytest.mark.parametrize("form", ["folder", "tar.gz", "zip"])
@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_corrupt_image_names_the_file(tmp_path: Path, form: str, damage: str) -> None:
    """Issue 14: PIL's UnidentifiedImageError / 'image file is truncated' named no file."""
    files = _full_layout()
    good = files["toy/train/dog/001.png"]
    files["toy/train/dog/001.png"] = {"garbage": b"\x89PNG not really", "truncated": good[: len(good) - 20],
                                      "empty": b""}[damage]
    if form == "folder":
        path = _write_folder(tmp_path, files)
    elif form == "zip":
        path = _write_zip(tmp_path / "toy.zip", files)
    else:
        path = _write_tar(tmp_path / "toy.tar.gz", files, "w:gz")
    before = _cache_entries()
    with pytest.raises(data.UnreadableDataError, match=r"cannot decode the image .*toy/train/dog/001\.png.*"
                                                       r"replace it with a good copy or delete it") as e:
        data.load(f"imagefolder:{path}")
    assert "BytesIO" not in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, FileNotFoundError)  # the CLI's handler (ParamError, FileNotFoundError) catches it
    assert _cache_entries() == before  # nothing cached for a failed load


def _archive(tmp_path: Path, suffix: str) -> Path:
    files = _full_layout()
    if suffix == "zip":
        return _write_zip(tmp_path / "toy.zip", files)
    return _write_tar(tmp_path / f"toy.{suffix}", files, {"tar": "w", "tar.gz": "w:gz", "tar.xz": "w:xz"}[suffix])


@pytest.mark.parametrize("case, match", [
    ("garbage.tar.gz", r"cannot read the archive .*garbage\.tar\.gz \(ReadError: .*not a gzip file"),
    ("empty.tar", r"empty\.tar is an empty file \(0 bytes\)"),
    ("notzip.zip", r"cannot read the archive .*notzip\.zip \(BadZipFile: File is not a zip file\)"),
    ("half.zip", r"cannot read the archive .*half\.zip \(BadZipFile"),
    ("half.tar.xz", r"cannot read the archive .*half\.tar\.xz after member 'toy/.*' \(EOFError"),
    ("half.tar", r"cannot read the archive .*half\.tar after member 'toy/.*' \(ReadError: the archive ends or "
                 r"breaks off"),
])
def test_unreadable_archive_names_the_file_and_what_to_do(tmp_path: Path, case: str, match: str) -> None:
    """Issue 14: tarfile.ReadError on a garbage .tar.gz or an empty .tar; a truncated tar read as
    "test classes not in train"."""
    stem, kind = case.split(".", 1)
    path = tmp_path / case
    if stem == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    elif stem == "empty":
        path.write_bytes(b"")
    elif stem == "notzip":
        path.write_text("<html>404 Not Found</html>")
    else:
        blob = _archive(tmp_path, kind).read_bytes()
        path.write_bytes(blob[: len(blob) // 2])
    before = _cache_entries()
    with pytest.raises(data.UnreadableDataError, match=match) as e:
        data.load(f"imagefolder:{path}")
    assert "\n" not in str(e.value)
    assert "not in train" not in str(e.value)
    if stem != "empty":
        assert "download or copy it again" in str(e.value)
    assert _cache_entries() == before


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "tar.xz", "zip"])
def test_an_archive_cut_anywhere_loads_whole_or_fails_clearly(tmp_path: Path, kind: str) -> None:
    """Truncation at any point: either every image is there (only padding was lost) or an
    UnreadableDataError; never a smaller data set, never "test classes not in train"."""
    blob = _archive(tmp_path, kind).read_bytes()
    for i, frac in enumerate(np.linspace(0.05, 0.999, 13)):
        path = tmp_path / f"cut{i}.{kind}"
        path.write_bytes(blob[: int(len(blob) * frac)])
        try:
            ds = data.load(f"imagefolder:{path}")
        except data.UnreadableDataError:
            continue
        assert torch.bincount(ds.train_y).tolist() == [12, 12, 12] and len(ds.test_y) == 18, frac


def test_garbage_idx_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (tmp_path / f"{stem}.gz").write_bytes(b"not gzip at all")
    monkeypatch.setenv("DDLIB_DATA", str(tmp_path))
    with pytest.raises(data.UnreadableDataError, match=r"train-images-idx3-ubyte\.gz cannot be read"):
        data.load("fashion-mnist")
    import gzip
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"<html>"))
    with pytest.raises(data.UnreadableDataError, match="is not an IDX file"):
        data.load("fashion-mnist")


@pytest.mark.parametrize("where", ["train", "test"])
@pytest.mark.parametrize("form", ["folder", "tar", "zip"])
def test_empty_class_folder_is_named_not_dropped(tmp_path: Path, where: str, form: str) -> None:
    """Issue 14: an empty class folder was dropped without a word."""
    files = _full_layout()
    if form == "folder":
        path = _write_folder(tmp_path, files)
        (path / where / "frog").mkdir()
    else:
        files[f"toy/{where}/frog/readme.txt"] = b"images to come"  # a class folder with no image in it
        path = (_write_zip(tmp_path / "toy.zip", files) if form == "zip"
                else _write_tar(tmp_path / "toy.tar", files, "w"))
    with pytest.raises(data.DataNotFoundError, match=rf"class folder\(s\) without images: {where}/frog"):
        data.load(f"imagefolder:{path}")


def test_empty_folder_entry_in_a_tar(tmp_path: Path) -> None:
    """tar records folders as members of their own; an empty one is seen too."""
    path = _write_tar(tmp_path / "toy.tar", _full_layout(), "w")
    with tarfile.open(path, "a") as t:
        info = tarfile.TarInfo("toy/train/frog")
        info.type = tarfile.DIRTYPE
        t.addfile(info)
    with pytest.raises(data.DataNotFoundError, match="without images: train/frog"):
        data.load(f"imagefolder:{path}")


def test_hidden_files_and_macos_forks_are_ignored(tmp_path: Path) -> None:
    files = _full_layout()
    files["toy/train/cat/._000.png"] = b"\x00\x05\x16\x07AppleDouble"
    files["__MACOSX/toy/train/cat/._001.png"] = b"\x00\x05\x16\x07AppleDouble"
    files["toy/train/.ipynb_checkpoints/x.png"] = b"junk"
    ds = data.load(f"imagefolder:{_write_zip(tmp_path / 'toy.zip', files)}")
    assert torch.bincount(ds.train_y).tolist() == [12, 12, 12]
    # members named './toy/...' (tar run inside the folder) are not hidden
    dotted = {f"./{k}": v for k, v in _full_layout().items()}
    ds = data.load(f"imagefolder:{_write_tar(tmp_path / 'dot.tar', dotted, 'w')}")
    assert ds.classes == ["cat", "dog", "eel"]


def test_single_class_is_refused_at_load_time(tmp_path: Path) -> None:
    files = {k: v for k, v in _full_layout().items() if "/cat/" in k}
    with pytest.raises(data.DataNotFoundError, match=r"single class under train/ \('cat'\).*at least 2 classes"):
        data.load(f"imagefolder:{_write_folder(tmp_path, files)}")


@pytest.mark.parametrize("kwargs, match", [
    ({"noise": float("nan")}, "noise=nan"),
    ({"noise": -0.1}, "noise"),
    ({"n_train": 0}, "n_train"),
    ({"image_size": 2.5}, "image_size"),
    ({"patterns_per_class": (2, 0)}, "patterns_per_class"),
    ({"patterns_per_class": ()}, "patterns_per_class"),
    ({"num_classes": 1}, "num_classes"),
])
def test_synthetic_generator_settings_are_checked(kwargs: dict, match: str) -> None:
    with pytest.raises(ParamError, match=match):
        data.load("synthetic-patterns", **kwargs)


def test_imagefolder_image_size_is_checked(tmp_path: Path) -> None:
    path = _write_folder(tmp_path, _full_layout())
    for bad in (0, float("nan"), "32"):
        with pytest.raises(ParamError, match="image_size"):
            data.load(f"imagefolder:{path}", image_size=bad)


def test_folder_changes_below_the_top_are_seen(tmp_path: Path) -> None:
    """The cache key of a folder covers its whole tree: an image added to a class is not missed."""
    path = _write_folder(tmp_path, _full_layout())
    assert len(data.load(f"imagefolder:{path}").train_y) == 36
    (path / "train" / "cat" / "new.png").write_bytes(_png((200, 10, 10)))
    assert len(data.load(f"imagefolder:{path}").train_y) == 37
    (path / "train" / "frog").mkdir()
    with pytest.raises(data.DataNotFoundError, match="train/frog"):
        data.load(f"imagefolder:{path}")


# ---- issue 24 item 2: loaders never drop data without a word --------------------------------------

def _write(form: str, tmp_path: Path, files: dict[str, bytes]) -> Path:
    if form == "folder":
        return _write_folder(tmp_path, files)
    if form == "zip":
        return _write_zip(tmp_path / "toy.zip", files)
    return _write_tar(tmp_path / "toy.tar.gz", files, "w:gz")


@pytest.mark.parametrize("form", ["folder", "tar.gz", "zip"])
def test_images_in_sub_folders_of_a_class_are_loaded(tmp_path: Path, form: str) -> None:
    """As torchvision's ImageFolder: train/a/extra/x.png is an image of class a (it was dropped silently)."""
    files = _full_layout()
    files["toy/train/cat/extra/deeper/x.png"] = _png((200, 10, 10))
    files["toy/test/eel/more/y.png"] = _png((10, 10, 200))
    ds = data.load(f"imagefolder:{_write(form, tmp_path, files)}")
    assert ds.classes == ["cat", "dog", "eel"]  # extra/ and deeper/ are no classes
    assert torch.bincount(ds.train_y).tolist() == [13, 12, 12]
    assert torch.bincount(ds.test_y).tolist() == [6, 6, 7]
    assert ds.report["loaded"] == {"train": 37, "test": 19} and ds.report["skipped"] == {}


@pytest.mark.parametrize("form", ["folder", "zip"])
def test_every_skipped_file_is_counted_and_named(tmp_path: Path, form: str) -> None:
    files = _full_layout()
    files["toy/train/cat/notes.txt"] = b"not an image"
    files["toy/train/stray.png"] = _png((1, 2, 3))             # an image outside any class folder
    files["toy/test/dog/._001.png"] = b"\x00\x05\x16\x07AppleDouble"  # hidden: counted, not warned about
    files["toy/README.md"] = b"outside the splits: not part of the data set"
    with pytest.warns(data.DataLoadWarning, match=r"skipped 2 file\(s\) \(1 not an image file, 1 not in a class "
                                                  r"folder of train/\), e.g. (toy/)?train/.*(notes\.txt|stray\.png)"):
        ds = data.load(f"imagefolder:{_write(form, tmp_path, files)}")
    assert ds.report["skipped"] == {"not an image file": 1, "not in a class folder of train/": 1}
    assert {n.removeprefix("toy/") for n in ds.report["skipped_examples"]} == {"train/cat/notes.txt", "train/stray.png"}
    assert ds.report["ignored"] == {"hidden files": 1}
    assert ds.report["loaded"] == {"train": 36, "test": 18}


def test_nothing_loadable_names_what_was_skipped(tmp_path: Path) -> None:
    files = {k: v for k, v in _full_layout().items() if "/train/" in k}
    files.update({f"toy/test/{c}/{i}.txt": b"x" for c in ("cat", "dog") for i in range(3)})
    files["toy/test/loose.png"] = _png((1, 2, 3))
    with pytest.raises(data.DataNotFoundError, match=r"class folder\(s\) without images: test/cat, test/dog .*; skipped 7 "
                                                     r"file\(s\) \(6 not an image file, 1 not in a class folder of test/\)"
                                                     r", e\.g\. test/cat/0\.txt") as e:
        data.load(f"imagefolder:{_write_folder(tmp_path, files)}")
    assert "\n" not in str(e.value)
    only_loose = {**{k: v for k, v in _full_layout().items() if "/train/" in k}, "toy/test/loose.png": _png((1, 2, 3))}
    with pytest.raises(data.DataNotFoundError, match=r"no images under test/<class>/; skipped 1 file\(s\) .*loose\.png"):
        data.load(f"imagefolder:{_write_folder(tmp_path / 'b', only_loose)}")


@pytest.mark.parametrize("form", ["folder", "zip"])
def test_skip_unreadable_skips_and_counts_corrupt_images(tmp_path: Path, form: str) -> None:
    files = _full_layout()
    files["toy/train/dog/001.png"] = b"\x89PNG not really"
    path = _write(form, tmp_path, files)
    with pytest.raises(data.UnreadableDataError, match=r"001\.png.*skip_unreadable=True"):
        data.load(f"imagefolder:{path}")
    with pytest.warns(data.DataLoadWarning, match=r"1 unreadable\), e\.g\. (toy/)?train/dog/001\.png"):
        ds = data.load(f"imagefolder:{path}", skip_unreadable=True)
    assert torch.bincount(ds.train_y).tolist() == [12, 11, 12] and ds.report["skipped"] == {"unreadable": 1}


@pytest.mark.parametrize("majority", ["RGB", "L"])
def test_mixed_greyscale_and_rgb_load_as_the_majority(tmp_path: Path, majority: str) -> None:
    """Issue 24: a mixed folder failed with 'several sizes ... pass image_size', which failed the same way."""
    minority = "L" if majority == "RGB" else "RGB"
    files = {f"m/{s}/{c}/{i}.png": _png((30 + 50 * k, 90, 150 + 20 * i), 6, mode=majority)
             for s in ("train", "test") for k, c in enumerate("ab") for i in range(3)}
    odd = _png((200, 100, 50), 6, mode=minority)
    files["m/train/a/odd.png"] = odd
    path = _write_folder(tmp_path, files)
    c = 3 if majority == "RGB" else 1
    with pytest.warns(data.DataLoadWarning, match=rf"converted 1 image\(s\) to {'RGB' if c == 3 else 'greyscale'}, "
                                                  rf"the channels most images have \(channels={4 - c} converts"):
        ds = data.load(f"imagefolder:{path}")
    _check(ds, c, 6, 2)
    want = np.asarray(Image.open(io.BytesIO(odd)).convert("RGB" if c == 3 else "L"))
    got = ds.train_x[3].numpy()  # class a: 0.png, 1.png, 2.png, odd.png
    assert np.array_equal(got.transpose(1, 2, 0) if c == 3 else got[0], want)  # as PIL converts it
    assert ds.report["converted"] == 1 and ds.report["channels"] == c
    with pytest.warns(data.DataLoadWarning, match=rf"converted 12 image\(s\) to .* \(channels={4 - c}\)"):
        forced = data.load(f"imagefolder:{path}", channels=4 - c)  # the option the warning names works
    _check(forced, 4 - c, 6, 2)


def test_a_tie_of_channels_keeps_colour(tmp_path: Path) -> None:
    files = {f"t/{s}/{c}/{i}.png": _png((30, 90, 150), 4, mode=("L" if c == "a" else "RGB"))
             for s in ("train", "test") for c in "ab" for i in range(2)}
    with pytest.warns(data.DataLoadWarning, match="to RGB"):
        ds = data.load(f"imagefolder:{_write_folder(tmp_path, files)}")
    _check(ds, 3, 4, 2)


@pytest.mark.parametrize("kwargs, match", [
    ({"channels": 2}, r"channels=2 is not accepted; choose one of \[1, 3\]"),
    ({"stream": "yes"}, "stream='yes'"),
    ({"skip_unreadable": "no"}, "skip_unreadable"),
    ({"colour": True}, r"colour=True is not an option of dataset 'imagefolder'; it takes \['image_size'"),
])
def test_folder_options_are_checked_before_any_work(tmp_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(ParamError, match=match):
        data.load(f"imagefolder:{tmp_path / 'absent'}", **kwargs)  # the path is not even looked at


@pytest.mark.parametrize("name, match", [
    ("imagefolder", r"dataset='imagefolder' needs a path: imagefolder:PATH"),
    ("cifar10:", "needs a path"),
    ("digits:/x", "digits takes no path"),
])
def test_the_one_name_parser(name: str, match: str) -> None:
    with pytest.raises(ParamError, match=match):
        data.validate_name(name)
    assert data.split_name("cifar10:/d/c.tar.xz") == ("cifar10", "/d/c.tar.xz")
    assert data.split_name("imagefolder:/a:b") == ("imagefolder", "/a:b")
    assert data.split_name("fashion-mnist") == ("fashion-mnist", None)
    assert data.split_name("x/y") == ("x/y", None)


def test_options_a_data_set_does_not_take_are_refused() -> None:
    with pytest.raises(ParamError, match=r"image_size=16 is not an option of dataset 'digits'; it takes no options"):
        data.load("digits", image_size=16)
    assert data.load("digits", image_size=None).spec["image_size"] is None  # None counts as not given


def test_a_symlinked_class_folder_is_followed(tmp_path: Path) -> None:
    """As torchvision's ImageFolder (os.walk(followlinks=True)); pathlib's rglob left its images out."""
    path = _write_folder(tmp_path / "a", _full_layout())
    (path / "train" / "eel").rename(tmp_path / "eels")
    (path / "train" / "eel").symlink_to(tmp_path / "eels", target_is_directory=True)
    ds = data.load(f"imagefolder:{path}")
    assert torch.bincount(ds.train_y).tolist() == [12, 12, 12]
    assert torch.equal(data.load(f"imagefolder:{path}", stream=True).train_x[:], ds.train_x)
