"""BPS vs every baseline through the CLI; one JSON under results/ with provenance.

    # CPU (recorded in results/bps_fashion-mnist_cpu.json; about an hour on 2 cores)
    .venv/bin/python benchmarks/bps_results.py [--per-class 500] [--ipc 10,50] [--seeds 3]
    # GPU: CIFAR-10 (JPEG copy), ResNet-18 encoder, teacher and students, the reference settings
    # with the teacher's and students' epochs reduced (recorded in the JSON)
    python benchmarks/bps_results.py --scale gpu --dataset cifar10:data/cifar10-jpeg.tar.xz

Runs ``python -m ddlib select --scale S`` once (one modelling, every method, every IPC) and
``python -m ddlib evaluate --scale S`` for each selection (the same KD protocol for all), then gathers
accuracy, selection time, centre share, fill distance and MMD into ``results/bps_<dataset>_<cpu|gpu>.json``
(:func:`ddlib.results.write`). The settings are ``ddlib.presets.bps(S)`` with this benchmark's budget
(:data:`BUDGET`: larger subsamples, longer training and 3 seeds at ``cpu``; CIFAR-10 with the teacher's
and students' epochs reduced at ``gpu``), then the options given; the record holds them all.
``--resume`` reuses the selections and evaluations already written under ``--work`` (a run split over
several sessions); ``--gather`` only gathers them. A record that reuses earlier runs says so
(``timings.cached``, their time under ``original_wall_s``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

#: per scale: this benchmark's budget over ``ddlib.presets.bps(scale)`` (flat preset names)
BUDGET = {
    "cpu": dict(per_class=500, test_per_class=200, teacher_epochs=15, student_epochs=60, last_epochs=10, seeds=3,
                ipcs=[10, 50]),
    # reference: teacher 200 and students 500 epochs (reduced to fit the device time)
    "gpu": dict(dataset="cifar10", teacher_epochs=60, student_epochs=150, ipcs=[10, 50]),
}
#: the preset names this script's options set (None: the budget's, else the preset's)
OPTIONS = ("dataset", "per_class", "test_per_class", "ipcs", "methods", "centre_frac", "seeds", "encoder_epochs",
           "teacher_epochs", "student_epochs", "last_epochs")
SELECT_ONLY = ("methods", "ipcs", "centre_frac", "encoder_epochs", "teacher_epochs", "encoder_width", "teacher_width")
EVALUATE_ONLY = ("seeds", "student_epochs", "last_epochs")


def _timing(rec: dict, key: str = "wall_s") -> float:
    """A CLI record's time (records written before ddlib.results.write kept it elsewhere)."""
    if "timings" in rec:
        return rec["timings"][key]
    return rec["provenance"]["wall_seconds"] if key == "wall_s" else rec["seconds"][key]


def _evaluation(res: dict) -> tuple[dict, dict]:
    """An evaluate record's accuracy row and student config (older records kept them at the top level)."""
    if "rows" in res:
        return res["rows"][0], res["config"]["student"]
    st = res["config"]
    return ({"protocol": f"{st['loss']} student ({st['model']})", "mean": res["mean"], "std": res["std"],
             "per_seed": res["per_seed"], "seeds": res.get("seeds"), "student_seconds": res["seconds"]}, st)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", choices=sorted(BUDGET), default="cpu", help="the preset and budget (see BUDGET)")
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--per-class", type=int, default=None)
    ap.add_argument("--test-per-class", type=int, default=None)
    ap.add_argument("--ipc", dest="ipcs", default=None, help="comma-separated (default: the budget's, 10,50)")
    ap.add_argument("--methods", default=None, help="comma-separated (default: every method)")
    ap.add_argument("--centre-frac", type=float, default=None,
                    help="BPS's centre share of each pattern's budget (default 0.5, the reference); an ablation")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--width", type=int, default=None, help="ConvNet width of the encoder, teacher and students")
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
    a.work = a.work or str(ROOT / "out" / f"bps_{a.scale}")

    from ddlib import data, metrics, presets, results
    from ddlib.bps.encoder import model_patterns
    from ddlib.cli import argv_for
    from ddlib.cli import main as cli
    from ddlib.cli.common import parse_ints

    given = {k: getattr(a, k) for k in OPTIONS if getattr(a, k) is not None}
    if "ipcs" in given:
        given["ipcs"] = parse_ints("ipc", given["ipcs"])
    if a.width is not None:  # the chapters' width: encoder, teacher and (following it) the students
        given.update(encoder_width=a.width, teacher_width=a.width)
    budget = {**BUDGET[a.scale], **given}
    p = presets.bps(a.scale, **budget)  # every check before any work
    methods, ipcs = list(p.methods), list(p.ipcs)
    work = Path(a.work)
    tag = data.split_name(p.dataset)[0].split("/")[-1]
    marked = "GPU" if torch.cuda.is_available() else "CPU"
    out = Path(a.out) if a.out else ROOT / "results" / f"bps_{tag}_{marked.lower()}.json"
    data_opts = argv_for("select", dataset=p.dataset, per_class=budget.get("per_class"),
                         test_per_class=budget.get("test_per_class"))
    common = ["--scale", a.scale, *data_opts, "--quiet"]
    select = ["select", *common, *argv_for("select", **{k: budget[k] for k in SELECT_ONLY if k in budget}),
              "--seed", "0", "--out", str(work / "selections")]
    start = time.perf_counter()
    have = all((work / "selections" / f"{m}_ipc{k}_seed0.json").exists() for m in methods for k in ipcs)
    reused = (a.resume or a.gather) and have
    if not reused and cli(select) != 0:
        return 1
    sel0 = json.loads((work / "selections" / f"{methods[0]}_ipc{ipcs[0]}_seed0.json").read_text())
    select_wall = _timing(sel0)
    rows, missing = [], []
    eval_opts = argv_for("evaluate", **{k: budget[k] for k in EVALUATE_ONLY if k in budget})
    for m in methods:
        for k in ipcs:
            sel_file = work / "selections" / f"{m}_ipc{k}_seed0.json"
            res_file = work / "evaluations" / f"{m}_ipc{k}.json"
            argv = ["evaluate", *common, "--selection", str(sel_file), *eval_opts, "--out", str(res_file)]
            if a.gather and not res_file.exists():
                missing.append(f"{m}_ipc{k}")
                continue
            if (a.resume or a.gather) and res_file.exists():
                reused = True
            elif cli(argv) != 0:
                return 1
            sel, res = json.loads(sel_file.read_text()), json.loads(res_file.read_text())
            r, st = _evaluation(res)
            rows.append({**r, "method": m, "ipc": k, "dataset": results.dataset_label(p.dataset),
                         "selection_seconds": _timing(sel, "selection"),
                         "forgetting_score": sel["config"]["selection"].get("score"),
                         "evaluate_wall_seconds": _timing(res), "evaluate_command": res["provenance"]["command"],
                         "student_config": st})
    # selection metrics in the shared embedding space (the cached modelling of the select run)
    ds = data.load(p.dataset, per_class=p.per_class, seed=p.data_seed, test_per_class=p.test_per_class)
    mp = model_patterns(ds, p.encoder, p.pattern, progress=False)
    for r in rows:
        idx = json.loads((work / "selections" / f"{r['method']}_ipc{r['ipc']}.json").read_text())["indices"]
        roles = metrics.assign_roles(mp["embeddings"], ds.train_y, idx, mp["patterns"])
        r["centre_share"] = metrics.centre_margin_share(roles)["centre"]
        r["fill_distance"] = metrics.fill_distance(mp["embeddings"], ds.train_y, idx)["mean"]
        r["mmd"] = metrics.mmd(mp["embeddings"], ds.train_y, idx)["mean"]
        r["pattern_coverage"] = metrics.pattern_coverage(ds.train_y, idx, mp["patterns"])
    what = ("BPS vs baselines, KD students, CPU scale (scaled-down budgets, not the reference's)" if a.scale == "cpu"
            else "BPS vs baselines, KD students, ResNet-18 at the reference settings (teacher and student epochs "
                 f"reduced: {p.teacher.epochs} of 200 and {p.student.epochs} of 500)")
    if a.centre_frac is not None:
        what += f"; BPS centre share {a.centre_frac} of each pattern's budget (reference 0.5)"
    pipeline_wall = select_wall + sum(r["evaluate_wall_seconds"] for r in rows)
    timings = {"wall_s": time.perf_counter() - start, "select_wall_seconds": select_wall,
               "shared_seconds": {k: v for k, v in (sel0.get("timings") or sel0.get("seconds")).items()
                                  if k.startswith("shared")}}
    if reused:  # the numbers come (partly) from earlier select/evaluate runs: their time is the original
        timings.update(cached=True, original_wall_s=pipeline_wall)
    else:
        timings["pipeline_wall_seconds"] = pipeline_wall
    # the settings; which methods and IPCs ran is not one (an ablation of BPS pairs with its run by the config)
    config = {"scale": a.scale, "dataset": ds.spec,
              **{k: v for k, v in budget.items() if k not in ("dataset", "methods", "ipcs")},
              "pipeline": p.pipeline.as_dict(), "student": p.student}
    results.write(out, what=what, config=config, rows=rows, timings=timings,
                  command=" ".join(["python", *sys.argv]), teacher_acc=sel0["teacher_acc"],
                  num_patterns=sel0["modelling"]["num_patterns"], select_command="python -m ddlib " + " ".join(select),
                  notes=a.notes, missing=missing,
                  run_options={"methods": methods, "ipcs": ipcs, "work": a.work, "out": a.out, "resume": a.resume,
                               "gather": a.gather}, marked=marked)
    for r in rows:
        print(f"{r['method']:>10} ipc {r['ipc']:>3}: {100 * r['mean']:.2f} ± {100 * r['std']:.2f} %  "
              f"centre {r['centre_share']:.2f}  fill {r['fill_distance']:.3f}  mmd {r['mmd']:.4f}  "
              f"select {1000 * r['selection_seconds']:.1f} ms")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
