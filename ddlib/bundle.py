"""A pre-filled artifact cache to hand out: ``python -m ddlib cache export`` / ``cache import``.

A workshop's attendees should not spend their 90 minutes training the encoders, teachers and synthetic
images that every one of them would train alike. The organiser exports, once, the cache entries the
workshop's chapters need, and every attendee imports that file into their own cache; a chapter run with the
same parameters then loads what it would have computed (:mod:`ddlib.artifacts` keys each entry by its
dataset, config, upstream keys and ddlib version, so an entry is only used where it is the one asked for).

:func:`export` runs the chosen chapters at a scale (papermill, in order, into a fresh cache: what they
write is exactly what they need) and writes that cache as one tar file; with ``source=`` it packs an
existing cache folder as it is instead. The tar holds ``ddlib-cache/manifest.json`` (what, which chapters
and scale, provenance, and every file's SHA-256 and size) and ``ddlib-cache/entries/<key>.pt|.json``.

:func:`import_bundle` checks everything before it writes anything: the file is a whole tar, its members
are plain files with the cache's names and nothing else, every file has the manifest's size and SHA-256,
and every entry's own record (:mod:`ddlib.artifacts`) names its key and matches its payload. A tampered,
truncated or foreign file is refused with one line (:class:`BundleError`) and the cache is left as it
was. Only then are the entries moved in (a rename each, in the cache's own folder; records last, which
commit an entry); entries the cache already holds are kept. A failure while moving takes back what that
import moved, so an import is whole or nothing.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ddlib
from ddlib import artifacts
from ddlib.utils import ParamError, provenance

__all__ = ["BundleError", "FORMAT", "export", "import_bundle", "read_manifest", "pack"]

FORMAT = "ddlib-cache-bundle/1"
TOP = "ddlib-cache"
MANIFEST = f"{TOP}/manifest.json"
ENTRIES = f"{TOP}/entries"
#: a cache entry's file name: ``<stage>-<32 hex>.pt`` (payload) or ``.json`` (record)
_ENTRY = re.compile(r"^[A-Za-z0-9_.-]+-[0-9a-f]{32}\.(pt|json)$")
_CHUNK = 1 << 20


class BundleError(ParamError):
    """A bundle that cannot be imported (tampered, truncated, not a bundle); nothing was written."""


def _why(e: BaseException) -> str:
    """An exception as one short line (tarfile's messages can span several)."""
    text = str(e).strip().splitlines()[0].rstrip(":") if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _entries(folder: Path) -> list[Path]:
    """The committed entries of a cache folder: every ``<key>.json`` record with its ``<key>.pt`` payload."""
    out = []
    for record in sorted(folder.glob("*.json")):
        payload = record.with_suffix(".pt")
        if _ENTRY.match(record.name) and payload.is_file():
            out += [payload, record]
    return out


def pack(source: Path, out: Path, what: dict[str, Any]) -> dict[str, Any]:
    """Write the committed entries of the cache folder ``source`` to the tar ``out`` (gzip when it ends in
    ``.gz``/``.tgz``), atomically, with a manifest holding ``what`` and every file's SHA-256; return the
    manifest."""
    files = _entries(Path(source))
    if not files:
        raise ParamError(f"the cache {source} holds no entries to export")
    manifest = {"format": FORMAT, **what, "ddlib": ddlib.__version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "files": {p.name: {"sha256": _sha256_file(p), "bytes": p.stat().st_size} for p in files}}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    mode = "w:gz" if out.name.endswith((".gz", ".tgz")) else "w"
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with tarfile.open(tmp, mode) as tar:
            blob = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(blob), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(blob))
            for p in files:
                tar.add(str(p), arcname=f"{ENTRIES}/{p.name}", recursive=False)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return manifest


def export(out: str | os.PathLike, chapters: Sequence[str] | None = None, scale: str = "workshop",
           source: str | os.PathLike | None = None, work: str | os.PathLike | None = None,
           progress: bool = True) -> dict[str, Any]:
    """Export the cache entries ``chapters`` need at ``scale`` to the tar ``out``; return its manifest.

    The chapters (notebook names, default every chapter of the book) run with papermill, in order, with
    ``scale=scale`` and nothing else, into a fresh cache (``work``: a folder to keep it in, e.g. to resume;
    default a temporary one), which is then packed. With ``source`` (a cache folder) nothing runs: every
    entry of ``source`` is packed.
    """
    from ddlib import bookbuild
    from ddlib.presets import SCALES
    from ddlib.utils import check_choice, progress_env

    if source is not None:
        if chapters:
            raise ParamError("give either chapters (run them into a fresh cache) or source (pack that cache), not both")
        return pack(Path(source), Path(out), {"source": "a cache folder, packed as it was", "scale": None,
                                              "chapters": None, "provenance": provenance("cache export")})
    check_choice("scale", scale, SCALES)
    known = [Path(c).name for c in bookbuild.chapters()]
    names = [Path(c).stem for c in chapters] if chapters else known
    unknown = [c for c in names if c not in known]
    if unknown:
        raise ParamError(f"chapters {unknown} are not chapters of the book; accepted: {known}")
    import papermill as pm

    cache = Path(work) if work is not None else Path(tempfile.mkdtemp(prefix="ddlib-cache-export-"))
    cache.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="ddlib-cache-export-runs-"))
    old = os.environ.get("DDLIB_CACHE")
    os.environ["DDLIB_CACHE"] = str(cache)  # the kernels inherit it
    timings = {}
    try:
        with progress_env(False):
            for name in names:
                if progress:
                    print(f"running {name} (scale={scale}) into {cache}", flush=True)
                start = time.perf_counter()
                pm.execute_notebook(str(bookbuild.ROOT / "notebooks" / f"{name}.ipynb"), str(runs / f"{name}.ipynb"),
                                    parameters={"scale": scale}, kernel_name="python3",
                                    cwd=str(bookbuild.ROOT / "notebooks"), progress_bar=False)
                timings[name] = round(time.perf_counter() - start, 1)
    finally:
        if old is None:
            os.environ.pop("DDLIB_CACHE", None)
        else:
            os.environ["DDLIB_CACHE"] = old
        shutil.rmtree(runs, ignore_errors=True)
    command = f"python -m ddlib cache export --scale {scale} --chapters {','.join(names)} --out {out}"
    return pack(cache, Path(out), {"source": "the chapters, run into a fresh cache", "scale": scale,
                                   "chapters": names, "run_seconds": timings,
                                   "provenance": provenance(command)})


def _open(path: Path) -> tarfile.TarFile:
    if not path.is_file():
        raise BundleError(f"{path}: no such file")
    try:
        return tarfile.open(path, "r:*")
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BundleError(f"{path}: not a readable ddlib cache bundle ({_why(e)}); nothing imported") \
            from None


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest of the bundle ``path`` (not verified against its files: :func:`import_bundle` does that)."""
    path = Path(path)
    with _open(path) as tar:
        try:
            member = tar.getmember(MANIFEST)
            manifest = json.loads(tar.extractfile(member).read())
        except (KeyError, ValueError, AttributeError, tarfile.TarError, EOFError, OSError) as e:
            raise BundleError(f"{path}: no readable {MANIFEST} ({type(e).__name__}); not a ddlib cache bundle; "
                              "nothing imported") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise BundleError(f"{path}: its manifest is not a {FORMAT} manifest; nothing imported")
    return manifest


def _unpack_and_verify(path: Path, into: Path) -> tuple[dict[str, Any], list[Path]]:
    """Every file of the bundle written to ``into`` and checked; raises :class:`BundleError` on the first fault."""
    manifest = read_manifest(path)
    files = manifest["files"]
    bad = [n for n in files if not _ENTRY.match(str(n))]
    if bad:
        raise BundleError(f"{path}: the manifest names files that are no cache entries ({bad[0]!r}); nothing imported")
    got: dict[str, Path] = {}
    with _open(path) as tar:
        try:
            for member in tar:
                if member.name == MANIFEST:
                    continue
                name = member.name[len(ENTRIES) + 1:] if member.name.startswith(ENTRIES + "/") else None
                if not member.isfile() or name is None or name not in files or name in got:
                    raise BundleError(f"{path}: unexpected member {member.name!r} (not in the manifest, a link or a "
                                      "copy); tampered? nothing imported")
                dest = into / name
                h = hashlib.sha256()
                src = tar.extractfile(member)
                with open(dest, "wb") as f:
                    while chunk := src.read(_CHUNK):
                        h.update(chunk)
                        f.write(chunk)
                size = dest.stat().st_size
                if size != files[name]["bytes"] or h.hexdigest() != files[name]["sha256"]:
                    raise BundleError(f"{path}: {name} does not match the manifest's SHA-256 and size (tampered or "
                                      "corrupt); nothing imported")
                got[name] = dest
        except (tarfile.TarError, EOFError, OSError) as e:
            raise BundleError(f"{path}: truncated or damaged ({_why(e)}); nothing imported") from None
    missing = sorted(set(files) - set(got))
    if missing:
        raise BundleError(f"{path}: {len(missing)} file(s) of the manifest are missing, e.g. {missing[0]} "
                          "(truncated?); nothing imported")
    # each entry's own record: names its key, and matches its payload (what ddlib.artifacts checks on load)
    for name in sorted(n for n in got if n.endswith(".json")):
        key = name[:-len(".json")]
        payload = got.get(f"{key}.pt")
        try:
            record = json.loads(got[name].read_text())
            ok = (payload is not None and record.get("key") == key
                  and record.get("bytes") == payload.stat().st_size
                  and record.get("sha256") == _sha256_file(payload))
        except (ValueError, OSError, AttributeError):
            ok = False
        if not ok:
            raise BundleError(f"{path}: the entry {key} does not match its own record; nothing imported")
    orphans = [n for n in got if n.endswith(".pt") and n[:-3] + ".json" not in got]
    if orphans:
        raise BundleError(f"{path}: {orphans[0]} has no record; nothing imported")
    return manifest, sorted(got.values(), key=lambda p: (p.suffix == ".json", p.name))


def import_bundle(path: str | os.PathLike, cache: str | os.PathLike | None = None) -> dict[str, Any]:
    """Import the bundle ``path`` into the cache (``cache`` or ``$DDLIB_CACHE``), whole or not at all.

    Returns ``{"manifest", "imported": [keys], "kept": [keys the cache already held], "cache": folder}``;
    raises :class:`BundleError` (one line) for a tampered, truncated or foreign file, with the cache as it was.
    """
    path = Path(path)
    if cache is not None:
        root = Path(cache)
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = artifacts.cache_dir()
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".import-"))  # the cache's filesystem: moves are renames
    moved: list[Path] = []
    try:
        manifest, files = _unpack_and_verify(path, staging)
        keys = sorted({p.stem for p in files})
        kept = [k for k in keys if (root / f"{k}.json").exists() and (root / f"{k}.pt").exists()]
        new = [p for p in files if p.stem not in kept]
        try:
            for p in new:  # payloads first, then the records, which commit each entry
                os.replace(p, root / p.name)
                moved.append(root / p.name)
        except BaseException:
            for p in reversed(moved):
                p.unlink(missing_ok=True)
            raise
        return {"manifest": manifest, "imported": [k for k in keys if k not in kept], "kept": kept, "cache": root}
    finally:
        shutil.rmtree(staging, ignore_errors=True)
