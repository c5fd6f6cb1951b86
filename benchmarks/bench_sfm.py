"""SFM (direct and two-pass chunked) vs LGM: time per step, time to a finished distillation, peak memory.

Usage::

    python benchmarks/bench_sfm.py --device cuda --full      # the GPU run (ViT-B/16 and EfficientNet-Lite0)
    python benchmarks/bench_sfm.py --threads 1               # CPU: reduced sizes, marked CPU
    python benchmarks/bench_sfm.py --device cuda --full --profile   # + a torch.profiler table of SFM steps
    python benchmarks/bench_sfm.py --full --tiny --out /tmp/b.json  # the --full code path in seconds (a check)

Every case runs ``ddlib.sfm.synth.distill`` itself on a synthetic stand-in for the data (random
uint8 images, the backbone's resolution), so the figures are those of the library's code path:

- the pyramid is grown to full resolution during warm-up (``grow_every=1``), then ``--steps``
  steps are timed one by one (each ends with a ``loss.item()``, i.e. a device sync); the median
  is reported;
- peak memory: ``torch.cuda.max_memory_allocated`` above the level at the start of the loop on
  CUDA (the backbone and statistics are already resident); on the CPU the sampled peak RSS
  increase (``ddlib.sfm.synth.PeakMemory``);
- "time to a finished distillation" = 5,000 × the median step (+ for SFM the one statistics
  pass over the training set, projected from the measured forward throughput for
  ``--train-per-class`` images per class; ImageNet has ~1,300).

Cases (``--full``): ViT-B/16 (``timm:vit_base_patch16_224``, random weights: cost only) and
EfficientNet-Lite0 at (C, IPC) = (10, 1), (10, 10), (100, 1) with SFM (SFM-1, the paper's), chunked SFM
and LGM (``augs_per_batch`` = 10), then SFM alone (direct and chunked) at (100, 10), (1000, 1), (1000, 10).
``ratios`` gives LGM / SFM time and memory per case and their ratio to the paper's claim (SFM 4× faster,
10× less GPU memory: ``paper_time_ratio`` 4, ``paper_memory_ratio`` 10). Accuracy is not measured here:
``benchmarks/sfm_vs_lgm_cifar10.py --size gpu --device cuda`` distils and scores SFM and LGM on Lite0.
``sampler_ms`` times LGM's class-balanced real-batch draw (:class:`ddlib.sfm.synth.BalancedSampler`) at
ImageNet-100 and ImageNet-1k sizes.
Images 256 px cropped to 224 (the reference), a 1x1 .. 256 pyramid. Without ``--full`` (the CPU
record): EfficientNet-Lite0 at (10, 1) with 32 px images fed to it at 32 px and a two-level
pyramid (16, 32), 5 timed steps: a shared 2-core CPU cannot do more in minutes.
Out-of-memory cases are recorded as such. The record is rewritten after every case with
``"complete": false`` until the last, so a run stopped at a device window's time limit keeps the cases it
finished. A record, not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from ddlib import models
from ddlib.sfm import stats, synth
from ddlib import results
from ddlib.utils import get_device

BACKBONES = {"vit-b16": "timm:vit_base_patch16_224", "efficientnet-lite0": "efficientnet-lite0"}
COMPARE = [(10, 1), (10, 10), (100, 1)]
SFM_ONLY = [(100, 10), (1000, 1), (1000, 10)]


def fake_dataset(num_classes: int, per_class: int, size: int, seed: int = 0) -> SimpleNamespace:
    """Random uint8 images standing in for a training set (cost only): what distill() reads of a Dataset."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (num_classes * per_class, 3, size, size), dtype=torch.uint8, generator=g)
    y = torch.arange(num_classes).repeat_interleave(per_class)
    return SimpleNamespace(train_x=x, train_y=y, num_classes=num_classes, key=lambda: f"fake-{num_classes}-{size}")


def load_backbone(name: str, size: int | None) -> torch.nn.Module:
    if name.startswith("timm:"):
        return models.backbone(name, pretrained=False, image_size=size)
    return models.backbone(name, image_size=size)


def forward_throughput(bb: torch.nn.Module, size: int, device: torch.device, batch: int = 64, repeats: int = 3) -> float:
    """Images/s of the no-grad statistics pass (autocast on CUDA), best of ``repeats``."""
    x = torch.rand(batch, 3, size, size, device=device)
    best = float("inf")
    for i in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        with torch.no_grad(), stats.autocast_context(device):
            bb(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:
            best = min(best, time.perf_counter() - t)
    return batch / best


def run_case(bb: torch.nn.Module, bb_name: str, method: str, c: int, ipc: int, chunk: int | None, args: argparse.Namespace,
             device: torch.device) -> dict:
    warmup = len(synth.pyramid_resolutions(args.image_size, args.start_res)) + 1
    cfg = synth.SynthConfig(method=method, ipc=ipc, steps=warmup + args.steps, image_size=args.image_size,
                            crop=args.crop, grow_every=1, chunk_size=chunk,
                            augs_per_batch=args.augs if method == "lgm" else None,  # SFM-1, the paper's SFM
                            start_res=args.start_res, seed=0)
    d = int(bb.feature_dim)
    row = {"backbone": bb_name, "method": method + (" (chunked)" if chunk else ""), "C": c, "IPC": ipc,
           "images": c * ipc, "chunk_size": chunk, "augs_per_batch": args.augs if method == "lgm" else None,
           "image_size": args.image_size, "crop": args.crop, "backbone_px": int(bb.image_size)}
    try:
        if method == "sfm":  # statistics given: the loop never reads real images
            g = torch.Generator().manual_seed(1)
            mu = torch.randn(c, d, generator=g)
            src = {"centres": mu, "flows": stats.flows(mu)}
        else:
            src = fake_dataset(c, max(ipc * args.augs, 2), args.image_size)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        res = synth.distill(bb, src, cfg, device=device, progress=False)
        times = res["history"]["step_time"][warmup:]
        step = statistics.median(times)
        row.update(status="ok", step_s=step, step_s_min=min(times), peak_mem_bytes=res["peak_mem"],
                   peak_mem_kind=res["peak_mem_kind"], levels=res["levels"], timed_steps=len(times),
                   distill_5000_s=5000 * step)
    except torch.cuda.OutOfMemoryError as e:  # pragma: no cover - GPU only
        row.update(status="oom", error=str(e).splitlines()[0])
        torch.cuda.empty_cache()
    except RuntimeError as e:
        if "out of memory" not in str(e).lower():
            raise
        row.update(status="oom", error=str(e).splitlines()[0])
    return row


def profile_sfm(bb: torch.nn.Module, c: int, ipc: int, args: argparse.Namespace, device: torch.device) -> str:
    """A torch.profiler table (top 30 by device time) of 5 SFM steps at full pyramid: where a step's time goes."""
    from torch.profiler import ProfilerActivity, profile

    g = torch.Generator().manual_seed(1)
    mu = torch.randn(c, int(bb.feature_dim), generator=g)
    src = {"centres": mu, "flows": stats.flows(mu)}
    warm = len(synth.pyramid_resolutions(args.image_size)) + 1
    cfg = synth.SynthConfig(method="sfm", ipc=ipc, steps=warm, image_size=args.image_size, crop=args.crop,
                            grow_every=1)
    synth.distill(bb, src, cfg, device=device, progress=False)  # warm caches / cudnn autotune
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    cfg = synth.SynthConfig(method="sfm", ipc=ipc, steps=warm + 5, image_size=args.image_size, crop=args.crop,
                            grow_every=1)
    with profile(activities=acts) as prof:
        synth.distill(bb, src, cfg, device=device, progress=False)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=30)


#: the paper's claim for SFM against LGM: 4× less time, 10× less GPU memory
PAPER = {"time": 4.0, "memory": 10.0}


def sampler_ms(sizes: tuple[tuple[int, int], ...] = ((100, 128_000), (1000, 1_281_167)), draws: int = 50,
               per_class: int = 10) -> dict[str, float]:
    """Milliseconds per class-balanced draw of ``per_class`` indices per class among N labels (C, N)."""
    out = {}
    for c, n in sizes:
        y = torch.randint(c, (n,), generator=torch.Generator().manual_seed(0))
        s = synth.BalancedSampler(y, c, per_class, torch.Generator().manual_seed(1))
        s.draw()
        t = time.perf_counter()
        for _ in range(draws):
            s.draw()
        out[f"C={c}, N={n}"] = 1000 * (time.perf_counter() - t) / draws
    return out


def ratios(rows: list[dict]) -> list[dict]:
    """LGM / SFM time and memory per (backbone, C, IPC) with their ratio to the paper's claim (:data:`PAPER`;
    1 = as claimed), and direct / chunked SFM memory."""
    ok = {(r["backbone"], r["C"], r["IPC"], r["method"]): r for r in rows if r.get("status") == "ok"}
    out = []
    for (bb, c, ipc, m), r in ok.items():
        if m != "sfm":
            continue
        entry = {"backbone": bb, "C": c, "IPC": ipc}
        lgm, chunk = ok.get((bb, c, ipc, "lgm")), ok.get((bb, c, ipc, "sfm (chunked)"))
        if lgm:
            entry["lgm_over_sfm_time"] = lgm["step_s"] / r["step_s"]
            entry["lgm_over_sfm_memory"] = lgm["peak_mem_bytes"] / max(r["peak_mem_bytes"], 1)
            entry["time_ratio_over_paper"] = entry["lgm_over_sfm_time"] / PAPER["time"]
            entry["memory_ratio_over_paper"] = entry["lgm_over_sfm_memory"] / PAPER["memory"]
        if chunk:
            entry["sfm_direct_over_chunked_memory"] = r["peak_mem_bytes"] / max(chunk["peak_mem_bytes"], 1)
            entry["sfm_chunked_over_direct_time"] = chunk["step_s"] / r["step_s"]
        out.append(entry)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--full", action="store_true", help="the full GPU grid (ViT-B/16 and EfficientNet-Lite0)")
    ap.add_argument("--tiny", action="store_true",
                    help="with --full: the same code path at a size a CPU runs in seconds (a check, not a record)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per case (default 20 full, 3 reduced)")
    ap.add_argument("--chunk-size", type=int, default=None, help="SFM chunk (default 100 full, 5 reduced)")
    ap.add_argument("--augs", type=int, default=10, help="LGM augs_per_batch (reference 10)")
    ap.add_argument("--train-per-class", type=int, default=1300, help="for the projected statistics pass")
    ap.add_argument("--backbones", default=None, help="comma-separated keys of " + ",".join(BACKBONES))
    ap.add_argument("--profile", action="store_true", help="also profile SFM steps on ViT-B/16 at (10, 10)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (on a shared CPU, 1 avoids OpenMP spin-waiting; default torch's)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = get_device(args.device)
    args.steps = args.steps or (20 if args.full else 5)
    chunk = args.chunk_size or (100 if args.full else 5)
    px: dict[str, int | None] = {}
    if args.full and args.tiny:  # every backbone and both loops, tiny grids; ViT-B/16 keeps its 224 px
        args.image_size, args.crop, bb_px, args.start_res = 32, 32, None, 16
        px = {"efficientnet-lite0": 32}
        args.steps, args.augs = min(args.steps, 2), min(args.augs, 2)
        names = list(BACKBONES) if args.backbones is None else args.backbones.split(",")
        compare, sfm_only = [(2, 1)], [(3, 1)]
        chunk = 1
    elif args.full:
        args.image_size, args.crop, bb_px, args.start_res = 256, 224, None, 1
        names = list(BACKBONES) if args.backbones is None else args.backbones.split(",")
        compare, sfm_only = COMPARE, SFM_ONLY
    else:
        args.image_size, args.crop, bb_px, args.start_res = 32, 32, 32, 16
        names = ["efficientnet-lite0"] if args.backbones is None else args.backbones.split(",")
        compare, sfm_only = [(10, 1)], []
    start = time.perf_counter()
    rows, profiles, throughput = [], {}, {}
    sampler: dict[str, Any] = {}
    out = Path(args.out) if args.out else (Path(__file__).parent / "results" /
                                           f"bench_sfm_{device.type}{'_full' if args.full else ''}"
                                           f"{'_tiny' if args.tiny else ''}.json")

    def write(complete: bool) -> dict[str, Any]:
        """The record so far: rewritten after every case, so a run stopped at its time limit keeps them."""
        return results.write(
            out, what=__doc__.splitlines()[0],
            config={"scale": ("full (tiny check)" if args.tiny else "full") if args.full else "reduced (CPU)",
                    "device_type": device.type, "paper_claim": PAPER,
                    "timed_steps": args.steps, "chunk_size": chunk, "augs_per_batch": args.augs,
                    "image_size": args.image_size, "crop": args.crop, "start_res": args.start_res,
                    "backbone_px": bb_px, "train_per_class": args.train_per_class,
                    "threads": torch.get_num_threads()},
            rows=rows, timings={"wall_s": time.perf_counter() - start}, ratios=ratios(rows),
            forward_images_per_s=throughput, profiles=profiles, sampler_ms=sampler, complete=complete)

    def case(row: dict[str, Any]) -> None:
        if row.get("status") == "ok" and row["method"].startswith("sfm"):  # + the projected statistics pass
            row["stats_pass_s"] = row["C"] * args.train_per_class / throughput[row["backbone"]]
            row["distill_5000_plus_stats_s"] = row["distill_5000_s"] + row["stats_pass_s"]
        rows.append(row)
        print(json.dumps(row), flush=True)
        write(complete=False)

    for key in names:
        bb = load_backbone(BACKBONES[key], px.get(key, bb_px)).to(device)
        throughput[key] = forward_throughput(bb, args.crop, device)
        for c, ipc in compare:
            for method, ch in (("sfm", None), ("sfm", chunk), ("lgm", None)):
                if ch is not None and ch >= c * ipc:
                    ch = max(1, (c * ipc) // 2)
                case(run_case(bb, key, method, c, ipc, ch, args, device))
        if args.profile and key == "vit-b16":
            profiles[key] = profile_sfm(bb, *((2, 1) if args.tiny else (10, 10)), args, device)
            print(profiles[key])
        for c, ipc in sfm_only:
            for ch in (None, chunk):
                case(run_case(bb, key, "sfm", c, ipc, ch, args, device))
        del bb
        if device.type == "cuda":
            torch.cuda.empty_cache()
    sampler.update(sampler_ms(((100, 128_000),) if args.tiny else ((100, 128_000), (1000, 1_281_167))))
    record = write(complete=True)
    print("\n" + "backbone            C  IPC  method            ms/step   peak MiB")
    for r in rows:
        if r.get("status") == "ok":
            print(f"{r['backbone']:<18}{r['C']:>4}{r['IPC']:>4}  {r['method']:<16}{1000 * r['step_s']:>9.1f}"
                  f"{r['peak_mem_bytes'] / 2**20:>11.1f}")
        else:
            print(f"{r['backbone']:<18}{r['C']:>4}{r['IPC']:>4}  {r['method']:<16}      OOM")
    for q in record["ratios"]:
        print(q)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
