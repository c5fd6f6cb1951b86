"""Sub-command ``evaluate-synthetic``: test accuracy of a synthetic set on a frozen backbone.

``python -m ddlib evaluate-synthetic --images DIR --backbone B [--distill-backbone B0] --dataset D
--mode probe|ci|kd --out FILE.json`` trains a linear probe (``probe``), a CI projector under the
inherited golden head (``ci``) or a KD head taught by it (``kd``) on DIR/images.pt (written by
``python -m ddlib distill``) and writes the test accuracy, the bytes stored, the configs and the
provenance (command, commit, device, date, wall time) to FILE.json.

``--images random-real`` or ``--images centroid-real`` (with ``--ipc``) evaluate the real-image
baselines instead: random training images, or those nearest their class centre in φ_distill.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import time
from pathlib import Path
from typing import Any

from ddlib.utils import ParamError, check_choice

BASELINES = ("random-real", "centroid-real")


def _command(args: argparse.Namespace) -> str:
    parts = ["python", "-m", "ddlib", "evaluate-synthetic"]
    for k, v in sorted(vars(args).items()):
        if k == "command" or v is None or v is False:
            continue
        flag = "--" + k.replace("_", "-")
        parts += [flag] if v is True else [flag, str(v)]
    return shlex.join(parts)


def _size_from_key(key: Any) -> int | None:
    m = re.search(r"@(\d+)px", str(key or ""))
    return int(m.group(1)) if m else None


def load_images(path: str) -> dict[str, Any]:
    """The synthetic set in DIR (or the file DIR/images.pt) written by ``python -m ddlib distill``."""
    import torch

    p = Path(path)
    p = p / "images.pt" if p.is_dir() else p
    if not p.exists():
        raise FileNotFoundError(f"no synthetic images at {p} (expected images.pt written by `python -m ddlib distill`, "
                                f"or --images {' | '.join(BASELINES)})")
    obj = torch.load(p, map_location="cpu", weights_only=False)
    if not isinstance(obj, dict) or "images" not in obj or "labels" not in obj:
        raise ParamError(f"images={path!r}: {p} must hold a dict with 'images' and 'labels'")
    return obj


def _evaluate(args: argparse.Namespace) -> int:
    from ddlib import data
    from ddlib.sfm import inherit
    from ddlib.sfm.backbones import backbone_key, get_backbone
    from ddlib.utils import get_device, json_safe, provenance

    t0 = time.perf_counter()
    check_choice("mode", args.mode, inherit.MODES)
    cfg = inherit.ProbeConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, views=args.views,
                              runs=args.runs, seed=args.seed, progress=not args.quiet)
    gcfg = inherit.GoldenConfig(epochs=args.golden_epochs)
    device = get_device(args.device)
    baseline = args.images if args.images in BASELINES else None
    syn: dict[str, Any] = {} if baseline else load_images(args.images)
    if baseline and args.ipc is None:
        raise ParamError(f"images={args.images!r} needs --ipc (images per class)")
    distill_name = args.distill_backbone or syn.get("backbone")
    if (args.mode != "probe" or baseline == "centroid-real") and not distill_name:
        raise ParamError(f"mode={args.mode!r} / images={args.images!r} needs --distill-backbone (the backbone the "
                         "golden head and class centres live on); the images file names none")
    ds = data.load(args.dataset, per_class=args.per_class, seed=args.data_seed, test_per_class=args.test_per_class)
    distill_size = args.distill_image_size or _size_from_key((syn.get("provenance") or {}).get("backbone_key"))
    bb_kw = {"epochs": args.inhouse_epochs, "progress": not args.quiet}
    eval_bb = get_backbone(args.backbone, ds, image_size=args.image_size,
                           **(bb_kw if args.backbone == "inhouse" else {}))
    distill_bb = None
    if distill_name:
        same = distill_name == args.backbone and distill_size == args.image_size
        distill_bb = eval_bb if same else get_backbone(distill_name, ds, image_size=distill_size,
                                                       **(bb_kw if distill_name == "inhouse" else {}))
    if baseline == "random-real":
        syn = inherit.random_real(ds, args.ipc, args.seed)
    elif baseline == "centroid-real":
        syn = inherit.centroid_real(distill_bb, ds, args.ipc, device=device, progress=not args.quiet)
    images, labels = syn["images"], syn["labels"]
    if images.shape[1] != ds.image_shape[0]:
        raise ParamError(f"images have {images.shape[1]} channels but dataset={args.dataset!r} has {ds.image_shape[0]}")
    res = inherit.evaluate_synthetic(images, labels, ds, distill_bb, eval_bb, args.mode, cfg, gcfg, device)
    ipc = len(labels) // max(ds.num_classes, 1)
    record = {
        "acc": res["acc"], "acc_std": res["acc_std"], "mode": args.mode, "images": args.images,
        "method": baseline or (syn.get("config") or {}).get("method", "synthetic"), "ipc": ipc,
        "backbone": args.backbone, "distill_backbone": distill_name,
        "backbone_key": backbone_key(eval_bb), "distill_backbone_key": backbone_key(distill_bb) if distill_bb else None,
        "dataset": ds.spec, "result": res, "synthetic_config": syn.get("config"),
        "synthetic_provenance": syn.get("provenance"),
        "wall_s": time.perf_counter() - t0,
        "provenance": provenance(_command(args)),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(json_safe(record), indent=1))
    extra = f", golden head {res['golden_acc']:.4f}" if "golden_acc" in res else ""
    print(f"{args.mode} on {args.backbone} ({record['method']}, {len(labels)} images): test accuracy "
          f"{res['acc']:.4f} ± {res['acc_std']:.4f} over {cfg.runs} run(s){extra}; wrote {out}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> dict:
    from ddlib.sfm.backbones import INHOUSE_EPOCHS

    p = sub.add_parser("evaluate-synthetic", help="test accuracy of a synthetic set: linear probe, CI or KD",
                       description=__doc__.splitlines()[0] + " Defaults: the LGM reference probe (Adam, "
                       "lr 1e-3·B/256, cosine, 1000 epochs, crop+flip, 5 runs).")
    p.add_argument("--images", required=True,
                   help="folder (or images.pt) from `python -m ddlib distill`, or random-real | centroid-real")
    p.add_argument("--backbone", required=True,
                   help="evaluation backbone: inhouse | efficientnet-lite0 | timm:<name> | convnet-random")
    p.add_argument("--distill-backbone", default=None,
                   help="backbone of the golden head (ci/kd) and class centres (default: the images' backbone)")
    p.add_argument("--dataset", required=True, help="a ddlib dataset name (python -m ddlib datasets)")
    p.add_argument("--mode", default="probe", help="probe | ci | kd (default probe)")
    p.add_argument("--out", required=True, help="the result JSON")
    p.add_argument("--ipc", type=int, default=None, help="images per class for the real baselines")
    p.add_argument("--epochs", type=int, default=1000, help="probe/projector/KD epochs (default 1000)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3, help="base lr at batch 256 (scaled by B/256)")
    p.add_argument("--views", type=int, default=None,
                   help="embed this many augmented views once (CPU); default: fresh augmentation every step")
    p.add_argument("--runs", type=int, default=5, help="runs averaged (default 5)")
    p.add_argument("--golden-epochs", type=int, default=100)
    p.add_argument("--image-size", type=int, default=None, help="resize inputs of the evaluation backbone")
    p.add_argument("--distill-image-size", type=int, default=None,
                   help="resize inputs of the distillation backbone (default: as recorded with the images)")
    p.add_argument("--inhouse-epochs", type=int, default=INHOUSE_EPOCHS,
                   help=f"epochs of the in-house MoCo v2 encoder (default {INHOUSE_EPOCHS})")
    p.add_argument("--per-class", type=int, default=None, help="subsample the training set")
    p.add_argument("--test-per-class", type=int, default=None, help="subsample the test set")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when present)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return {"evaluate-synthetic": _evaluate}
