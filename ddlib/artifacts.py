"""A content-addressed cache of stage outputs.

Every arrow of the pipeline (dataset -> embeddings -> patterns -> selection -> student ->
results) is an artifact keyed by a hash of (stage, dataset spec, frozen config, upstream
keys, ddlib version). Writes are atomic (temporary file, then rename: :func:`write_bytes_atomic`,
also the one atomic writer for JSON records, :func:`write_json_atomic`); every load checks
the payload's SHA-256 against the record written beside it, so a truncated or corrupt
artifact is detected, removed with a warning and recomputed, never silently used.

A load also checks that the record names the key (and stage) it was asked for: an entry copied
or swapped onto another key by hand is moved aside into ``quarantine/`` with a warning and
recomputed, never served. Temporary files left by a writer killed mid-write (``.<name>.<host>.<pid>.…tmp``)
are removed on the first use of the cache in a process, once their writer is gone or they are an hour old.

Processes that share a cache compute each artifact once: :func:`cached` holds a lock on the key while it
computes (:func:`computing`), so a second process asking for it waits and loads the first one's result
(``python -m ddlib book --jobs 2`` runs chapters that share Stage 1 side by side).

An entry carries the identity of what made it in its key: the dataset's spec and a digest of its images
and labels (:meth:`ddlib.data.Dataset.key`: name, subsample, image size and so channels), the config, and the
upstream keys (a backbone's key names it and its input size, ``…@64px``); features, golden heads and synthetic
images of another dataset or backbone therefore live under other keys and are never served for this one.

Corrupt entries are recomputed with a warning (:class:`CorruptArtifactWarning`), never refused: an artifact
is a function of its key, so recomputing costs time but cannot change a result, while refusing would stop a
run for a file the user never asked for. A cache folder that cannot be used at all (a file, not writable) is
refused before any work (:func:`cache_dir`).

The cache lives in ``$DDLIB_CACHE`` (default ``~/.cache/ddlib``). Under torchrun every rank uses the same
folder (on a cluster: a filesystem every node sees); :func:`cached` lets only rank 0 write to it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

try:
    import fcntl
except ImportError:  # Windows: no advisory locks (see computing)
    fcntl = None  # type: ignore[assignment]

import ddlib
from ddlib import distributed, preflight
from ddlib.utils import ParamError, config_fields, dumps_strict, json_safe

__all__ = ["STALE_TMP_SECONDS", "DEAD_WRITER_GRACE_SECONDS", "QUARANTINE", "CorruptArtifactWarning",
           "MismatchedArtifactWarning", "cache_dir", "sweep_stale_tmp", "make_key", "write_bytes_atomic",
           "write_json_atomic", "save", "exists", "remove", "quarantine", "load", "cached", "computing", "computing_all", "LOCKS"]

T = TypeVar("T")

STALE_TMP_SECONDS = 3600      # a temporary file this old is no live write (writes take seconds)
DEAD_WRITER_GRACE_SECONDS = 60  # ... and one of a dead writer on this host is removed after this long
QUARANTINE = "quarantine"
LOCKS = ".locks"  # computing(): one lock file per key being computed
_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
_SWEPT: set[Path] = set()
_HELD: set[str] = set()  # the keys this process holds the lock of (computing is re-entrant)


class CorruptArtifactWarning(UserWarning):
    """An artifact failed its integrity check and is being recomputed."""


class MismatchedArtifactWarning(CorruptArtifactWarning):
    """An artifact's record names another key or stage than the one asked for; it was quarantined."""


def cache_dir() -> Path:
    """The cache folder: ``$DDLIB_CACHE`` or ``~/.cache/ddlib`` (created on first use, stale temporaries swept).

    On first use in a process the folder is checked (:func:`ddlib.preflight.check_cache`): a ``$DDLIB_CACHE``
    that is a file or cannot be written raises a one-line :class:`~ddlib.utils.ParamError` naming it, before
    the first artifact is computed rather than when it is saved.
    """
    root = preflight.cache_root()
    if root not in _SWEPT:
        preflight.check_cache()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # removed, or replaced by a file, since the check
        raise ParamError(f"{preflight.CACHE_ENV}={str(root)!r} cannot be used ({e.strerror}); set "
                         f"{preflight.CACHE_ENV} to a folder this user can write") from None
    if root not in _SWEPT:
        _SWEPT.add(root)
        sweep_stale_tmp(root)
    return root


def _writer_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or unknown: assume alive
    return True


def sweep_stale_tmp(root: Path, max_age: float = STALE_TMP_SECONDS) -> list[Path]:
    """Remove the temporary files in ``root`` that no live writer holds; return them.

    A temporary file goes when it is older than ``max_age`` seconds, or when its name says it was
    written on this host by a process that no longer exists and it is older than
    ``DEAD_WRITER_GRACE_SECONDS`` (a grace that keeps writers of another PID namespace with the same
    host name safe). Files of live writers, and recent ones, are kept.
    """
    removed = []
    now = time.time()
    for f in root.glob(".*.tmp"):
        try:
            age = now - f.stat().st_mtime
        except FileNotFoundError:
            continue  # its writer renamed or removed it just now
        parts = f.name[:-len(".tmp")].rsplit(".", 3)  # [.name, host, pid, random]
        dead = (len(parts) == 4 and parts[1] == _HOST and parts[2].isdigit()
                and age > DEAD_WRITER_GRACE_SECONDS and not _writer_alive(int(parts[2])))
        if age > max_age or dead:
            f.unlink(missing_ok=True)
            removed.append(f)
    return removed


def make_key(stage: str, dataset: Any = None, config: Any = None, upstream: Sequence[str] = (),
             version: str | None = None) -> str:
    """The hex key of an artifact: SHA-256 of its stage, dataset spec, config, upstream keys and ddlib version.

    ``config`` may be a dataclass or any JSON-able value; a change in any input changes the key.
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = {"__class__": type(config).__name__, **config_fields(config)}
    record = {
        "stage": stage,
        "dataset": json_safe(dataset),
        "config": json_safe(config),
        "upstream": list(upstream),
        "version": ddlib.__version__ if version is None else version,
    }
    if os.environ.get("DDLIB_RANDOM_WEIGHTS", "") not in ("", "0"):  # a dry run's artifacts never meet real ones
        record["random_weights"] = True
    blob = json.dumps(record, sort_keys=True, default=str).encode()
    return f"{stage}-{hashlib.sha256(blob).hexdigest()[:32]}"


def _paths(key: str) -> tuple[Path, Path]:
    root = cache_dir()
    return root / f"{key}.pt", root / f"{key}.json"


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_HOST}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename); creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, data)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as strict JSON (:func:`ddlib.utils.dumps_strict`: NaN/inf become null) to ``path``, atomically."""
    write_bytes_atomic(path, (dumps_strict(obj, indent=1) + "\n").encode())


def _stage(key: str) -> str:
    return key.rsplit("-", 1)[0]


def save(key: str, obj: Any, meta: dict[str, Any] | None = None) -> Path:
    """Store ``obj`` (anything ``torch.save`` takes) under ``key``, atomically; return the payload path."""
    payload, record = _paths(key)
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    _atomic_write(payload, data)
    info = {"key": key, "stage": _stage(key), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "ddlib": ddlib.__version__, "meta": meta or {}}
    _atomic_write(record, dumps_strict(info, indent=1).encode())  # the record commits the artifact
    return payload


def exists(key: str) -> bool:
    """Whether a committed artifact (payload + record) is stored under ``key`` (not verified)."""
    payload, record = _paths(key)
    return payload.exists() and record.exists()


def remove(key: str) -> None:
    for p in _paths(key):
        p.unlink(missing_ok=True)


def quarantine(key: str) -> Path | None:
    """Move the entry stored under ``key`` (payload and record) into ``quarantine/``; return that folder.

    Each file keeps its name with a time stamp and PID added, so nothing is overwritten there.
    """
    q = cache_dir() / QUARANTINE
    q.mkdir(exist_ok=True)
    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    moved = False
    for p in _paths(key):
        try:
            os.replace(p, q / f"{p.stem}.{stamp}{p.suffix}")
            moved = True
        except FileNotFoundError:
            pass  # absent, or another process moved it first
    return q if moved else None


def load(key: str) -> Any | None:
    """The artifact stored under ``key``, or None when absent, corrupt or not the one asked for.

    A corrupt entry (payload and record disagree) is removed; an entry whose record names another key
    or stage (copied or swapped by hand) or that cannot be unpickled is quarantined
    (:func:`quarantine`); both with a warning naming the entry, and the caller recomputes it.
    """
    payload, record = _paths(key)
    if not record.exists():
        payload.unlink(missing_ok=True)  # a payload without its record was never committed
        return None
    try:
        info = json.loads(record.read_text())
        data = payload.read_bytes()
        ok = len(data) == info["bytes"] and hashlib.sha256(data).hexdigest() == info["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        warnings.warn(f"artifact {key} in {payload.parent} is truncated or corrupt; recomputing it",
                      CorruptArtifactWarning, stacklevel=2)
        remove(key)
        return None
    if info.get("key") != key or info.get("stage", _stage(key)) != _stage(key):
        q = quarantine(key)
        warnings.warn(f"artifact {key} in {payload.parent} holds the entry of {info.get('key')!r} "
                      f"(stage {info.get('stage', _stage(str(info.get('key'))))!r}): copied or swapped by hand? "
                      f"Moved it to {q} and recomputing it", MismatchedArtifactWarning, stacklevel=2)
        return None
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - e.g. a pickled class that no longer exists: recompute, don't crash
        q = quarantine(key)
        warnings.warn(f"artifact {key} in {payload.parent} cannot be loaded ({type(e).__name__}: {e}); "
                      f"moved it to {q} and recomputing it", CorruptArtifactWarning, stacklevel=2)
        return None


def cached(key: str, compute: Callable[[], T], meta: dict[str, Any] | None = None,
           enabled: bool = True, collective: bool = False) -> T:
    """Load the artifact ``key`` if stored and intact, else ``compute()`` it, store it and return it.

    Under torchrun (several ranks, :mod:`ddlib.distributed`) every rank calls it alike and every rank returns
    rank 0's object: rank 0 looks the key up and tells the others; on a miss, a ``collective`` compute (one
    that trains data-parallel, so every rank must take part) runs on every rank, any other on rank 0 alone
    (:func:`ddlib.distributed.alone`); rank 0 stores the result, the others wait and load it (with
    ``enabled=False`` rank 0's result is sent to them instead). In one process ``collective`` changes nothing.
    """
    if distributed.world_size() > 1:
        return _cached_on_ranks(key, compute, meta, enabled, collective)
    if not enabled:
        return compute()
    obj = load(key)
    if obj is not None:
        return obj
    with computing(key):  # another process computing this key: wait for it and load its result
        obj = load(key)
        if obj is None:
            obj = compute()
            save(key, obj, meta)
    return obj


@contextlib.contextmanager
def computing_all(keys: Sequence[str]) -> Iterator[None]:
    """:func:`computing` for several keys at once (a grid of students trained together), taken in sorted order
    so that two processes that need overlapping sets cannot each hold a key the other waits for."""
    with contextlib.ExitStack() as stack:
        for key in sorted(set(keys)):
            stack.enter_context(computing(key))
        yield


@contextlib.contextmanager
def computing(key: str) -> Iterator[None]:
    """Hold the cache's lock on ``key`` while it is computed: two processes that share a cache (the chapters of
    ``python -m ddlib book --jobs 2``, two users, a sweep's runs) compute an artifact once, the second waiting for
    the first and then loading its result. An exclusive ``flock`` on ``<cache>/.locks/<key>.lock``, released by the
    kernel when its holder exits, so a killed run never leaves a stale lock; re-entrant within a process (a key's
    compute only ever asks for its upstream keys, so two processes cannot wait on each other). Where ``fcntl``
    is missing (Windows) nothing is locked and a shared key may be computed twice."""
    if fcntl is None or key in _HELD:
        yield
        return
    folder = cache_dir() / LOCKS
    folder.mkdir(exist_ok=True)
    with open(folder / f"{key}.lock", "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        _HELD.add(key)
        try:
            yield
        finally:
            _HELD.discard(key)
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _cached_on_ranks(key: str, compute: Callable[[], T], meta: dict[str, Any] | None, enabled: bool,
                     collective: bool) -> T:
    main = distributed.is_main()
    found = load(key) if enabled and main else None
    if distributed.broadcast_object(found is not None):
        return found if main else _load_written(key)
    obj = None
    if collective:
        obj = compute()
    elif main:
        with distributed.alone():
            obj = compute()
    if not enabled:
        return obj if collective else distributed.broadcast_object(obj)
    if main:
        save(key, obj, meta)
    distributed.barrier()  # the others wait for rank 0's write
    return obj if main else _load_written(key)


def _load_written(key: str) -> Any:
    """The artifact rank 0 has just confirmed or written, read by another rank."""
    obj = load(key)
    if obj is None:
        raise RuntimeError(f"rank {distributed.rank()} cannot read artifact {key} that rank 0 wrote to {cache_dir()}: "
                           "every rank must use the same cache folder ($DDLIB_CACHE on a filesystem every node sees)")
    return obj
