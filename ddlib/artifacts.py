"""A content-addressed cache of stage outputs.

Every arrow of the pipeline (dataset -> embeddings -> patterns -> selection -> student ->
results) is an artifact keyed by a hash of (stage, dataset spec, frozen config, upstream
keys, ddlib version). Writes are atomic (temporary file, then rename: :func:`write_bytes_atomic`,
also the one atomic writer for JSON records, :func:`write_json_atomic`); every load checks
the payload's SHA-256 against the record written beside it, so a truncated or corrupt
artifact is detected, removed with a warning and recomputed, never silently used.

The cache lives in ``$DDLIB_CACHE`` (default ``~/.cache/ddlib``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

import ddlib
from ddlib.utils import json_safe

T = TypeVar("T")


class CorruptArtifactWarning(UserWarning):
    """An artifact failed its integrity check and is being recomputed."""


def cache_dir() -> Path:
    """The cache folder: ``$DDLIB_CACHE`` or ``~/.cache/ddlib`` (created on first use)."""
    root = Path(os.environ.get("DDLIB_CACHE") or Path.home() / ".cache" / "ddlib")
    root.mkdir(parents=True, exist_ok=True)
    return root


def make_key(stage: str, dataset: Any = None, config: Any = None, upstream: Sequence[str] = (),
             version: str | None = None) -> str:
    """The hex key of an artifact: SHA-256 of its stage, dataset spec, config, upstream keys and ddlib version.

    ``config`` may be a dataclass or any JSON-able value; a change in any input changes the key.
    """
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = {"__class__": type(config).__name__, **dataclasses.asdict(config)}
    record = {
        "stage": stage,
        "dataset": json_safe(dataset),
        "config": json_safe(config),
        "upstream": list(upstream),
        "version": ddlib.__version__ if version is None else version,
    }
    blob = json.dumps(record, sort_keys=True, default=str).encode()
    return f"{stage}-{hashlib.sha256(blob).hexdigest()[:32]}"


def _paths(key: str) -> tuple[Path, Path]:
    root = cache_dir()
    return root / f"{key}.pt", root / f"{key}.json"


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder (created if needed),
    flushed to disk, mode 0644, then renamed over ``path``; on any error nothing is left behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    """``obj`` (made JSON-safe: tuples, NumPy scalars, paths) as indented JSON at ``path``, atomically."""
    write_bytes_atomic(path, json.dumps(json_safe(obj), indent=1).encode())


def save(key: str, obj: Any, meta: dict[str, Any] | None = None) -> Path:
    """Store ``obj`` (anything ``torch.save`` takes) under ``key``, atomically; return the payload path."""
    payload, record = _paths(key)
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    write_bytes_atomic(payload, data)
    info = {"key": key, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "ddlib": ddlib.__version__,
            "meta": json_safe(meta or {})}
    write_bytes_atomic(record, json.dumps(info, indent=1).encode())  # the record commits the artifact
    return payload


def exists(key: str) -> bool:
    """Whether a committed artifact (payload + record) is stored under ``key`` (not verified)."""
    payload, record = _paths(key)
    return payload.exists() and record.exists()


def remove(key: str) -> None:
    for p in _paths(key):
        p.unlink(missing_ok=True)


def load(key: str) -> Any | None:
    """The artifact stored under ``key``, or None when absent or corrupt (then removed, with a warning)."""
    payload, record = _paths(key)
    if not record.exists():
        payload.unlink(missing_ok=True)  # a payload without its record was never committed
        return None
    try:
        info = json.loads(record.read_text())
        data = payload.read_bytes()
        ok = len(data) == info["bytes"] and hashlib.sha256(data).hexdigest() == info["sha256"]
    except (OSError, ValueError, KeyError):
        ok = False
    if not ok:
        warnings.warn(f"artifact {key} in {payload.parent} is truncated or corrupt; recomputing it",
                      CorruptArtifactWarning, stacklevel=2)
        remove(key)
        return None
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def cached(key: str, compute: Callable[[], T], meta: dict[str, Any] | None = None,
           enabled: bool = True) -> T:
    """Load the artifact ``key`` if stored and intact, else ``compute()`` it, store it and return it."""
    if enabled:
        obj = load(key)
        if obj is not None:
            return obj
    obj = compute()
    if enabled:
        save(key, obj, meta)
    return obj
