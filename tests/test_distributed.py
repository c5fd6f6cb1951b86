"""Data-parallel runs (``ddlib.distributed``): the helpers in one process, and 2 gloo ranks on the CPU against the
one-process run (``tests/_dist_workers.py`` holds what each rank runs).

The 2-rank runs use a BatchNorm-free pipeline (the DD ConvNet normalises each image on its own): there a
data-parallel step is the one-process step with the batch's gradient summed in another order, so the
trained weights, embeddings and entropies agree with one process's up to float rounding (``ATOL``).
The selections need not be the same indices: BPS's patterns come from Infomap on a kNN graph of the
embeddings, and a difference in the last bits of an edge's weight can move Infomap to another partition
(seen on ``synthetic-patterns``: one class split in a different number of patterns). So the selections are
checked to be what one process selects from the same inputs, and every rank to hold rank 0's. The students
(each trained whole on one rank, with its own seed) are the one process's exactly.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ddlib import distributed
from ddlib.utils import ParamError
from tests import _dist_workers as W

ATOL = 1e-4  # float32 rounding of a sum taken in another order, after a few SGD steps


def _spawn(task: str, tmp_path: Path, world: int = 2) -> list[dict]:
    """Run ``task`` on ``world`` gloo ranks (spawned children, one thread each) with a fresh cache; every
    rank's saved output."""
    import torch.multiprocessing as mp

    out = tmp_path / f"ranks-{task}"
    out.mkdir()
    old = os.environ.get("DDLIB_CACHE")
    os.environ["DDLIB_CACHE"] = str(tmp_path / f"cache-{task}-ranks")
    try:
        mp.spawn(W.rank_main, args=(world, W.free_port(), task, str(out)), nprocs=world, join=True)
    finally:
        os.environ["DDLIB_CACHE"] = old or ""
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world)]


def _one(task: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    out = tmp_path / f"one-{task}"
    out.mkdir()
    monkeypatch.setenv("DDLIB_CACHE", str(tmp_path / f"cache-{task}-one"))
    return W.one_process(task, str(out))


def _close(a, b) -> None:  # noqa: ANN001
    torch.testing.assert_close(torch.as_tensor(a).double(), torch.as_tensor(b).double(), atol=ATOL, rtol=0)


# ----------------------------------------------------------------------------- one process: the identity
def test_one_process_helpers_are_the_identity() -> None:
    assert distributed.world_size() == 1 and distributed.rank() == 0 and distributed.is_main()
    t = torch.arange(6).reshape(3, 2)
    assert distributed.gather_rows(t) is t
    assert distributed.broadcast_object({"a": 1}) == {"a": 1}
    assert distributed.all_gather_objects(3) == [3]
    assert distributed.all_reduce_sum([1.5, 2.0]) == [1.5, 2.0]
    assert distributed.split_map(lambda xs: [x * 10 for x in xs], [1, 2, 3]) == [10, 20, 30]
    assert distributed.data_parallel(torch.nn.Linear(2, 2)) is None
    assert distributed.describe() == {}  # one process's records carry nothing new
    distributed.barrier()


def test_bounds_split_like_tensor_split() -> None:
    for n, world in [(10, 3), (2, 4), (7, 1), (0, 2)]:
        parts = torch.tensor_split(torch.arange(n), world)
        got = [distributed.bounds(n, r, world) for r in range(world)]
        assert [(int(p[0]), int(p[-1]) + 1) if len(p) else (lo, lo) for p, (lo, _) in zip(parts, got)] == got
        assert got[0][0] == 0 and got[-1][1] == n


def test_bad_torchrun_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ParamError, match="WORLD_SIZE"):
        distributed.env_world_size()
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ParamError, match="device"):
        distributed.init("cuda:1")
    with pytest.raises(ParamError, match=r"backend='mpi'.*'gloo'"):
        distributed.init("cpu", backend="mpi")
    monkeypatch.setenv("DDLIB_DIST_BACKEND", "nccl")
    with pytest.raises(ParamError, match="DDLIB_DIST_BACKEND='nccl' needs CUDA"):
        distributed.init("cpu")
    assert not torch.distributed.is_initialized()


def test_cli_commands_that_do_not_split_refuse_torchrun(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture) -> None:
    from ddlib.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["datasets"]) == 2
    err = capsys.readouterr().err
    assert "datasets does not run under torchrun" in err and "'select', 'evaluate'" in err
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert main(["datasets"]) == 0


def test_more_ranks_than_a_batch_can_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    from ddlib.train import TrainConfig, fit

    monkeypatch.setattr(distributed, "world_size", lambda: 4)  # as if torchrun had started 4 processes
    distributed.check_split("batch_size", 4)
    with pytest.raises(ParamError, match=r"batch_size=3 is smaller than the number of ranks \(4"):
        distributed.check_split("batch_size", 3)
    x, y = torch.zeros(8, 1, 4, 4), torch.zeros(8, dtype=torch.long)
    with pytest.raises(ParamError, match="batch_size=2"):
        fit(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)), x, y,
            TrainConfig(epochs=1, batch_size=2, augment=None), device="cpu", progress=False, data_parallel=True)


# ----------------------------------------------------------------------------- 2 gloo ranks
def test_selection_on_two_ranks_is_the_one_process_selection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ddlib.baselines import SelectionInputs
    from ddlib.bps import pipeline as P

    ranks = _spawn("selection", tmp_path)
    one = _one("selection", tmp_path, monkeypatch)
    ref = one["result"]
    ds = W.pool()
    for got in ranks:
        res = got["result"]
        # Stage 1 trained data-parallel (the queue wrapped and was re-partitioned on rank 0, broadcast)
        assert res["refreshes"] == ref["refreshes"] and sum(ref["refreshes"]) > 0
        _close(res["encoder_loss"], ref["encoder_loss"])
        _close(res["encoder_clu"], ref["encoder_clu"])
        _close(res["embeddings"], ref["embeddings"])  # computed sharded, gathered
        for k, v in ref["teacher"].items():  # the teacher trained data-parallel
            _close(res["teacher"][k], v)
        _close(res["entropies"], ref["entropies"])  # computed sharded, gathered
        assert torch.equal(torch.as_tensor(res["forgetting"]), torch.as_tensor(ref["forgetting"]))  # rank 0 alone
        # Stage 2 on the ranks is the one process's Stage 2 on the same inputs
        inputs = SelectionInputs(res["embeddings"], ds.train_y, res["patterns"], res["entropies"],
                                 {"forgetting": res["forgetting"], "el2n": res["el2n"]}, list(ds.classes))
        for m, per in res["selections"].items():
            for k, idx in per.items():
                assert list(map(int, P.select(m, inputs, k, 0, W.CFG.select)["indices"])) == idx, (m, k)
    # every rank holds rank 0's partition and selections
    assert torch.equal(torch.as_tensor(ranks[0]["result"]["patterns"]), torch.as_tensor(ranks[1]["result"]["patterns"]))
    assert ranks[0]["result"]["selections"] == ranks[1]["result"]["selections"]
    # the teacher (trained first: it does not need Stage 1) and the encoder trained in DistributedDataParallel on
    # both ranks; nothing in one process
    assert ranks[0]["parallel"] == ranks[1]["parallel"] == ["ConvNet", "Encoder"] and one["parallel"] == []
    # rank 0 wrote every artifact the one process wrote, the other rank none
    assert sorted(ranks[0]["writes"]) == sorted(one["writes"]) and one["writes"]
    assert ranks[1]["writes"] == []


def test_student_grid_split_over_two_ranks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ranks = _spawn("grid", tmp_path)
    one = _one("grid", tmp_path, monkeypatch)
    ref = one["result"]
    for got in ranks:
        res = got["result"]
        assert len(res["rows"]) == len(ref["rows"]) == 2 * 2 * 3 * 2
        # the same rows in the same order on every rank: each student trained with its own seed, on one rank
        assert res["rows"] == ref["rows"]
        assert all(r["cached"] for r in res["again"]) and not any(r["cached"] for r in res["rows"])
        assert res["evaluate"] == ref["evaluate"]
    # every student trained exactly once, over the two ranks, none of them twice
    trained = ranks[0]["trained"] + ranks[1]["trained"]
    assert sorted(trained) == sorted(one["trained"])
    assert ranks[0]["trained"] and ranks[1]["trained"]
    assert ranks[1]["writes"] == [] and sorted(ranks[0]["writes"]) == sorted(one["writes"])


def test_rank_zero_writes_once(tmp_path: Path) -> None:
    ranks = _spawn("write", tmp_path)
    r0, r1 = ranks[0]["result"], ranks[1]["result"]
    assert r0["calls"] == [0] and r1["calls"] == []  # computed by rank 0 alone, inside alone()
    assert r0["obj"] == r1["obj"] == {"rank": 0, "world_inside": 1}
    assert r0["again"] == r1["again"] == r0["obj"]  # the second call is a hit on every rank
    assert r0["record_rows"] == [{"rank": 0}] and r1["record_rows"] == [{"rank": 1}]
    assert r0["provenance"]["processes"] == 2 and r0["provenance"]["backend"] == "gloo"
    assert ranks[1]["writes"] == []
    assert ranks[0]["writes"].count("record.json") == 1
    import json

    assert json.loads((tmp_path / "ranks-write" / "record.json").read_text())["rows"] == [{"rank": 0}]


def test_collectives_on_two_ranks(tmp_path: Path) -> None:
    r0, r1 = (got["result"] for got in _spawn("collectives", tmp_path))
    for res in (r0, r1):
        assert res["world"] == 2 and res["sum"] == [2.0, 1.0]
        want = torch.cat([torch.arange(3.).reshape(1, 3), torch.arange(6.).reshape(2, 3) + 100])
        assert torch.equal(res["rows"], want)  # uneven shares, in rank order
        assert res["bools"].tolist() == [False, False, True]
        assert res["split"] == [9, 16, 25] and res["split_one"] == [-7]
        x = res["x"]
        assert torch.equal(res["shuffled_id"], 2 * x)  # every row back in its place
        # shuffled BN: each rank normalised a random half of the batch, not its own contiguous half
        assert not torch.allclose(res["shuffled_bn"], x - x.mean(0))
        assert not torch.allclose(res["shuffled_bn"], torch.cat([x[:5] - x[:5].mean(0), x[5:] - x[5:].mean(0)]))
    assert torch.equal(r0["shuffled_bn"], r1["shuffled_bn"])
    assert r0["seen"] == [3, 5] and r1["seen"] == [4]  # round-robin, nothing twice


def test_torchrun_select_and_evaluate_as_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``torchrun --nproc_per_node 2 -m ddlib select`` then ``evaluate``: the files one process writes, with the
    same selections and the same students' accuracies (CE students: each trained whole on one rank)."""
    import json
    import shutil
    import subprocess
    import sys

    from ddlib.cli import main

    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():  # pragma: no cover - torchrun comes with torch
        torchrun = Path(shutil.which("torchrun") or "torchrun")
    tiny = ["--dataset", "synthetic-patterns", "--encoder-backbone", "convnet", "--encoder-width", "8",
            "--encoder-depth", "2", "--encoder-epochs", "1", "--encoder-batch", "64", "--encoder-warmup", "0",
            "--clu-warmup", "0", "--queue-size", "128", "--knn-k", "8", "--teacher-model", "convnet",
            "--teacher-width", "8", "--teacher-depth", "2", "--teacher-epochs", "1", "--quiet"]
    select = ["select", "--method", "bps,random", "--ipc", "1,2", *tiny]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "DDLIB_CACHE": str(tmp_path / "cache-ranks"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def evaluate(sel: Path, out: Path) -> list[str]:
        return ["evaluate", "--dataset", "synthetic-patterns", "--selection", str(sel), "--seeds", "3", "--out",
                str(out), "--epochs", "1", "--last-epochs", "1", "--loss", "ce", "--quiet"]

    ranks, one = tmp_path / "ranks", tmp_path / "one"
    monkeypatch.setenv("DDLIB_CACHE", str(tmp_path / "cache-one"))
    assert main(select + ["--out", str(one)]) == 0
    sel = one / "bps_ipc2_seed0.json"  # both evaluate the same selection
    assert main(evaluate(sel, one / "eval.json")) == 0
    for argv in (select + ["--out", str(ranks)], evaluate(sel, ranks / "eval.json")):
        done = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "ddlib", *argv], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    names = sorted(p.name for p in one.iterdir())
    assert sorted(p.name for p in ranks.iterdir()) == names  # the same files, each written once, nothing left over
    a, b = (json.loads((d / "eval.json").read_text())["rows"][0]["per_seed"] for d in (ranks, one))
    assert a == b and len(a) == 3  # the seeds split over the ranks, each student as one process trains it
    for name in (n for n in names if n != "eval.json"):
        a, b = json.loads((ranks / name).read_text()), json.loads((one / name).read_text())
        assert len(a["indices"]) == len(b["indices"]) and a["config"] == b["config"], name
        if name.startswith("random"):  # needs no model: the same images
            assert a["indices"] == b["indices"], name
    # BPS's selections are made from a partition that Infomap finds on a kNN graph of the embeddings: the
    # embeddings agree to float rounding (test_selection_on_two_ranks_is_the_one_process_selection), the
    # partition need not (module docstring), so the BPS files are compared by their shape only here.


def test_readme_torchrun_commands_parse() -> None:
    """The README's and the workshop page's torchrun commands: torchrun's options and ddlib's are accepted."""
    import re
    import shlex

    from torch.distributed.run import get_args_parser

    from ddlib.cli import build_parser

    root = Path(__file__).resolve().parents[1]
    text = (root / "README.md").read_text() + (root / "book" / "workshop.md").read_text()
    commands = [" ".join(line.strip() for line in m.split("\\\n"))
                for m in re.findall(r"^\.venv/bin/torchrun (?:.*\\\n)*.*$", text, flags=re.M)]
    assert len(commands) >= 4
    ddlib_parser, _ = build_parser()
    for cmd in commands:
        argv = shlex.split(cmd)[1:]
        args = get_args_parser().parse_args(argv)  # exits (SystemExit) on an option torchrun does not know
        assert args.nproc_per_node == "gpu"
        if args.module:
            assert args.training_script == "ddlib"
            ddlib_parser.parse_args(args.training_script_args)
        else:
            assert (root / args.training_script).is_file()
