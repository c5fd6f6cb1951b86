"""The ImageNet family's loaders (issue 25 item 3) on small fixtures in each data set's real on-disk format: tiny
JPEG files under the real file and folder names, Tiny-ImageNet's wnids.txt, words.txt and val_annotations.txt,
fast.ai's tgz layout, ImageNet's train/<wnid>/ and val/<wnid>/. Downloads go through a mocked fetch."""
from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddlib import data
from ddlib.data import imagenet
from ddlib.data.download import Archive
from ddlib.utils import ParamError

TINY_WNIDS = {"n01443537": "goldfish, Carassius auratus", "n01629819": "European fire salamander, Salamandra salamandra",
              "n01641577": "bullfrog, Rana catesbeiana"}
COLOURS = [(220, 30, 30), (30, 220, 30), (30, 30, 220), (220, 220, 30), (30, 220, 220), (220, 30, 220),
           (120, 60, 10), (10, 60, 120), (200, 200, 200), (60, 60, 60)]


def _jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (16, 16), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, colour if mode == "RGB" else colour[0]).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _write(root: Path, files: dict[str, bytes]) -> Path:
    for name, blob in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(blob)
    return root / next(iter(files)).split("/")[0]


def tiny_files(n_train: int = 4, n_val: int = 2, n_test: int = 3) -> dict[str, bytes]:
    """Tiny-ImageNet-200's layout with three of its classes (64 x 64 JPEGs, one greyscale as in the real set)."""
    r = "tiny-imagenet-200"
    files = {f"{r}/wnids.txt": "".join(f"{w}\n" for w in TINY_WNIDS).encode(),
             f"{r}/words.txt": "".join(f"{w}\t{n}\n" for w, n in
                                       {"n00001740": "entity", **TINY_WNIDS}.items()).encode()}
    annotations, j = [], 0
    for k, w in enumerate(TINY_WNIDS):
        for i in range(n_train):
            mode = "L" if (k, i) == (0, 0) else "RGB"
            files[f"{r}/train/{w}/images/{w}_{i}.JPEG"] = _jpeg(COLOURS[k], (64, 64), mode)
        files[f"{r}/train/{w}/{w}_boxes.txt"] = "".join(f"{w}_{i}.JPEG\t0\t0\t63\t63\n" for i in range(n_train)).encode()
        for _ in range(n_val):
            files[f"{r}/val/images/val_{j}.JPEG"] = _jpeg(COLOURS[k], (64, 64))
            annotations.append(f"val_{j}.JPEG\t{w}\t0\t32\t44\t62\n")
            j += 1
    files[f"{r}/val/val_annotations.txt"] = "".join(annotations).encode()
    for i in range(n_test):
        files[f"{r}/test/images/test_{i}.JPEG"] = _jpeg(COLOURS[i % 3], (64, 64))
    return files


def fastai_files(folder: str, wnids: dict[str, str], n: int = 2) -> dict[str, bytes]:
    """fast.ai's imagenette2-160 / imagewoof2-160 layout: train/<wnid>/ and val/<wnid>/, images of several sizes."""
    files = {f"{folder}/noisy_{folder.split('2')[0]}.csv": b"path,noisy_labels_0,is_valid\n"}
    for k, w in enumerate(wnids):
        for split in ("train", "val"):
            for i in range(n):
                size = (24, 16) if i % 2 else (16, 20)  # the shorter side fixed, the other free, as the real files
                files[f"{folder}/{split}/{w}/{w}_{split}{i}.JPEG"] = _jpeg(COLOURS[k], size)
    return files


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in files.items():
            z.writestr(name, blob)
    return path


def _tgz(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as t:
        for name, blob in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            t.addfile(info, io.BytesIO(blob))
    return path


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _colour_of(x: torch.Tensor) -> int:
    """The fixture colour nearest to an image's mean colour."""
    m = x.float().mean(dim=(1, 2))
    return int(torch.cdist(m[None], torch.tensor(COLOURS, dtype=torch.float)).argmin())


# ---- Tiny-ImageNet -----------------------------------------------------------------------------------

def test_tiny_imagenet_in_its_own_layout(tmp_path: Path) -> None:
    folder = _write(tmp_path, tiny_files())
    with pytest.warns(data.DataLoadWarning, match=r"converted 1 image\(s\) to RGB"):
        ds = data.load(f"tiny-imagenet:{folder}")
    assert ds.name == "tiny-imagenet" and ds.image_shape == (3, 64, 64)
    assert ds.classes == ["goldfish", "European fire salamander", "bullfrog"]  # words.txt's first names, wnid order
    assert ds.report["class_folders"] == sorted(TINY_WNIDS)
    assert torch.bincount(ds.train_y).tolist() == [4, 4, 4] and torch.bincount(ds.test_y).tolist() == [2, 2, 2]
    # the val images are labelled by val_annotations.txt, not by a folder
    assert [_colour_of(x) for x in ds.test_x] == ds.test_y.tolist()
    assert [_colour_of(x) for x in ds.train_x[1:]] == ds.train_y[1:].tolist()
    assert ds.report["ignored"] == {"the layout's own files": 4, "test/ (no labels)": 3}  # 3 box lists + annotations
    assert ds.report["skipped"] == {}


def test_tiny_imagenet_val_image_without_a_label_is_counted(tmp_path: Path) -> None:
    files = tiny_files()
    files["tiny-imagenet-200/val/images/val_99.JPEG"] = _jpeg(COLOURS[0], (64, 64))
    with pytest.warns(data.DataLoadWarning, match=r"1 no label in val_annotations\.txt\), e\.g\. val/images/val_99"):
        ds = data.load(f"tiny-imagenet:{_write(tmp_path, files)}")
    assert len(ds.test_y) == 6


def test_tiny_imagenet_from_the_data_folder_and_its_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DDLIB_DATA", str(tmp_path))
    _write(tmp_path, tiny_files())
    archive = _zip(tmp_path / "tiny-imagenet-200.zip", tiny_files())
    with pytest.warns(data.DataLoadWarning, match="converted 1 image"):  # the greyscale one, each time
        ds = data.load("tiny-imagenet", per_class=2, seed=1)
        from_zip = data.load(f"tiny-imagenet:{archive}")
        whole = data.load("tiny-imagenet")
    assert torch.bincount(ds.train_y).tolist() == [2, 2, 2] and ds.source == str(tmp_path / "tiny-imagenet-200")
    assert torch.equal(from_zip.test_x, whole.test_x) and torch.equal(from_zip.train_x, whole.train_x)


def _fake_fetch(blob: bytes, calls: list[str]):  # noqa: ANN202
    def fetch(url: str, dest: Path) -> None:
        calls.append(url)
        dest.write_bytes(blob)
    return fetch


def test_tiny_imagenet_download_checks_the_md5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DDLIB_DATA", str(tmp_path / "root"))
    with pytest.raises(data.DataNotFoundError, match=r"tiny-imagenet: not found, and downloads are off .*put "
                                                     r"tiny-imagenet-200\.zip \(from http://cs231n\.stanford\.edu/"
                                                     r"tiny-imagenet-200\.zip\) .* in .*root"):
        data.load("tiny-imagenet")
    blob = _zip(tmp_path / "fixture.zip", tiny_files()).read_bytes()
    calls: list[str] = []
    monkeypatch.setattr(data.download, "fetch", _fake_fetch(blob, calls))
    with pytest.raises(data.UnreadableDataError, match=r"has MD5 [0-9a-f]{32}, expected 90528d7ca1a48142e341f4ef8d21d0de"
                                                       r"; it was moved to .*tiny-imagenet-200\.zip\.bad"):
        data.load("tiny-imagenet", download=True)
    assert calls == [imagenet.TINY_IMAGENET.url] and (tmp_path / "root" / "tiny-imagenet-200.zip.bad").exists()
    assert not (tmp_path / "root" / "tiny-imagenet-200").exists()
    monkeypatch.setattr(imagenet, "TINY_IMAGENET", Archive(imagenet.TINY_IMAGENET.url, hashlib.md5(blob).hexdigest()))
    with pytest.warns(data.DataLoadWarning, match="converted 1 image"):
        ds = data.load("tiny-imagenet", download=True)
        data.load("tiny-imagenet")  # unpacked: no second download
    assert (tmp_path / "root" / "tiny-imagenet-200" / "wnids.txt").exists() and len(ds.train_y) == 12
    assert len(calls) == 2


def test_a_failed_download_names_the_url_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DDLIB_DATA", str(tmp_path))

    def offline_fetch(url: str, dest: Path) -> None:
        dest.write_bytes(b"half")
        raise OSError("Network is unreachable")

    monkeypatch.setattr(data.download, "fetch", offline_fetch)
    with pytest.raises(data.DataNotFoundError, match=r"downloading https://s3.amazonaws.com/fast-ai-imageclas/"
                                                     r"imagenette2-160\.tgz failed \(OSError: Network is unreachable\)"):
        data.load("imagenette", download=True)
    assert list(tmp_path.iterdir()) == []


# ---- ImageNette and ImageWoof --------------------------------------------------------------------------

def test_imagenette_in_fastai_layout(tmp_path: Path) -> None:
    folder = _write(tmp_path, fastai_files("imagenette2-160", imagenet.IMAGENETTE_CLASSES))
    ds = data.load(f"imagenette:{folder}", image_size=8)
    assert ds.name == "imagenette" and ds.image_shape == (3, 8, 8)
    assert ds.classes == ["tench", "English springer", "cassette player", "chain saw", "church", "French horn",
                          "garbage truck", "gas pump", "golf ball", "parachute"]
    assert torch.bincount(ds.train_y).tolist() == [2] * 10 and torch.bincount(ds.test_y).tolist() == [2] * 10
    assert [_colour_of(x) for x in ds.test_x] == ds.test_y.tolist()
    assert data.load(f"imagenette:{folder}").image_shape == (3, 128, 128)  # the default size


def test_imagewoof_downloads_into_the_data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DDLIB_DATA", str(tmp_path / "root"))
    blob = _tgz(tmp_path / "woof.tgz", fastai_files("imagewoof2-160", imagenet.IMAGEWOOF_CLASSES)).read_bytes()
    calls: list[str] = []
    monkeypatch.setattr(data.download, "fetch", _fake_fetch(blob, calls))
    with pytest.raises(data.UnreadableDataError, match=r"expected 3d200a7be99704a0d7509be2a9fbfe15 \(the recorded checksum "
                                                       r"is not confirmed"):
        data.load("imagewoof", download=True)
    woof = dict(imagenet.IMAGEWOOF)
    woof["160px"] = Archive(woof["160px"].url, hashlib.md5(blob).hexdigest(), confirmed=False)
    monkeypatch.setattr(imagenet, "IMAGEWOOF", woof)
    ds = data.load("imagewoof", download=True, image_size=8)
    assert calls == [f"{imagenet._S3}/imagewoof2-160.tgz"] * 2
    assert ds.classes[0] == "Shih-Tzu" and ds.source == str(tmp_path / "root" / "imagewoof2-160")


def test_imagewoof_refuses_other_classes(tmp_path: Path) -> None:
    folder = _write(tmp_path, fastai_files("imagenette2-160", imagenet.IMAGENETTE_CLASSES))
    with pytest.raises(data.DataNotFoundError, match=r"imagewoof: .* expected the 10 WordNet ids of imagewoof "
                                                     r"\(n02086240, .*\); for another subset use imagefolder:PATH"):
        data.load(f"imagewoof:{folder}", image_size=8)


def test_fastai_size_is_checked_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data.download, "fetch", lambda url, dest: pytest.fail("no download for a bad size"))
    with pytest.raises(ParamError, match=r"size='200px' is not accepted; choose one of \['160px', '320px', 'full'\]"):
        data.load("imagenette", size="200px", download=True)
    with pytest.raises(ParamError, match="image_size=0"):
        data.load("imagenette", image_size=0, download=True)


# ---- ImageNet-1K -----------------------------------------------------------------------------------------

IMAGENET_WNIDS = {"n01440764": "tench, Tinca tinca", "n01443537": "goldfish, Carassius auratus",
                  "n01484850": "great white shark, white shark, man-eater"}


def imagenet_files(val_sorted: bool = True) -> dict[str, bytes]:
    """ImageNet's folders after the usual val reorganisation, and Kaggle's LOC_synset_mapping.txt."""
    files = {"imagenet/LOC_synset_mapping.txt": "".join(f"{w} {n}\n" for w, n in IMAGENET_WNIDS.items()).encode()}
    v = 1
    for k, w in enumerate(IMAGENET_WNIDS):
        for i in range(3):
            files[f"imagenet/train/{w}/{w}_{i + 1}.JPEG"] = _jpeg(COLOURS[k], (20 + i, 16))
        for _ in range(2):
            name = f"ILSVRC2012_val_{v:08d}.JPEG"
            files[f"imagenet/val/{w}/{name}" if val_sorted else f"imagenet/val/{name}"] = _jpeg(COLOURS[k], (16, 18))
            v += 1
    return files


def test_imagenet_from_its_folder_layout(tmp_path: Path) -> None:
    folder = _write(tmp_path, imagenet_files())
    with pytest.warns(data.DataLoadWarning, match=r"has 3 classes under train/, ImageNet-1K has 1000 \(a subset\?\)"):
        ds = data.load(f"imagenet:{folder}", image_size=8)
    assert ds.name == "imagenet" and ds.classes == ["tench", "goldfish", "great white shark"]
    assert torch.bincount(ds.train_y).tolist() == [3, 3, 3] and torch.bincount(ds.test_y).tolist() == [2, 2, 2]
    assert [_colour_of(x) for x in ds.train_x] == ds.train_y.tolist()
    with pytest.warns(data.DataLoadWarning):
        assert data.load(f"imagenet:{folder}", image_size=8, stream=True).streamed


def test_imagenet_val_not_sorted_into_classes_is_named(tmp_path: Path) -> None:
    folder = _write(tmp_path, imagenet_files(val_sorted=False))
    with pytest.raises(data.DataNotFoundError, match=r"no images under test/<class>/; skipped 6 file\(s\) \(6 not in a "
                                                     r"class folder of val/\), e\.g\. val/ILSVRC2012_val_00000001\.JPEG"):
        data.load(f"imagenet:{folder}", image_size=8)


def test_imagenet_is_never_downloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DDLIB_DATA", str(tmp_path))
    monkeypatch.setenv("DDLIB_OFFLINE", "0")
    monkeypatch.setattr(data.download, "fetch", lambda url, dest: pytest.fail("ImageNet is never downloaded"))
    with pytest.raises(data.DataNotFoundError, match=rf"imagenet: {tmp_path}/imagenet/train does not exist\. Get "
                                                     r"ILSVRC2012 from https://image-net\.org"):
        data.load("imagenet")
    with pytest.raises(data.DataNotFoundError, match="cannot be downloaded by ddlib"):
        data.load("imagenet", download=True)


def test_imagenet_class_folders_must_be_wordnet_ids(tmp_path: Path) -> None:
    files = {k.replace("n01484850", "sharks"): v for k, v in imagenet_files().items()}
    with pytest.raises(data.DataNotFoundError, match=r"not WordNet ids \(\['sharks'\]\)"):
        data.load(f"imagenet:{_write(tmp_path, files)}", image_size=8)


def test_the_listing_says_what_each_needs_and_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    from ddlib.cli import main

    monkeypatch.setenv("DDLIB_DATA", str(tmp_path))
    _write(tmp_path, tiny_files())
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    for usage in ("tiny-imagenet[:PATH]", "imagenette[:PATH]", "imagewoof[:PATH]", "imagenet[:PATH]"):
        assert usage in out
    assert f"from:  {tmp_path / 'tiny-imagenet-200'}\n" in out
    assert "cs231n.stanford.edu" in out and "never downloaded" in out and "MD5 to be confirmed" in out
    assert "downloads are off (DDLIB_OFFLINE)" in out  # imagenette: not there, and the tests are offline
    assert np.all([line.startswith((" ", *[e.usage for e in data.DATASETS.values()])) for line in out.splitlines()])
