"""Sub-commands for Statistical Flow Matching: ``distill``.

``python -m ddlib distill --method sfm|lgm --backbone B --dataset D --ipc K --steps N [--scale ...] --out DIR``
writes DIR/images.pt (torch.save of {"images" float [0, 1] (C·IPC, ch, S, S), "labels", "classes",
"config", ...}), DIR/grid.png (a row per class) and DIR/distill.json (a record of
:func:`ddlib.results.write`: the config, wall time, peak memory, provenance). The settings are
:func:`ddlib.presets.ci`'s at ``--scale`` (without it the reference: METHODS.md §2), which the options
override.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

from ddlib.cli import common
from ddlib.preflight import Output

__all__ = ["OUTPUTS", "add_commands"]

#: its output options (:data:`ddlib.cli.OUTPUTS`): one distillation per folder
OUTPUTS = {"distill": (Output("out", "folder", results=("distill.json", "images.pt", "grid.png")),)}


def _distill(args: argparse.Namespace) -> int:
    from ddlib import data, presets, results
    from ddlib.sfm import backbones, synth
    from ddlib.utils import get_device, provenance

    start = time.perf_counter()
    device = get_device(args.device)
    given = common.overrides(args, "ci")
    p = presets.ci(args.scale, **given)  # validates the cheap parameters first
    ds = data.load(common.dataset(p.dataset), per_class=p.per_class, seed=p.data_seed, test_per_class=p.test_per_class)
    extra = {k: v for k, v in (("augs_per_batch", p.augs_per_batch), ("chunk_size", p.chunk_size)) if v is not None}
    probe = dataclasses.replace(p.synth, channels=int(ds.image_shape[0]) if ds.image_shape[0] in (1, 3) else 3,
                                **extra)
    bb = backbones.get_backbone(args.backbone, ds, **common.backbone_options(args.backbone, p, given, not args.quiet))
    bb_size = int(getattr(bb, "image_size", ds.image_shape[-1]))
    auto_size, auto_crop = synth.default_image_sizes(bb_size)
    image_size = args.synthetic_size or auto_size
    crop = args.crop or min(auto_crop, image_size)
    cfg = dataclasses.replace(probe, image_size=image_size, crop=crop)
    name = backbones.backbone_key(bb)
    t = time.perf_counter()
    res = synth.distill_cached(bb, ds, cfg, name, device=device, progress=not args.quiet, use_cache=not args.no_cache)
    # a result loaded from the cache returns faster than the run that made it (whose time it keeps)
    cached = time.perf_counter() - t < res["wall_time"]
    command = common.command(args)
    prov = {**provenance(command), "backbone_key": name, "artifact": res.get("key")}
    paths = synth.save_synthetic(res, args.out, classes=ds.classes, backbone=args.backbone, dataset=ds.spec,
                                 provenance=prov)
    h = res["history"]
    timings = {"wall_s": time.perf_counter() - start, **({"cached": True, "original_wall_s": res["wall_time"]}
                                                          if cached else {"distill_s": res["wall_time"]})}
    row = {"method": cfg.method, "dataset": results.dataset_label(ds.name), "ipc": cfg.ipc,
           "images": int(len(res["images"])), "image_size": image_size, "final_loss": h["loss"][-1],
           "final_flow_cos": h["flow_cos"][-1], "peak_mem": res["peak_mem"], "peak_mem_kind": res["peak_mem_kind"],
           "stats_time": res.get("stats_time")}
    meta = {k: res[k] for k in ("history", "levels", "num_classes", "device") if k in res}
    results.write(paths["json"], what=f"{cfg.method.upper()} synthetic images on {args.backbone} "
                                      "(python -m ddlib distill)",
                  config=cfg, rows=[row], timings=timings, command=command, backbone=args.backbone, backbone_key=name,
                  artifact=res.get("key"), dataset=ds.spec, classes=ds.classes, image_shape=list(res["images"].shape[1:]),
                  settings=common.settings(args), **meta)
    when = f" (cached: {res['wall_time']:.1f} s when computed)" if cached else f" in {res['wall_time']:.1f} s"
    print(f"{cfg.method.upper()} {args.backbone} on {ds.name}: {len(res['images'])} images "
          f"({cfg.ipc}/class, {image_size}px){when}, peak memory "
          f"{res['peak_mem'] / 2**20:.1f} MiB ({res['peak_mem_kind']}); final loss {h['loss'][-1]:.4f}, "
          f"flow cosine {h['flow_cos'][-1]:.4f}")
    print(f"wrote {paths['images']}, {paths['grid']}, {paths['json']}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> dict:
    from ddlib import presets
    from ddlib.sfm.backbones import INHOUSE_EPOCHS, backbone_names

    ref = presets.ci(None)  # the defaults below, named in the help from their one home
    s = ref.synth
    p = sub.add_parser("distill", help="distil synthetic images for a frozen backbone with SFM or LGM",
                       description="Distil IPC synthetic images per class for a frozen backbone with SFM or LGM; "
                       "writes OUT/images.pt, OUT/grid.png and OUT/distill.json (config, wall time, peak memory, "
                       "provenance). Defaults: the --scale preset of ddlib.presets.ci; without it, METHODS.md §2 "
                       "(Adam 2e-3, 5,000 steps, pyramid grown every 200 steps, augmentation 'sfm', LGM "
                       "augs_per_batch 10).")
    p.add_argument("--method", choices=["sfm", "lgm"], default=None, help=f"default {s.method}")
    p.add_argument("--backbone", required=True,
                   help=f"{' | '.join(backbone_names())} (see ddlib.sfm.backbones)")
    p.add_argument("--dataset", default=None,
                   help="a ddlib dataset name (python -m ddlib datasets; default: the preset's)")
    common.add_scale(p)
    p.add_argument("--ipc", type=int, default=None, help=f"images per class (default {s.ipc})")
    p.add_argument("--steps", type=int, default=None, help=f"optimisation steps (default {s.steps})")
    p.add_argument("--out", required=True, help="output folder")
    common.add_overwrite(p)
    p.add_argument("--lr", type=float, default=None, help=f"default {s.lr:g}")
    p.add_argument("--image-size", metavar="IMAGE_SIZE", dest="synthetic_size", type=int, default=None,
                   help="synthetic resolution (default: 8/7 of the backbone's input size, 256 for 224 px; "
                   "the input size itself below 112 px)")
    p.add_argument("--crop", type=int, default=None, help="augmentation crop size (default: the backbone's input size)")
    p.add_argument("--backbone-size", metavar="BACKBONE_SIZE", dest="image_size", type=int, default=None,
                   help="resize inputs of the backbone to this size (CPU budgets; default its native size)")
    p.add_argument("--inhouse-epochs", metavar="INHOUSE_EPOCHS", dest="encoder_epochs", type=int, default=None,
                   help=f"epochs of the in-house MoCo v2 encoder (backbone inhouse only; default {INHOUSE_EPOCHS})")
    p.add_argument("--parameterisation", choices=["pyramid", "pixels"], default=None, help=f"default {s.parameterisation}")
    p.add_argument("--init", choices=["noise", "zero", "real"], default=None, help=f"default {s.init}")
    p.add_argument("--chunk-size", type=int, default=None, help="SFM only: two-pass chunked step, images per chunk")
    p.add_argument("--augs-per-batch", type=int, default=None, help=f"LGM's synthetic views per step (default {s.augs_per_batch})")
    p.add_argument("--grow-every", type=int, default=None, help=f"default {s.grow_every}")
    p.add_argument("--per-class", type=int, default=None, help="subsample the training set to this many per class")
    p.add_argument("--data-seed", type=int, default=None, help=f"default {ref.data_seed}")
    p.add_argument("--seed", metavar="SEED", dest="synth_seed", type=int, default=None, help=f"default {s.seed}")
    p.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when present)")
    p.add_argument("--no-cache", action="store_true", help="recompute even if an identical run is cached")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return {"distill": _distill}
