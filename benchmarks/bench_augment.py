"""Throughput of the augmentation presets: images/s now and before issue 12's rewrite, in one run.

Usage: ``python benchmarks/bench_augment.py [--device cpu|cuda] [--threads N] [--batch 256]
[--repeats 3] [--presets moco_v2,sfm,kd,crop_flip] [--sides 32,224] [--no-baseline] [--out PATH]``.

For every preset and image side, forward only and forward + backward to the images (the SFM/LGM
use), the best of ``repeats`` timed calls after one warm-up, for ``ddlib.kernels.augment.augment``
and for the same function as it was before the rewrite (loaded from git, ``_git_baseline.py``; one
timed call, it is slow at 224 px). Both get the same images and generator seed, so the record
also says whether their outputs are identical. Writes ``{what, provenance, config, rows, timings}``
JSON to ``benchmarks/results/bench_augment_<device>[_1thread].json``. A speed record, not a test.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

import _git_baseline
from ddlib.kernels.augment import augment
from ddlib import results
from ddlib.utils import get_device, json_safe, provenance


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(fn, preset: str, side: int, batch: int, repeats: int, device: torch.device, backward: bool) -> float:
    """Best-of-``repeats`` seconds for one batch (after one warm-up call)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, side, side, device=device, requires_grad=backward)
    times = []
    for i in range(repeats + 1):
        _sync(device)
        t = time.perf_counter()
        y = fn(x, preset, g)
        if backward:
            y.sum().backward()
        _sync(device)
        if i:
            times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--presets", default="moco_v2,sfm,kd,crop_flip")
    ap.add_argument("--sides", default="32,224")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--no-baseline", action="store_true", help="do not time the pre-issue-12 augment")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    load_before = list(os.getloadavg())
    start = time.perf_counter()
    old = None if args.no_baseline else _git_baseline.load("ddlib/kernels/augment.py")
    impls = {"now": (augment, args.repeats)}
    if old is not None:
        impls["before"] = (old.augment, 1)
    rows = []
    for side in (int(s) for s in args.sides.split(",")):
        for preset in args.presets.split(","):
            x = torch.rand(8, 3, side, side, generator=torch.Generator().manual_seed(1), device=device)
            same = None if old is None else torch.equal(augment(x, preset, torch.Generator().manual_seed(2)),
                                                        old.augment(x, preset, torch.Generator().manual_seed(2)))
            for backward in (False, True):
                for name, (fn, reps) in impls.items():
                    s = bench(fn, preset, side, args.batch, reps, device, backward)
                    rows.append({"preset": preset, "side": side, "batch": args.batch, "backward": backward,
                                 "implementation": name, "seconds": s, "images_per_s": args.batch / s,
                                 "same_images_as_before": same})
                    print(f"{preset:9s} {side:4d}px {'fwd+bwd' if backward else 'fwd    '} {name:6s} "
                          f"{args.batch / s:12,.0f} images/s   (same images as before: {same})", flush=True)
    prov = provenance(" ".join([Path(sys.executable).name, *sys.argv]))
    prov.update(threads=torch.get_num_threads(), cpu_count=os.cpu_count(), load_average_before=load_before,
                load_average=list(os.getloadavg()))
    record = {"what": "augmentation presets, images/s, now and before the issue-12 rewrite",
              "provenance": prov,
              "config": {"batch": args.batch, "repeats_now": args.repeats, "repeats_before": 1, "device": str(device),
                         "baseline": None if old is None else _git_baseline.describe("ddlib/kernels/augment.py")},
              "rows": rows,
              "timings": {"wall_s": time.perf_counter() - start}}
    suffix = "" if torch.get_num_threads() > 1 or device.type == "cuda" else "_1thread"
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"bench_augment_{device.type}{suffix}.json"
    prov_extra = {k: v for k, v in record.pop("provenance").items() if k not in ("command", "commit", "device", "date")}
    results.write(out, command=prov["command"], provenance_extra=prov_extra, **json_safe(record))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
