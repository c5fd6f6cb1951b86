"""Throughput of the augmentation pipelines: images/s of the moco_v2 and sfm presets at batch 256.

Usage: ``python benchmarks/bench_augment.py [--device cpu|cuda] [--threads N] [--repeats 5] [--out PATH]``.
Prints a table and writes JSON (with provenance and wall time) to
``benchmarks/results/bench_augment_<device>.json``. Forward only, and forward + backward to the
images (the SFM/LGM use). A speed record, not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ddlib.kernels.augment import augment
from ddlib import results
from ddlib.utils import get_device

CASES = [  # (preset, image side): CIFAR size for both; SFM's working size (256 px cropped to 224)
    ("moco_v2", 32),
    ("sfm", 32),
    ("moco_v2", 224),
    ("sfm", 224),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(preset: str, side: int, batch: int, repeats: int, device: torch.device, backward: bool) -> float:
    """Best-of-``repeats`` images/s for one preset and size."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, side, side, device=device, requires_grad=backward)
    times = []
    for i in range(repeats + 1):  # the first call warms up
        _sync(device)
        t = time.perf_counter()
        y = augment(x, preset, g)
        if backward:
            y.sum().backward()
        _sync(device)
        if i:
            times.append(time.perf_counter() - t)
    return batch / min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    start = time.perf_counter()
    rows = []
    for preset, side in CASES:
        for backward in (False, True):
            ips = bench(preset, side, args.batch, args.repeats, device, backward)
            rows.append({"preset": preset, "side": side, "batch": args.batch, "backward": backward,
                         "images_per_s": round(ips, 1)})
            print(f"{preset:8s} {side:4d}px batch {args.batch} {'fwd+bwd' if backward else 'fwd    '} "
                  f"{ips:12,.0f} images/s", flush=True)
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"bench_augment_{device.type}.json"
    results.write(out, what=__doc__.splitlines()[0], config=vars(args), rows=rows,
                  timings={"wall_s": round(time.perf_counter() - start, 1)})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
