"""``python -m ddlib select`` / ``evaluate`` through ``ddlib.cli.main`` with tiny budgets."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ddlib.cli import main

TINY = ["--encoder-backbone", "convnet", "--encoder-width", "8", "--encoder-depth", "2", "--encoder-epochs", "1",
        "--encoder-batch", "64", "--encoder-warmup", "0", "--clu-warmup", "0", "--queue-size", "128",
        "--knn-k", "8", "--teacher-model", "convnet", "--teacher-width", "8", "--teacher-depth", "2",
        "--teacher-epochs", "1", "--quiet"]
SYN = ["--dataset", "synthetic-patterns"]


def test_select_every_method_then_evaluate(tmp_path: Path):
    out = tmp_path / "sel"
    rc = main(["select", *SYN, "--method", "bps,random,herding,kcenter,forgetting,centroids", "--ipc", "1,3",
               "--seed", "1", "--out", str(out), *TINY])
    assert rc == 0
    for m in ("bps", "random", "herding", "kcenter", "forgetting", "centroids"):
        for k in (1, 3):
            d = json.loads((out / f"{m}_ipc{k}_seed1.json").read_text())  # the name carries the seed
            assert d["method"] == m and d["ipc"] == k and d["seed"] == 1
            assert len(d["indices"]) == len(d["pattern"]) == len(d["role"]) == 4 * k
            assert set(d["role"]) <= {"centre", "margin"}
            assert d["timings"]["selection"] >= 0 and "provenance" in d and d["provenance"]["commit"]
            assert d["config"]["teacher"]["epochs"] == 1
    bps = json.loads((out / "bps_ipc3_seed1.json").read_text())
    assert bps["config"]["selection"]["method"] == "bps" and bps["teacher_acc"] is not None
    res = tmp_path / "res" / "bps3.json"
    rc = main(["evaluate", *SYN, "--selection", str(out / "bps_ipc3_seed1.json"), "--seeds", "2", "--out", str(res),
               "--epochs", "2", "--last-epochs", "1", "--quiet"])
    assert rc == 0
    r = json.loads(res.read_text())
    row = r["rows"][0]
    assert len(row["per_seed"]) == 2 and 0 <= row["mean"] <= 1 and row["std"] >= 0
    assert r["config"]["student"]["model"] == "convnet" and r["config"]["student"]["width"] == 8  # the teacher's
    assert row["method"] == "bps" and row["protocol"] == "kd student (convnet)" and r["timings"]["wall_s"] > 0
    # hard-label CE students need no teacher
    rc = main(["evaluate", *SYN, "--selection", str(out / "random_ipc3_seed1.json"), "--seeds", "1", "--out",
               str(tmp_path / "ce.json"), "--epochs", "1", "--last-epochs", "1", "--loss", "ce", "--quiet"])
    assert rc == 0 and json.loads((tmp_path / "ce.json").read_text())["teacher"] is None


@pytest.mark.parametrize("argv, word", [
    (["--method", "magic", "--ipc", "1"], "method"),
    (["--method", "random", "--ipc", "0"], "ipc"),
    (["--method", "random", "--ipc", "a,b"], "ipc"),
    (["--method", "random", "--ipc", "1", "--teacher-epochs", "0"], "teacher epochs"),
    (["--method", "random", "--ipc", "1", "--k-ratio", "3"], "--k-ratio"),
    (["--method", "bps", "--ipc", "1", "--gmm-backend", "jax"], "--gmm-backend"),
    (["--method", "bps", "--ipc", "1", "--centre-frac", "1.5"], "--centre-frac"),
])
def test_select_rejects_bad_input_and_writes_nothing(tmp_path: Path, capsys, argv, word):
    out = tmp_path / "sel"
    rc = main(["select", *SYN, "--out", str(out), *argv, "--quiet"])
    assert rc == 2
    assert word in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("frac, role", [(1.0, "centre"), (0.0, "margin")])
def test_select_centre_frac_sets_the_roles(tmp_path: Path, frac: float, role: str):
    """--centre-frac 1 takes every pick at a pattern centre, 0 every pick at its margin (patterns larger than
    their budget; IPC 2 on synthetic-patterns leaves no pattern taken whole)."""
    out = tmp_path / "sel"
    assert main(["select", *SYN, "--method", "bps", "--ipc", "2", "--out", str(out), "--centre-frac", str(frac),
                 *TINY]) == 0
    d = json.loads((out / "bps_ipc2_seed0.json").read_text())
    assert d["config"]["selection"]["centre_frac"] == frac
    assert set(d["role"]) == {role}


def test_select_rejects_unknown_dataset(tmp_path: Path, capsys):
    assert main(["select", "--dataset", "mnist-ish", "--method", "random", "--out", str(tmp_path / "x")]) == 2
    assert "dataset" in capsys.readouterr().err


def test_evaluate_rejects_bad_input(tmp_path: Path, capsys):
    res = tmp_path / "r.json"
    assert main(["evaluate", *SYN, "--selection", str(tmp_path / "none.json"), "--out", str(res)]) == 2
    assert "selection" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{\"no\": 1}")
    assert main(["evaluate", *SYN, "--selection", str(bad), "--out", str(res)]) == 2
    assert "indices" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"indices": [0, 1], "dataset": {"name": "digits"}}))
    assert main(["evaluate", *SYN, "--selection", str(other), "--out", str(res)]) == 2
    assert "does not match" in capsys.readouterr().err
    sel = tmp_path / "sel.json"
    sel.write_text(json.dumps({"indices": [0, 1], "dataset": {"name": "synthetic-patterns"}}))
    assert main(["evaluate", *SYN, "--selection", str(sel), "--out", str(res), "--seeds", "0"]) == 2
    assert "seeds" in capsys.readouterr().err
    assert main(["evaluate", *SYN, "--selection", str(sel), "--out", str(res), "--loss", "mse"]) == 2
    assert "loss" in capsys.readouterr().err
    assert not res.exists()


def test_imagefolder_dataset(tmp_path: Path):
    from PIL import Image

    from ddlib import data

    ds = data.load("digits", per_class=12, test_per_class=3)
    for split, x, y in (("train", ds.train_x, ds.train_y), ("test", ds.test_x, ds.test_y)):
        for i, (img, c) in enumerate(zip(x, y)):
            d = tmp_path / "folder" / split / f"c{int(c)}"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.asarray(img[0])).save(d / f"{i}.png")
    spec = f"imagefolder:{tmp_path / 'folder'}"
    out = tmp_path / "sel"
    assert main(["select", "--dataset", spec, "--method", "bps,herding", "--ipc", "2", "--out", str(out), *TINY]) == 0
    d = json.loads((out / "herding_ipc2_seed0.json").read_text())
    assert len(d["indices"]) == 20 and d["dataset"]["name"] == spec
    assert main(["evaluate", "--dataset", spec, "--selection", str(out / "bps_ipc2_seed0.json"), "--seeds", "1",
                 "--out", str(tmp_path / "r.json"), "--epochs", "1", "--last-epochs", "1", "--quiet"]) == 0


def test_scale_runs_the_preset_and_options_override_it(tmp_path: Path):
    """``--scale test`` builds exactly ``presets.bps("test")`` (an option changes only its own field), and
    ``evaluate --scale test`` trains the preset's students on the selection."""
    from ddlib import presets

    out = tmp_path / "sel"
    assert main(["select", "--dataset", "fashion-mnist", "--method", "bps,random", "--ipc", "2", "--scale", "test",
                 "--encoder-epochs", "1", "--out", str(out), "--quiet"]) == 0
    d = json.loads((out / "bps_ipc2_seed0.json").read_text())
    want = presets.bps("test", encoder_epochs=1)
    cfg = {k: v for k, v in d["config"].items() if k != "selection"}
    assert cfg == json.loads(json.dumps(want.pipeline.as_dict()))
    assert cfg["encoder"]["epochs"] == 1 and presets.bps("test").encoder.epochs != 1
    assert d["dataset"]["per_class"] == want.per_class and d["dataset"]["test_per_class"] == want.test_per_class
    res = tmp_path / "r.json"
    assert main(["evaluate", "--selection", str(out / "random_ipc2_seed0.json"),  # the dataset is the selection's
                 "--scale", "test", "--out", str(res), "--quiet"]) == 0
    r = json.loads(res.read_text())
    st = r["config"]["student"]
    assert (st["epochs"], st["last_epochs"], st["model"], st["width"]) == (want.student.epochs,
                                                                          want.student.last_epochs, "convnet", 8)
    assert len(r["rows"][0]["per_seed"]) == want.seeds
    assert r["dataset"]["name"] == "fashion-mnist" and r["rows"][0]["dataset"] == "fashion-mnist"


def test_select_without_a_dataset_asks_for_one_unless_the_scale_names_it(tmp_path: Path, capsys):
    assert main(["select", "--method", "random", "--out", str(tmp_path / "x")]) == 2
    assert "dataset" in capsys.readouterr().err and not (tmp_path / "x").exists()
    with pytest.raises(SystemExit):  # argparse names the accepted scales
        main(["select", "--dataset", "fashion-mnist", "--method", "random", "--scale", "huge", "--out", str(tmp_path)])


def test_select_outputs_of_two_seeds_do_not_overwrite_each_other(tmp_path: Path):
    out = tmp_path / "sel"
    for seed in ("0", "1"):
        assert main(["select", *SYN, "--method", "random", "--ipc", "2", "--seed", seed, "--out", str(out), *TINY]) == 0
    a = json.loads((out / "random_ipc2_seed0.json").read_text())
    b = json.loads((out / "random_ipc2_seed1.json").read_text())
    assert a["seed"] == 0 and b["seed"] == 1 and a["indices"] != b["indices"]


def test_select_with_a_teacher_on_more_data_than_the_pool(tmp_path: Path):
    out = tmp_path / "sel"
    assert main(["select", "--dataset", "fashion-mnist", "--per-class", "6", "--test-per-class", "3",
                 "--teacher-per-class", "20", "--method", "bps", "--ipc", "2", "--out", str(out), *TINY]) == 0
    d = json.loads((out / "bps_ipc2_seed0.json").read_text())
    assert d["teacher_dataset"]["per_class"] == 20 and d["dataset"]["per_class"] == 6
    assert d["modelling"]["pool_size"] == 60 and d["modelling"]["teacher_train_size"] == 200
    res = tmp_path / "r.json"
    assert main(["evaluate", "--selection", str(out / "bps_ipc2_seed0.json"), "--seeds", "1", "--epochs", "1",
                 "--last-epochs", "1", "--out", str(res), "--quiet"]) == 0
    assert json.loads(res.read_text())["teacher"]["test_acc"] == pytest.approx(d["teacher_acc"])  # the same teacher


@pytest.mark.parametrize("bad, word", [([1.7, 2], "not an integer"), ([], "empty"), ([3, 3], "more than once"),
                                       ([-1], "negative")])
def test_evaluate_refuses_a_malformed_selection(tmp_path: Path, bad: list, word: str, capsys: pytest.CaptureFixture):
    sel = tmp_path / "s.json"
    sel.write_text(json.dumps({"indices": bad, "dataset": {"name": "synthetic-patterns", "seed": 0}}))
    rc = main(["evaluate", "--selection", str(sel), "--seeds", "1", "--epochs", "1", "--out",
               str(tmp_path / "r.json"), "--loss", "ce", "--quiet"])
    assert rc == 2 and not (tmp_path / "r.json").exists() and word in capsys.readouterr().err


def test_device_is_checked_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture):
    rc = main(["select", *SYN, "--method", "random", "--ipc", "1", "--device", "tpu", "--out", str(tmp_path), *TINY])
    assert rc == 2 and "device" in capsys.readouterr().err and not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv, option", [
    (["--teacher-lr", "nan"], "(set by --teacher-lr)"), (["--data-seed", "-3"], "--data-seed=-3"),
    (["--encoder-epochs", "0"], "(set by --encoder-epochs)"), (["--min-sim", "inf"], "(set by --min-sim)"),
    (["--k-ratio", "nan"], "(set by --k-ratio)"), (["--centre-frac", "nan"], "(set by --centre-frac)")])
def test_errors_name_the_option_typed(tmp_path: Path, capsys: pytest.CaptureFixture, argv: list, option: str):
    rc = main(["select", *SYN, "--method", "bps", "--ipc", "1", *argv, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and option in err and not (tmp_path / "o").exists()


def test_select_refuses_an_ipc_no_class_can_give_before_any_work(tmp_path: Path, capsys, monkeypatch):
    """Issue 22: ``select --ipc 500`` on 20 images a class wrote a file named ipc500 holding 200 images."""
    from ddlib.bps import pipeline

    def no_modelling(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("Stage 1 started although the IPC could not be met")

    monkeypatch.setattr(pipeline, "modelling", no_modelling)
    out = tmp_path / "sel"
    rc = main(["select", *SYN, "--per-class", "20", "--method", "bps,random", "--ipc", "500", "--out", str(out), *TINY])
    err = capsys.readouterr().err
    assert rc == 2 and "ipc=500 exceeds class" in err and "(20 images)" in err and "--allow-fewer" in err
    assert not out.exists()


def test_select_allow_fewer_records_what_each_class_holds(tmp_path: Path):
    out = tmp_path / "sel"
    assert main(["select", *SYN, "--per-class", "20", "--method", "bps,random", "--ipc", "25", "--allow-fewer",
                 "--out", str(out), *TINY]) == 0
    for m in ("bps", "random"):
        d = json.loads((out / f"{m}_ipc25_seed0.json").read_text())
        assert d["ipc"] == 25 and len(d["indices"]) == 4 * 20  # every class taken whole, and the record says so
        assert set(d["per_class_selected"].values()) == {20} and len(d["per_class_selected"]) == 4
        assert d["capped"] == {str(c): 20 for c in range(4)} and d["config"]["selection"]["cap"] is True


def test_a_selector_registered_in_one_place_runs_through_the_cli(tmp_path: Path):
    """Issue 23: a new selector is one decorated function; the pipeline provides what it declares it needs
    (here the Stage-1 features only: no teacher is trained) and the CLI takes its name."""
    from ddlib import selectors
    from ddlib.bps import pipeline

    @selectors.register("first-images", needs=("features",), summary="the first ipc images of each class")
    def select_first(inputs, ipc, seed=0, cap=False):  # noqa: ANN001, ANN202
        y = np.asarray(inputs.labels)
        idx = [int(i) for c in np.unique(y) for i in np.nonzero(y == c)[0][:ipc]]
        return {"indices": idx, "pattern": [-1] * len(idx), "role": ["centre"] * len(idx),
                "config": {"method": "first-images", "ipc": ipc, "seed": seed}}

    try:
        trained = []
        real = pipeline.train_teacher
        pipeline.train_teacher = lambda *a, **k: trained.append(1) or real(*a, **k)
        out = tmp_path / "sel"
        assert main(["select", *SYN, "--method", "first-images", "--ipc", "2", "--out", str(out), *TINY]) == 0
        d = json.loads((out / "first-images_ipc2_seed0.json").read_text())
        assert d["method"] == "first-images" and len(d["indices"]) == 4 * 2 and trained == []
    finally:
        pipeline.train_teacher = real
        selectors.SELECTORS.pop("first-images", None)
    with pytest.raises(Exception, match="needs"):
        selectors.register("bad", needs=("telepathy",))


def test_a_dataset_registered_in_one_place_runs_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture) -> None:
    """Issue 23: a new data set is one registry entry (``DatasetEntry``: its loader, what it needs, where it is
    read from); ``python -m ddlib datasets`` lists it and ``select`` loads it by name."""
    from ddlib.data import registry
    from ddlib.data.builtin import load_synthetic_patterns
    from ddlib.data.core import DatasetEntry

    toy = DatasetEntry("toy-shapes", lambda: load_synthetic_patterns(num_classes=3, n_train=60, n_test=12, seed=1),
                       needs="nothing: generated", where=lambda: "in memory (a test's toy)")
    monkeypatch.setitem(registry.DATASETS, "toy-shapes", toy)
    assert main(["datasets"]) == 0
    assert "toy-shapes" in capsys.readouterr().out
    out = tmp_path / "sel"
    assert main(["select", "--dataset", "toy-shapes", "--method", "random", "--ipc", "2", "--out", str(out),
                 *TINY]) == 0
    d = json.loads((out / "random_ipc2_seed0.json").read_text())
    assert len(d["indices"]) == 3 * 2
