"""Student grid: BPS Stage-3 students trained one by one (``train_student``) vs stacked (``train_students``).

Usage: ``python benchmarks/bench_student_grid.py [--threads 1,2] [--students 30] [--ipcs 10,50]
[--epochs 50] [--last-epochs 21] [--timed-epochs 4] [--stacks 1,5,30] [--eval-images 16,64,256]
[--eval-students 10] [--check-students 6] [--repeats 2] [--device cpu] [--out PATH]``.

The grid of issue 9 at CPU scale: Fashion-MNIST (28x28x1, the full 60,000-image pool, the full
10,000-image test set), ConvNet students of width 32 and depth 3, KD from a ConvNet teacher of the
same size, IPC 10 and 50 (batch 16 both, min_crop 0.1 / 0.2 from the KD table), ``--students``
students per IPC (6 methods x 5 seeds = 30), each with its own random selection and seed. The
teacher keeps its random initial weights and the selections are random: neither changes the cost.

Measured for both paths in this run, for each thread count (``torch.set_num_threads``):

- ``build_model``: ``train_student``'s model construction, which computes the dataset's mean/std
  over the whole pool (once per student one by one; ``train_students`` does it once per call).
- ``train`` (per IPC): the student step (augment, CutMix, teacher forward, student forward and
  backward, AdamW) for all the students, run for 1 and for 1 + ``--timed-epochs`` epochs with a
  10-image test set (so that the evaluation is not in it): the difference gives the cost of an
  epoch (``per_epoch_s``, ``images_per_s``), the rest the fixed cost (``fixed_s``: model
  construction, which one by one includes ``build_model``'s pass over the pool per student). ``one_by_one``: ``train_student`` per student; ``stacked``:
  ``train_students`` with each ``--stacks`` value as ``max_stack``, and with more than one thread
  also stacks of one on ``workers`` = threads (one intra-op thread each).
- ``eval``: one evaluation of ``--eval-students`` students on the 10,000 test images.
  ``one_by_one``: ``ddlib.train.evaluate`` per student (what ``train_student`` does: batch 512);
  ``stacked``: stacks of one at 64 images per forward (``train_students``' CPU default), one stack
  of all at each ``--eval-images`` (student-images per forward), and with more than one thread the
  stacks of one spread over that many worker threads.
- ``check`` (1 thread): both paths end to end on ``--check-students`` students (KD and CE, 4
  epochs, 2 evaluated, 1,000 test images): equal accuracies or not, and the largest difference, for
  stacks of one and for one stack of all; and, for scale, ``train_student`` with 2 threads against
  itself with 1 (float nondeterminism of the same kind).
- ``protocol`` (in ``timings``; derived from the rows above, not timed): the protocol's cost for
  the students, ``--epochs`` epochs with the last ``--last-epochs`` evaluated on the full test set,
  one by one and with the fastest stacked settings measured (see :func:`protocol`).

Every timed row is the fastest of ``--repeats`` runs (the paths interleaved; all runs are kept
in ``runs`` / ``all_seconds``). Images per second count student-images (S students on B images each are S x B). CPU time (user +
system of this process) is recorded beside wall time, and the 1-minute load average before and
after each row: on a machine shared with other processes the wall clock is slowed by them, and
several intra-op threads collapse when the cores are oversubscribed: libgomp's threads spin at each
barrier while the thread they wait for is descheduled. ``OMP_WAIT_POLICY=PASSIVE`` (set before
Python starts; recorded in the provenance) makes them sleep instead; stacks on ``workers`` threads
of one intra-op thread each have no barriers at all.

Writes a record of :func:`ddlib.results.write` (the protocol rows in ``timings["protocol"]``) to
``benchmarks/results/bench_student_grid_<device>.json``. A speed record, not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ddlib import data, models, results
from ddlib.bps.distill import StudentConfig, build_model, train_student
from ddlib.bps.grid import EVAL_IMAGES, StudentJob, train_students
from ddlib.stack import ModelStack
from ddlib.train import evaluate
from ddlib.utils import get_device


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Clock:
    """Wall and CPU seconds of a block, and the load average before and after it."""

    def __enter__(self) -> Clock:
        self.load_before = os.getloadavg()[0]
        self.w, self.c = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.w, _cpu() - self.c
        self.load_after = os.getloadavg()[0]

    def row(self, **kw) -> dict:
        return {**kw, "seconds": round(self.wall, 3), "cpu_seconds": round(self.cpu, 3),
                "load_before": round(self.load_before, 2), "load_after": round(self.load_after, 2)}


def make_jobs(ds, n: int, ipc: int, seed: int = 0) -> list[StudentJob]:
    """``n`` students: a random selection of ``ipc`` per class and a seed each."""
    rng = np.random.default_rng(seed + ipc)
    y = ds.train_y.numpy()
    by_class = [np.nonzero(y == c)[0] for c in range(ds.num_classes)]
    return [StudentJob.of(np.concatenate([rng.choice(ix, ipc, replace=False) for ix in by_class]), s, tag=f"ipc{ipc}")
            for s in range(n)]


def _best(clocks: list[Clock]) -> Clock:
    """The fastest of repeated runs (other processes only ever slow a run down)."""
    return min(clocks, key=lambda c: c.wall)


def bench_train(ds_small, jobs, cfg, teacher, stacks: list[int], threads: int, ipc: int, dev,
                extra_epochs: int, repeats: int) -> list[dict]:
    """Each path run for 1 epoch and for ``1 + extra_epochs`` epochs, ``repeats`` times (paths
    interleaved), the fastest kept: the difference over ``extra_epochs`` is the cost of an epoch,
    the rest (model construction, set-up) the fixed cost."""
    n = len(jobs) * len(jobs[0].indices)
    common = dict(part="train", ipc=ipc, threads=threads, students=len(jobs))

    def one_by_one(c) -> None:
        for j in jobs:
            train_student(ds_small, j.indices, c, teacher, seed=j.seed, device=dev, progress=False)

    runs = [("one_by_one", 1, 1, one_by_one)]
    settings = [(k, 1) for k in stacks] + ([(1, threads)] if threads > 1 else [])
    for k, w in settings:
        runs.append(("stacked", k, w, lambda c, k=k, w=w: train_students(ds_small, jobs, c, teacher, device=dev,
                                                                         progress=False, max_stack=k, workers=w)))
    clocks: dict[int, dict[int, list[Clock]]] = {i: {1: [], 1 + extra_epochs: []} for i in range(len(runs))}
    for _ in range(repeats):
        for i, (_, _, _, fn) in enumerate(runs):
            for epochs in clocks[i]:
                with Clock() as c:
                    fn(replace(cfg, epochs=epochs, last_epochs=1))
                clocks[i][epochs].append(c)
    rows = []
    for i, (path, k, w, _) in enumerate(runs):
        short, long = _best(clocks[i][1]), _best(clocks[i][1 + extra_epochs])
        per_epoch = (long.wall - short.wall) / extra_epochs
        rows.append({**common, "path": path, "max_stack": k, "workers": w, "per_epoch_s": round(per_epoch, 3),
                     "fixed_s": round(short.wall - per_epoch, 3),
                     "images_per_s": round(n / per_epoch, 1) if per_epoch > 0 else None,
                     "long_epochs": 1 + extra_epochs, "wall_1_epoch_s": round(short.wall, 3),
                     "wall_long_s": round(long.wall, 3), "cpu_1_epoch_s": round(short.cpu, 3),
                     "cpu_long_s": round(long.cpu, 3),
                     "runs": {e: [round(c.wall, 3) for c in clocks[i][e]] for e in clocks[i]},
                     "load": [round(c.load_before, 2) for e in clocks[i] for c in clocks[i][e]]})
    return rows


def bench_eval(ds, students: list[torch.nn.Module], eval_images: list[int], threads: int, dev,
               repeats: int) -> list[dict]:
    """One evaluation of every student on the test set (the fastest of ``repeats``): evaluate() per
    student, stacks of one at train_students' default images per forward, one stack of all at each
    ``eval_images``, and with several threads, stacks of one spread over ``threads`` workers of one
    intra-op thread each. ``same_accuracy``: the accuracies equal evaluate()'s."""
    n_img = len(students) * len(ds.test_y)
    common = dict(part="eval", threads=threads, students=len(students))
    singles = [ModelStack([m]).to(dev) for m in students]
    stack = ModelStack(students).to(dev)
    own = EVAL_IMAGES.get(dev.type, EVAL_IMAGES["cuda"])  # train_students' default

    def on_workers() -> list[float]:
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(threads) as pool:
                return list(pool.map(lambda s: s.accuracy(ds.test_x, ds.test_y, own).item(), singles))
        finally:
            torch.set_num_threads(threads)

    runs = [("one_by_one", 1, 1, 512, lambda: [evaluate(m, ds.test_x, ds.test_y, device=dev) for m in students]),
            ("stacked", 1, 1, own, lambda: [s.accuracy(ds.test_x, ds.test_y, own).item() for s in singles])]
    for e in eval_images:
        runs.append(("stacked", len(students), 1, e,
                     lambda e=e: stack.accuracy(ds.test_x, ds.test_y, max(1, e // len(students))).tolist()))
    if threads > 1 and dev.type == "cpu":
        runs.append(("stacked", 1, threads, own, on_workers))
    clocks: dict[int, list[Clock]] = {i: [] for i in range(len(runs))}
    accs: dict[int, list[float]] = {}
    for _ in range(repeats):
        for i, run in enumerate(runs):
            with Clock() as c:
                accs[i] = run[4]()
            clocks[i].append(c)
    rows = []
    for i, (path, k, w, e, _) in enumerate(runs):
        best = _best(clocks[i])
        rows.append(best.row(**common, path=path, max_stack=k, workers=w, eval_images=e,
                             images_per_s=round(n_img / best.wall, 1), same_accuracy=accs[i] == accs[0],
                             all_seconds=[round(c.wall, 3) for c in clocks[i]]))
    return rows


def check(ds, cfg, teacher, n: int, dev, seed: int = 7) -> list[dict]:
    """Both paths end to end (KD and CE students, 1 thread): equal accuracies with the CPU default
    (stacks of one), and the largest accuracy difference with one stack of all."""
    g = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(ds.test_y), generator=g)[:1000]
    small = replace(ds, test_x=ds.test_x[keep], test_y=ds.test_y[keep])
    ccfg = replace(cfg, epochs=4, last_epochs=2)
    jobs = [replace(j, cfg=replace(ccfg, loss="ce") if i % 2 else None)
            for i, j in enumerate(make_jobs(ds, n, 10, seed))]
    with Clock() as c:
        one = [train_student(small, j.indices, j.cfg or ccfg, teacher, seed=j.seed, device=dev, progress=False)
               for j in jobs]
    torch.set_num_threads(2)  # the reference scale: train_student itself with another thread count
    two = [train_student(small, j.indices, j.cfg or ccfg, teacher, seed=j.seed, device=dev, progress=False)
           for j in jobs]
    torch.set_num_threads(1)
    diffs = [abs(a - b) for r1, r2 in zip(one, two) for a, b in zip(r1["accs"], r2["accs"])]
    rows = [{"part": "check", "threads": 1, "students": n, "compared": "train_student with 2 threads",
             "epochs": ccfg.epochs, "evaluated_epochs": ccfg.last_epochs, "test_images": len(keep),
             "teacher": "random init", "equal_accs": all(r1["accs"] == r2["accs"] for r1, r2 in zip(one, two)),
             "max_abs_accuracy_diff": max(diffs)}]
    for k in (1, n):
        with Clock() as c2:
            stacked = train_students(small, jobs, ccfg, teacher, device=dev, progress=False, max_stack=k, workers=1)
        diffs = [abs(a - b) for r1, r2 in zip(one, stacked) for a, b in zip(r1["accs"], r2["accs"])]
        rows.append({"part": "check", "threads": 1, "students": n, "compared": f"train_students, max_stack={k}",
                     "max_stack": k, "epochs": ccfg.epochs,
                     "evaluated_epochs": ccfg.last_epochs, "test_images": len(keep),
                     "teacher": "random init",
                     "equal_accs": all(r1["accs"] == r2["accs"] for r1, r2 in zip(one, stacked)),
                     "max_abs_accuracy_diff": max(diffs), "one_by_one_seconds": round(c.wall, 3),
                     "stacked_seconds": round(c2.wall, 3)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (then threads matter little)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--students", type=int, default=30)
    ap.add_argument("--ipcs", default="10,50")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--last-epochs", type=int, default=21)
    ap.add_argument("--timed-epochs", type=int, default=4, help="epochs timed beyond the first (see bench_train)")
    ap.add_argument("--stacks", default="1,5,30", help="max_stack values timed for the stacked path")
    ap.add_argument("--eval-images", default="16,64,256", help="student-images per stacked evaluation forward")
    ap.add_argument("--eval-students", type=int, default=10, help="students in the eval part")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each measurement; the fastest is kept")
    ap.add_argument("--check-students", type=int, default=6)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    device = get_device(args.device)
    start = time.perf_counter()
    load_start = os.getloadavg()
    ds = data.load("fashion-mnist")
    ds_small = replace(ds, test_x=ds.test_x[:10], test_y=ds.test_y[:10])
    with Clock() as c:
        build_model(ds, "convnet", 32, 3)
    rows: list[dict] = [c.row(part="build_model", note="train_student's build_model: Dataset.mean/.std over "
                              "the whole pool, paid once per student one by one, once per call stacked")]
    torch.manual_seed(0)
    teacher = build_model(ds, "convnet", 32, 3).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    base = StudentConfig(model="convnet", width=32, depth=3, loss="kd", epochs=args.timed_epochs, last_epochs=1)
    stacks = [min(int(k), args.students) for k in args.stacks.split(",")]
    warm = base.resolved(ds.name, ds.num_classes, 10)  # first calls pay one-time set-up: not in the rows
    warm_jobs = make_jobs(ds, 2, 10, seed=99)
    train_student(ds_small, warm_jobs[0].indices, warm, teacher, seed=0, device=device, progress=False)
    train_students(ds_small, warm_jobs, warm, teacher, device=device, progress=False, max_stack=2, workers=1)
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for ipc in [int(i) for i in args.ipcs.split(",")]:
            cfg = base.resolved(ds.name, ds.num_classes, ipc)
            jobs = make_jobs(ds, args.students, ipc)
            for r in bench_train(ds_small, jobs, cfg, teacher, sorted(set(stacks)), threads, ipc, device,
                                 args.timed_epochs, args.repeats):
                r["batch"], r["images_per_student_epoch"] = cfg.batch_size, len(jobs[0].indices)
                rows.append(r)
                print(json.dumps(r), flush=True)
        torch.manual_seed(1)
        mean, std = ds.mean.tolist(), ds.std.tolist()
        students = [models.create("convnet", ds.num_classes, 1, 28, mean, std, width=32, depth=3)
                    for _ in range(args.eval_students)]
        for r in bench_eval(ds, students, [int(e) for e in args.eval_images.split(",")], threads, device,
                            args.repeats):
            rows.append(r)
            print(json.dumps(r), flush=True)
    torch.set_num_threads(1)
    for r in check(ds, base.resolved(ds.name, ds.num_classes, 10), teacher, args.check_students, device):
        rows.append(r)
        print(json.dumps(r), flush=True)
    timings = protocol(rows, args)
    for t in timings:
        print(json.dumps(t), flush=True)
    out = Path(args.out or Path(__file__).parent / "results" / f"bench_student_grid_{device.type}.json")
    extra = {"threads_measured": args.threads, "loadavg_start": [round(v, 2) for v in load_start],
             "loadavg_end": [round(v, 2) for v in os.getloadavg()],
             "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset: libgomp spins)")}
    config = {"dataset": "fashion-mnist", "pool": len(ds.train_y), "test_images": len(ds.test_y),
              "student": {"model": "convnet", "width": 32, "depth": 3, "loss": "kd"},
              "teacher": {"model": "convnet", "width": 32, "depth": 3, "weights": "random init"},
              "students": args.students, "ipcs": args.ipcs, "epochs": args.epochs,
              "last_epochs": args.last_epochs, "timed_epochs": args.timed_epochs, "stacks": stacks,
              "eval_students": args.eval_students, "check_students": args.check_students,
              "repeats": args.repeats, "eval_images": args.eval_images}
    results.write(out, what="student grid: one by one (train_student) vs stacked (train_students), same run",
                  config=config, rows=rows, timings={"wall_s": round(time.perf_counter() - start, 1),
                                                     "protocol": timings},
                  provenance_extra=extra)
    print(f"wrote {out}")


def protocol(rows: list[dict], args) -> list[dict]:
    """Per thread count and IPC, the protocol's cost for ``--students`` students, one by one and
    stacked, from the measured rows (derived, not timed), for two stacked settings: ``default``
    (``train_students``' CPU defaults: stacks of one on ``workers`` = threads, 64 images per
    evaluation forward) and ``fastest`` (the fastest train and eval rows measured, any settings):

    ``fixed + epochs x per_epoch + last_epochs x eval``, with ``fixed`` and ``per_epoch`` from the
    ``train`` rows and ``eval`` one evaluation of all the students (the ``eval`` rows scaled from
    ``--eval-students``)."""
    out = []
    for threads in sorted({r["threads"] for r in rows if r.get("part") in ("train", "eval")}):
        ev = [r for r in rows if r.get("part") == "eval" and r["threads"] == threads]
        ev_one = next(r for r in ev if r["path"] == "one_by_one")
        stacked_ev = [r for r in ev if r["path"] == "stacked"]
        ev_default = next(r for r in stacked_ev if r["max_stack"] == 1 and r["workers"] == threads)
        per_student = args.students / ev_one["students"]
        for ipc in sorted({r["ipc"] for r in rows if r.get("part") == "train"}):
            tr = [r for r in rows if r.get("part") == "train" and r["threads"] == threads and r["ipc"] == ipc]
            if not tr:
                continue
            tr_one = next(r for r in tr if r["path"] == "one_by_one")
            stacked_tr = [r for r in tr if r["path"] == "stacked"]
            n = tr_one["students"]

            def cost(train: dict, eval_s: float) -> float:
                return (train["fixed_s"] + args.epochs * train["per_epoch_s"]
                        + args.last_epochs * eval_s * per_student)

            one = cost(tr_one, ev_one["seconds"])
            row = {"part": "protocol", "threads": threads, "ipc": ipc, "students": n, "epochs": args.epochs,
                   "last_epochs": args.last_epochs, "one_by_one_s": round(one, 1),
                   "eval_share_one_by_one": round(args.last_epochs * ev_one["seconds"] * per_student / one, 3)}
            tr_default = next(r for r in stacked_tr if r["max_stack"] == 1 and r["workers"] == threads)
            tr_fast = min(stacked_tr, key=lambda r: r["fixed_s"] + args.epochs * r["per_epoch_s"])
            ev_fast = min(stacked_ev, key=lambda r: r["seconds"])
            for name, t, e in (("default", tr_default, ev_default), ("fastest", tr_fast, ev_fast)):
                st = cost(t, e["seconds"])
                row.update({f"{name}_s": round(st, 1), f"{name}_speedup": round(one / st, 2),
                            f"{name}_train_speedup": round(tr_one["per_epoch_s"] / t["per_epoch_s"], 2),
                            f"{name}_eval_speedup": round(ev_one["seconds"] / e["seconds"], 2),
                            f"{name}_train_setting": {"max_stack": t["max_stack"], "workers": t["workers"]},
                            f"{name}_eval_setting": {"max_stack": e["max_stack"], "workers": e["workers"],
                                                     "eval_images": e["eval_images"]}})
            out.append(row)
    return out


if __name__ == "__main__":
    main()
