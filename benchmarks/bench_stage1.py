"""BPS Stage-1 epoch time: the encoder's training step, the queue partition refresh, and L_clu.

Usage: ``python benchmarks/bench_stage1.py [--device cpu|cuda] [--threads T] [--cases NAMES]
[--n-train N] [--out PATH]``.

For each case (backbone, image shape, batch), ``fit_encoder`` runs 2 epochs on ``n`` random
images with L_clu active from the first epoch; the second epoch's time gives the throughput of a
full step (two MoCo-v2 views, query forward + backward, key forward, InfoNCE over the queue of
65,536 keys, L_clu, enqueue). Two costs that only reach full size with a full queue are timed on
their own: the per-class kNN + Infomap refresh of 65,536 queued keys (10 classes, once per epoch),
and L_clu over 65,536 queued keys per step. The epoch time of a 50,000-image epoch (CIFAR-10) is
then ``50,000 / throughput + refresh + steps x extra L_clu cost``; every part is recorded.

Writes JSON with provenance, threads and load average to
``benchmarks/results/bench_stage1_<device>.json``. A speed record, not a test.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ddlib.bps.encoder import EncoderConfig, KeyQueue, build_encoder, clustering_loss, fit_encoder
from ddlib.bps.patterns import PatternConfig
from ddlib import results
from ddlib.utils import get_device

# name -> (backbone, channels, side, batch, images on CPU, images on GPU)
CASES = {
    "convnet-28x28x1": ("convnet", 1, 28, 256, 1024, 16384),
    "convnet-32x32x3": ("convnet", 3, 32, 256, 1024, 16384),
    "resnet18-32x32x3": ("resnet18", 3, 32, 256, 512, 16384),
}
EPOCH_IMAGES = 50_000
QUEUE = 65_536
CLASSES = 10


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def structured_keys(n: int, dim: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Queue-like keys: per class 12 pattern directions plus noise, unit norm; and their labels."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    centres = F.normalize(torch.randn(classes, 12, dim, generator=g), dim=-1)
    pat = torch.randint(0, 12, (n,), generator=g)
    return F.normalize(centres[y, pat] + 0.6 * F.normalize(torch.randn(n, dim, generator=g), dim=1), dim=1), y


def bench_case(name: str, device: torch.device, n_train: int | None) -> dict:
    backbone, c, side, batch, n_cpu, n_gpu = CASES[name]
    n = n_train or (n_gpu if device.type == "cuda" else n_cpu)
    cfg = EncoderConfig(backbone=backbone, epochs=2, batch_size=batch, clu_warmup_epochs=0, warmup_epochs=0)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, c, side, side), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % CLASSES
    model = build_encoder(cfg, CLASSES, c, side)
    hist = fit_encoder(model, x, y, cfg, device=device, progress=False)
    steps = n // batch
    ips = steps * batch / hist["epoch_seconds"][1]
    return {"case": name, "backbone": backbone, "image": [c, side, side], "batch": batch, "images": n,
            "epoch_seconds": [round(s, 2) for s in hist["epoch_seconds"]], "images_per_s": round(ips, 1),
            "feature_dim": model.feature_dim}


def bench_refresh(device: torch.device) -> float:
    keys, y = structured_keys(QUEUE, 128, CLASSES)
    q = KeyQueue(QUEUE, 128, device)
    q.enqueue(keys.to(device), y.to(device))
    t = time.perf_counter()
    q.refresh_patterns(PatternConfig())
    return time.perf_counter() - t


def bench_clu(device: torch.device, batch: int = 256, repeats: int = 3) -> dict:
    """Seconds per step of L_clu (forward + backward) with a full queue, and with a queue of ``batch*4``."""
    keys, y = structured_keys(QUEUE, 128, CLASSES)
    keys, y = keys.to(device), y.to(device)
    pattern = (torch.arange(QUEUE, device=device) // CLASSES) % 12 + 12 * y
    pattern_class = torch.arange(CLASSES * 12, device=device) // 12
    out = {}
    for size in (QUEUE, batch * 4):
        times = []
        for i in range(repeats + 1):
            qv = F.normalize(torch.randn(batch, 128, device=device), dim=1).requires_grad_()
            _sync(device)
            t = time.perf_counter()
            clustering_loss(qv, y[:batch], keys[:size], pattern[:size], pattern_class).backward()
            _sync(device)
            if i:
                times.append(time.perf_counter() - t)
        out[size] = min(times)
    return {"full_queue_s": out[QUEUE], "small_queue_s": out[batch * 4]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {list(CASES)}")
    ap.add_argument("--n-train", type=int, default=None, help="images per case (default: per device)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    start = time.perf_counter()
    refresh = bench_refresh(device)
    print(f"queue refresh (kNN + Infomap per class, {QUEUE} keys x 128, {CLASSES} classes): {refresh:.2f} s", flush=True)
    clu = bench_clu(device)
    print(f"L_clu fwd+bwd per step, batch 256: {clu['full_queue_s'] * 1e3:.1f} ms with {QUEUE} keys", flush=True)
    rows = []
    for name in args.cases.split(","):
        r = bench_case(name, device, args.n_train)
        steps = EPOCH_IMAGES // r["batch"]
        r["epoch_50k_estimate_s"] = round(EPOCH_IMAGES / r["images_per_s"] + refresh
                                          + steps * max(clu["full_queue_s"] - clu["small_queue_s"], 0.0), 1)
        rows.append(r)
        print(f"{name:18s} {r['images_per_s']:9.1f} images/s  -> 50k-image epoch ~{r['epoch_50k_estimate_s']:.0f} s "
              f"(measured on {r['images']} images)", flush=True)
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"bench_stage1_{device.type}.json"
    results.write(out, what=__doc__.splitlines()[0], config=vars(args), rows=rows,
                  timings={"wall_s": round(time.perf_counter() - start, 1)}, queue_refresh_s=round(refresh, 2),
                  clu_step_s={k: round(v, 4) for k, v in clu.items()})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
