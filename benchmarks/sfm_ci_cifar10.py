"""Accuracy of SFM (and LGM) synthetic sets vs real-image baselines on CIFAR-10, linear probe and CI.

EfficientNet-Lite0 (ImageNet weights) is the distillation backbone. For each IPC: SFM images
(``ddlib.sfm.synth``), LGM images (when ``--lgm``), the real images nearest the class centres in φ and
random real images, each evaluated with the linear probe on EfficientNet-Lite0, and with probe, CI
and KD on a second backbone (EfficientNet-Lite2 by default; ``--other inhouse`` for the MoCo v2 encoder
trained on the same images). Writes one JSON under ``results/`` with every accuracy, the stage wall
times and the provenance. A synthetic set loaded from the cache is recorded with ``cached: true``, this
run's time (about 0) as ``wall_s`` and the run that made it as ``original_wall_s``
(:func:`ddlib.sfm.synth.run_times`); a golden head loaded from the cache is named in
``timings.stages_cached`` with its training time in ``timings.original_stage_seconds``. SFM against LGM at equal, larger step budgets is
``benchmarks/sfm_vs_lgm_cifar10.py``.

    # the CPU run recorded in results/ (about 10-15 minutes on 2 shared cores)
    python benchmarks/sfm_ci_cifar10.py --scale cpu
    # the full runs, on a GPU (H100/H200)
    python benchmarks/sfm_ci_cifar10.py --scale gpu --lgm

CPU departures from the reference (all recorded in the JSON): a subsample of the training and test sets,
EfficientNet-Lite0 (and Lite2) at 112 px instead of 224 (260), 100 SFM steps at lr 0.01 (pyramid grown every
12 steps) instead of 5,000 at 2e-3 (every 200), the golden head from a bank of 2 augmented views of the
training images for 100 epochs, the probe's augmentations drawn from a bank of 10 views per image
(``ProbeConfig.views``) instead of fresh at every step, and heads/projectors trained 300 epochs at base lr
0.1, the projector at 1.0 (3 runs) instead of 1,000 at 1e-3 and 1e-2 (5 runs): at IPC 1 the reference's
lr·B/256 = 3.9e-5 leaves both the probe and the projector far from converged in a CPU budget (measured on
Fashion-MNIST with the in-house encoder: probe 17.6 % -> 49.7 %, CI 20.4 % -> 72.2 % at 300 epochs).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from ddlib import data, presets, results
from ddlib.sfm import inherit, synth
from ddlib.sfm.backbones import INHOUSE_DEFAULTS, backbone_key, get_backbone
from ddlib.utils import get_device

ROOT = Path(__file__).resolve().parents[1]
CIFAR = "cifar10:" + str(ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.xz")

#: per scale: this benchmark's budget over ``ddlib.presets.ci(scale)`` (flat preset names), and its IPCs;
#: the in-house encoder keeps its own default width (the chapters' is narrower)
BUDGET = {
    "cpu": dict(test_per_class=50, image_size=112, steps=100, lr=0.01, grow_every=12, runs=3, encoder_epochs=20,
                encoder_width=INHOUSE_DEFAULTS["convnet_width"]),
    "gpu": dict(encoder_epochs=30),
    "test": dict(image_size=32, steps=2, grow_every=1),  # seconds: tests/test_sfm_vs_lgm.py
}
IPCS = {"cpu": [1], "gpu": [1, 10], "test": [1]}


GOLDEN = "golden head (EfficientNet-Lite0 features of the train/test sets)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=sorted(BUDGET), default="cpu")
    ap.add_argument("--dataset", default=CIFAR)
    ap.add_argument("--other", default="efficientnet-lite2", help="the second (CI target) backbone")
    ap.add_argument("--lgm", action="store_true", help="also distil with LGM (augs_per_batch 10)")
    ap.add_argument("--steps", type=int, default=None, help="distillation steps (default: the scale's)")
    ap.add_argument("--grow-every", type=int, default=None, help="pyramid growth period (default: the scale's)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    budget = {**BUDGET[args.scale], "dataset": args.dataset, "distill_backbone": "efficientnet-lite0",
              **{k: v for k, v in (("steps", args.steps), ("grow_every", args.grow_every)) if v is not None}}
    p = presets.ci(args.scale, **budget)
    device = get_device()
    t_start = time.perf_counter()
    times: dict[str, float] = {}
    loaded: dict[str, float | None] = {}  # stages loaded from the cache -> the original run's seconds

    def tick(name: str, t0: float) -> None:
        times[name] = round(time.perf_counter() - t0, 2)
        print(f"[{time.perf_counter() - t_start:7.1f} s] {name}: {times[name]:.1f} s", flush=True)

    t0 = time.perf_counter()
    ds = data.load(p.dataset, per_class=p.per_class, test_per_class=p.test_per_class, seed=p.data_seed)
    tick("load data", t0)
    t0 = time.perf_counter()
    eff = get_backbone(p.distill_backbone, ds, image_size=p.image_size)
    other = get_backbone(args.other, ds, **({"epochs": p.encoder_epochs, "convnet_width": p.encoder_width,
                                             "progress": False} if args.other == "inhouse"
                                            else {"image_size": p.image_size} if args.other != "convnet-random"
                                            else {}))
    tick(f"backbones (incl. training {args.other})", t0)
    image_size, crop = synth.default_image_sizes(int(eff.image_size))
    probe_cfg, golden_cfg = p.probe, p.golden

    t0 = time.perf_counter()
    golden = inherit.golden_head(eff, ds, golden_cfg, device)
    test_eff = inherit.dataset_features(eff, ds, "test", device=device)
    golden_acc = float((golden(test_eff).argmax(1) == ds.test_y).float().mean())
    tick(GOLDEN, t0)
    if golden.cached:  # loaded: this call's time above, the training's own (when stored) beside it
        loaded[GOLDEN] = golden.train_seconds

    rows = []
    synth_runs = {}
    for ipc in IPCS[args.scale]:
        sets = {}
        for method in ["sfm", "lgm"] if args.lgm else ["sfm"]:
            base = p.lgm if method == "lgm" else p.synth
            cfg = dataclasses.replace(base, ipc=ipc, image_size=image_size, crop=crop, channels=int(ds.image_shape[0]))
            t0 = time.perf_counter()
            res = synth.distill_cached(eff, ds, cfg, backbone_key(eff), device=device, progress=False)
            tick(f"{method} ipc {ipc}", t0)
            sets[method] = res
            # a loaded set: this call's time (about 0) as wall_s, the run that made it as original_wall_s
            synth_runs[f"{method}-ipc{ipc}"] = {
                "config": res["config"], **synth.run_times(res, time.perf_counter() - t0),
                "stats_time": res.get("stats_time"), "peak_mem": res["peak_mem"],
                "peak_mem_kind": res["peak_mem_kind"], "final_flow_cos": res["history"]["flow_cos"][-1]}
        sets["centroid-real"] = inherit.centroid_real(eff, ds, ipc, device=device)
        sets["random-real"] = inherit.random_real(ds, ipc, seed=p.seed)
        for name, st in sets.items():
            for bb_name, bb, modes in (("efficientnet-lite0", eff, ("probe",)), (args.other, other, inherit.MODES)):
                t0 = time.perf_counter()
                res = inherit.evaluate_modes(st["images"], st["labels"], ds, eff, bb, modes, probe_cfg, golden_cfg,
                                             device)
                tick(f"{name} ipc {ipc} on {bb_name}: " + ", ".join(f"{m} {r['acc']:.4f}" for m, r in res.items()),
                     t0)
                for mode, r in res.items():
                    rows.append({"method": name, "dataset": results.dataset_label(ds.name), "ipc": ipc,
                                 "protocol": f"{mode} on {bb_name}", "mean": r["acc"], "std": r["acc_std"],
                                 "per_seed": r["accs"], "seeds": [probe_cfg.seed + i for i in range(len(r["accs"]))],
                                 "mode": mode, "eval_backbone": bb_name, "bytes": r["bytes"],
                                 "stored_bytes": r["stored_bytes"], "wall_s": r["wall_s"],
                                 "golden_acc": r.get("golden_acc")})
    out = Path(args.out or ROOT / "results" / f"sfm_ci_cifar10_{args.scale}.json")
    config = {"scale": args.scale, "dataset": ds.spec, "distill_backbone": p.distill_backbone,
              "other_backbone": args.other, "per_class": p.per_class, "test_per_class": p.test_per_class,
              "image_size": p.image_size, "ipcs": IPCS[args.scale], "steps": p.steps, "lr": p.synth.lr,
              "grow_every": p.synth.grow_every, "probe_epochs": probe_cfg.epochs, "probe_lr": probe_cfg.lr,
              "views": probe_cfg.views, "runs": probe_cfg.runs, "golden_epochs": golden_cfg.epochs,
              "encoder_epochs": p.encoder_epochs, "probe": probe_cfg, "golden": golden_cfg}
    timings = {"wall_s": round(time.perf_counter() - t_start, 1), "stage_seconds": times}
    if loaded:
        timings["stages_cached"] = sorted(loaded)
        timings["original_stage_seconds"] = {k: v for k, v in loaded.items() if v is not None}
    if loaded or any(r.get("cached") for r in synth_runs.values()):
        timings["cached"] = True
    script = "benchmarks/sfm_ci_cifar10.py"
    results.write(out, what="CIFAR-10 (JPEG copy): SFM vs centroid-nearest real vs random real, linear probe on the "
                            "distillation backbone EfficientNet-Lite0 and probe / CI / KD on a second backbone",
                  config=config, rows=rows, timings=timings,
                  command="python " + " ".join([script, *(argv if argv is not None else sys.argv[1:])]),
                  marked="CPU" if device.type == "cpu" else "GPU", train_size=len(ds.train_y),
                  test_size=len(ds.test_y),
                  backbones={"distill": {"name": p.distill_backbone, "key": backbone_key(eff),
                                         "image_size": eff.image_size},
                             "other": {"name": args.other, "key": backbone_key(other),
                                       "feature_dim": other.feature_dim}},
                  golden_acc=golden_acc, golden_train_acc=golden.train_acc, synthetic=synth_runs)
    print(f"golden head (full data, EfficientNet-Lite0): {golden_acc:.4f}")
    for r in rows:
        print(f"ipc {r['ipc']} {r['method']:>14} {r['mode']:>5} on {r['eval_backbone']:>18}: "
              f"{100 * r['mean']:5.1f} ± {100 * r['std']:.1f} %")
    print(f"wrote {out} ({timings['wall_s']} s)")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    raise SystemExit(main())
