"""Sub-command ``evaluate-synthetic``: test accuracy of a synthetic set on a frozen backbone.

``python -m ddlib evaluate-synthetic --images DIR --backbone B [--distill-backbone B0] --dataset D
--mode probe|ci|kd [--scale ...] --out FILE.json`` trains a linear probe (``probe``), a CI projector under
the inherited golden head (``ci``) or a KD head taught by it (``kd``) on DIR/images.pt (written by
``python -m ddlib distill``) and writes the test accuracy, the bytes stored, the configs and the
provenance (command, commit, device, date, wall time) to FILE.json (:func:`ddlib.results.write`). The
probe and golden-head settings are :func:`ddlib.presets.ci`'s at ``--scale`` (without it the LGM
reference probe), which the options override.

``--images random-real`` or ``--images centroid-real`` (with ``--ipc``) evaluate the real-image
baselines instead: random training images, or those nearest their class centre in φ_distill.

A synthetic set is scored on the dataset it was distilled on: without ``--dataset`` the one its file names,
and a ``--dataset`` of other classes or channels (or a ``--distill-backbone`` / ``--distill-image-size`` other
than the recorded ones) stops before any work, naming both (:mod:`ddlib.identity`).
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import time
from pathlib import Path
from typing import Any

from ddlib.cli import common
from ddlib.preflight import Output
from ddlib.utils import ParamError, check_choice

REAL_BASELINES = ("random-real", "centroid-real")
#: its output options (:data:`ddlib.cli.OUTPUTS`): one result file
OUTPUTS = {"evaluate-synthetic": (Output("out", "file"),)}


def _size_from_key(key: Any) -> int | None:
    m = re.search(r"@(\d+)px", str(key or ""))
    return int(m.group(1)) if m else None


def load_images(path: str) -> dict[str, Any]:
    """The synthetic set in DIR (or the file DIR/images.pt) written by ``python -m ddlib distill``; a missing,
    unreadable or malformed file is named in one line (:func:`ddlib.sfm.sets.load_synthetic`)."""
    from ddlib.sfm.sets import load_synthetic

    p = Path(path)
    if not (p / "images.pt" if p.is_dir() else p).exists():
        raise FileNotFoundError(f"no synthetic images at {p / 'images.pt' if p.is_dir() else p} (expected images.pt "
                                f"written by `python -m ddlib distill`, or --images {' | '.join(REAL_BASELINES)})")
    return load_synthetic(path, name="images")


def _recorded(syn: dict[str, Any]) -> dict[str, Any]:
    """What a synthetic set records of what made it: its ``identity``, or what older files held beside it."""
    from ddlib.identity import dataset_name

    ident = dict(syn.get("identity") or {})
    ident.setdefault("dataset", dataset_name(syn.get("dataset")))
    ident.setdefault("classes", syn.get("classes"))
    ident.setdefault("backbone", syn.get("backbone"))
    return ident


def _check_identity(args: argparse.Namespace, syn: dict[str, Any], ds: Any, distill_name: str | None) -> None:
    """Refuse a synthetic set made for another dataset (name, classes, channels) or another distillation backbone."""
    from ddlib import identity

    rec = _recorded(syn)
    here = identity.of_dataset(ds)
    identity.check(f"images={args.images!r}", rec, here, f"score it on the dataset it was distilled on "
                   f"(--dataset {rec.get('dataset')}), or distil a set for {here['dataset']}",
                   fields=("dataset", "classes", "channels"))
    identity.check(f"images={args.images!r}", rec, {"backbone": distill_name},
                   "leave --distill-backbone out (the golden head and class centres live on the images' backbone)",
                   fields=("backbone",))
    recorded_size = _size_from_key((syn.get("provenance") or {}).get("backbone_key"))
    if args.distill_image_size is not None and recorded_size is not None and args.distill_image_size != recorded_size:
        raise ParamError(f"images={args.images!r} was made for another run (distillation backbone at {recorded_size} px "
                         f"there, --distill-image-size {args.distill_image_size} here); leave --distill-image-size out")


def _evaluate(args: argparse.Namespace) -> int:
    from ddlib import data, identity, presets, results
    from ddlib.sfm import inherit
    from ddlib.sfm.backbones import backbone_key, get_backbone
    from ddlib.utils import get_device

    t0 = time.perf_counter()
    check_choice("mode", args.mode, inherit.MODES)
    given = common.overrides(args, "ci")
    p = presets.ci(args.scale, **given)
    cfg = dataclasses.replace(p.probe, progress=not args.quiet)
    gcfg = p.golden
    device = get_device(args.device)
    baseline = args.images if args.images in REAL_BASELINES else None
    syn: dict[str, Any] = {} if baseline else load_images(args.images)
    if baseline and args.ipc is None:
        raise ParamError(f"images={args.images!r} needs --ipc (images per class)")
    distill_name = args.distill_backbone or syn.get("backbone")
    if (args.mode != "probe" or baseline == "centroid-real") and not distill_name:
        raise ParamError(f"mode={args.mode!r} / images={args.images!r} needs --distill-backbone (the backbone the "
                         "golden head and class centres live on); the images file names none")
    recorded = _recorded(syn)
    if args.dataset is not None and recorded.get("dataset") is not None:  # before loading anything
        identity.check(f"images={args.images!r}", recorded, {"dataset": identity.dataset_name(args.dataset)},
                       f"score it on the dataset it was distilled on (--dataset {recorded['dataset']})",
                       fields=("dataset",))
    spec = syn.get("dataset")  # without --dataset, the images' own dataset
    name = args.dataset or (spec.get("name") if isinstance(spec, dict) else None) or p.dataset
    ds = data.load(common.dataset(name, "the images' record or the preset"), per_class=p.per_class,
                   seed=p.data_seed, test_per_class=p.test_per_class)
    distill_size = args.distill_image_size or _size_from_key((syn.get("provenance") or {}).get("backbone_key"))
    if syn:
        _check_identity(args, syn, ds, distill_name)
    eval_kw = common.backbone_options(args.backbone, p, given, not args.quiet)
    eval_bb = get_backbone(args.backbone, ds, **eval_kw)
    distill_bb = None
    if distill_name:
        d_kw = {**common.backbone_options(distill_name, p, given, not args.quiet), "image_size": distill_size}
        same = distill_name == args.backbone and distill_size == eval_kw.get("image_size")
        distill_bb = eval_bb if same else get_backbone(distill_name, ds, **d_kw)
    if baseline == "random-real":
        syn = inherit.random_real(ds, args.ipc, p.seed)
    elif baseline == "centroid-real":
        syn = inherit.centroid_real(distill_bb, ds, args.ipc, device=device, progress=not args.quiet)
    images, labels = syn["images"], syn["labels"]
    if images.shape[1] != ds.image_shape[0]:
        raise ParamError(f"images have {images.shape[1]} channels but dataset={ds.name!r} has {ds.image_shape[0]}")
    res = inherit.evaluate_synthetic(images, labels, ds, distill_bb, eval_bb, args.mode, cfg, gcfg, device)
    ipc = len(labels) // max(ds.num_classes, 1)
    method = baseline or (syn.get("config") or {}).get("method", "synthetic")
    accs = res.get("accs")
    row = {"method": method, "dataset": results.dataset_label(ds.name), "ipc": ipc,
           "protocol": f"{args.mode} on {args.backbone}", "mean": res["acc"], "std": res["acc_std"],
           "per_seed": accs, "seeds": [cfg.seed + r for r in range(len(accs))] if isinstance(accs, list) else None,
           "mode": args.mode, "eval_backbone": args.backbone}
    config = {"probe": cfg, "golden": gcfg, "mode": args.mode, "images": args.images, "backbone": args.backbone,
              "distill_backbone": distill_name, "backbone_key": backbone_key(eval_bb),
              "distill_backbone_key": backbone_key(distill_bb) if distill_bb else None,
              "synthetic_config": syn.get("config")}
    out = Path(args.out)
    results.write(out, what=f"{args.mode} accuracy of the {method} set on {args.backbone} "
                            "(python -m ddlib evaluate-synthetic)",
                  config=config, rows=[row], timings={"wall_s": time.perf_counter() - t0},
                  command=common.command(args), dataset=ds.spec, result=res,
                  synthetic_provenance=syn.get("provenance"), settings=common.settings(args))
    extra = f", golden head {res['golden_acc']:.4f}" if "golden_acc" in res else ""
    print(f"{args.mode} on {args.backbone} ({method}, {len(labels)} images): test accuracy "
          f"{res['acc']:.4f} ± {res['acc_std']:.4f} over {cfg.runs} run(s){extra}; wrote {out}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> dict:
    from ddlib import presets
    from ddlib.sfm.backbones import INHOUSE_EPOCHS, backbone_names

    ref = presets.ci(None)  # the defaults below, named in the help from their one home
    pr = ref.probe
    p = sub.add_parser("evaluate-synthetic", help="test accuracy of a synthetic set: linear probe, CI or KD",
                       description=__doc__.splitlines()[0] + " Defaults: the --scale preset of ddlib.presets.ci; "
                       "without it the LGM reference probe (Adam, lr 1e-3·B/256, cosine, 1000 epochs, crop+flip, "
                       "5 runs).")
    p.add_argument("--images", required=True,
                   help="folder (or images.pt) from `python -m ddlib distill`, or random-real | centroid-real")
    p.add_argument("--backbone", required=True,
                   help=f"evaluation backbone: {' | '.join(backbone_names())}")
    p.add_argument("--distill-backbone", default=None,
                   help="backbone of the golden head (ci/kd) and class centres (default: the images' backbone)")
    p.add_argument("--dataset", default=None,
                   help="a ddlib dataset name (python -m ddlib datasets; default: the preset's)")
    common.add_scale(p)
    p.add_argument("--mode", default="probe", help="probe | ci | kd (default probe)")
    p.add_argument("--out", required=True, help="the result JSON")
    common.add_overwrite(p)
    p.add_argument("--ipc", type=int, default=None, help="images per class for the real baselines")
    p.add_argument("--epochs", metavar="EPOCHS", dest="probe_epochs", type=int, default=None,
                   help=f"probe/projector/KD epochs (default {pr.epochs})")
    p.add_argument("--batch-size", metavar="BATCH_SIZE", dest="probe_batch", type=int, default=None, help=f"default {pr.batch_size}")
    p.add_argument("--lr", metavar="LR", dest="probe_lr", type=float, default=None,
                   help=f"base lr at batch 256 (scaled by B/256; default {pr.lr:g})")
    p.add_argument("--views", type=int, default=None,
                   help="embed this many augmented views once (CPU); default: fresh augmentation every step")
    p.add_argument("--runs", type=int, default=None, help=f"runs averaged (default {pr.runs})")
    p.add_argument("--golden-epochs", type=int, default=None, help=f"default {ref.golden.epochs}")
    p.add_argument("--image-size", type=int, default=None, help="resize inputs of the evaluation backbone")
    p.add_argument("--distill-image-size", type=int, default=None,
                   help="resize inputs of the distillation backbone (default: as recorded with the images)")
    p.add_argument("--inhouse-epochs", metavar="INHOUSE_EPOCHS", dest="encoder_epochs", type=int, default=None,
                   help=f"epochs of the in-house MoCo v2 encoder (default {INHOUSE_EPOCHS})")
    p.add_argument("--per-class", type=int, default=None, help="subsample the training set")
    p.add_argument("--test-per-class", type=int, default=None, help="subsample the test set")
    p.add_argument("--data-seed", type=int, default=None, help=f"default {ref.data_seed}")
    p.add_argument("--seed", metavar="SEED", dest="probe_seed", type=int, default=None, help=f"default {pr.seed}")
    p.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when present)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return {"evaluate-synthetic": _evaluate}
