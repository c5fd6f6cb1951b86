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


# ---- issue 14: the cache verifies a record's key and stage; stale temporaries are swept ----------

def _copy_entry(root: Path, src: str, dst: str) -> None:
    for suffix in (".pt", ".json"):
        (root / f"{dst}{suffix}").write_bytes((root / f"{src}{suffix}").read_bytes())


def test_entry_copied_onto_another_key_is_quarantined_and_recomputed(fresh_cache: Path) -> None:
    """Issue 14: a 3-epoch teacher copied onto the 1-epoch key was served silently."""
    three = artifacts.make_key("teacher", None, Cfg(epochs=3))
    one = artifacts.make_key("teacher", None, Cfg(epochs=1))
    artifacts.save(three, {"epochs": 3})
    _copy_entry(fresh_cache, three, one)
    with pytest.warns(artifacts.MismatchedArtifactWarning, match=rf"artifact {one} .* holds the entry of '{three}'"):
        out = artifacts.cached(one, lambda: {"epochs": 1})
    assert out == {"epochs": 1}
    assert artifacts.load(one) == {"epochs": 1} and artifacts.load(three) == {"epochs": 3}
    moved = sorted(p.name for p in (fresh_cache / "quarantine").iterdir())
    assert len(moved) == 2 and all(n.startswith(one) for n in moved)


def test_cross_stage_swap_is_quarantined_and_later_runs_recover(fresh_cache: Path) -> None:
    """Issue 14: a cross-stage swap crashed every later run until removed by hand."""
    emb = artifacts.make_key("embeddings", None, Cfg())
    pat = artifacts.make_key("patterns", None, Cfg())
    artifacts.save(emb, torch.ones(4, 2))
    artifacts.save(pat, {"ids": [0, 1]})
    tmp = fresh_cache / "swap"
    tmp.mkdir()
    for s in (".pt", ".json"):  # swap the two entries, files and all
        (fresh_cache / f"{emb}{s}").rename(tmp / f"x{s}")
        (fresh_cache / f"{pat}{s}").rename(fresh_cache / f"{emb}{s}")
        (tmp / f"x{s}").rename(fresh_cache / f"{pat}{s}")
    with pytest.warns(artifacts.MismatchedArtifactWarning, match="stage 'patterns'"):
        assert artifacts.load(emb) is None
    with pytest.warns(artifacts.MismatchedArtifactWarning, match="stage 'embeddings'"):
        assert artifacts.cached(pat, lambda: {"ids": [5]}) == {"ids": [5]}
    assert torch.equal(artifacts.cached(emb, lambda: torch.zeros(1)), torch.zeros(1))
    assert artifacts.cached(pat, lambda: pytest.fail("recomputed twice")) == {"ids": [5]}  # no warning, no crash
    assert len(list((fresh_cache / "quarantine").iterdir())) == 4


def test_entry_that_cannot_be_unpickled_is_quarantined(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """E.g. a pickled class that a later ddlib no longer has: recompute, do not crash every run."""
    key = artifacts.make_key("t", None, Cfg())
    artifacts.save(key, {"a": 1})

    def broken(*_: object, **__: object) -> None:
        raise AttributeError("Can't get attribute 'OldClass' on <module 'ddlib.x'>")

    monkeypatch.setattr(torch, "load", broken)
    with pytest.warns(artifacts.CorruptArtifactWarning, match="cannot be loaded .*OldClass"):
        assert artifacts.load(key) is None
    assert not artifacts.exists(key) and len(list((fresh_cache / "quarantine").iterdir())) == 2


def test_records_are_strict_json(fresh_cache: Path) -> None:
    key = artifacts.make_key("t", None, Cfg())
    artifacts.save(key, 1, meta={"acc": float("nan"), "loss": [float("inf"), 0.5]})
    import json

    info = json.loads((fresh_cache / f"{key}.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert info["meta"] == {"acc": None, "loss": [None, 0.5]} and info["key"] == key and info["stage"] == "t"


def _tmp_file(root: Path, pid: int, age_s: float, host: str | None = None) -> Path:
    import time
    import uuid

    rand = uuid.uuid4().hex[:8]  # like mkstemp's random part
    f = root / f".t-abc.pt.{host or artifacts._HOST}.{pid}.{rand}.tmp"
    f.write_bytes(b"partial")
    os.utime(f, (time.time() - age_s, time.time() - age_s))
    return f


def _dead_pid() -> int:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_tmp_files_are_swept_recent_and_live_ones_kept(fresh_cache: Path) -> None:
    """Issue 14: SIGKILL during a write left .tmp orphans for good."""
    fresh_cache.mkdir(parents=True)
    dead = _dead_pid()
    old = _tmp_file(fresh_cache, os.getpid(), artifacts.STALE_TMP_SECONDS + 60)       # old: whoever wrote it
    orphan = _tmp_file(fresh_cache, dead, artifacts.DEAD_WRITER_GRACE_SECONDS + 5)     # its writer is gone
    legacy = fresh_cache / ".t-old.pt.abcd1234.tmp"                                     # a name without host/pid
    legacy.write_bytes(b"x")
    os.utime(legacy, (0, 0))
    live = _tmp_file(fresh_cache, os.getpid(), 600)                                     # a live writer's
    fresh = _tmp_file(fresh_cache, dead, 1)                                             # too recent to judge
    elsewhere = _tmp_file(fresh_cache, dead, 600, host="another-host")                  # not our host's pid
    artifacts._SWEPT.discard(fresh_cache)
    artifacts.cache_dir()  # the first use in a process sweeps
    assert not old.exists() and not orphan.exists() and not legacy.exists()
    assert live.exists() and fresh.exists() and elsewhere.exists()
    # once per process and folder: a later orphan waits for the next process
    late = _tmp_file(fresh_cache, dead, 600)
    artifacts.cache_dir()
    assert late.exists()
    assert artifacts.sweep_stale_tmp(fresh_cache) == [late]


def test_temporary_names_carry_host_and_pid(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real = os.replace

    def spy(src, dst):  # noqa: ANN001
        seen.append(Path(src).name)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    artifacts.save(artifacts.make_key("t", None, Cfg()), 1)
    assert seen and all(n.endswith(".tmp") and f".{artifacts._HOST}.{os.getpid()}." in n for n in seen)


def test_public_atomic_writers(tmp_path: Path) -> None:
    import json

    artifacts.write_json_atomic(tmp_path / "a" / "b.json", {"x": float("nan"), "y": (1, 2)})
    assert json.loads((tmp_path / "a" / "b.json").read_text()) == {"x": None, "y": [1, 2]}
    artifacts.write_bytes_atomic(tmp_path / "c.bin", b"\x00\x01")
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b.json", "c.bin"]


def _slow_compute(key: str, log: str, cache: str, started: str) -> None:
    """Run in another process: compute ``key`` with a compute that records each call, says it started and
    finishes only once the test creates ``<started>.release``."""
    import time

    os.environ["DDLIB_CACHE"] = cache

    def compute() -> int:
        with open(log, "a") as f:
            f.write("computed\n")
        Path(started).touch()
        while not Path(started + ".release").exists():
            time.sleep(0.02)
        return 7

    assert artifacts.cached(key, compute) == 7


@pytest.mark.skipif(artifacts.fcntl is None, reason="no advisory locks on this platform")
def test_two_processes_compute_a_shared_key_once(fresh_cache: Path, tmp_path: Path) -> None:
    """While one process computes a key, a second asking for it waits for the lock and loads the first's
    result: the compute runs once (the chapters of a parallel book build share Stage 1 this way)."""
    import multiprocessing as mp
    import threading
    import time

    key = artifacts.make_key("shared", "d", {"a": 1})
    log, started = tmp_path / "log", tmp_path / "started"
    ctx = mp.get_context("spawn")
    first = ctx.Process(target=_slow_compute, args=(key, str(log), str(fresh_cache), str(started)))
    first.start()
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:  # the first holds the lock, mid-compute
        time.sleep(0.05)
    assert started.exists()
    # the first finishes only after this process has asked for the key: without the lock it would compute it
    threading.Timer(0.5, lambda: Path(f"{started}.release").touch()).start()
    assert artifacts.cached(key, lambda: pytest.fail("computed twice")) == 7
    first.join(60)
    assert first.exitcode == 0 and log.read_text() == "computed\n"
    assert (fresh_cache / artifacts.LOCKS / f"{key}.lock").exists()
    # re-entrant: a compute that asks for its own key's lock again (nested cached calls) does not deadlock
    with artifacts.computing("k"), artifacts.computing("k"):
        pass


def _hold_and_store(keys: list[str], cache: str, started: str) -> None:
    """Run in another process: hold the locks of ``keys`` (as a grid training them does), store a result under
    each, and let go once the test creates ``<started>.release``."""
    import time

    os.environ["DDLIB_CACHE"] = cache
    with artifacts.computing_all(keys):
        Path(started).touch()
        while not Path(started + ".release").exists():
            time.sleep(0.02)
        for k in keys:
            artifacts.save(k, {"best_acc": 0.5, "last_acc": 0.4, "accs": [0.4], "seconds": 9.0})


@pytest.mark.skipif(artifacts.fcntl is None, reason="no advisory locks on this platform")
def test_students_another_process_is_training_are_waited_for_not_trained_again(
        fresh_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chapter 5 beside chapter 2: the students it needs are being trained by the other process (their locks
    held); it waits, then loads them as cached, and trains none."""
    import multiprocessing as mp
    import threading
    import time

    from ddlib.bps import pipeline

    keys = [artifacts.make_key("student", "d", {"seed": s}) for s in (0, 1)]
    monkeypatch.setattr(pipeline, "student_key", lambda ds, idx, cfg, teacher, seed: keys[seed])
    started = tmp_path / "started"
    other = mp.get_context("spawn").Process(target=_hold_and_store, args=(keys, str(fresh_cache), str(started)))
    other.start()
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists()
    threading.Timer(0.5, lambda: Path(f"{started}.release").touch()).start()
    never = lambda *a, **k: pytest.fail("trained a student the other process was training")  # noqa: E731
    out = pipeline._train_jobs(None, [([1, 2], 0), ([3, 4], 1)], None, None, "cpu", False, never)
    other.join(60)
    assert other.exitcode == 0 and [r["cached"] for r in out] == [True, True] and out[0]["seconds"] == 9.0
