"""Sub-commands of BPS: ``select`` (Stage 1 + 2, any method, every IPC) and ``evaluate`` (Stage 3).

    python -m ddlib select --dataset D --method bps|random|herding|kcenter|forgetting|centroids \\
        --ipc 1,10,50 --seed S [--scale test|cpu|gpu] --out DIR     # writes DIR/<method>_ipc<k>.json
    python -m ddlib evaluate --selection FILE [--scale ...] --out FILE.json

The settings are a preset of :func:`ddlib.presets.bps` (``--scale``; without it the reference's
full-scale settings), and every option overrides it. A selection file records the dataset spec and
the teacher config, and ``evaluate`` reuses them unless told otherwise (it refuses a dataset that does
not match the selection's); the student takes the teacher's architecture unless ``--student-model``
names another. Every parameter is checked before any work; outputs are written atomically by
:func:`ddlib.results.write`, all at the end, so a failed run leaves nothing half-written.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ddlib import distributed, models
from ddlib.cli import common
from ddlib.preflight import Output
from ddlib.utils import ParamError, check_int, check_ipc

#: the output options (:data:`ddlib.cli.OUTPUTS`): a folder of selections, one file per method, IPC and seed (so
#: those three may differ between runs into one folder, nothing else may), and a result file
OUTPUTS = {"select": (Output("out", "folder", results=("*_ipc*_seed*.json",),
                             varies=("methods", "ipcs", "selection_seed")),),
           "evaluate": (Output("out", "file"),)}


def _load_dataset(args: argparse.Namespace, name, per_class, test_per_class, seed, image_size=None,
                  recorded: dict | None = None):  # noqa: ANN001, ANN202
    from ddlib import data

    return data.load(name, per_class=per_class, seed=seed, test_per_class=test_per_class,
                     **_folder_options(args, image_size, recorded))


def _folder_options(args: argparse.Namespace, image_size=None, recorded: dict | None = None) -> dict:  # noqa: ANN001
    """The folder loaders' options the command was given (else as recorded with the selection): ``image_size``,
    ``channels`` (1 or 3: convert mixed grey/RGB folders that way) and ``stream`` (decode from disk as drawn)."""
    recorded = recorded or {}
    kw = {}
    if args.image_size is not None:
        kw["image_size"] = check_int("image_size", args.image_size, 1, 4096)
    elif image_size is not None:  # as recorded with the selection
        kw["image_size"] = image_size
    channels = args.channels if args.channels is not None else recorded.get("channels")
    if channels is not None:
        kw["channels"] = channels
    if args.stream or recorded.get("stream"):
        kw["stream"] = True
    return kw


def _add_data_args(p: argparse.ArgumentParser, ref) -> None:  # noqa: ANN001
    p.add_argument("--dataset", default=None, help="a registry name or imagefolder:PATH / cifar10:PATH (default: "
                                                   "the preset's; for evaluate the selection's)")
    common.add_scale(p)
    p.add_argument("--per-class", type=int, default=None, help="training images per class (subsample)")
    p.add_argument("--test-per-class", type=int, default=None, help="test images per class (subsample)")
    p.add_argument("--data-seed", type=int, default=None, help=f"seed of the subsampling (default {ref.data_seed})")
    p.add_argument("--image-size", type=int, default=None, help="resize folder images to N x N")
    p.add_argument("--channels", type=int, choices=(1, 3), default=None,
                   help="folder images: convert every image to 1 (grey) or 3 (RGB) channels (default: the channel "
                        "count most images have)")
    p.add_argument("--stream", action="store_true",
                   help="folder images: decode from disk as batches are drawn instead of holding every image in "
                        "memory (automatic above ddlib.data.folder.STREAM_ABOVE_BYTES)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when present)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_teacher_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("teacher (full data; defaults: the preset's, at the reference the ResNet-18 recipe)")
    g.add_argument("--teacher-model", default=None, help=" | ".join(models.model_names()))
    g.add_argument("--teacher-width", type=int, default=None)
    g.add_argument("--teacher-depth", type=int, default=None)
    g.add_argument("--teacher-epochs", type=int, default=None)
    g.add_argument("--teacher-batch", type=int, default=None)
    g.add_argument("--teacher-lr", type=float, default=None)


# ----------------------------------------------------------------------------- select
def _select(args: argparse.Namespace) -> int:
    from ddlib import identity, presets, results
    from ddlib.bps.pipeline import load_datasets, run_selection
    from ddlib.selectors import names
    from ddlib.utils import get_device, seed_everything

    # every check before any work
    ov = common.overrides(args, "bps")
    if args.ipcs is not None:
        ov["ipcs"] = common.parse_ints("ipc", args.ipcs)
    p = presets.bps(args.scale, **ov)
    name = common.dataset(p.dataset)
    if p.methods is None:
        raise ParamError(f"method is not given; name one or more (comma-separated) of {list(names())}")
    cfg = p.pipeline
    get_device(args.device)  # before any work, also when every artifact would come from the cache
    out = Path(args.out)  # checked and claimed by the pre-flight (ddlib.cli.main)
    start = time.perf_counter()
    kw = _folder_options(args)
    d = load_datasets(name, per_class=p.per_class, teacher_per_class=p.teacher_per_class,
                      encoder_per_class=p.encoder_per_class, test_per_class=p.test_per_class,
                      modelling_test_per_class=p.test_per_class, seed=p.data_seed, **kw)
    ds = d["pool"]
    for k in p.ipcs:  # before Stage 1: an IPC no class can give stops here, naming the class
        try:
            check_ipc(k, ds.train_y, list(ds.classes), args.allow_fewer)
        except ParamError as e:
            raise ParamError(f"{str(e).replace('pass cap=True', 'pass --allow-fewer')}") from None
    seed_everything(p.seed)
    res = run_selection(ds, p.methods, p.ipcs, p.seed, cfg, device=args.device, progress=not args.quiet,
                        teacher_ds=d["teacher"], encoder_ds=d["encoder"], cap=args.allow_fewer)
    mod = res["modelling"]
    wall = time.perf_counter() - start
    ident = identity.of_dataset(ds)  # what evaluate checks the selection against
    files = {}
    for m, per_ipc in res["selections"].items():
        for k, sel in per_ipc.items():
            # the name carries what tells two selections of one folder apart: another seed never overwrites
            files[out / f"{m}_ipc{k}_seed{p.seed}.json"] = dict(
                what=f"{m} selection at IPC {k} (python -m ddlib select)",
                config={"selection": sel["config"], **cfg.as_dict()}, rows=[],
                timings={"wall_s": wall, "selection": sel["seconds"],
                         **{f"shared_{a}": b for a, b in mod["seconds"].items()}},
                method=m, ipc=k, seed=p.seed, dataset=ds.spec, dataset_name=ds.name, indices=sel["indices"],
                pattern=sel["pattern"], role=sel["role"], teacher_acc=mod["teacher_acc"], modelling=mod["info"],
                per_class_selected=_per_class_counts(ds, sel["indices"]), capped=sel["config"].get("capped", {}),
                teacher_dataset=d["teacher"].spec, encoder_dataset=d["encoder"].spec, identity=ident)
    command = common.command(args)
    for path, rec in files.items():
        results.write(path, command=command, settings=common.settings(args), **rec)
    for path, rec in files.items() if distributed.is_main() else ():
        print(f"{path}  {len(rec['indices'])} images  selection {rec['timings']['selection'] * 1000:.1f} ms")
    return 0


def _per_class_counts(ds, indices: list[int]) -> dict[str, int]:
    """How many images the selection holds of each class, by class name (what a capped selection really holds)."""
    import numpy as np

    counts = np.bincount(ds.train_y[indices].numpy(), minlength=ds.num_classes) if indices else np.zeros(ds.num_classes, int)
    return {name: int(n) for name, n in zip(ds.classes, counts)}


# ----------------------------------------------------------------------------- evaluate
#: the fields of a selection record ``evaluate`` reads, and the JSON types each may have (None: absent)
SELECT = "'python -m ddlib select'"
SELECTION_FIELDS = {"indices": (list,), "dataset": (dict, type(None)), "config": (dict, type(None)),
                    "teacher_dataset": (dict, type(None)), "identity": (dict, type(None)), "ipc": (int, type(None)),
                    "method": (str, type(None)), "timings": (dict, type(None)), "per_class_selected": (dict, type(None))}


def read_selection(path: Path) -> dict:
    """The selection record at ``path`` (written by ``select``); a missing, unreadable or malformed file is
    named in one line (FileNotFoundError or ParamError), never a JSON traceback."""
    if not path.is_file():
        raise FileNotFoundError(f"selection={str(path)!r} is not a file; give a JSON written by {SELECT}")
    try:
        sel = json.loads(path.read_text())
    except (OSError, ValueError) as e:  # unreadable, not UTF-8, not JSON
        first = (str(e).splitlines() or [""])[0]
        raise ParamError(f"selection={str(path)!r} cannot be read as JSON ({type(e).__name__}: {first}); give a JSON "
                         f"written by {SELECT}") from None
    if not isinstance(sel, dict) or "indices" not in sel:
        raise ParamError(f"selection={str(path)!r} is not a selection JSON with 'indices'; give a JSON written by "
                         f"{SELECT}")
    for key, kinds in SELECTION_FIELDS.items():
        if not isinstance(sel.get(key), kinds) or isinstance(sel.get(key), bool):
            raise ParamError(f"selection={str(path)!r}: its {key!r} is {type(sel.get(key)).__name__}, not "
                             f"{' or '.join(k.__name__ for k in kinds if k is not type(None))}; give a JSON written "
                             f"by {SELECT}")
    for key in ("teacher", "forgetting"):
        if not isinstance((sel.get("config") or {}).get(key), (dict, type(None))):
            raise ParamError(f"selection={str(path)!r}: its config's {key!r} is not an object")
    return sel


def _evaluate(args: argparse.Namespace) -> int:
    from ddlib import data, identity, presets, results
    from ddlib.bps.distill import TeacherConfig, evaluate_selection, train_teacher
    from ddlib.utils import get_device, validate_indices

    if args.dataset is not None:
        data.validate_name(args.dataset)
    sel_path = Path(args.selection)
    sel = read_selection(sel_path)
    raw = sel["indices"]
    get_device(args.device)  # before any work
    spec = sel.get("dataset") or {}
    if args.dataset is not None and spec.get("name") not in (None, args.dataset):
        raise ParamError(f"dataset={args.dataset!r} does not match the selection's dataset {spec.get('name')!r}")
    name = data.validate_name(common.dataset(args.dataset or spec.get("name"), "the selection"))
    for opt, key in (("per_class", "per_class"), ("data_seed", "seed")):
        given = getattr(args, opt)
        if given is not None and spec.get(key) is not None and given != spec.get(key):
            raise ParamError(f"{opt.replace('_', '-')}={given} differs from the selection's {key}={spec.get(key)}; "
                             "the indices refer to the selection's subsample")
    ov = common.overrides(args, "bps")
    ov.pop("dataset", None)  # the selection's
    p = presets.bps(args.scale, **ov)
    base_t = (sel.get("config") or {}).get("teacher")  # the teacher the selection used, unless told otherwise
    try:
        tcfg = p.teacher if base_t is None else TeacherConfig(**{**base_t, **presets.fields("bps", "teacher", ov)})
    except TypeError as e:  # a teacher config of fields this version does not know
        raise ParamError(f"selection={str(sel_path)!r}: its teacher config cannot be read ({e})") from None
    scfg = presets.student_for(tcfg, p.student, ov)
    out = Path(args.out)  # checked and claimed by the pre-flight (ddlib.cli.main)
    start = time.perf_counter()
    ds = _load_dataset(args, name, spec.get("per_class") if args.per_class is None else args.per_class,
                       spec.get("test_per_class") if args.test_per_class is None else args.test_per_class,
                       spec.get("seed", 0) if args.data_seed is None else args.data_seed, spec.get("image_size"),
                       recorded=spec)
    recorded = sel.get("identity") or {"dataset": identity.dataset_name(spec),
                                        "classes": list(sel.get("per_class_selected") or {}) or None}
    identity.check(f"selection={str(sel_path)!r}", recorded, identity.of_dataset(ds),
                   "evaluate it on the data it was selected from (its dataset, --per-class and --data-seed)",
                   fields=("dataset", "classes", "channels", "n_train")
                   + (("image_size",) if args.image_size is None else ()))
    try:
        indices = validate_indices(raw, len(ds.train_y), name="selection indices")
    except ParamError as e:
        raise ParamError(f"{e} (in {sel_path}; is it the same dataset and per-class subsample?)") from None
    teacher = None
    if scfg.loss == "kd":  # the teacher learns from its own data, as at selection time
        tspec = sel.get("teacher_dataset") or spec
        tds = ds if tspec == ds.spec else _load_dataset(
            args, name, tspec.get("per_class"), tspec.get("test_per_class"), tspec.get("seed", 0), spec.get("image_size"),
            recorded=spec)
        forg = (sel.get("config") or {}).get("forgetting") or {}
        el2n = forg.get("el2n_epoch") if forg.get("source") == "teacher" else None  # the selection's own teacher
        teacher = train_teacher(tds, tcfg, device=args.device, progress=not args.quiet, el2n_epoch=el2n)
    res = evaluate_selection(ds, indices, scfg, list(range(p.seeds)), teacher=teacher, teacher_cfg=tcfg,
                             ipc=sel.get("ipc"), device=args.device, progress=not args.quiet)
    sel_timings = sel.get("timings") or sel.get("seconds") or {}
    row = {"method": sel.get("method"), "dataset": results.dataset_label(ds.name), "ipc": sel.get("ipc"),
           "protocol": f"{scfg.loss} student ({scfg.model})", "mean": res["mean"], "std": res["std"],
           "per_seed": res["per_seed"], "seeds": res["seeds"], "last_acc": res["last_acc"],
           "n_images": res["n_images"], "student_seconds": res["seconds"],
           "selection_seconds": sel_timings.get("selection")}
    results.write(out, what=f"students trained on the {sel.get('method')} selection at IPC {sel.get('ipc')} "
                            "(python -m ddlib evaluate)",
                  config={"student": res["config"], "teacher": tcfg if scfg.loss == "kd" else None}, rows=[row],
                  timings={"wall_s": time.perf_counter() - start}, command=common.command(args),
                  selection=str(sel_path), dataset=ds.spec, teacher=res["teacher"], settings=common.settings(args))
    if distributed.is_main():
        print(f"{out}  accuracy {res['mean'] * 100:.2f} ± {res['std'] * 100:.2f} % over {p.seeds} seed(s)")
    return 0


# ----------------------------------------------------------------------------- parsers
def add_commands(sub: argparse._SubParsersAction) -> dict:
    from ddlib import presets
    from ddlib.selectors import names

    ref = presets.bps(None)  # the defaults below, named in the help from their one home
    p = sub.add_parser("select", help="BPS or a baseline coreset for every IPC, from one modelling")
    _add_data_args(p, ref)
    p.add_argument("--method", metavar="METHOD", dest="methods", default=None,
                   help=f"one or more (comma-separated) of {', '.join(names())} (default: the preset's)")
    p.add_argument("--ipc", metavar="IPC", dest="ipcs", default=None,
                   help="images per class, comma-separated (e.g. 1,10,50; default: the preset's, "
                        f"{','.join(map(str, ref.ipcs))} at the reference)")
    p.add_argument("--seed", metavar="SEED", dest="selection_seed", type=int, default=None,
                   help=f"selection seed (random, k-center, ties; default {ref.seed})")
    p.add_argument("--out", required=True, help="folder for <method>_ipc<k>_seed<s>.json")
    common.add_overwrite(p)
    p.add_argument("--allow-fewer", action="store_true",
                   help="take a class smaller than the IPC whole instead of stopping (the record's per_class_selected "
                        "and capped say what it holds)")
    p.add_argument("--teacher-per-class", type=int, default=None,
                   help="training images per class the teacher and the forgetting run learn from (default: the "
                        "preset's; all of them at the reference)")
    p.add_argument("--encoder-per-class", type=int, default=None,
                   help="training images per class Stage 1 learns from (default: the pool, --per-class)")
    g = p.add_argument_group("Stage 1 encoder (defaults: the preset's, at the reference METHODS.md's: ResNet-18, "
                             "30 epochs)")
    g.add_argument("--encoder-backbone", default=None,
                   help=f"{' | '.join(models.names())} (resnet18-imagenet with --encoder-weights imagenet "
                        "--input-size 224: the reference's)")
    g.add_argument("--encoder-weights", default=None, help="imagenet (pretrained) | a weights file (default: none)")
    g.add_argument("--input-size", type=int, default=None, help="resize images to N px before the encoder (ref.: 224)")
    g.add_argument("--freeze-backbone", action="store_const", const=True, default=None,
                   help="keep a pretrained backbone frozen; train a neck and the heads on cached features")
    g.add_argument("--clu-assign", default=None, help="all (the reference) | own_class")
    g.add_argument("--clu-refresh", default=None, help="wrap (the reference) | epoch")
    g.add_argument("--encoder-width", type=int, default=None, help="ConvNet width")
    g.add_argument("--encoder-depth", type=int, default=None, help="ConvNet depth")
    g.add_argument("--encoder-epochs", type=int, default=None)
    g.add_argument("--encoder-batch", type=int, default=None)
    g.add_argument("--encoder-warmup", metavar="ENCODER_WARMUP", dest="warmup_epochs", type=int, default=None, help="lr warm-up epochs")
    g.add_argument("--clu-warmup", metavar="CLU_WARMUP", dest="clu_warmup_epochs", type=int, default=None, help="epochs before L_clu starts")
    g.add_argument("--queue-size", type=int, default=None)
    g.add_argument("--knn-k", type=int, default=None)
    g.add_argument("--min-sim", metavar="MIN_SIM", dest="knn_min_sim", type=float, default=None)
    g.add_argument("--k-ratio", type=float, default=None, help=f"margin candidate share ({ref.select.k_ratio:g}; 0.2 noisy data)")
    g.add_argument("--centre-frac", type=float, default=None,
                   help=f"share of each pattern's budget taken at its centre ({ref.select.centre_frac:g}; 1 = centres only, "
                        "0 = margins)")
    g.add_argument("--gmm-backend", default=None, help="numpy (default: a batched replica of scikit-learn's fit, the same picks) | sklearn (the reference's own)")
    _add_teacher_args(p)
    g.add_argument("--forgetting-epochs", type=int, default=None, help="default: the teacher's epochs")
    g.add_argument("--el2n-epoch", type=int, default=None, help=f"EL2N fallback read after this epoch ({ref.forgetting.el2n_epoch})")
    g.add_argument("--forgetting-recipe", default=None,
                   help="the forgetting baseline's scoring run: deepcore (a run of its own, DeepCore's recipe: 40 "
                        "epochs, constant lr 0.1, Nesterov, batch 256, no augmentation; the reference's) | teacher "
                        "(its events counted on the teacher's own run)")
    g.add_argument("--never-learned", default=None,
                   help="forgetting score of images never classified correctly: deepcore (0 events, sorted last; "
                        "the default) | toneva (infinitely many, taken first)")

    e = sub.add_parser("evaluate", help="train students on a selection; test accuracy over seeds")
    _add_data_args(e, ref)
    e.add_argument("--selection", required=True, help="a JSON written by 'select'")
    e.add_argument("--seeds", type=int, default=None,
                   help=f"number of student runs (seeds 0..N-1; default: the preset's, {ref.seeds} at the reference)")
    e.add_argument("--out", required=True, help="result JSON file")
    common.add_overwrite(e)
    g = e.add_argument_group("student (defaults: the preset's, at the reference the KD protocol)")
    g.add_argument("--student-model", default=None,
                   help=f"{' | '.join(models.model_names())} (default: the teacher's architecture)")
    g.add_argument("--width", metavar="WIDTH", dest="student_width", type=int, default=None)
    g.add_argument("--depth", metavar="DEPTH", dest="student_depth", type=int, default=None)
    g.add_argument("--loss", default=None, help="kd | ce")
    g.add_argument("--epochs", metavar="EPOCHS", dest="student_epochs", type=int, default=None)
    g.add_argument("--lr", metavar="LR", dest="student_lr", type=float, default=None)
    g.add_argument("--temperature", type=float, default=None)
    g.add_argument("--min-crop", type=float, default=None, help="default: the IPC table")
    g.add_argument("--batch-size", metavar="BATCH_SIZE", dest="student_batch", type=int, default=None, help="default: the IPC table")
    g.add_argument("--last-epochs", type=int, default=None, help=f"best of the last N epochs ({ref.student.last_epochs})")
    _add_teacher_args(e)
    return {"select": _select, "evaluate": _evaluate}
