"""``python -m ddlib distill`` / ``evaluate-synthetic`` through ``ddlib.cli.main`` with tiny budgets."""
from __future__ import annotations

import json

import torch

from ddlib import data, presets
from ddlib.cli import main
from ddlib.sfm import inherit as I
from ddlib.sfm import synth


def test_cli_distill_writes_images_grid_and_json(tmp_path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "syn"
    argv = ["distill", "--method", "lgm", "--backbone", "convnet-random", "--dataset", "digits", "--per-class", "10",
            "--ipc", "1", "--steps", "3", "--augs-per-batch", "2", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    back = synth.load_synthetic(out)
    assert back["images"].shape == (10, 1, 8, 8) and back["labels"].tolist() == list(range(10))
    meta = json.loads((out / "distill.json").read_text())
    assert meta["config"]["method"] == "lgm" and meta["timings"]["wall_s"] > 0 and "peak_mem" in meta["rows"][0]
    assert meta["timings"]["distill_s"] > 0 and "cached" not in meta["timings"]
    assert meta["provenance"]["command"].startswith("python -m ddlib distill") and (out / "grid.png").exists()
    # the same run again is loaded from the cache: its record says so and keeps the original time apart
    assert main([*argv[:-2], str(tmp_path / "again"), "--quiet"]) == 0
    again = json.loads((tmp_path / "again" / "distill.json").read_text())["timings"]
    assert again["cached"] is True and again["original_wall_s"] == meta["timings"]["distill_s"]
    assert "distill_s" not in again
    assert main(["distill", "--backbone", "convnet-random", "--dataset", "digits", "--ipc", "0",
                 "--out", str(tmp_path / "bad")]) == 2
    assert "ipc" in capsys.readouterr().err


def test_cli_distill_scale_test_is_the_ci_preset(tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "syn"
    assert main(["distill", "--backbone", "convnet-random", "--dataset", "digits", "--scale", "test", "--steps", "2",
                 "--out", str(out), "--quiet"]) == 0
    cfg = json.loads((out / "distill.json").read_text())["config"]
    want = presets.ci("test", steps=2).synth
    assert (cfg["steps"], cfg["lr"], cfg["grow_every"], cfg["ipc"]) == (2, want.lr, want.grow_every, want.ipc)


def test_cli_evaluate_synthetic_on_tiny_inputs(tmp_path, capsys) -> None:  # noqa: ANN001
    ds = data.load("digits", per_class=10, test_per_class=5)
    s = I.random_real(ds, 1, seed=0)
    d = tmp_path / "syn"
    d.mkdir()
    torch.save({"images": s["images"], "labels": s["labels"], "config": {"method": "sfm", "ipc": 1},
                "backbone": "convnet-random"}, d / "images.pt")
    common = ["--dataset", "digits", "--per-class", "10", "--test-per-class", "5", "--epochs", "3",
              "--views", "2", "--runs", "1", "--golden-epochs", "2", "--quiet"]
    out = tmp_path / "probe.json"
    assert main(["evaluate-synthetic", "--images", str(d), "--backbone", "convnet-random", "--mode", "probe",
                 "--out", str(out), *common]) == 0
    rec = json.loads(out.read_text())
    row = rec["rows"][0]
    assert 0 <= row["mean"] <= 1 and row["mode"] == "probe" and row["method"] == "sfm"
    assert row["protocol"] == "probe on convnet-random" and len(row["per_seed"]) == 1
    assert {"command", "commit", "device", "date"} <= set(rec["provenance"]) and rec["timings"]["wall_s"] > 0
    assert rec["config"]["probe"]["epochs"] == 3 and rec["config"]["golden"]["epochs"] == 2
    out = tmp_path / "ci.json"
    assert main(["evaluate-synthetic", "--images", str(d), "--backbone", "convnet-random", "--mode", "ci",
                 "--out", str(out), *common]) == 0
    rec = json.loads(out.read_text())
    assert rec["config"]["distill_backbone"] == "convnet-random" and "golden_acc" in rec["result"]
    out = tmp_path / "centroid.json"
    assert main(["evaluate-synthetic", "--images", "centroid-real", "--ipc", "1", "--backbone", "convnet-random",
                 "--distill-backbone", "convnet-random", "--mode", "kd", "--out", str(out), *common]) == 0
    assert json.loads(out.read_text())["rows"][0]["method"] == "centroid-real"
    # bad parameters: a clear error and exit code 2, no output
    bad = tmp_path / "bad.json"
    assert main(["evaluate-synthetic", "--images", str(d), "--backbone", "convnet-random", "--mode", "zzz",
                 "--out", str(bad), *common]) == 2
    assert "mode" in capsys.readouterr().err and not bad.exists()
    assert main(["evaluate-synthetic", "--images", "random-real", "--backbone", "convnet-random",
                 "--out", str(bad), *common]) == 2
    assert "ipc" in capsys.readouterr().err
    assert main(["evaluate-synthetic", "--images", str(tmp_path / "missing"), "--backbone", "convnet-random",
                 "--out", str(bad), *common]) == 2
    assert main(["evaluate-synthetic", "--images", str(d), "--backbone", "convnet-random", "--out", str(bad),
                 *common, "--views", "-1"]) == 2
    assert "views" in capsys.readouterr().err and not bad.exists()
