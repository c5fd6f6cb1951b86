"""Sub-commands for Statistical Flow Matching: ``distill``.

``python -m ddlib distill --method sfm|lgm --backbone B --dataset D --ipc K --steps N --out DIR``
writes DIR/images.pt (torch.save of {"images" float [0, 1] (C·IPC, ch, S, S), "labels", "classes",
"config", ...}), DIR/grid.png (a row per class) and DIR/distill.json (config, wall time, peak
memory, provenance).
"""
from __future__ import annotations

import argparse
import dataclasses
import shlex

from ddlib.utils import ParamError


def _command(args: argparse.Namespace) -> str:
    """The command line that reproduces this run (rebuilt from the parsed arguments)."""
    parts = ["python", "-m", "ddlib", "distill"]
    for k, v in sorted(vars(args).items()):
        if k in ("command",) or v is None or v is False:
            continue
        flag = "--" + k.replace("_", "-")
        parts += [flag] if v is True else [flag, str(v)]
    return shlex.join(parts)


def _distill(args: argparse.Namespace) -> int:
    from ddlib import data
    from ddlib.sfm import backbones, synth
    from ddlib.utils import get_device, provenance

    device = get_device(args.device)
    ds = data.load(args.dataset, per_class=args.per_class, seed=args.data_seed)
    # validate the cheap parameters before loading/training a backbone
    probe = synth.SynthConfig(method=args.method, ipc=args.ipc, steps=args.steps, lr=args.lr,
                              parameterisation=args.parameterisation, init=args.init, chunk_size=args.chunk_size,
                              augs_per_batch=args.augs_per_batch, grow_every=args.grow_every, seed=args.seed,
                              channels=int(ds.image_shape[0]) if ds.image_shape[0] in (1, 3) else 3)
    bb_kw = {"epochs": args.inhouse_epochs, "progress": not args.quiet} if args.backbone == "inhouse" else {}
    bb = backbones.get_backbone(args.backbone, ds, image_size=args.backbone_size, **bb_kw)
    bb_size = int(getattr(bb, "image_size", ds.image_shape[-1]))
    auto_size, auto_crop = synth.default_image_sizes(bb_size)
    image_size = args.image_size or auto_size
    crop = args.crop or min(auto_crop, image_size)
    cfg = dataclasses.replace(probe, image_size=image_size, crop=crop)
    name = backbones.backbone_key(bb)
    res = synth.distill_cached(bb, ds, cfg, name, device=device, progress=not args.quiet,
                               use_cache=not args.no_cache)
    command = _command(args)
    paths = synth.save_synthetic(res, args.out, classes=ds.classes, backbone=args.backbone,
                                 dataset=ds.spec, provenance={**provenance(command), "backbone_key": name,
                                                              "artifact": res.get("key")})
    h = res["history"]
    print(f"{cfg.method.upper()} {args.backbone} on {args.dataset}: {len(res['images'])} images "
          f"({cfg.ipc}/class, {image_size}px) in {res['wall_time']:.1f} s, peak memory "
          f"{res['peak_mem'] / 2**20:.1f} MiB ({res['peak_mem_kind']}); final loss {h['loss'][-1]:.4f}, "
          f"flow cosine {h['flow_cos'][-1]:.4f}")
    print(f"wrote {paths['images']}, {paths['grid']}, {paths['json']}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> dict:
    p = sub.add_parser("distill", help="distil synthetic images for a frozen backbone with SFM or LGM",
                       description="Distil IPC synthetic images per class for a frozen backbone with SFM or LGM; "
                       "writes OUT/images.pt, OUT/grid.png and OUT/distill.json (config, wall time, peak memory, "
                       "provenance). Defaults follow METHODS.md §2 (Adam 2e-3, 5,000 steps, pyramid grown every "
                       "200 steps, augmentation 'sfm', LGM augs_per_batch 10).")
    p.add_argument("--method", choices=["sfm", "lgm"], default="sfm")
    p.add_argument("--backbone", required=True,
                   help="inhouse | efficientnet-lite0 | timm:<name> | convnet-random (see ddlib.sfm.backbones)")
    p.add_argument("--dataset", required=True, help="a ddlib dataset name (python -m ddlib datasets)")
    p.add_argument("--ipc", type=int, default=1, help="images per class (default 1)")
    p.add_argument("--steps", type=int, default=5000, help="optimisation steps (default 5000)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--image-size", type=int, default=None,
                   help="synthetic resolution (default: 8/7 of the backbone's input size, 256 for 224 px; "
                   "the input size itself below 112 px)")
    p.add_argument("--crop", type=int, default=None, help="augmentation crop size (default: the backbone's input size)")
    p.add_argument("--backbone-size", type=int, default=None,
                   help="resize inputs of the backbone to this size (CPU budgets; default its native size)")
    p.add_argument("--inhouse-epochs", type=int, default=20,
                   help="epochs of the in-house MoCo v2 encoder (backbone inhouse only; default 20)")
    p.add_argument("--parameterisation", choices=["pyramid", "pixels"], default="pyramid")
    p.add_argument("--init", choices=["noise", "zero", "real"], default="noise")
    p.add_argument("--chunk-size", type=int, default=None, help="SFM only: two-pass chunked step, images per chunk")
    p.add_argument("--augs-per-batch", type=int, default=10, help="LGM's synthetic views per step (default 10)")
    p.add_argument("--grow-every", type=int, default=200)
    p.add_argument("--per-class", type=int, default=None, help="subsample the training set to this many per class")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when present)")
    p.add_argument("--no-cache", action="store_true", help="recompute even if an identical run is cached")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return {"distill": _distill}


__all__ = ["add_commands", "ParamError"]
