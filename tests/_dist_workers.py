"""What the 2-process tests of ``test_distributed.py`` run in each rank (``torch.multiprocessing.spawn`` imports
this module by name in every child), and in the test process itself as the one-process reference.

Each task returns what the test compares; :func:`rank_main` runs one in a gloo group of ``world`` CPU ranks
(1 thread each), logs every file the rank writes (``ddlib.artifacts._atomic_write``: artifacts and records)
and every student it trains, and saves all of it to ``out/rank<r>.pt``.
"""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddlib import data
from ddlib.baselines import ForgettingConfig, SelectionInputs
from ddlib.bps import pipeline as P
from ddlib.bps.distill import StudentConfig, TeacherConfig
from ddlib.bps.encoder import EncoderConfig
from ddlib.bps.patterns import PatternConfig

# A BatchNorm-free pipeline (the DD ConvNet normalises each image on its own), so that a data-parallel run
# is the one-process run up to float rounding; clu_warmup_epochs=0 and a small queue: the queue wraps and
# is re-partitioned during Stage 1.
ENC = EncoderConfig(backbone="convnet", convnet_width=8, convnet_depth=2, proj_hidden=16, proj_dim=8, epochs=2,
                    batch_size=16, queue_size=32, warmup_epochs=0, clu_warmup_epochs=0, pattern=PatternConfig(k=5))
CFG = P.PipelineConfig(encoder=ENC, pattern=PatternConfig(k=5),
                       teacher=TeacherConfig(model="convnet", width=8, depth=1, epochs=2, batch_size=30),
                       forgetting=ForgettingConfig(model="convnet", width=8, depth=1, epochs=2, batch_size=32,
                                                   el2n_epoch=1))
STUDENT = StudentConfig(model="convnet", width=8, depth=1, epochs=2, last_epochs=2, loss="ce")


def pool() -> data.Dataset:
    return data.load("fashion-mnist", per_class=12, test_per_class=5)


def selection_task() -> dict:
    """Stage 1 (data-parallel), the teacher (data-parallel), the forgetting run (rank 0 alone), the entropies
    and embeddings (sharded), then every method's selection."""
    ds = pool()
    methods = ["bps", "herding", "kcenter", "forgetting"]
    res = P.run_selection(ds, methods, [1, 2], seed=0, cfg=CFG, progress=False)
    mod, inp = res["modelling"], res["modelling"]["inputs"]
    from ddlib.bps.encoder import train_encoder

    _, enc_hist = train_encoder(ds, CFG.encoder, progress=False)  # from the cache
    teacher = mod["teacher"]
    return {"embeddings": inp.embeddings, "patterns": inp.patterns, "entropies": inp.entropies,
            "forgetting": inp.scores["forgetting"], "el2n": inp.scores["el2n"],
            "teacher": {k: v.clone() for k, v in teacher.state_dict().items()},
            "encoder_loss": enc_hist["loss"], "encoder_clu": enc_hist["clu"], "refreshes": enc_hist["refreshes"],
            "selections": {m: {k: list(map(int, s["indices"])) for k, s in per.items()}
                           for m, per in res["selections"].items()}}


def grid_task() -> dict:
    """The student grid (twice: the second call must load every student) and the seeds of evaluate_selection."""
    from ddlib.bps.distill import evaluate_selection

    ds = pool()
    g = torch.Generator().manual_seed(0)
    inputs = SelectionInputs(torch.nn.functional.normalize(torch.randn(len(ds.train_y), 6, generator=g), dim=1),
                             ds.train_y, None, classes=list(ds.classes))
    students = {"ce": STUDENT, "ce-long": StudentConfig(**{**STUDENT.__dict__, "epochs": 3})}
    rows = P.evaluate_grid(ds, inputs, ["random", "herding"], [1, 2], [0, 1, 2], students, progress=False)
    again = P.evaluate_grid(ds, inputs, ["random", "herding"], [1, 2], [0, 1, 2], students, progress=False)
    idx = P.select("random", inputs, 2, 0)["indices"]
    ev = evaluate_selection(ds, idx, STUDENT, seeds=3, progress=False)
    strip = ("student_seconds", "selection_seconds")
    return {"rows": [{k: v for k, v in r.items() if k not in strip} for r in rows],
            "again": [{k: v for k, v in r.items() if k not in strip} for r in again],
            "evaluate": {"per_seed": ev["per_seed"], "last_acc": ev["last_acc"], "mean": ev["mean"]}}


def write_task() -> dict:
    """Records and artifacts: one result file and one artifact, each written once."""
    from ddlib import artifacts, distributed, results

    out = Path(os.environ["DDLIB_TEST_OUT"])
    calls = []

    def compute() -> dict:
        calls.append(distributed.rank())
        return {"rank": distributed.rank(), "world_inside": distributed.world_size()}

    obj = artifacts.cached("unit-0123", compute)                     # rank 0 alone computes, the others load
    again = artifacts.cached("unit-0123", lambda: calls.append("again"))  # a hit on every rank
    rec = results.write(out / "record.json", what="a test record", config={}, rows=[{"rank": distributed.rank()}],
                        timings={"wall_s": 0.0})
    return {"obj": obj, "again": again, "calls": calls, "record_rows": rec["rows"], "provenance": rec["provenance"]}


def collectives_task() -> dict:
    """The helpers themselves: uneven and boolean gathers, a split with fewer jobs than ranks, shuffled BN."""
    from ddlib import distributed

    r = distributed.rank()
    rows = torch.arange(3 * (r + 1), dtype=torch.float32).reshape(-1, 3) + 100 * r  # rank r holds r + 1 rows
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(1))

    def bn(t: torch.Tensor) -> torch.Tensor:  # a batch-norm-like function: its rows depend on the batch
        return t - t.mean(0)

    seen: list[int] = []
    return {"rows": distributed.gather_rows(rows), "bools": distributed.gather_rows(rows[:, 0] > 100),
            "split": distributed.split_map(lambda xs: [seen.append(x) or x * x for x in xs], [3, 4, 5]),
            "split_one": distributed.split_map(lambda xs: [-x for x in xs], [7]), "seen": seen,
            "shuffled_id": distributed.shuffled_forward(lambda t: 2 * t, x, torch.Generator().manual_seed(0)),
            "shuffled_bn": distributed.shuffled_forward(bn, x, torch.Generator().manual_seed(0)), "x": x,
            "sum": distributed.all_reduce_sum([1.0, r]), "world": distributed.world_size()}


TASKS = {"collectives": collectives_task, "selection": selection_task, "grid": grid_task, "write": write_task}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_main(rank: int, world: int, port: int, task: str, out: str) -> None:
    """One rank of a gloo group on the CPU: run ``task``, save its result and what the rank wrote and trained."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), DDLIB_TEST_OUT=out)
    torch.set_num_threads(1)
    result, log = _logged(task, session=True)
    torch.save({"result": result, **log}, Path(out) / f"rank{rank}.pt")


def one_process(task: str, out: str) -> dict:
    """The one-process reference of ``task`` (in the calling process: no group, no torchrun variables)."""
    os.environ["DDLIB_TEST_OUT"] = out
    result, log = _logged(task, session=False)
    return {"result": result, **log}


def _logged(task: str, session: bool) -> tuple[Any, dict]:
    import ddlib.artifacts as A
    import ddlib.bps.distill as D
    from ddlib import distributed

    writes: list[str] = []
    trained: list[tuple[int, int, int]] = []
    parallel: list[str] = []  # the models trained data-parallel (DistributedDataParallel) on this rank
    write, train, dp_init = A._atomic_write, D.train_student, distributed.DataParallel.__init__

    def logged_write(path, data_):  # noqa: ANN001
        writes.append(Path(path).name)
        return write(path, data_)

    def logged_train(ds, indices, cfg, teacher=None, seed=0, **kw):  # noqa: ANN001, ANN003
        trained.append((int(seed), int(np.asarray(indices).sum()), cfg.epochs))
        return train(ds, indices, cfg, teacher, seed=seed, **kw)

    def logged_dp(self, model, *a, **kw):  # noqa: ANN001, ANN002, ANN003
        parallel.append(type(model).__name__)
        return dp_init(self, model, *a, **kw)

    A._atomic_write, D.train_student, distributed.DataParallel.__init__ = logged_write, logged_train, logged_dp
    try:
        if session:
            with distributed.session("cpu"):
                result = TASKS[task]()
        else:
            result = TASKS[task]()
    finally:
        A._atomic_write, D.train_student, distributed.DataParallel.__init__ = write, train, dp_init
    return result, {"writes": writes, "trained": trained, "parallel": parallel}
