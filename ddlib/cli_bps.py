"""Sub-commands of BPS: ``select`` (Stage 1 + 2, any method, every IPC) and ``evaluate`` (Stage 3).

    python -m ddlib select --dataset D --method bps|random|herding|kcenter|forgetting|centroids \\
        --ipc 1,10,50 --seed S --out DIR          # writes DIR/<method>_ipc<k>.json
    python -m ddlib evaluate --dataset D --selection FILE --seeds N --out FILE.json

Budgets come from options (encoder/teacher/student epochs, widths, ``--per-class``); the defaults
are the reference's full-scale settings. A selection file records the dataset spec and the
teacher config, and ``evaluate`` reuses them unless told otherwise (it refuses a dataset that
does not match the selection's). Every parameter is checked before any work; outputs are written
atomically, all at the end, so a failed run leaves nothing half-written.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ddlib.artifacts import write_json_atomic
from ddlib.utils import ParamError, check_int, config_dict, provenance


# ----------------------------------------------------------------------------- helpers
def parse_ints(name: str, text: str) -> list[int]:
    """'1,10,50' -> [1, 10, 50] (each >= 1), else ParamError naming ``name``."""
    try:
        vals = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ParamError(f"{name}={text!r} must be comma-separated positive integers, e.g. 1,10,50") from None
    if not vals:
        raise ParamError(f"{name}={text!r} names no value; give e.g. 1,10,50")
    return [check_int(name, v, 1) for v in vals]


def _opt(v, default):
    return default if v is None else v


def _load_dataset(args: argparse.Namespace, spec: dict | None = None):
    from ddlib import data

    kw = {}
    if getattr(args, "image_size", None) is not None:
        kw["image_size"] = check_int("image_size", args.image_size, 1, 4096)
    per_class = _opt(args.per_class, (spec or {}).get("per_class"))
    test_per_class = _opt(args.test_per_class, (spec or {}).get("test_per_class"))
    data_seed = _opt(args.data_seed, (spec or {}).get("seed", 0))
    if spec is not None and "image_size" not in kw and spec.get("image_size") is not None:
        kw["image_size"] = spec["image_size"]
    return data.load(args.dataset, per_class=per_class, seed=data_seed, test_per_class=test_per_class, **kw)


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="a registry name or imagefolder:PATH / cifar10:PATH")
    p.add_argument("--per-class", type=int, default=None, help="training images per class (subsample)")
    p.add_argument("--test-per-class", type=int, default=None, help="test images per class (subsample)")
    p.add_argument("--data-seed", type=int, default=None, help="seed of the subsampling (default 0)")
    p.add_argument("--image-size", type=int, default=None, help="resize folder images to N x N")
    p.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when present)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_teacher_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("teacher (full data; defaults: the reference ResNet-18 recipe)")
    g.add_argument("--teacher-model", default=None, help="resnet18 | convnet | timm:<name>")
    g.add_argument("--teacher-width", type=int, default=None)
    g.add_argument("--teacher-depth", type=int, default=None)
    g.add_argument("--teacher-epochs", type=int, default=None)
    g.add_argument("--teacher-batch", type=int, default=None)
    g.add_argument("--teacher-lr", type=float, default=None)


def _teacher_cfg(args: argparse.Namespace, base: dict | None = None):
    from ddlib.bps.distill import TeacherConfig

    d = dict(base or {})
    for field_, opt in (("model", "teacher_model"), ("width", "teacher_width"), ("depth", "teacher_depth"),
                        ("epochs", "teacher_epochs"), ("batch_size", "teacher_batch"), ("lr", "teacher_lr")):
        v = getattr(args, opt, None)
        if v is not None:
            d[field_] = v
    return TeacherConfig(**d)


# ----------------------------------------------------------------------------- select
def _pipeline_cfg(args: argparse.Namespace):
    from ddlib.baselines import ForgettingConfig
    from ddlib.bps.encoder import EncoderConfig
    from ddlib.bps.patterns import PatternConfig
    from ddlib.bps.pipeline import PipelineConfig
    from ddlib.bps.select import SelectConfig

    enc = {k: v for k, v in (("backbone", args.encoder_backbone), ("convnet_width", args.encoder_width),
                             ("convnet_depth", args.encoder_depth), ("epochs", args.encoder_epochs),
                             ("batch_size", args.encoder_batch), ("queue_size", args.queue_size),
                             ("warmup_epochs", args.encoder_warmup), ("clu_warmup_epochs", args.clu_warmup))
           if v is not None}
    pat = {k: v for k, v in (("k", args.knn_k), ("min_sim", args.min_sim)) if v is not None}
    teacher = _teacher_cfg(args)
    fg = {"model": teacher.model, "width": teacher.width, "depth": teacher.depth,
          "epochs": _opt(args.forgetting_epochs, teacher.epochs), "batch_size": teacher.batch_size,
          "lr": teacher.lr}
    fg["el2n_epoch"] = min(_opt(args.el2n_epoch, 20), fg["epochs"])
    sel = {k: v for k, v in (("k_ratio", args.k_ratio), ("centre_frac", args.centre_frac),
                             ("gmm_backend", args.gmm_backend)) if v is not None}
    return PipelineConfig(encoder=EncoderConfig(**enc), pattern=PatternConfig(**pat), teacher=teacher,
                          forgetting=ForgettingConfig(**fg), select=SelectConfig(**sel))


def _select(args: argparse.Namespace) -> int:
    from ddlib import data
    from ddlib.bps.pipeline import check_methods, run_selection
    from ddlib.utils import seed_everything

    # every check before any work
    data.validate_name(args.dataset)
    methods = check_methods(args.method)
    ipcs = parse_ints("ipc", args.ipc)
    seed = check_int("seed", args.seed, 0, 2**32 - 1)
    cfg = _pipeline_cfg(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ParamError(f"out={str(out)!r} exists and is not a folder")
    command = "python -m ddlib " + " ".join(sys.argv[1:]) if args.command_line is None else args.command_line
    start = time.perf_counter()
    ds = _load_dataset(args)
    seed_everything(seed)
    res = run_selection(ds, methods, ipcs, seed, cfg, device=args.device, progress=not args.quiet)
    mod = res["modelling"]
    prov = provenance(command)
    files = {}
    for m, per_ipc in res["selections"].items():
        for k, sel in per_ipc.items():
            files[out / f"{m}_ipc{k}.json"] = {
                "method": m, "ipc": k, "seed": seed, "dataset": ds.spec, "dataset_name": ds.name,
                "indices": sel["indices"], "pattern": sel["pattern"], "role": sel["role"],
                "config": {"selection": sel["config"], **cfg.as_dict()},
                "seconds": {"selection": sel["seconds"], **{f"shared_{a}": b for a, b in mod["seconds"].items()}},
                "teacher_acc": mod["teacher_acc"], "modelling": mod["info"],
                "provenance": {**prov, "wall_seconds": time.perf_counter() - start}}
    for path, obj in files.items():
        write_json_atomic(path, obj)
    for path, obj in files.items():
        print(f"{path}  {len(obj['indices'])} images  selection {obj['seconds']['selection'] * 1000:.1f} ms")
    return 0


# ----------------------------------------------------------------------------- evaluate
def _evaluate(args: argparse.Namespace) -> int:
    from ddlib import data
    from ddlib.bps.distill import StudentConfig, evaluate_selection, train_teacher

    data.validate_name(args.dataset)
    sel_path = Path(args.selection)
    if not sel_path.is_file():
        raise FileNotFoundError(f"selection={str(sel_path)!r} is not a file; give a JSON written by "
                                "'python -m ddlib select'")
    try:
        sel = json.loads(sel_path.read_text())
        indices = [int(i) for i in sel["indices"]]
    except (ValueError, KeyError, TypeError) as e:
        raise ParamError(f"selection={str(sel_path)!r} is not a selection JSON with 'indices' ({e})") from None
    spec = sel.get("dataset") or {}
    if spec.get("name") not in (None, args.dataset):
        raise ParamError(f"dataset={args.dataset!r} does not match the selection's dataset {spec.get('name')!r}")
    for opt, key in (("per_class", "per_class"), ("test_per_class", "test_per_class"), ("data_seed", "seed")):
        given = getattr(args, opt)
        if opt != "test_per_class" and given is not None and spec.get(key) is not None and given != spec.get(key):
            raise ParamError(f"{opt.replace('_', '-')}={given} differs from the selection's {key}={spec.get(key)}; "
                             "the indices refer to the selection's subsample")
    n_seeds = check_int("seeds", args.seeds, 1, 1000)
    st = {k: v for k, v in (("model", args.student_model), ("width", args.width), ("depth", args.depth),
                            ("loss", args.loss), ("epochs", args.epochs), ("lr", args.lr),
                            ("temperature", args.temperature), ("min_crop", args.min_crop),
                            ("batch_size", args.batch_size), ("last_epochs", args.last_epochs)) if v is not None}
    base_t = (sel.get("config") or {}).get("teacher")
    tcfg = _teacher_cfg(args, base_t)
    if "model" not in st:  # the student's architecture is the teacher's unless told
        st["model"] = tcfg.model
        st.setdefault("width", tcfg.width)
        st.setdefault("depth", tcfg.depth)
    scfg = StudentConfig(**st)
    out = Path(args.out)
    if out.is_dir():
        raise ParamError(f"out={str(out)!r} is a folder; give a file name such as result.json")
    command = "python -m ddlib " + " ".join(sys.argv[1:]) if args.command_line is None else args.command_line
    start = time.perf_counter()
    ds = _load_dataset(args, spec)
    if max(indices) >= len(ds.train_y) or min(indices) < 0:
        raise ParamError(f"selection indices reach {max(indices)} but the training set has {len(ds.train_y)} images; "
                         "is it the same dataset and per-class subsample?")
    teacher = train_teacher(ds, tcfg, device=args.device, progress=not args.quiet) if scfg.loss == "kd" else None
    res = evaluate_selection(ds, indices, scfg, list(range(n_seeds)), teacher=teacher, teacher_cfg=tcfg,
                             ipc=sel.get("ipc"), device=args.device, progress=not args.quiet)
    obj = {"selection": str(sel_path), "method": sel.get("method"), "ipc": sel.get("ipc"),
           "dataset": ds.spec, **res, "selection_seconds": (sel.get("seconds") or {}).get("selection"),
           "provenance": {**provenance(command), "wall_seconds": time.perf_counter() - start}}
    write_json_atomic(out, obj)
    print(f"{out}  accuracy {res['mean'] * 100:.2f} ± {res['std'] * 100:.2f} % over {n_seeds} seed(s)")
    return 0


# ----------------------------------------------------------------------------- parsers
def add_commands(sub: argparse._SubParsersAction) -> dict:
    from ddlib.bps.pipeline import METHODS

    p = sub.add_parser("select", help="BPS or a baseline coreset for every IPC, from one modelling")
    _add_data_args(p)
    p.add_argument("--method", required=True, help=f"one or more (comma-separated) of {', '.join(METHODS)}")
    p.add_argument("--ipc", default="10", help="images per class, comma-separated (e.g. 1,10,50)")
    p.add_argument("--seed", type=int, default=0, help="selection seed (random, k-center, ties)")
    p.add_argument("--out", required=True, help="folder for <method>_ipc<k>.json")
    g = p.add_argument_group("Stage 1 encoder (defaults: METHODS.md, ResNet-18, 30 epochs)")
    g.add_argument("--encoder-backbone", default=None, help="resnet18 | convnet")
    g.add_argument("--encoder-width", type=int, default=None, help="ConvNet width")
    g.add_argument("--encoder-depth", type=int, default=None, help="ConvNet depth")
    g.add_argument("--encoder-epochs", type=int, default=None)
    g.add_argument("--encoder-batch", type=int, default=None)
    g.add_argument("--encoder-warmup", type=int, default=None, help="lr warm-up epochs")
    g.add_argument("--clu-warmup", type=int, default=None, help="epochs before L_clu starts")
    g.add_argument("--queue-size", type=int, default=None)
    g.add_argument("--knn-k", type=int, default=None)
    g.add_argument("--min-sim", type=float, default=None)
    g.add_argument("--k-ratio", type=float, default=None, help="margin candidate share (0.1; 0.2 noisy data)")
    g.add_argument("--centre-frac", type=float, default=None,
                   help="share of each pattern's budget taken at its centre (0.5; 1 = centres only, 0 = margins)")
    g.add_argument("--gmm-backend", default=None, help="sklearn (the reference, default) | numpy (faster)")
    _add_teacher_args(p)
    g.add_argument("--forgetting-epochs", type=int, default=None, help="default: the teacher's epochs")
    g.add_argument("--el2n-epoch", type=int, default=None, help="EL2N fallback read after this epoch (20)")
    p.set_defaults(command_line=None)

    e = sub.add_parser("evaluate", help="train students on a selection; test accuracy over seeds")
    _add_data_args(e)
    e.add_argument("--selection", required=True, help="a JSON written by 'select'")
    e.add_argument("--seeds", type=int, default=3, help="number of student runs (seeds 0..N-1)")
    e.add_argument("--out", required=True, help="result JSON file")
    g = e.add_argument_group("student (defaults: the reference KD protocol)")
    g.add_argument("--student-model", default=None, help="default: the teacher's architecture")
    g.add_argument("--width", type=int, default=None)
    g.add_argument("--depth", type=int, default=None)
    g.add_argument("--loss", default=None, help="kd | ce")
    g.add_argument("--epochs", type=int, default=None)
    g.add_argument("--lr", type=float, default=None)
    g.add_argument("--temperature", type=float, default=None)
    g.add_argument("--min-crop", type=float, default=None, help="default: the IPC table")
    g.add_argument("--batch-size", type=int, default=None, help="default: the IPC table")
    g.add_argument("--last-epochs", type=int, default=None, help="best of the last N epochs (21)")
    _add_teacher_args(e)
    e.set_defaults(command_line=None)
    return {"select": _select, "evaluate": _evaluate}


__all__ = ["add_commands", "parse_ints", "write_json_atomic", "config_dict"]
