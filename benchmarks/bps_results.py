"""BPS vs every baseline through the CLI; one JSON under results/ with provenance.

    # CPU (recorded in results/bps_fashion-mnist_cpu.json; about an hour on 2 cores)
    .venv/bin/python benchmarks/bps_results.py [--per-class 500] [--ipc 10,50] [--seeds 3]
    # GPU: CIFAR-10 (JPEG copy), ResNet-18 encoder, teacher and students, the reference settings
    # with the teacher's and students' epochs reduced (recorded in the JSON)
    python benchmarks/bps_results.py --scale gpu --dataset cifar10:data/cifar10-jpeg.tar.xz

Runs ``python -m ddlib select`` once (one modelling, every method, every IPC) and
``python -m ddlib evaluate`` for each selection (the same KD protocol for all), then gathers
accuracy, selection time, centre share, fill distance and MMD into
``results/bps_<dataset>_<cpu|gpu>.json``. ``--scale cpu`` scales the budgets down (ConvNet width 32
instead of ResNet-18, few epochs, a per-class subsample); ``--scale gpu`` keeps ResNet-18 and every
Stage-1/2 hyperparameter of METHODS.md on all images. Each scale's values are the defaults of the
options below (given options win); the record holds them all. ``--resume`` reuses the selections
and evaluations already written under ``--work`` (a run split over several sessions).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


# per scale: the defaults of the options (None = the library's reference value / all images)
SCALES = {
    "cpu": dict(dataset="fashion-mnist", per_class=500, test_per_class=200, model="convnet", width=32,
                encoder_epochs=10, teacher_epochs=15, student_epochs=60, last_epochs=10,
                encoder_extra=["--encoder-batch", "128", "--queue-size", "2048", "--encoder-warmup", "1",
                               "--clu-warmup", "3"]),
    # reference: encoder 30 epochs (kept), teacher 200 and students 500 epochs (reduced to fit the device time)
    "gpu": dict(dataset="cifar10", per_class=None, test_per_class=None, model="resnet18", width=None,
                encoder_epochs=30, teacher_epochs=60, student_epochs=150, last_epochs=21, encoder_extra=[]),
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", choices=sorted(SCALES), default="cpu", help="the budget profile (defaults below)")
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--per-class", type=int, default=None)
    ap.add_argument("--test-per-class", type=int, default=None)
    ap.add_argument("--ipc", default="10,50")
    ap.add_argument("--methods", default=None, help="comma-separated (default: every method)")
    ap.add_argument("--centre-frac", type=float, default=None,
                    help="BPS's centre share of each pattern's budget (default 0.5, the reference); an ablation")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--width", type=int, default=None, help="ConvNet width (cpu scale)")
    ap.add_argument("--encoder-epochs", type=int, default=None)
    ap.add_argument("--teacher-epochs", type=int, default=None)
    ap.add_argument("--student-epochs", type=int, default=None)
    ap.add_argument("--last-epochs", type=int, default=None)
    ap.add_argument("--work", default=None, help="default out/bps_<scale>")
    ap.add_argument("--out", default=None)
    ap.add_argument("--resume", action="store_true", help="reuse selections and evaluations already in --work")
    ap.add_argument("--notes", default="", help="free text recorded with the result")
    ap.add_argument("--gather", action="store_true", help="only gather what is in --work (missing evaluations listed)")
    a = ap.parse_args()
    prof = SCALES[a.scale]
    for opt in ("dataset", "per_class", "test_per_class", "width", "encoder_epochs", "teacher_epochs",
                "student_epochs", "last_epochs"):
        if getattr(a, opt) is None:
            setattr(a, opt, prof[opt])
    a.work = a.work or str(ROOT / "out" / f"bps_{a.scale}")

    from ddlib.bps.pipeline import METHODS
    from ddlib.cli import main as cli
    from ddlib.artifacts import write_json_atomic
    from ddlib.utils import provenance

    work = Path(a.work)
    tag = a.dataset.split(":")[0].split("/")[-1]
    marked = "GPU" if torch.cuda.is_available() else "CPU"
    out = Path(a.out) if a.out else ROOT / "results" / f"bps_{tag}_{marked.lower()}.json"
    common = ["--dataset", a.dataset, "--quiet"]
    for opt in ("per_class", "test_per_class"):
        if getattr(a, opt) is not None:
            common += ["--" + opt.replace("_", "-"), str(getattr(a, opt))]
    arch = ["--teacher-model", prof["model"]]
    enc = ["--encoder-backbone", prof["model"]]
    if prof["model"] == "convnet":
        arch += ["--teacher-width", str(a.width), "--teacher-depth", "3"]
        enc += ["--encoder-width", str(a.width), "--encoder-depth", "3"]
    model = [*arch, "--teacher-epochs", str(a.teacher_epochs)]
    methods = a.methods.split(",") if a.methods else list(METHODS)
    select = ["select", *common, "--method", ",".join(methods), "--ipc", a.ipc, "--seed", "0",
              "--out", str(work / "selections"), *enc, "--encoder-epochs", str(a.encoder_epochs),
              *prof["encoder_extra"], *model]
    if a.centre_frac is not None:
        select += ["--centre-frac", str(a.centre_frac)]
    start = time.perf_counter()
    ipcs = [int(v) for v in a.ipc.split(",")]
    have = all((work / "selections" / f"{m}_ipc{k}.json").exists() for m in methods for k in ipcs)
    if not ((a.resume or a.gather) and have) and cli(select) != 0:
        return 1
    sel0 = json.loads((work / "selections" / f"{methods[0]}_ipc{ipcs[0]}.json").read_text())
    select_wall = sel0["provenance"]["wall_seconds"]
    rows, missing = [], []
    for m in methods:
        for k in ipcs:
            sel_file = work / "selections" / f"{m}_ipc{k}.json"
            res_file = work / "evaluations" / f"{m}_ipc{k}.json"
            argv = ["evaluate", *common, "--selection", str(sel_file), "--seeds", str(a.seeds), "--out", str(res_file),
                    "--epochs", str(a.student_epochs), "--last-epochs", str(a.last_epochs)]
            if a.gather and not res_file.exists():
                missing.append(f"{m}_ipc{k}")
                continue
            if not ((a.resume or a.gather) and res_file.exists()) and cli(argv) != 0:
                return 1
            sel, res = json.loads(sel_file.read_text()), json.loads(res_file.read_text())
            rows.append({"method": m, "ipc": k, "mean": res["mean"], "std": res["std"], "per_seed": res["per_seed"],
                         "selection_seconds": sel["seconds"]["selection"], "student_seconds": res["seconds"],
                         "forgetting_score": sel["config"]["selection"].get("score"),
                         "evaluate_wall_seconds": res["provenance"]["wall_seconds"],
                         "evaluate_command": res["provenance"]["command"],
                         "student_config": res["config"]})
    # selection metrics in the shared embedding space (the cached modelling of the select run)
    from ddlib import data, metrics
    from ddlib.bps.encoder import model_patterns
    from ddlib.cli import build_parser
    from ddlib.cli_bps import _pipeline_cfg

    cfg = _pipeline_cfg(build_parser()[0].parse_args(select))
    ds = data.load(a.dataset, per_class=a.per_class, test_per_class=a.test_per_class)
    mp = model_patterns(ds, cfg.encoder, cfg.pattern, progress=False)
    for r in rows:
        idx = json.loads((work / "selections" / f"{r['method']}_ipc{r['ipc']}.json").read_text())["indices"]
        roles = metrics.assign_roles(mp["embeddings"], ds.train_y, idx, mp["patterns"])
        r["centre_share"] = metrics.centre_margin_share(roles)["centre"]
        r["fill_distance"] = metrics.fill_distance(mp["embeddings"], ds.train_y, idx)["mean"]
        r["mmd"] = metrics.mmd(mp["embeddings"], ds.train_y, idx)["mean"]
        r["pattern_coverage"] = metrics.pattern_coverage(ds.train_y, idx, mp["patterns"])
    what = ("BPS vs baselines, KD students, CPU scale (scaled-down budgets, not the reference's)" if a.scale == "cpu"
            else "BPS vs baselines, KD students, ResNet-18 at the reference settings (teacher and student epochs "
                 f"reduced: {a.teacher_epochs} of 200 and {a.student_epochs} of 500)")
    if a.centre_frac is not None:
        what += f"; BPS centre share {a.centre_frac} of each pattern's budget (reference 0.5)"
    record = {"what": what, "scale": a.scale,
              "dataset": ds.spec, "teacher_acc": sel0["teacher_acc"],
              "num_patterns": sel0["modelling"]["num_patterns"], "budgets": vars(a),
              "select_command": "python -m ddlib " + " ".join(select), "select_wall_seconds": select_wall,
              "shared_seconds": {k: v for k, v in sel0["seconds"].items() if k.startswith("shared")},
              "notes": a.notes, "rows": rows, "missing": missing,
              "pipeline_wall_seconds": select_wall + sum(r["evaluate_wall_seconds"] for r in rows),
              "provenance": {**provenance(" ".join(["python", *sys.argv])), "marked": marked,
                             "threads": torch.get_num_threads(), "wall_seconds": time.perf_counter() - start}}
    write_json_atomic(out, record)
    for r in rows:
        print(f"{r['method']:>10} ipc {r['ipc']:>3}: {100 * r['mean']:.2f} ± {100 * r['std']:.2f} %  "
              f"centre {r['centre_share']:.2f}  fill {r['fill_distance']:.3f}  mmd {r['mmd']:.4f}  "
              f"select {1000 * r['selection_seconds']:.1f} ms")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
