"""benchmarks/bench_sfm.py keeps what it measured when a device window's time limit stops it."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_record_is_rewritten_after_every_case(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("bench_sfm", ROOT / "benchmarks" / "bench_sfm.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    done: list[tuple] = []

    def fake_case(bb, key, method, c, ipc, chunk, args, device):  # noqa: ANN001, ANN202
        if len(done) == 4:
            raise KeyboardInterrupt  # the window's limit, in the middle of the fifth case
        done.append((method, c, ipc, chunk))
        return {"backbone": key, "method": method + (" (chunked)" if chunk else ""), "C": c, "IPC": ipc,
                "status": "ok", "step_s": 0.1 * len(done), "peak_mem_bytes": 2**20 * len(done),
                "distill_5000_s": 500.0 * len(done)}

    monkeypatch.setattr(mod, "run_case", fake_case)
    monkeypatch.setattr(mod, "forward_throughput", lambda bb, crop, device: 100.0)
    out = tmp_path / "b.json"
    monkeypatch.setattr(sys, "argv", ["bench_sfm.py", "--full", "--tiny", "--backbones", "efficientnet-lite0",
                                      "--out", str(out)])
    with pytest.raises(KeyboardInterrupt):
        mod.main()
    rec = json.loads(out.read_text())
    assert rec["complete"] is False and len(rec["rows"]) == 4  # the four finished cases, not lost
    assert [r["method"] for r in rec["rows"]] == ["sfm", "sfm (chunked)", "lgm", "sfm"]
    first = rec["ratios"][0]  # LGM over SFM of the one compared (C, IPC), from the rows so far
    assert first["lgm_over_sfm_time"] == pytest.approx(0.3 / 0.1)
    assert rec["rows"][0]["stats_pass_s"] == pytest.approx(2 * 1300 / 100.0)  # projected statistics pass
    assert rec["rows"][3]["stats_pass_s"] == pytest.approx(3 * 1300 / 100.0)  # an SFM-only case's too

    # a full run: every case recorded, an out-of-memory one as such, and the record marked complete
    done.clear()

    def oom_last(*a):  # noqa: ANN002, ANN202
        if len(done) < 4:
            return fake_case(*a)
        return {"backbone": a[1], "method": "sfm (chunked)", "C": a[3], "IPC": a[4], "status": "oom",
                "error": "CUDA out of memory"}

    monkeypatch.setattr(mod, "run_case", oom_last)
    mod.main()
    rec = json.loads(out.read_text())
    assert rec["complete"] is True and len(rec["rows"]) == 5 and rec["rows"][-1]["status"] == "oom"
    assert rec["sampler_ms"]  # measured once the cases are done
