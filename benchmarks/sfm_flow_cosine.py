"""Chapter 3's flow cosines, measured on fixed evaluation views: SFM, chunked SFM and LGM at ``presets.sfm``.

The chapter prints each run's last ``history["flow_cos"]``: for SFM (direct or chunked) one minus the loss of
its last step, i.e. the cosine of the flows of *one* augmented view per image, drawn for that step, before the
step's update; for LGM the cosine of the flows of the class means of its ``augs_per_batch`` (10) views per
image. The two are different estimators on different views. This script distils the chapter's three runs
(over ``--seeds``) and scores every final set on the same fixed views (:func:`ddlib.sfm.stats.view_flow_cosines`:
``--views`` views, view v drawn with seed v for every set), and writes one record.

    python benchmarks/sfm_flow_cosine.py --seeds 0,1,2 --views 64 --out results/sfm_flow_cosine_cpu.json
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import torch

from ddlib import data, metrics, presets, results
from ddlib.sfm import backbones, stats, synth

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="cpu", choices=["test", "cpu"])
    ap.add_argument("--seeds", default="0", help="comma-separated distillation seeds")
    ap.add_argument("--views", type=int, default=64, help="fixed evaluation views per image")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    t_start = time.perf_counter()
    p = presets.sfm(args.scale)
    ds = data.load(p.dataset, per_class=p.per_class, seed=p.seed)
    bb_kw = (dict(epochs=p.encoder_epochs, convnet_width=p.encoder_width, progress=False)
             if p.backbone == "inhouse" else {})
    bb = backbones.get_backbone(p.backbone, ds, **bb_kw)
    bb_name = backbones.backbone_key(bb)
    image_size, crop = synth.default_image_sizes(int(bb.image_size))
    st = stats.dataset_stats(bb, ds, bb_name)
    rows = []
    for seed in seeds:
        runs = {"SFM": p.synth, "SFM (chunked)": p.chunked, "LGM": p.lgm}
        for name, cfg in runs.items():
            cfg = dataclasses.replace(cfg, image_size=image_size, crop=crop, channels=int(ds.image_shape[0]),
                                      seed=seed)
            res = synth.distill_cached(bb, ds, cfg, bb_name, progress=False)
            hist = res["history"]["flow_cos"]
            ev = stats.view_flow_cosines(bb, res["images"], res["labels"], st["flows"], synth._aug_config(cfg),
                                         views=args.views, seed=0)
            tail = hist[-max(1, len(hist) // 10):]
            row = {"method": name, "seed": seed, "steps": cfg.steps, "augs_per_batch": cfg.resolved().augs,
                   "chunk_size": cfg.chunk_size, "history_last": hist[-1], "history_last_tenth_mean": statistics.fmean(tail),
                   "history_last_tenth_std": statistics.pstdev(tail),
                   **{k: ev[k] for k in ("per_view_mean", "per_view_std", "mean_view", "clean")},
                   **synth.run_times(res)}
            rows.append(row)
            print(f"seed {seed} {name:>14}: history last {row['history_last']:.3f} (last tenth "
                  f"{row['history_last_tenth_mean']:.3f} ± {row['history_last_tenth_std']:.3f}); fixed views: one view "
                  f"{row['per_view_mean']:.3f} ± {row['per_view_std']:.3f}, {args.views}-view mean "
                  f"{row['mean_view']:.3f}, clean {row['clean']:.3f}", flush=True)
    summary = []
    for name in ("SFM (chunked)", "LGM"):
        for metric in ("history_last", "per_view_mean", "mean_view", "clean"):
            a = [r[metric] for r in rows if r["method"] == name]
            b = [r[metric] for r in rows if r["method"] == "SFM"]
            if len(a) >= 2:
                d = metrics.paired_difference(a, b)
                summary.append({"method": name, "baseline": "SFM", "metric": metric, "n_seeds": d["n"],
                                "mean": statistics.fmean(a), "baseline_mean": statistics.fmean(b),
                                "diff_mean": d["diff_mean"], "ci95": list(d["ci"]), "excludes_zero": d["excludes_zero"]})
                print(f"{name} − SFM, {metric}: {d['diff_mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]")
    out = Path(args.out or ROOT / "results" / f"sfm_flow_cosine_{args.scale}.json")
    config = {"scale": args.scale, "preset": "sfm", "dataset": ds.spec, "backbone": p.backbone,
              "backbone_key": bb_name, "synth": p.synth, "lgm_augs_per_batch": p.lgm.resolved().augs,
              "chunk_size": p.chunk_size, "seeds": seeds, "eval_views": args.views, "eval_view_seed": 0,
              "image_size": image_size, "crop": crop}
    results.write(out, what="chapter 3's flow cosine (SFM, chunked SFM, LGM at presets.sfm) as the chapter prints it "
                            "(the last step's history) and on the same fixed augmented evaluation views",
                  command="python " + " ".join(["benchmarks/sfm_flow_cosine.py", *(argv if argv is not None else sys.argv[1:])]),
                  config=config, rows=rows, cosine_differences=summary, timings={"wall_s": round(time.perf_counter() - t_start, 1)})
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
