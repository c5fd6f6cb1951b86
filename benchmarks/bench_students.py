"""Students of several architectures: the per-image cost of a KD student's training step and of its evaluation.

Usage: ``python benchmarks/bench_students.py [--students NAMES] [--images 100] [--epochs 3] [--test-images 1000]
[--repeats 2] [--out PATH]`` (one thread: run with ``OMP_NUM_THREADS=1``).

What the lead needs to budget a cross-architecture record (issue 25): Fashion-MNIST's shape (28x28x1, random
images and labels: the cost does not depend on the pixels), a KD student through :func:`ddlib.bps.distill.
train_student` exactly as the grid trains it one by one (RandomResizedCrop + flip, CutMix, the teacher's forward
on the mixed batch, the student's forward and backward, AdamW; batch 16, the KD table's for IPC 10 and 50 on
10 classes), KD from the CPU scale's teacher (a DD ConvNet of width 32, depth 3; random weights). Each student is
a :data:`ddlib.models.BACKBONES` name (``--students``, default :data:`STUDENTS`):

- ``train``: ``train_student`` on ``--images`` images for 1 and for 1 + ``--epochs`` epochs with a 10-image test
  set; the difference gives an epoch's cost (``images_per_s``: student-images trained per second), the rest the
  fixed cost (construction, the one evaluation);
- ``eval``: :func:`ddlib.train.evaluate` of the student on ``--test-images`` images (``images_per_s``).

Every row is the fastest of ``--repeats`` runs after an untimed warm-up (all kept), in wall time and in the
process's CPU time (user + system): with one thread, CPU time is what the student cost when other processes
share the cores (the 1-minute load average is recorded before and after each student), and the images per
CPU-second (``images_per_cpu_s``) are the budget's figure on a loaded machine. ``protocol`` (in ``timings``;
derived, not timed, from the CPU-time figures):
the hours of one core the record would take per architecture, 4 methods x IPC 10 and 50 x 5 seeds, 100 epochs,
the last 21 evaluated on 2,000 test images (the ``cpu`` scale's ``test_per_class=200``).

Writes a record of :func:`ddlib.results.write` to ``benchmarks/results/bench_students_cpu.json``. A speed record,
not a test.
"""
from __future__ import annotations

import argparse
import copy
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from ddlib import data, models, results
from ddlib.bps.distill import StudentConfig, train_student
from ddlib.train import evaluate

#: name -> StudentConfig fields; the recommended students first, then the settings they were chosen against
STUDENTS: dict[str, dict] = {
    "convnet-w32": dict(model="convnet", width=32, depth=3),
    "resnet18-w16": dict(model="resnet18", width=16),
    "lite0-frozen@64": dict(model="efficientnet-lite0-frozen@64"),
    "resnet18-w8": dict(model="resnet18", width=8),
    "resnet18-w32": dict(model="resnet18", width=32),
    "lite0-frozen@96": dict(model="efficientnet-lite0-frozen@96"),
    "lite0-frozen@112": dict(model="efficientnet-lite0-frozen@112"),
    "lite0-finetune@64": dict(model="efficientnet-lite0@64"),
}
#: the record to budget: methods x IPCs x seeds per architecture, epochs, evaluated epochs, test images
RECORD = dict(methods=4, ipcs=(10, 50), seeds=5, classes=10, epochs=100, last_epochs=21, test_images=2000)


def fake_fashion(n_train: int, n_test: int, seed: int = 0) -> data.Dataset:
    """Random images and labels of Fashion-MNIST's shape (the cost does not depend on the pixels)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n_train + n_test, 1, 28, 28), generator=g, dtype=torch.uint8)
    y = torch.arange(n_train + n_test) % 10
    return data.Dataset("fashion-mnist", x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                        [str(c) for c in range(10)], source="random (bench_students)", spec={"name": "bench"})


def best_of(repeats: int, fn) -> tuple[float, float, list[float], list[float]]:  # noqa: ANN001
    """(best wall s, best CPU s, all wall s, all CPU s) of ``repeats`` runs after one untimed warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu), wall, cpu


def protocol(train_ips: float, eval_ips: float, frozen: bool = False) -> dict:
    """Hours of one core for the record of :data:`RECORD` on one architecture (fixed costs left out). A
    frozen-trunk student runs its trunk on the test images once, its head at every evaluated epoch (the head's
    cost is left out)."""
    r = RECORD
    students = r["methods"] * len(r["ipcs"]) * r["seeds"]
    train_images = r["methods"] * r["seeds"] * sum(ipc * r["classes"] for ipc in r["ipcs"]) * r["epochs"]
    eval_images = students * (1 if frozen else r["last_epochs"]) * r["test_images"]
    return {"students": students, "train_images": train_images, "eval_images": eval_images,
            "train_h": round(train_images / train_ips / 3600, 2), "eval_h": round(eval_images / eval_ips / 3600, 2),
            "total_h": round((train_images / train_ips + eval_images / eval_ips) / 3600, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", default=",".join(STUDENTS), help=f"comma-separated of {', '.join(STUDENTS)}")
    ap.add_argument("--images", type=int, default=100, help="images per epoch (IPC 10 x 10 classes)")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs beyond the first")
    ap.add_argument("--test-images", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_students_cpu.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    names = [s for s in args.students.split(",") if s]
    ds = fake_fashion(args.images, args.test_images)
    short = fake_fashion(args.images, 10)
    teacher = models.create("convnet", 10, 1, 28, ds.mean.tolist(), ds.std.tolist(), width=32, depth=3).eval()
    idx = list(range(args.images))
    rows, protocols = [], {}
    for name in names:
        fields = STUDENTS[name]
        base = StudentConfig(**fields, last_epochs=1, min_crop=0.1, batch_size=16)
        model = models.create(fields["model"], 10, 1, 28, ds.mean.tolist(), ds.std.tolist(),
                              **{k: v for k, v in fields.items() if k in ("width", "depth")})
        params = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        load = os.getloadavg()[0]
        t1, c1, all1, cpu1 = best_of(args.repeats, lambda: train_student(short, idx, replace(base, epochs=1), teacher,
                                                                         progress=False))
        tn, cn, alln, cpun = best_of(args.repeats, lambda: train_student(
            short, idx, replace(base, epochs=1 + args.epochs), teacher, progress=False))
        per_epoch, per_epoch_cpu = max(tn - t1, 1e-9) / args.epochs, max(cn - c1, 1e-9) / args.epochs
        model.eval()
        # a fresh frozen-trunk model each time: the first evaluation of a student runs its trunk (later ones
        # of the same images reuse it, see ddlib.nets.layers.Classifier), and that first one is timed
        te, ce, alle, cpue = best_of(args.repeats, lambda: evaluate(copy.deepcopy(model), ds.test_x, ds.test_y))
        common = dict(student=name, **fields, params=params, trainable_params=trainable, threads=1,
                      load_before=round(load, 2), load_after=round(os.getloadavg()[0], 2))
        rows.append({**common, "part": "train", "images": args.images, "batch_size": 16, "timed_epochs": args.epochs,
                     "per_epoch_s": round(per_epoch, 4), "per_epoch_cpu_s": round(per_epoch_cpu, 4),
                     "fixed_s": round(max(t1 - per_epoch, 0.0), 3),
                     "images_per_s": round(args.images / per_epoch, 1),
                     "images_per_cpu_s": round(args.images / per_epoch_cpu, 1),
                     "all_seconds": {"1_epoch": [round(v, 3) for v in all1],
                                     f"{1 + args.epochs}_epochs": [round(v, 3) for v in alln]},
                     "all_cpu_seconds": {"1_epoch": [round(v, 3) for v in cpu1],
                                         f"{1 + args.epochs}_epochs": [round(v, 3) for v in cpun]}})
        rows.append({**common, "part": "eval", "images": args.test_images, "seconds": round(te, 3),
                     "cpu_seconds": round(ce, 3), "images_per_s": round(args.test_images / te, 1),
                     "images_per_cpu_s": round(args.test_images / ce, 1),
                     "all_seconds": [round(v, 3) for v in alle], "all_cpu_seconds": [round(v, 3) for v in cpue]})
        frozen = models.parse(fields["model"]).frozen
        protocols[name] = protocol(args.images / per_epoch_cpu, args.test_images / ce, frozen)
        print(f"{name:>18}: train {args.images / per_epoch_cpu:7.1f} img/CPU-s ({args.images / per_epoch:7.1f} "
              f"img/s), eval {args.test_images / ce:7.1f} img/CPU-s, record {protocols[name]['total_h']:.1f} "
              f"core-hours", flush=True)
    results.write(args.out, what="per-image cost of KD students of several architectures on Fashion-MNIST's shape, "
                                 "one thread (train_student's step and evaluate)",
                  config={"students": {n: STUDENTS[n] for n in names}, "images": args.images, "epochs": args.epochs,
                          "test_images": args.test_images, "repeats": args.repeats, "batch_size": 16,
                          "min_crop": 0.1, "teacher": {"model": "convnet", "width": 32, "depth": 3},
                          "record": RECORD},
                  rows=rows, timings={"wall_s": round(time.perf_counter() - start, 2), "protocol": protocols})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
