"""BPS Stage-1 throughput beside plain supervised training of the same backbone, the queue refresh, and L_clu.

Usage: ``python benchmarks/bench_stage1.py [--device cpu|cuda] [--threads T] [--cases NAMES]
[--n-train N] [--rounds R] [--accel NAMES] [--out PATH]``.

For each case (backbone, image shape, batch) on ``n`` random images, two trainings through the one
loop of :mod:`ddlib.train` alternate ``R`` times (the order swapped every round, so that a swing in
the machine's load falls on both):

- **supervised**: :func:`ddlib.train.fit` of the same encoder (backbone + class head) at the same
  batch: one view (``crop_flip``, the teachers' recipe), cross-entropy;
- **Stage 1**: :func:`ddlib.encoders.fit_moco` with BPS's clustering term: two MoCo-v2 views
  augmented on the fly, query forward + backward, momentum update and key forward, InfoNCE over the
  queue of 65,536 keys, L_clu over the snapshot of the ``n`` keys of the first epoch, enqueue.

Each runs 2 epochs; the second gives the throughput (the first pays one-off costs). The record gives
the best images/s of each and, as the ratio, the median over rounds of the ratio within a round. The partition
refresh at the start of Stage 1's second epoch is timed and left out (it is timed at full size on its
own), so the ratio Stage 1 / supervised compares the steps. Two costs that only reach full size with a
full queue are timed on their own: the per-class kNN + Infomap refresh of 65,536 queued keys (best of 2; 10
classes, once per epoch), and L_clu over 65,536 snapshot keys per step against its cost over the
``n`` keys of the measured epoch; ``stage1_full_queue_images_per_s`` adds that difference to every
step, and the epoch time of a 50,000-image epoch (CIFAR-10) is ``50,000 / that + refresh``.

``--accel`` (issue 12, for CUDA): every case is timed again with each :class:`ddlib.train.Accel` of the
loop (bf16 autocast, channels-last, ``torch.compile`` and their combinations; default on CUDA
:data:`CUDA_ACCEL`, on CPU plain only), in the same run as the plain loop; each such row gives its
images/s over the plain row's (``supervised_over_plain``, ``stage1_over_plain``) and the seconds of
every first epoch (``first_epoch_s``: what compilation costs, to weigh against the gain per epoch).

Writes JSON with provenance, threads and load average (before and after) to
``benchmarks/results/bench_stage1_<device>.json``. A speed record, not a test.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ddlib import encoders, results, train
from ddlib.bps.encoder import (PATTERN_CLUSTERING, EncoderConfig, build_encoder, clustering_loss_prepared,
                               clustering_snapshot, refresh_patterns)
from ddlib.encoders import KeyQueue
from ddlib.bps.patterns import PatternConfig
from ddlib.utils import get_device

# name -> (backbone, channels, side, batch, images on CPU, images on GPU)
CASES = {
    "convnet-28x28x1": ("convnet", 1, 28, 256, 1024, 16384),
    "convnet-32x32x3": ("convnet", 3, 32, 256, 1024, 16384),
    "resnet18-32x32x3": ("resnet18", 3, 32, 256, 512, 16384),
}
EPOCH_IMAGES = 50_000
#: the loop's speed options timed on CUDA by default (ddlib.train.Accel names), against plain in the same run
CUDA_ACCEL = ("plain", "amp", "channels_last", "amp+channels_last", "compile", "amp+channels_last+compile")
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


#: the supervised baseline's augmentation (one view): the CIFAR teachers' crop + flip
SUPERVISED_AUGMENT = "crop_flip"


class _EpochTimer(train.Hook):
    """Seconds of every epoch of the loop, from its start to its end."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def epoch_start(self, state: train.LoopState) -> None:
        self.t0 = time.perf_counter()

    def epoch_end(self, state: train.LoopState) -> None:
        self.seconds.append(time.perf_counter() - self.t0)


class _TimedRefresh:
    """BPS's clustering term with each partition refresh timed (``seconds``, in call order)."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def refresh(self, queue, cfg):  # noqa: ANN001, ANN201
        t = time.perf_counter()
        found = PATTERN_CLUSTERING.refresh(queue, cfg)
        self.seconds.append(time.perf_counter() - t)
        return found

    def loss(self, q, y, queue, assign="all"):  # noqa: ANN001, ANN201
        return PATTERN_CLUSTERING.loss(q, y, queue, assign)


def supervised_seconds(cfg: EncoderConfig, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                       accel: train.Accel | None = None) -> tuple[float, float]:
    """Seconds of the second and of the first epoch of plain supervised training (one view, CE) of the encoder
    (the first holds what ``torch.compile`` costs)."""
    model = build_encoder(cfg, CLASSES, x.shape[1], x.shape[-1])
    timer = _EpochTimer()
    tcfg = train.TrainConfig(epochs=2, batch_size=cfg.batch_size, lr=cfg.lr, momentum=cfg.sgd_momentum,
                             weight_decay=cfg.weight_decay, augment=SUPERVISED_AUGMENT)
    train.fit(model, x, y, tcfg, device=device, seed=cfg.seed, progress=False, hooks=[timer], accel=accel)
    return timer.seconds[1], timer.seconds[0]


def stage1_seconds(cfg: EncoderConfig, x: torch.Tensor, y: torch.Tensor, device: torch.device,
                   accel: train.Accel | None = None) -> tuple[float, float, float]:
    """(seconds of Stage 1's second epoch without its partition refresh, that refresh's seconds, the first
    epoch's seconds)."""
    model = build_encoder(cfg, CLASSES, x.shape[1], x.shape[-1])
    term = _TimedRefresh()
    hist = encoders.fit_moco(model, x, y, cfg, device=device, progress=False, clustering=term, accel=accel)
    refresh = sum(term.seconds[len(term.seconds) - hist["refreshes"][1]:]) if hist["refreshes"][1] else 0.0
    return hist["epoch_seconds"][1] - refresh, refresh, hist["epoch_seconds"][0]


def bench_case(name: str, device: torch.device, n_train: int | None, rounds: int,
               accel: train.Accel | None = None) -> tuple[dict, list, list]:
    """The case's row under ``accel`` (None: the plain loop), and the supervised and Stage-1 images/s of
    every round."""
    backbone, c, side, batch, n_cpu, n_gpu = CASES[name]
    n = n_train or (n_gpu if device.type == "cuda" else n_cpu)
    n -= n % batch  # whole batches: both trainings take the same steps
    cfg = EncoderConfig(backbone=backbone, epochs=2, batch_size=batch, clu_warmup_epochs=0, warmup_epochs=0)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, c, side, side), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % CLASSES
    sup, s1, refresh, first = [], [], [], {"supervised": [], "stage1": []}
    for r in range(rounds):
        for kind in (("sup", "s1") if r % 2 == 0 else ("s1", "sup")):
            if kind == "sup":
                sec, sec0 = supervised_seconds(cfg, x, y, device, accel)
                sup.append(n / sec)
                first["supervised"].append(round(sec0, 3))
            else:
                sec, ref, sec0 = stage1_seconds(cfg, x, y, device, accel)
                s1.append(n / sec)
                refresh.append(ref)
                first["stage1"].append(round(sec0, 3))
    return {"case": name, "accel": str(accel or train.Accel()), "first_epoch_s": first, "backbone": backbone, "image": [c, side, side], "batch": batch, "images": n,
            "feature_dim": build_encoder(cfg, CLASSES, c, side).feature_dim, "snapshot_keys": n,
            "supervised_augment": SUPERVISED_AUGMENT, "stage1_augment": cfg.augment,
            "supervised_images_per_s": round(max(sup), 1), "stage1_images_per_s": round(max(s1), 1),
            "stage1_over_supervised": round(statistics.median(a / b for a, b in zip(s1, sup)), 3),
            "rounds": {"supervised_images_per_s": [round(v, 1) for v in sup],
                       "stage1_images_per_s": [round(v, 1) for v in s1],
                       "stage1_over_supervised": [round(a / b, 3) for a, b in zip(s1, sup)],
                       "stage1_refresh_s": [round(v, 2) for v in refresh]}}, sup, s1


def bench_refresh(device: torch.device, repeats: int = 2) -> list[float]:
    """Seconds of each of ``repeats`` refreshes of a full queue (the record keeps the best, as
    bench_knn_infomap.py does, and lists all)."""
    keys, y = structured_keys(QUEUE, 128, CLASSES)
    q = KeyQueue(QUEUE, 128, device)
    q.enqueue(keys.to(device), y.to(device))
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        refresh_patterns(q, PatternConfig())
        out.append(time.perf_counter() - t)
    return out


def bench_clu(device: torch.device, sizes: list[int], batch: int = 256, repeats: int = 3) -> dict[int, float]:
    """Seconds per step of L_clu (forward + backward) against a prepared snapshot of each size of keys
    (the snapshot is prepared once per partition in training, so its preparation is not timed)."""
    keys, y = structured_keys(QUEUE, 128, CLASSES)
    keys, y = keys.to(device), y.to(device)
    pattern = (torch.arange(QUEUE, device=device) // CLASSES) % 12 + 12 * y
    pattern_class = torch.arange(CLASSES * 12, device=device) // 12
    out = {}
    for size in sizes:
        snap = clustering_snapshot(keys[:size], pattern[:size], pattern_class)
        times = []
        for i in range(repeats + 1):
            qv = F.normalize(torch.randn(batch, 128, device=device), dim=1).requires_grad_()
            _sync(device)
            t = time.perf_counter()
            clustering_loss_prepared(qv, y[:batch], snap).backward()
            _sync(device)
            if i:
                times.append(time.perf_counter() - t)
        out[size] = min(times)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {list(CASES)}")
    ap.add_argument("--n-train", type=int, default=None, help="images per case (default: per device)")
    ap.add_argument("--rounds", type=int, default=2, help="supervised / Stage-1 alternations per case")
    ap.add_argument("--accel", default=None,
                    help="comma-separated ddlib.train.Accel names timed per case, plain first (default: plain on "
                         f"CPU; {','.join(CUDA_ACCEL)} on CUDA)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    names = (args.accel or ("plain" if device.type == "cpu" else ",".join(CUDA_ACCEL))).split(",")
    accels = [train.Accel.parse(a) for a in names]  # bad names fail here, before any timing
    if not accels[0].plain:
        accels.insert(0, train.Accel())  # the baseline, in the same run
    load_before = list(os.getloadavg())
    start = time.perf_counter()
    refreshes = bench_refresh(device)
    refresh = min(refreshes)
    print(f"queue refresh (kNN + Infomap per class, {QUEUE} keys x 128, {CLASSES} classes): {refresh:.2f} s "
          f"(best of {[round(v, 2) for v in refreshes]})", flush=True)
    rows = []
    for name, accel in [(c, a) for c in args.cases.split(",") for a in accels]:
        r, sup, s1 = bench_case(name, device, args.n_train, args.rounds, accel)
        plain = next((p for p in rows if p["case"] == name and p["accel"] == "plain"), None)
        if plain is not None and r["accel"] != "plain":  # the speed-up over the plain loop, same run
            r["supervised_over_plain"] = round(r["supervised_images_per_s"] / plain["supervised_images_per_s"], 3)
            r["stage1_over_plain"] = round(r["stage1_images_per_s"] / plain["stage1_images_per_s"], 3)
        clu = bench_clu(device, [QUEUE, r["snapshot_keys"]], batch=r["batch"])
        extra = max(clu[QUEUE] - clu[r["snapshot_keys"]], 0.0)
        full = [r["batch"] / (r["batch"] / v + extra) for v in s1]
        r["rounds"]["stage1_full_queue_over_supervised"] = [round(a / b, 3) for a, b in zip(full, sup)]
        r.update({"clu_step_s": {"full_queue_s": round(clu[QUEUE], 4), "snapshot_keys_s": round(clu[r["snapshot_keys"]], 4)},
                  "stage1_full_queue_images_per_s": round(max(full), 1),
                  "stage1_full_queue_over_supervised": round(statistics.median(a / b for a, b in zip(full, sup)), 3),
                  "epoch_50k_estimate_s": round(EPOCH_IMAGES / max(full) + refresh, 1)})
        rows.append(r)
        print(f"{name:18s} [{r['accel']}] best images/s (median ratio of rounds): supervised {r['supervised_images_per_s']:8.1f} images/s, Stage 1 "
              f"{r['stage1_images_per_s']:8.1f} (x{r['stage1_over_supervised']:.2f}); with L_clu over {QUEUE} keys "
              f"{r['stage1_full_queue_images_per_s']:8.1f} (x{r['stage1_full_queue_over_supervised']:.2f}) -> 50k-image epoch "
              f"~{r['epoch_50k_estimate_s']:.0f} s (measured on {r['images']} images)", flush=True)
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"bench_stage1_{device.type}.json"
    results.write(out, what=__doc__.splitlines()[0], config=vars(args), rows=rows,
                  timings={"wall_s": round(time.perf_counter() - start, 1)},
                  provenance_extra={"load_average_before": load_before}, queue_refresh_s=round(refresh, 2),
                  queue_refresh_runs_s=[round(v, 2) for v in refreshes])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
