"""The content-addressed cache: keys, atomic writes, integrity checks and recovery."""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch

from ddlib import artifacts


@dataclasses.dataclass(frozen=True)
class Cfg:
    lr: float = 0.1
    epochs: int = 3


@pytest.fixture(autouse=True)
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DDLIB_CACHE", str(tmp_path / "c"))
    return tmp_path / "c"


def test_key_changes_with_every_input() -> None:
    base = artifacts.make_key("emb", {"name": "digits"}, Cfg(), ["up1"], version="1")
    assert base == artifacts.make_key("emb", {"name": "digits"}, Cfg(), ["up1"], version="1")
    variants = [
        artifacts.make_key("pat", {"name": "digits"}, Cfg(), ["up1"], version="1"),
        artifacts.make_key("emb", {"name": "digits", "per_class": 5}, Cfg(), ["up1"], version="1"),
        artifacts.make_key("emb", {"name": "digits"}, Cfg(lr=0.2), ["up1"], version="1"),
        artifacts.make_key("emb", {"name": "digits"}, Cfg(), ["up2"], version="1"),
        artifacts.make_key("emb", {"name": "digits"}, Cfg(), ["up1"], version="2"),
    ]
    assert len({base, *variants}) == 6
    assert base.startswith("emb-")


def test_key_distinguishes_config_classes() -> None:
    @dataclasses.dataclass(frozen=True)
    class Other:
        lr: float = 0.1
        epochs: int = 3

    assert artifacts.make_key("s", None, Cfg()) != artifacts.make_key("s", None, Other())


def test_cached_computes_once() -> None:
    calls = []

    def compute() -> dict:
        calls.append(1)
        return {"x": torch.arange(5)}

    key = artifacts.make_key("t", None, Cfg())
    a = artifacts.cached(key, compute)
    b = artifacts.cached(key, compute)
    assert len(calls) == 1 and torch.equal(a["x"], b["x"])


def test_truncated_artifact_is_recomputed_with_warning(fresh_cache: Path) -> None:
    key = artifacts.make_key("t", None, Cfg())
    artifacts.save(key, torch.arange(1000))
    payload = fresh_cache / f"{key}.pt"
    payload.write_bytes(payload.read_bytes()[:100])
    with pytest.warns(artifacts.CorruptArtifactWarning, match="truncated or corrupt"):
        out = artifacts.cached(key, lambda: torch.arange(7))
    assert torch.equal(out, torch.arange(7))
    assert torch.equal(artifacts.load(key), torch.arange(7))  # the recomputed value was stored


def test_flipped_byte_is_detected(fresh_cache: Path) -> None:
    key = artifacts.make_key("t", None, Cfg())
    artifacts.save(key, torch.zeros(100))
    payload = fresh_cache / f"{key}.pt"
    blob = bytearray(payload.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    payload.write_bytes(bytes(blob))
    with pytest.warns(artifacts.CorruptArtifactWarning):
        assert artifacts.load(key) is None
    assert not payload.exists()


def test_payload_without_record_is_not_used(fresh_cache: Path) -> None:
    """An interrupted save (payload written, record not) counts as absent."""
    key = artifacts.make_key("t", None, Cfg())
    artifacts.save(key, torch.ones(3))
    (fresh_cache / f"{key}.json").unlink()
    assert artifacts.load(key) is None and not artifacts.exists(key)


def test_atomic_write_leaves_no_partial_file(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = artifacts.make_key("t", None, Cfg())

    def boom(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        artifacts.save(key, torch.ones(3))
    monkeypatch.undo()
    assert list(fresh_cache.iterdir()) == []


def test_failed_compute_writes_nothing(fresh_cache: Path) -> None:
    key = artifacts.make_key("t", None, Cfg())

    def compute() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError):
        artifacts.cached(key, compute)
    assert not artifacts.exists(key)


def test_disabled_cache_always_computes() -> None:
    key = artifacts.make_key("t", None, Cfg())
    calls = []
    for _ in range(2):
        artifacts.cached(key, lambda: calls.append(1) or 1, enabled=False)
    assert len(calls) == 2 and not artifacts.exists(key)
