"""A pre-filled cache to hand out (``python -m ddlib cache export|import``, :mod:`ddlib.bundle`): what is exported
imports whole and loads; a tampered, truncated or foreign file is refused in one line and writes nothing."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import torch

from ddlib import artifacts, bundle
from ddlib.cli import main


def _cache_with_entries(folder: Path, monkeypatch: pytest.MonkeyPatch, n: int = 3) -> list[str]:
    monkeypatch.setenv("DDLIB_CACHE", str(folder))
    keys = [artifacts.make_key("stage", "digits", {"i": i}) for i in range(n)]
    for i, k in enumerate(keys):
        artifacts.save(k, {"w": torch.full((50,), float(i))})
    return keys


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


@pytest.fixture
def exported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[str]]:
    keys = _cache_with_entries(tmp_path / "organiser", monkeypatch)
    out = tmp_path / "workshop-cache.tar"
    manifest = bundle.export(out, source=tmp_path / "organiser")
    assert set(manifest["files"]) == {f"{k}{s}" for k in keys for s in (".pt", ".json")}
    return out, keys


def test_an_export_imports_whole_and_loads(exported: tuple[Path, list[str]], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    out, keys = exported
    attendee = tmp_path / "attendee"
    done = bundle.import_bundle(out, cache=attendee)
    assert sorted(done["imported"]) == sorted(keys) and done["kept"] == []
    monkeypatch.setenv("DDLIB_CACHE", str(attendee))
    for i, k in enumerate(keys):
        assert torch.equal(artifacts.load(k)["w"], torch.full((50,), float(i)))
    assert not [p for p in attendee.iterdir() if p.name.startswith(".import-")]  # no staging left
    again = bundle.import_bundle(out, cache=attendee)  # a second import keeps what is there
    assert again["imported"] == [] and sorted(again["kept"]) == sorted(keys)


def test_a_gzip_export_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = _cache_with_entries(tmp_path / "c", monkeypatch, n=1)
    bundle.export(tmp_path / "b.tar.gz", source=tmp_path / "c")
    assert bundle.import_bundle(tmp_path / "b.tar.gz", cache=tmp_path / "d")["imported"] == keys


def _refused(path: Path, cache: Path, capsys: pytest.CaptureFixture) -> str:
    before = _files(cache)
    with pytest.raises(bundle.BundleError, match="nothing imported"):
        bundle.import_bundle(path, cache=cache)
    assert main(["cache", "import", str(path), "--cache", str(cache)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err  # one line
    assert _files(cache) == before  # nothing written, no staging left
    return err


def test_a_tampered_file_is_refused(exported: tuple[Path, list[str]], tmp_path: Path,
                                    capsys: pytest.CaptureFixture) -> None:
    out, keys = exported
    data = bytearray(out.read_bytes())
    with tarfile.open(out) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".pt"))
    data[member.offset_data + member.size // 2] ^= 0xFF  # one byte of a payload, same size
    bad = tmp_path / "tampered.tar"
    bad.write_bytes(bytes(data))
    err = _refused(bad, tmp_path / "attendee", capsys)
    assert "SHA-256" in err


def test_a_truncated_file_is_refused(exported: tuple[Path, list[str]], tmp_path: Path,
                                     capsys: pytest.CaptureFixture) -> None:
    out, _ = exported
    attendee = tmp_path / "attendee"
    _cache_with_entries(attendee, pytest.MonkeyPatch(), n=1)  # a cache that already holds something
    for cut in (len(out.read_bytes()) // 2, 700):
        bad = tmp_path / f"cut{cut}.tar"
        bad.write_bytes(out.read_bytes()[:cut])
        _refused(bad, attendee, capsys)


def test_a_foreign_or_doctored_bundle_is_refused(exported: tuple[Path, list[str]], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    out, keys = exported
    not_tar = tmp_path / "notes.tar"
    not_tar.write_text("not a tar")
    _refused(not_tar, tmp_path / "a", capsys)
    # a member the manifest does not list (e.g. a file slipped in beside the entries)
    extra = tmp_path / "extra.tar"
    with tarfile.open(out) as src, tarfile.open(extra, "w") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m))
        blob = b"x"
        info = tarfile.TarInfo(f"{bundle.ENTRIES}/../../evil.sh")
        info.size = len(blob)
        dst.addfile(info, io.BytesIO(blob))
    _refused(extra, tmp_path / "b", capsys)
    # manifest and payload changed together, but the entry's own record no longer matches its payload
    forged = tmp_path / "forged.tar"
    with tarfile.open(out) as src, tarfile.open(forged, "w") as dst:
        manifest = json.loads(src.extractfile(bundle.MANIFEST).read())
        for m in src.getmembers():
            blob = src.extractfile(m).read()
            if m.name.endswith(f"{keys[0]}.pt"):
                blob = blob[:-1] + bytes([blob[-1] ^ 1])
                import hashlib
                manifest["files"][f"{keys[0]}.pt"]["sha256"] = hashlib.sha256(blob).hexdigest()
            if m.name == bundle.MANIFEST:
                continue
            dst.addfile(m, io.BytesIO(blob))
        blob = json.dumps(manifest).encode()
        info = tarfile.TarInfo(bundle.MANIFEST)
        info.size = len(blob)
        dst.addfile(info, io.BytesIO(blob))
    assert "its own record" in _refused(forged, tmp_path / "c", capsys)


def test_the_cli_exports_and_imports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture) -> None:
    keys = _cache_with_entries(tmp_path / "c", monkeypatch, n=2)
    assert main(["cache", "export", "--source", str(tmp_path / "c"), "--out", str(tmp_path / "x.tar")]) == 0
    assert main(["cache", "import", str(tmp_path / "x.tar"), "--cache", str(tmp_path / "d")]) == 0
    assert "2 entries imported" in capsys.readouterr().out
    assert {p.stem for p in (tmp_path / "d").iterdir()} == set(keys)
    assert main(["cache", "export", "--chapters", "99_nothing", "--out", str(tmp_path / "y.tar")]) == 2
    assert "not chapters of the book" in capsys.readouterr().err
