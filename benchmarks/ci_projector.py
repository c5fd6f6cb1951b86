"""Where Classifier Inheritance pays: CI − probe against C·IPC and the views, and how CI's projector is fit.

CI's projector P: d_eval → d_distill (1280 × 1280 for EfficientNet-Lite2 → Lite0) is a regression fit on
C·IPC·views pairs (φ_eval(view), φ_distill(view)) of the set's augmented views. This script scores sets of
random real images (``--seeds`` draws) at every ``IPCxVIEWS`` of ``--grid`` with the probe (a new head on
φ_eval, CE) and with CI under several projector fits (:data:`FITS`: the reference's Adam at the CPU
record's rates, a tenth of that rate, Adam with weight decay, Adam stopped early on held-out views, and the
closed-form ridge fit with λ chosen on held-out views, :func:`ddlib.sfm.heads.ridge_projector`), plus the
whole ridge path (every α of :data:`ddlib.sfm.heads.RIDGE_GRID`, fit on every view).

``--per-class`` subsamples the training images (the golden head then learns from fewer than every one: on
two CPU cores the whole of Fashion-MNIST costs the golden head's bank alone about 15 CPU-minutes at 64 px).

Settings are chosen on a validation split, never on the test set: ``--val-per-class`` training images of
each class are held out (:func:`ddlib.sfm.inherit.validation_split`); the golden head and the random draws
use the others. Every fit is scored on both the validation images and the test split; each row holds the test
accuracy (``mean``, ``per_seed``) and the validation accuracy (``val_mean``, ``val_per_seed``).
``differences`` holds CI − probe per fit and cell, paired over the draws (95 % intervals), on both splits.

The banks of views and every fit are features-only (cheap); the backbone passes are the golden head's
bank over the training images (cached) and the views of each set.

    python benchmarks/ci_projector.py --threads 1 --dataset cifar10:data/cifar10-jpeg.tar.xz \\
        --grid 1x10,2x10,5x10,10x10,1x40,10x40 --seeds 0,1,2,3,4 --out results/ci_projector_cifar10_cpu.json
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ddlib import data, metrics, results
from ddlib.sfm import heads, inherit
from ddlib.sfm.backbones import get_backbone

ROOT = Path(__file__).resolve().parents[1]
DISTILL, EVAL = "efficientnet-lite0", "efficientnet-lite2"
#: the CPU record's probe (sfm_vs_lgm_cifar10.py --size cpu) and golden head
PROBE = dict(epochs=300, lr=0.1, projector_lr=1.0, runs=1)
GOLDEN = dict(epochs=10, views=2)
#: the projector fits compared: name -> ProbeConfig fields over PROBE
FITS: dict[str, dict[str, Any]] = {
    "adam": {},                                              # the reference's fit at the CPU record's rates
    "adam-rate/10": dict(projector_lr=0.1),                  # a tenth of the rate
    "adam-wd0.01": dict(projector_weight_decay=0.01),        # Adam's L2 weight decay on the projector
    "adam-early-stop": dict(projector_holdout=0.2),          # 1/5 of each image's views held out, best epoch kept
    "ridge": dict(projector_fit="ridge", projector_holdout=0.2),  # closed form, λ chosen on 1/5 of the views
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="cifar10:data/cifar10-jpeg.tar.xz")
    ap.add_argument("--grid", default="1x10,2x10,5x10,10x10,20x10", help="comma-separated IPCxVIEWS cells")
    ap.add_argument("--seeds", default="0,1,2,3,4", help="random real draws (each also seeds its heads)")
    ap.add_argument("--image-size", type=int, default=64, help="px the backbones see")
    ap.add_argument("--per-class", type=int, default=None,
                    help="training images per class (None: every one); the golden head learns from them")
    ap.add_argument("--test-per-class", type=int, default=200)
    ap.add_argument("--val-per-class", type=int, default=100)
    ap.add_argument("--fits", default=",".join(FITS), help="which of FITS to run (comma-separated names)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    grid = [tuple(int(v) for v in cell.split("x")) for cell in args.grid.split(",") if cell.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    fits = [f.strip() for f in args.fits.split(",") if f.strip()]
    unknown = [f for f in fits if f not in FITS]
    if unknown:
        ap.error(f"--fits {unknown}: choose among {list(FITS)}")
    t_start = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f} s] {msg}", flush=True)

    full = data.load(args.dataset, per_class=args.per_class, test_per_class=args.test_per_class, seed=0)
    ds = inherit.validation_split(full, args.val_per_class, seed=0)
    phi_d = get_backbone(DISTILL, ds, image_size=args.image_size)
    phi_e = get_backbone(EVAL, ds, image_size=args.image_size)
    golden_cfg = inherit.GoldenConfig(**GOLDEN)
    golden = inherit.golden_head(phi_d, ds, golden_cfg)
    split_y = {"val": ds.test_y, "test": full.test_y}
    feats = {"val": inherit.dataset_features(phi_e, ds, "test"), "test": inherit.dataset_features(phi_e, full, "test")}
    golden_acc = {s: float((golden(inherit.dataset_features(phi_d, d, "test")).argmax(1) == split_y[s]).float().mean())
                  for s, d in (("val", ds), ("test", full))}
    say(f"{len(ds.train_y)} training, {len(ds.test_y)} validation, {len(full.test_y)} test images; golden head "
        f"{100 * golden_acc['val']:.1f} % (val), {100 * golden_acc['test']:.1f} % (test)")

    def acc(logits: torch.Tensor, split: str) -> float:
        return float((logits.argmax(1) == split_y[split]).float().mean())

    scores: dict[tuple[int, int, str], dict[str, dict[int, float]]] = {}
    extra: dict[tuple[int, int, str], list[float]] = {}
    for ipc, views in grid:
        for seed in seeds:
            real = inherit.random_real(ds, ipc, seed=seed)
            cfg = inherit.ProbeConfig(**PROBE, views=views, seed=seed)
            bank = heads._Views([phi_e, phi_d], real["images"], cfg, torch.device("cpu"))
            probe = inherit.train_probe(phi_e, real["images"], real["labels"], cfg, ds.num_classes, seed, views=bank)
            got = {"probe": {s: acc(probe(feats[s]), s) for s in split_y}}
            for name in fits:
                fcfg = dataclasses.replace(cfg, **FITS[name])
                proj = inherit.train_projector(phi_e, phi_d, real["images"], fcfg, seed, views=bank)
                got[f"ci {name}"] = {s: acc(inherit.ci_predict(golden, proj, feats[s]), s) for s in split_y}
                if hasattr(proj, "ridge_alpha"):
                    extra.setdefault((ipc, views, f"ci {name}"), []).append(proj.ridge_alpha)
                if hasattr(proj, "best_epoch"):
                    extra.setdefault((ipc, views, f"ci {name}"), []).append(proj.best_epoch)
            z, g = (b.reshape(-1, b.shape[-1]) for b in bank.bank)  # type: ignore[union-attr]
            for alpha, (w, b) in zip(heads.RIDGE_GRID, heads.fit_ridge(z, g, heads.RIDGE_GRID)[0]):
                got[f"ci ridge α={alpha:g} (all views)"] = {
                    s: acc(golden(feats[s] @ w.T + b), s) for s in split_y}
            for k, v in got.items():
                for s, a in v.items():
                    scores.setdefault((ipc, views, k), {}).setdefault(s, {})[seed] = a
            say(f"IPC {ipc} × {views} views, draw {seed}: " + ", ".join(
                f"{k} {100 * v['val']:.1f}/{100 * v['test']:.1f}" for k, v in got.items()
                if "α=" not in k))

    rows, differences = [], []
    for (ipc, views, protocol), by_split in scores.items():
        test, val = [by_split["test"][s] for s in seeds], [by_split["val"][s] for s in seeds]
        row = {"method": "random real", "dataset": results.dataset_label(full.name), "ipc": ipc, "views": views,
               "pairs": ds.num_classes * ipc * views, "protocol": f"{protocol} on {EVAL}", "mean": statistics.fmean(test),
               "std": statistics.pstdev(test), "per_seed": test, "seeds": seeds, "val_mean": statistics.fmean(val),
               "val_per_seed": val}
        if (ipc, views, protocol) in extra:
            row["chosen"] = extra[(ipc, views, protocol)]  # ridge: the α per draw; early stop: the epoch
        rows.append(row)
        if protocol != "probe" and len(seeds) >= 2:
            base = scores[(ipc, views, "probe")]
            for split in ("val", "test"):
                d = metrics.paired_stats([by_split[split][s] for s in seeds], [base[split][s] for s in seeds],
                                         protocol, "probe")
                differences.append({"ipc": ipc, "views": views, "pairs": row["pairs"], "fit": protocol, "split": split,
                                    **d})
    config = {"dataset": full.spec, "per_class": args.per_class, "validation_per_class": args.val_per_class, "distill_backbone": DISTILL,
              "eval_backbone": EVAL, "image_size": args.image_size, "grid": [list(c) for c in grid], "seeds": seeds,
              "probe": PROBE, "golden": golden_cfg, "fits": {f: FITS[f] for f in fits},
              "ridge_grid": list(heads.RIDGE_GRID), "set": "random real images (random_real, draw = seed)"}
    out = Path(args.out or ROOT / "results" / "ci_projector_cpu.json")
    command = "python " + " ".join(["benchmarks/ci_projector.py", *(argv if argv is not None else sys.argv[1:])])
    results.write(out, what="Classifier Inheritance against a new probe on EfficientNet-Lite2 (golden head on Lite0) "
                            "for random real sets of several IPCs and views, with several fits of CI's projector; "
                            "test and validation accuracy",
                  config=config, rows=rows, timings={"wall_s": round(time.perf_counter() - t_start, 1)},
                  command=command, differences=differences, golden_acc=golden_acc,
                  sizes={"train": len(ds.train_y), "val": len(ds.test_y), "test": len(full.test_y)})
    say(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
