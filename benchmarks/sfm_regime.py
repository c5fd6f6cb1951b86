"""Chapter 4's regime: where SFM's images beat random real images at IPC 1, chosen on held-out training images.

Each regime is a set of ``presets.ci`` overrides (:data:`REGIMES`) distilled once per seed for its longest
step budget, with snapshots at the shorter budgets of ``--steps`` (the images after s steps of a run are those
of a run of s steps: Adam's rate is constant and the pyramid grows at fixed steps). Every snapshot and a random
real set (draw = seed; with ``init="real"`` the very images the run started from) are scored like chapter 4 scores them: probe, CI and KD on EfficientNet-Lite2 (golden
head on Lite0, the distillation backbone) and a probe on Lite0, with the preset's probe and golden settings.

``--split val`` (choosing): ``--val-per-class`` training images per class are held out
(:func:`ddlib.sfm.inherit.validation_split`, from a pool of ``per_class + val_per_class`` per class) and
every accuracy is measured on them. ``--split test`` (measuring the chosen regime): the preset's own data and
test split. Each row holds the per-seed accuracies; ``differences`` holds SFM − random real per regime,
step budget and protocol, paired over the seeds, with 95 % intervals (:func:`ddlib.metrics.paired_stats`).

    python benchmarks/sfm_regime.py --split val --seeds 0,1 --out results/sfm_regime_fashion-mnist_val.json
    python benchmarks/sfm_regime.py --split test --regimes chosen --steps 800 --seeds 0,1,2,3,4 \\
        --out results/sfm_regime_fashion-mnist_test.json
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ddlib import data, metrics, presets, results
from ddlib.sfm import inherit, synth
from ddlib.sfm.backbones import backbone_key, get_backbone

ROOT = Path(__file__).resolve().parents[1]
#: regimes: name -> presets.ci overrides (the step budgets come from --steps)
REGIMES: dict[str, dict[str, Any]] = {
    "chapter": dict(lr=0.05, grow_every=15),                     # chapter 4 today: a pyramid level every 15 steps
    "cifar-record": dict(lr=0.01, grow_every=100),               # the CIFAR-10 record's rate and growth
    "lr0.02-grow50": dict(lr=0.02, grow_every=50),               # in between
    "cifar-record-pool1000": dict(lr=0.01, grow_every=100, per_class=1000),  # more pool for centres and golden head
    "init-real": dict(lr=0.01, init="real"),                     # start from the random real images of the seed
    "init-real-lr0.03": dict(lr=0.03, init="real"),
    "data-res": dict(lr=0.05, grow_every=15, synth_image_size=0),  # synthesise at the data's resolution
    "chosen": dict(),                                            # the preset's values as they stand
}
#: a regime's ``synth_image_size`` (not a preset name): the synthetic images' side (0: the dataset's own), which
#: the backbone then resizes as it does real images; by default :func:`ddlib.sfm.synth.default_image_sizes`
EVAL = "efficientnet-lite2"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=["val", "test"], default="val")
    ap.add_argument("--regimes", default=",".join(k for k in REGIMES if k != "chosen"))
    ap.add_argument("--steps", default="200,400,600,1000", help="step budgets (snapshots of the longest run)")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--val-per-class", type=int, default=100)
    ap.add_argument("--scale", default="cpu", choices=["test", "cpu"])
    ap.add_argument("--set", action="append", default=[], help="NAME=VALUE preset override for every regime")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [r.strip() for r in args.regimes.split(",") if r.strip()]
    bad = [r for r in names if r not in REGIMES]
    if bad:
        ap.error(f"--regimes {bad}: choose among {list(REGIMES)}")
    budgets = sorted({int(s) for s in args.steps.split(",") if s.strip()})
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    common = {}
    for kv in args.set:
        k, _, v = kv.partition("=")
        common[k] = ast.literal_eval(v)
    t_start = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:7.1f} s] {msg}", flush=True)

    rows: list[dict[str, Any]] = []
    differences: list[dict[str, Any]] = []
    regime_config: dict[str, Any] = {}
    for name in names:
        knobs = {**REGIMES[name], **common}
        side = knobs.pop("synth_image_size", None)
        p = presets.ci(args.scale, **{**knobs, "steps": budgets[-1]})
        if args.split == "val":
            pool = data.load(p.dataset, per_class=None if p.per_class is None else p.per_class + args.val_per_class,
                             seed=p.data_seed)
            ds = inherit.validation_split(pool, args.val_per_class, seed=p.data_seed)
        else:
            ds = data.load(p.dataset, per_class=p.per_class, test_per_class=p.test_per_class, seed=p.data_seed)
        phi_d = get_backbone(p.distill_backbone, ds, image_size=p.image_size)
        phi_e = get_backbone(EVAL, ds, image_size=p.image_size)
        image_size, crop = synth.default_image_sizes(int(phi_d.image_size))
        if side is not None:
            image_size = crop = side or int(ds.image_shape[-1])
        regime_config[name] = {"preset": {**REGIMES[name], **common}, "synth": dataclasses.replace(
            p.synth, image_size=image_size, crop=crop, channels=int(ds.image_shape[0])).resolved(),
            "probe": p.probe, "golden": p.golden, "dataset": ds.spec}
        acc: dict[tuple[str, int | None, str], dict[int, float]] = {}
        wall: dict[int, float] = {}
        for seed in seeds:
            cfg = dataclasses.replace(p.synth, image_size=image_size, crop=crop, channels=int(ds.image_shape[0]),
                                      seed=seed)
            res = synth.distill_cached(phi_d, ds, cfg, backbone_key(phi_d), progress=False, snapshots=budgets[:-1])
            wall[seed] = float(res["wall_time"])
            sets = {("sfm", s): (res["snapshots"][s] if s != budgets[-1] else res["images"]) for s in budgets}
            real = inherit.random_real(ds, p.ipc, seed=seed)
            sets[("random real", None)] = real["images"]
            probe_cfg = dataclasses.replace(p.probe, seed=seed)
            for (method, steps), images in sets.items():
                labels = res["labels"] if method == "sfm" else real["labels"]
                out = inherit.evaluate_modes(images, labels, ds, phi_d, phi_e, inherit.MODES, probe_cfg, p.golden)
                out0 = inherit.evaluate_modes(images, labels, ds, phi_d, phi_d, ("probe",), probe_cfg, p.golden)
                for proto, r in [*((f"{m} on {EVAL}", v) for m, v in out.items()),
                                 (f"probe on {p.distill_backbone}", out0["probe"])]:
                    acc.setdefault((method, steps, proto), {})[seed] = r["acc"]
            say(f"{name}, seed {seed}: distilled in {wall[seed]:.0f} s ({'cached' if res['cached'] else 'now'}); " +
                ", ".join(f"{m}@{s}: {100 * acc[(m, s, f'probe on {EVAL}')][seed]:.1f}" for m, s in sets))
        for (method, steps, proto), by_seed in acc.items():
            vals = [by_seed[s] for s in seeds]
            rows.append({"method": "sfm" if method == "sfm" else "random-real", "regime": name,
                         "dataset": results.dataset_label(ds.spec), "ipc": p.ipc, "steps": steps, "split": args.split,
                         "protocol": f"{proto} [{args.split}]", "mean": statistics.fmean(vals),
                         "std": statistics.pstdev(vals), "per_seed": vals, "seeds": seeds,
                         **({"distill_wall_s": [wall[s] * steps / budgets[-1] for s in seeds]} if steps else {})})
            if method == "sfm" and len(seeds) >= 2:
                base = acc[("random real", None, proto)]
                d = metrics.paired_stats(vals, [base[s] for s in seeds], "SFM", "random real")
                differences.append({"regime": name, "steps": steps, "protocol": proto, "split": args.split, **d})
                say(f"  {name} @ {steps} steps, {proto}: {d['verdict']}")
    config = {"scale": args.scale, "split": args.split, "validation_per_class": args.val_per_class if args.split == "val"
              else None, "eval_backbone": EVAL, "steps": budgets, "seeds": seeds, "regimes": regime_config}
    out_path = Path(args.out or ROOT / "results" / f"sfm_regime_{args.split}.json")
    command = "python " + " ".join(["benchmarks/sfm_regime.py", *(argv if argv is not None else sys.argv[1:])])
    results.write(out_path, what=f"SFM against random real images at IPC 1 on chapter 4's pipeline ({args.split} split): "
                                 "probe / CI / KD on EfficientNet-Lite2, probe on Lite0, per regime and step budget",
                  config=config, rows=rows, timings={"wall_s": round(time.perf_counter() - t_start, 1)},
                  command=command, differences=differences)
    say(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
