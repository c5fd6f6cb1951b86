"""Peak memory and wall time of a small teacher + student run on an image folder, streamed from disk against
held in memory (issue 25 item 5).

    python benchmarks/bench_stream.py [--images 4000] [--size 64] [--out benchmarks/results/bench_stream_cpu.json]

Writes a folder of ``--images`` JPEG files (``--size`` px, 10 classes, 10 test images per class) into a
temporary folder, then, for each mode, runs a child process (``--child FOLDER --mode stream|memory``; glibc
told to map every block above 128 KiB, so that resident memory follows live memory) that

1. does the work once on random images of the same shape (first-time allocations),
2. does it again after returning freed memory to the system and restarting the peak count (Linux's
   malloc_trim and /proc/self/clear_refs): ``work_bytes``, the peak resident memory the work itself takes,
3. the same way, loads the folder (``data.load(..., stream=)``, the artifact cache in a fresh folder, so the
   in-memory load decodes and stores it as a first load does) and does the work on it: ``peak_growth_bytes``.

The work: a ConvNet teacher trained one epoch (batch 32) with ``ddlib.train.fit`` and evaluated, and a KD
student on one image per class (``ddlib.bps.distill.train_student``, 2 epochs). ``decoded_bytes`` is the
images' size as a uint8 tensor (N x 3 x size x size). Speed and memory are recorded here, never asserted;
``tests/test_data_stream.py`` runs the same child on a smaller folder and checks that the streamed run stays
below ``work_bytes + decoded_bytes`` and the in-memory one does not.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_folder(root: Path, images: int, size: int, test_per_class: int = 10, classes: int = 10) -> Path:
    """A folder data set of smooth random JPEGs: ``images`` training images over ``classes`` classes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    folder = root / "stream-fixture"
    for split, n in (("train", images), ("test", test_per_class * classes)):
        for i in range(n):
            c = i % classes
            low = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
            img = Image.fromarray(low).resize((size, size), Image.BILINEAR)
            (folder / split / f"c{c}").mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=90)
            (folder / split / f"c{c}" / f"{i:05d}.jpg").write_bytes(buf.getvalue())
    return folder


def _status(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _start_peak() -> int:
    """Return freed heap memory to the system and restart the peak (Linux: malloc_trim, clear_refs 5), so the
    peak read afterwards is of the work that follows, not of memory the warm-up freed and the work reuses;
    returns the resident memory now."""
    import ctypes

    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    return _status("VmRSS")


def _peak() -> int:
    """Peak resident memory since :func:`_start_peak` (VmHWM), in bytes."""
    return _status("VmHWM")


def _run(ds, cfg) -> dict:  # noqa: ANN001 - a Dataset, streamed or not
    """The measured work: a teacher epoch, its evaluation, a KD student on one image per class."""
    import torch

    from ddlib.bps.distill import StudentConfig, build_model, train_student
    from ddlib.train import evaluate, fit

    start = time.perf_counter()
    teacher = build_model(ds, "convnet", width=8, depth=3)
    fit(teacher, ds.train_x, ds.train_y, cfg, progress=False)
    acc = evaluate(teacher, ds.test_x, ds.test_y, batch_size=64)
    trained = time.perf_counter()
    idx = torch.stack([torch.nonzero(ds.train_y == c).flatten()[0] for c in range(ds.num_classes)])
    scfg = StudentConfig(model="convnet", width=8, depth=3, epochs=2, last_epochs=1).resolved(ds.name, 10, 1)
    student = train_student(ds, idx, scfg, teacher.eval(), progress=False)
    return {"teacher_epoch_s": trained - start, "student_s": time.perf_counter() - trained, "teacher_acc": acc,
            "student_acc": student["best_acc"]}


def child(folder: Path, mode: str) -> dict:
    """The measured run, in this process (called in a fresh child): the same work on random images first, so
    that the peak memory growth afterwards is what the data costs, not the models' first allocations."""
    import torch
    from PIL import Image

    from ddlib import data
    from ddlib.train import TrainConfig

    torch.manual_seed(0)
    cfg = TrainConfig(epochs=1, batch_size=32, lr=0.01)
    side = Image.open(next((folder / "train" / "c0").iterdir())).size[0]
    n_test = sum(1 for _ in (folder / "test").rglob("*.jpg"))
    fake = data.Dataset("warm-up", torch.randint(0, 256, (64, 3, side, side), dtype=torch.uint8),
                        torch.arange(64) % 10, torch.randint(0, 256, (n_test, 3, side, side), dtype=torch.uint8),
                        torch.arange(n_test) % 10, [f"c{c}" for c in range(10)], source="random")
    _run(fake, cfg)  # first-time allocations: thread pools, kernels, allocator arenas
    base = _start_peak()
    _run(fake, cfg)  # what the work itself takes after a trim, on random images (no data set to speak of)
    work = _peak() - base
    base = _start_peak()
    start = time.perf_counter()
    ds = data.load(f"imagefolder:{folder}", stream=(mode == "stream"))
    loaded = time.perf_counter()
    row = _run(ds, cfg)
    n = len(ds.train_y)
    return {"mode": mode, "images": n, "image_size": side, "decoded_bytes": n * 3 * side * side,
            "peak_growth_bytes": _peak() - base, "work_bytes": work, "streamed": ds.streamed, "load_s": loaded - start, **row}


def measure(folder: Path, mode: str, cache: Path) -> dict:
    """Run :func:`child` in a fresh process (its own peak memory, its own empty artifact cache)."""
    env = {**os.environ, "DDLIB_CACHE": str(cache), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "PYTHONPATH": str(ROOT),
           # glibc: blocks above 128 KiB always mapped and unmapped when freed, so resident memory follows live memory
           "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(folder), "--mode", mode],
                         env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=4000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_stream_cpu.json"))
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--mode", choices=["stream", "memory"], default="stream", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(Path(a.child), a.mode)))
        return 0
    from ddlib import results

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(Path(tmp), a.images, a.size)
        rows = [measure(folder, mode, Path(tmp) / f"cache-{mode}") for mode in ("stream", "memory")]
    for r in rows:
        print(f"{r['mode']:>7}: peak growth {r['peak_growth_bytes'] / 2**20:7.1f} MiB (decoded images "
              f"{r['decoded_bytes'] / 2**20:.1f} MiB), load {r['load_s']:.2f} s, teacher epoch "
              f"{r['teacher_epoch_s']:.2f} s, student {r['student_s']:.2f} s")
    results.write(a.out, what="peak memory growth and time of a teacher epoch + KD student on an image folder, "
                              "streamed from disk vs held in memory", config={"images": a.images, "size": a.size,
                              "classes": 10, "teacher": "convnet width 8 depth 3, 1 epoch, batch 32",
                              "student": "convnet width 8, 1 image/class, 2 epochs"},
                  rows=rows, timings={"wall_s": time.perf_counter() - start})
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
