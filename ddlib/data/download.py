"""Downloads of data set archives: one network function (:func:`fetch`, the one place that goes online, so tests
replace it), an MD5 check against the recorded checksum, and unpacking into the data folder."""
from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ddlib.data.archives import extract
from ddlib.data.core import DataNotFoundError, UnreadableDataError
from ddlib.utils import offline

__all__ = ["Archive", "fetch", "md5sum", "download_and_extract"]


@dataclass(frozen=True)
class Archive:
    """A published archive: its URL, its MD5, and whether that MD5 was confirmed against the source.

    ``confirmed=False`` marks a checksum taken from a secondary source (the publisher has re-uploaded the
    archive before): it is checked all the same, and a mismatch says that the recorded value may be stale.
    """

    url: str
    md5: str
    confirmed: bool = True

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def fetch(url: str, dest: Path) -> None:
    """Download ``url`` to the file ``dest`` (the only function here that uses the network)."""
    with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:  # noqa: S310 - http(s) URLs of ours
        shutil.copyfileobj(r, f, length=1 << 20)


def md5sum(path: Path) -> str:
    """The MD5 hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.md5()  # noqa: S324 - a published checksum, not security
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download_and_extract(archive: Archive, root: Path, label: str, download: bool | None) -> None:
    """Fetch ``archive`` into ``root`` (unless there already), check its MD5, unpack it into ``root``.

    ``download=None`` downloads unless ``DDLIB_OFFLINE`` is set; False never downloads (a
    :class:`DataNotFoundError` naming the expected path). A checksum mismatch is an
    :class:`UnreadableDataError`; the file is kept beside, renamed ``*.bad``, for a look.
    """
    target = root / archive.filename
    if not target.exists():
        download = (not offline()) if download is None else download
        if not download:
            raise DataNotFoundError(f"{label}: not found, and downloads are off (DDLIB_OFFLINE or download=False); "
                                    f"put {archive.filename} (from {archive.url}) or its unpacked folder in {root}, "
                                    f"or give {label}:PATH")
        root.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        try:
            fetch(archive.url, part)
        except Exception as e:  # noqa: BLE001 - any network or disk failure: say what and where
            part.unlink(missing_ok=True)
            raise DataNotFoundError(f"{label}: downloading {archive.url} failed ({type(e).__name__}: {e}); download it "
                                    f"by hand into {root}, or give {label}:PATH") from e
        os.replace(part, target)
    got = md5sum(target)
    if got != archive.md5:
        bad = target.with_name(target.name + ".bad")
        os.replace(target, bad)
        stale = ("" if archive.confirmed else " (the recorded checksum is not confirmed and the publisher has "
                 "re-uploaded this archive before: if the file is good, report the new checksum)")
        raise UnreadableDataError(f"{label}: {target} has MD5 {got}, expected {archive.md5}{stale}; it was moved to "
                                  f"{bad}: download it again")
    extract(target, root)
