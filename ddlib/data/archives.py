"""Reading a folder or a tar/zip archive as a stream of (member name, reader), strictly (a truncated archive is
an error, never a smaller data set); a folder's fingerprint for cache keys; safe unpacking of downloads."""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["ARCHIVE_SUFFIXES", "Member", "is_archive_name", "hidden", "archive_members", "folder_members",
           "tree_fingerprint", "extract"]

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".zip")

#: (name relative to the archive or folder, a function reading its bytes) for a file; (name, None) for a folder
Member = tuple[str, "Callable[[], bytes] | None"]


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


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


def hidden(name: str) -> bool:
    """A member or folder that is no image of the data set: hidden files, macOS resource forks."""
    return any((part.startswith(".") and part not in (".", "..")) or part == "__MACOSX" for part in name.split("/"))


def archive_members(path: Path) -> Iterator[Member]:
    """Every member of a tar or zip archive, in archive order."""
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


def folder_members(path: Path) -> Iterator[Member]:
    """Every file and folder under ``path``, names relative to it, in sorted path order (each folder's entries
    by name, a sub-folder's contents right after it); symbolic links to folders are followed, as torchvision's
    ImageFolder does."""
    def walk(folder: str, rel: str) -> Iterator[Member]:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            name = rel + e.name
            if e.is_dir():
                yield name, None
                yield from walk(e.path, name + "/")
            elif e.is_file():
                yield name, Path(e.path).read_bytes

    yield from walk(str(path), "")


def tree_fingerprint(root: Path) -> str:
    """SHA-256 (16 hex) of every file's and folder's relative path, size and mtime under ``root``."""
    h = hashlib.sha256()
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        for name in [*dirs, *sorted(files)]:
            full = os.path.join(folder, name)
            try:
                st = os.stat(full)
            except OSError:
                continue
            h.update(f"{os.path.relpath(full, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def extract(archive: Path, dest: Path) -> None:
    """Unpack a tar or zip archive into the folder ``dest`` (created), refusing members that would land
    outside it; written into a temporary folder beside ``dest`` and moved into place, so an interrupted
    unpacking leaves no half folder behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.unpacking"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as z:
                root = tmp.resolve()
                for n in z.namelist():
                    if not (tmp / n).resolve().is_relative_to(root):
                        raise zipfile.BadZipFile(f"member {n!r} would be written outside {dest}")
                z.extractall(tmp)
        else:
            with tarfile.open(archive, "r:*") as t:
                t.extractall(tmp, filter="data")
        for item in tmp.iterdir():  # move each top-level entry, so archives with or without a wrapper work
            target = dest / item.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            dest.mkdir(parents=True, exist_ok=True)
            item.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
