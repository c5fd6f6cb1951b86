"""BPS against the coreset baselines where its mechanism can act, paired over seeds (issue 9's records).

    .venv/bin/python benchmarks/bps_evidence.py --scale cpu --dataset fashion-mnist --seeds 5 --ipc 10,50 \
        --students kd,ce --centre-frac 0,1 --weak-teacher-per-class 300 --out results/bps_evidence_fashion-mnist_cpu.json

One modelling (Stage 1 on ``encoder_per_class`` images, the teacher and the forgetting run on
``teacher_per_class``, both per class, None = every image; every method selects from the pool of
``per_class``) from :func:`ddlib.presets.bps` at ``--scale`` with ``--set name=value`` overrides (any flat
name of ``ddlib.presets.TABLES["bps"]``). Then :func:`ddlib.bps.pipeline.evaluate_grid`: for every IPC,
student protocol (``kd``: the reference's KD from the teacher; ``ce``: the same with hard labels) and seed
``s`` of ``0 .. seeds-1``, every method selects with seed ``s`` (random draws afresh) and every student
trains with seed ``s`` (the same initial weights and augmentation stream for every method).

Recorded (``ddlib.results.write``): accuracy rows per (method, IPC, protocol, rule), the rules being the
reference's best test accuracy over the last ``last_epochs`` epochs and the final epoch's; the ``paired``
table (every method against random: DD-Ranking's IOR under ``kd``; KD minus hard labels per method; the
ablation of BPS's centre share against BPS and random; the weak-teacher control), each a paired
difference over seeds with its 95 % interval; ``hlr`` (DD-Ranking's hard-label recovery: the teacher, a
model of the students' architecture trained on all its data with hard labels, minus each method's
hard-label students); with ``--epoch-curve``, accuracy against student epochs for ``--curve-methods``.

Resumable: every student's result is an artifact of the cache (``$DDLIB_CACHE``; keep it inside the
checkout for long runs), so a second call trains only what is missing; the record says how many students
were trained and how many loaded (``timings``), and the teacher's and encoder's original training times.
Nothing here is tuned on test accuracy: the settings are the preset's, the rules are fixed in advance.

Re-recording some methods of an earlier record (``--join RECORD --methods forgetting``): Stage 1 and the
teacher are trained (or loaded) again with the record's settings, and the run goes on only if they are the
record's own bits: the teacher's test accuracy and the patterns per class must equal the record's, and one of
its students (BPS, KD, seed 0, its first IPC) is trained again and must reach exactly the recorded accuracy at
every evaluated epoch. Then only the named methods' students are trained; every other row (the other methods,
the ablation, the weak-teacher control, the epoch curve) is the record's, and the paired tables are computed
again over the joined grid. The record names what was joined (``joined``). ``--forgetting-rules toneva`` adds
the forgetting baseline read by Toneva's rule for never-learned images as rows of its own,
``forgetting (toneva)``, beside the preset's rule (DeepCore's by default).

On a multi-GPU node: ``torchrun --nproc_per_node N benchmarks/bps_evidence.py …`` (the same options): Stage 1
and the teacher train data-parallel, the students of each (IPC, protocol) are split over the GPUs, and
rank 0 writes the record and the cache (:mod:`ddlib.distributed`).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _value(text: str) -> Any:
    from ddlib.sweep import parse_value

    if "," in text:
        return [parse_value(v) for v in text.split(",") if v.strip()]
    return parse_value(text)


def parse_sets(items: list[str]) -> dict[str, Any]:
    """``["teacher_epochs=20", "ipcs=10,50"]`` -> ``{"teacher_epochs": 20, "ipcs": [10, 50]}``."""
    from ddlib.utils import ParamError

    out = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise ParamError(f"--set {item!r}: write name=value (a flat name of ddlib.presets.TABLES['bps'])")
        out[name.strip()] = _value(text.strip())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="cpu", help="the preset: test | cpu | gpu")
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a flat name of the bps preset (repeatable), e.g. teacher_epochs=20")
    ap.add_argument("--ipc", default=None, help="comma-separated IPCs (default: the preset's)")
    ap.add_argument("--methods", default=None, help="comma-separated (default: the preset's)")
    ap.add_argument("--seeds", type=int, default=5, help="students per (method, IPC, protocol): seeds 0..N-1")
    ap.add_argument("--students", default="kd,ce", help="protocols: kd and/or ce")
    ap.add_argument("--centre-frac", default="", help="ablation of BPS's centre share, e.g. 0,1 (KD)")
    ap.add_argument("--weak-teacher-per-class", type=int, default=None,
                    help="control: BPS and random with a teacher trained on this many images per class (KD)")
    ap.add_argument("--epoch-curve", default="", help="student epochs to sweep, e.g. 25,50,100,200 (KD)")
    ap.add_argument("--curve-methods", default="bps,random")
    ap.add_argument("--curve-ipcs", default=None, help="default: the run's IPCs")
    ap.add_argument("--merged-patterns", default=None, metavar="IPC[:MIN_SLOTS]",
                    help="also BPS (KD) on the partition merged until every pattern gets MIN_SLOTS (default 2) slots "
                         "at IPC (ddlib.bps.slots.merge_patterns: training data only), as rows 'bps (coarser "
                         "patterns)' paired against BPS and random")
    ap.add_argument("--study", default=None,
                    help="name a side study (e.g. slots): the record is then read as that study "
                         "(results.latest_evidence(dataset, study=NAME)), never merged into the main evidence")
    ap.add_argument("--forgetting-rules", default="",
                    help="also record forgetting read by these other rules for never-learned images, as rows "
                         "'forgetting (RULE)' (e.g. toneva)")
    ap.add_argument("--join", default=None, metavar="RECORD",
                    help="re-record only --methods (and --forgetting-rules) of RECORD, reusing its other rows once "
                         "this machine has reproduced its modelling, teacher and one of its students bit for bit")
    ap.add_argument("--modelling-only", action="store_true",
                    help="train (or load) Stage 1, the teacher and the scores into the cache, and stop (no record)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)

    from ddlib import distributed

    with distributed.session(a.device):
        return _run(a)


def _run(a: argparse.Namespace) -> int:
    from ddlib import distributed, metrics, presets, results
    from ddlib.bps import pipeline as P
    from ddlib.cli.common import parse_ints
    from ddlib.utils import ParamError, check_choice, get_device

    get_device(a.device)
    sets = parse_sets(a.set)
    if a.dataset is not None:
        sets["dataset"] = a.dataset
    if a.ipc is not None:
        sets["ipcs"] = parse_ints("ipc", a.ipc)
    if a.methods is not None:
        sets["methods"] = [m for m in a.methods.split(",") if m]
    p = presets.bps(a.scale, **sets)
    protocols = [check_choice("students", s, ("kd", "ce")) for s in a.students.split(",") if s]
    fracs = [float(v) for v in a.centre_frac.split(",") if v.strip()]
    curve = parse_ints("epoch_curve", a.epoch_curve) if a.epoch_curve else []
    seeds = list(range(a.seeds))
    if p.methods is None:
        raise ParamError("methods: give --methods or a preset that names them")
    progress = not a.quiet
    start = time.perf_counter()

    from ddlib.baselines import NEVER_LEARNED

    rules = [check_choice("forgetting_rules", r, NEVER_LEARNED) for r in a.forgetting_rules.split(",") if r.strip()]
    base = _load_join(a.join) if a.join else None
    d = p.datasets()
    pool, ev = d["pool"], d["eval"]
    needs = list(p.methods) + (["forgetting"] if rules else []) + (["bps"] if base else [])
    mod = P.modelling(pool, p.pipeline, list(dict.fromkeys(needs)), device=a.device, progress=progress,
                      teacher_ds=d["teacher"], encoder_ds=d["encoder"], teacher=True)
    teacher = mod["teacher"]
    if a.modelling_only:
        if distributed.is_main():
            print(f"modelling cached: teacher {mod['teacher_acc'] * 100:.1f} % on {len(d['teacher'].train_y)} images, "
                  f"{sum(mod['info']['num_patterns'].values())} patterns, {time.perf_counter() - start:.0f} s")
        return 0
    students = {name: dataclasses.replace(p.student, loss=name) for name in protocols}
    joined = None
    if base is not None:
        joined = _verify_join(base, a.join, mod, ev, students, p, device=a.device, progress=progress)
    grid = P.evaluate_grid(ev, mod["inputs"], p.methods, p.ipcs, seeds, students, teacher=teacher,
                           select_cfg=p.select, device=a.device, progress=progress)
    for r in grid:
        r["setting"] = "main"
    for rule in rules:
        scores = mod["inputs"].scores
        mod["inputs"].scores = {**scores, "never_learned": rule}
        try:
            rows = P.evaluate_grid(ev, mod["inputs"], ["forgetting"], p.ipcs, seeds, students, teacher=teacher,
                                   select_cfg=p.select, device=a.device, progress=progress)
        finally:
            mod["inputs"].scores = scores
        for r in rows:
            r.update(method=f"forgetting ({rule})", setting="main")
        grid += rows

    extra_rows: list[dict] = []
    merged = _merged_spec(a.merged_patterns)
    if merged is not None and "kd" in students:
        from ddlib.bps.slots import merge_patterns

        inputs = mod["inputs"]
        coarse = merge_patterns(inputs.embeddings, inputs.labels, inputs.patterns, *merged)
        counts = {int(c): int(coarse[inputs.labels == c].max()) + 1 for c in inputs.labels.unique().tolist()}
        merged_info = {"ipc": merged[0], "min_slots": merged[1], "num_patterns": counts}
        rows = P.evaluate_grid(ev, dataclasses.replace(inputs, patterns=coarse), ["bps"], p.ipcs, seeds,
                               {"kd": students["kd"]}, teacher=teacher, select_cfg=p.select, device=a.device,
                               progress=progress)
        for r in rows:
            r.update(method=MERGED, setting="coarser patterns")
        extra_rows += rows
    else:
        merged_info = None
    if fracs and "kd" in students:
        for f in fracs:
            rows = P.evaluate_grid(ev, mod["inputs"], ["bps"], p.ipcs, seeds, {"kd": students["kd"]},
                                   teacher=teacher, select_cfg=dataclasses.replace(p.select, centre_frac=f),
                                   device=a.device, progress=progress)
            for r in rows:
                r.update(method=f"bps (centre share {f:g})", setting=f"centre share {f:g}")
            extra_rows += rows

    weak = None
    if a.weak_teacher_per_class is not None:
        wds = P.load_datasets(p.dataset, per_class=a.weak_teacher_per_class, test_per_class=p.modelling_test_per_class,
                              modelling_test_per_class=p.modelling_test_per_class, seed=p.data_seed)["pool"]
        wmod = P.modelling(pool, p.pipeline, ["bps", "random"], device=a.device, progress=progress, teacher_ds=wds,
                           encoder_ds=d["encoder"], teacher=True)
        rows = P.evaluate_grid(ev, wmod["inputs"], ["bps", "random"], p.ipcs, seeds,
                               {"kd-weak-teacher": students.get("kd", dataclasses.replace(p.student, loss="kd"))},
                               teacher=wmod["teacher"], select_cfg=p.select, device=a.device, progress=progress)
        for r in rows:
            r["setting"] = f"weak teacher ({a.weak_teacher_per_class}/class)"
        extra_rows += rows
        weak = {"per_class": a.weak_teacher_per_class, "test_acc": wmod["teacher_acc"],
                "train_size": len(wds.train_y), "original_train_seconds": getattr(wmod["teacher"], "train_seconds", None)}

    curve_rows: list[dict] = []
    if curve:
        cm = [m for m in a.curve_methods.split(",") if m]
        cipcs = parse_ints("curve_ipcs", a.curve_ipcs) if a.curve_ipcs else list(p.ipcs)
        for e in curve:
            st = dataclasses.replace(p.student, loss="kd", epochs=e, last_epochs=min(p.student.last_epochs, e))
            rows = P.evaluate_grid(ev, mod["inputs"], cm, cipcs, seeds, {f"kd@{e}": st}, teacher=teacher,
                                   select_cfg=p.select, device=a.device, progress=progress)
            for r in rows:
                r.update(epochs=e, setting="epoch curve")
            curve_rows += rows

    weak_teacher_record = None
    if base is not None:  # the record's rows for everything this run did not train again
        done = {(r["method"], r["setting"]) for r in grid + extra_rows + curve_rows}
        kept = [dict(r) for r in base["grid"]]
        old_rule = ((base.get("config") or {}).get("pipeline") or {}).get("forgetting", {}).get("never_learned", "toneva")
        if ("forgetting", "main") in done and old_rule != p.forgetting.never_learned \
                and (f"forgetting ({old_rule})", "main") not in done:
            for r in kept:  # the record's forgetting rows, read by its own rule, stay as a named row
                if r["method"] == "forgetting":
                    r["method"] = f"forgetting ({old_rule})"
            rules.append(old_rule)
        kept = [{**r, "joined": True} for r in kept if (r["method"], r.get("setting", "main")) not in done]
        grid += [r for r in kept if r.get("setting", "main") == "main"]
        curve_rows += [r for r in kept if r.get("setting") == "epoch curve"]
        extra_rows += [r for r in kept if r.get("setting", "main") not in ("main", "epoch curve")]
        weak_teacher_record = base.get("weak_teacher")
        if not curve and curve_rows:
            curve = sorted({int(r["epochs"]) for r in curve_rows})
        if not fracs:
            fracs = list((base.get("config") or {}).get("centre_frac_ablation") or [])
    label = results.dataset_label(p.dataset)
    everything = grid + extra_rows + curve_rows
    acc = [{**r, "dataset": label, "setting": _setting(everything, r)} for r in P.grid_accuracy(everything)]
    paired = P.grid_pairs(grid)
    paired += _ablation_pairs(grid, extra_rows)
    paired += P.grid_pairs([r for r in extra_rows if r["student"] == "kd-weak-teacher"])
    paired += _curve_pairs(curve_rows)
    hlr = []
    if "ce" in students and teacher is not None and students["ce"].model == p.teacher.model \
            and students["ce"].width == p.teacher.width and students["ce"].depth == p.teacher.depth:
        for m in dict.fromkeys(r["method"] for r in grid):
            for k in p.ipcs:
                for rule in P.RULES:
                    v = [r[rule] for r in sorted(grid, key=lambda r: r["seed"])
                         if (r["method"], r["ipc"], r["student"]) == (m, k, "ce")]
                    h = metrics.hard_label_recovery(mod["teacher_acc"], v)
                    hlr.append({"method": m, "ipc": k, "rule": rule, "n_seeds": h["n"], "hlr_mean": h["diff_mean"],
                                "ci95": list(h["ci"])})
    trained = sum(not r["cached"] and not r.get("joined") for r in everything)
    enc_hist_seconds = (mod["info"].get("stage1_seconds") or {})
    record = results.write(
        a.out, what=f"BPS vs coreset baselines on {label}, students paired over {len(seeds)} seeds "
                    "(issue 9: teacher on its own data, every method from one pool)",
        config={"scale": a.scale, "overrides": sets, "dataset": pool.spec, "teacher_dataset": d["teacher"].spec,
                "encoder_dataset": d["encoder"].spec, "students_test_per_class": p.test_per_class,
                "pipeline": p.pipeline.as_dict(), "students": {k: dataclasses.asdict(v) for k, v in students.items()},
                "seeds": seeds, "centre_frac_ablation": fracs, "forgetting_rules": rules,
                **({"study": a.study} if a.study else {}),
                **({"merged_patterns": merged_info} if merged_info else {}),
                "weak_teacher_per_class": a.weak_teacher_per_class if weak_teacher_record is None
                else weak_teacher_record.get("per_class"),
                "epoch_curve": curve, "rules": {"best_last": f"best of the last {p.student.last_epochs} epochs",
                                                "final": "the final epoch"}},
        rows=acc, paired=paired, hlr=hlr, grid=everything,
        teacher={"test_acc": mod["teacher_acc"], "train_size": len(d["teacher"].train_y),
                 "original_train_seconds": getattr(teacher, "train_seconds", None)},
        weak_teacher=weak if weak is not None else weak_teacher_record, modelling=mod["info"], joined=joined,
        timings={"wall_s": time.perf_counter() - start, "shared": mod["seconds"],
                 "students_trained": trained,
                 "students_loaded": sum(r["cached"] and not r.get("joined") for r in everything),
                 "students_joined": sum(bool(r.get("joined")) for r in everything),
                 "cached": trained == 0, "student_seconds_trained": sum(r["student_seconds"] for r in everything
                                                                       if not r["cached"]),
                 "original_stage1_seconds": enc_hist_seconds})
    if distributed.is_main():
        _print(record)
    return 0


def _load_join(path: str) -> dict:
    """The record to join (one record with a ``grid``), read by the project's reader."""
    from ddlib import results
    from ddlib.utils import ParamError

    recs = results.load_file(path)
    if len(recs) != 1 or not recs[0].data.get("grid"):
        raise ParamError(f"join={path!r} is not one evidence record with a grid (bps_evidence.py's)")
    return dict(recs[0].data)


def _verify_join(base: dict, path: str, mod: dict, ev, students: dict, p, device, progress: bool) -> dict:
    """Check that this machine computed the record's own modelling and teacher: the teacher's test accuracy and
    the patterns per class equal the record's, and one recorded student (BPS, KD, seed 0, the first IPC)
    trained again reaches exactly its recorded accuracies. Returns what the record says about the join."""
    from ddlib.bps import pipeline as P
    from ddlib.utils import ParamError

    want_t, got_t = (base.get("teacher") or {}).get("test_acc"), mod["teacher_acc"]
    want_p = {str(k): int(v) for k, v in ((base.get("modelling") or {}).get("num_patterns") or {}).items()}
    got_p = {str(k): int(v) for k, v in (mod["info"].get("num_patterns") or {}).items()}
    problems = []
    if want_t != got_t:
        problems.append(f"teacher test accuracy {got_t!r} here, {want_t!r} in the record")
    if want_p != got_p:
        problems.append(f"patterns per class {got_p} here, {want_p} in the record")
    check = [r for r in base["grid"] if r["method"] == "bps" and r.get("setting", "main") == "main"
             and r["student"] == "kd" and r["seed"] == 0]
    if not check or "accs" not in check[0] or "kd" not in students:
        problems.append("the record has no BPS KD student of seed 0 with its accuracies to train again")
    if problems:
        raise ParamError(f"join={path!r}: this machine does not reproduce the record ({'; '.join(problems)}); "
                         "re-record every method instead (run without --join)")
    row = min(check, key=lambda r: r["ipc"])
    again = P.evaluate_grid(ev, mod["inputs"], ["bps"], [row["ipc"]], [0], {"kd": students["kd"]},
                            teacher=mod["teacher"], select_cfg=p.select, device=device, progress=progress)[0]
    if again["accs"] != row["accs"]:
        raise ParamError(f"join={path!r}: the modelling and teacher match, but BPS's KD student of seed 0 at IPC "
                         f"{row['ipc']} reaches {again['accs'][-3:]} here against {row['accs'][-3:]} recorded "
                         "(last 3 evaluations); re-record every method instead (run without --join)")
    prov = base.get("provenance") or {}
    return {"record": Path(path).name, "commit": prov.get("commit"), "date": prov.get("date"),
            "command": prov.get("command"), "verified": {"teacher_acc": got_t, "num_patterns": got_p,
                                                         "student": {"method": "bps", "ipc": row["ipc"],
                                                                     "protocol": "kd", "seed": 0,
                                                                     "accs_equal": True}}}


def _setting(rows: list[dict], summary: dict) -> str:
    for r in rows:
        if (r["method"], r["ipc"], r["student"]) == (summary["method"], summary["ipc"], summary["protocol"]):
            return r.get("setting", "main")
    return "main"


#: the method label of BPS on the merged partition (``--merged-patterns``)
MERGED = "bps (coarser patterns)"


def _merged_spec(text: str | None) -> tuple[int, int] | None:
    """``"10"`` -> (10, 2); ``"10:3"`` -> (10, 3); None -> None."""
    from ddlib.utils import ParamError, check_int

    if not text:
        return None
    ipc, _, slots = str(text).partition(":")
    try:
        return check_int("merged_patterns", int(ipc), 1), check_int("merged_patterns", int(slots or 2), 1)
    except ValueError:
        raise ParamError(f"merged_patterns={text!r}: write IPC or IPC:MIN_SLOTS, e.g. 10 or 10:2") from None


def _ablation_pairs(grid: list[dict], extra: list[dict]) -> list[dict]:
    """Each centre-share variant, and BPS on the coarser partition, against BPS and against random, KD, paired
    over seeds."""
    from ddlib.bps import pipeline as P

    out = []
    abl = [r for r in extra if r["method"].startswith("bps (centre share") or r["method"] == MERGED]
    base = [r for r in grid if r["student"] == "kd" and r["method"] in ("bps", "random")]
    for name in sorted({r["method"] for r in abl}):
        for against in ("bps", "random"):
            rows = [r for r in abl if r["method"] == name] + [r for r in base if r["method"] == against]
            out += [t for t in P.grid_pairs(rows, baseline=against) if t["method"] == name]
    return out


def _curve_pairs(rows: list[dict]) -> list[dict]:
    """BPS against random at each student budget of the epoch curve."""
    from ddlib.bps import pipeline as P

    out = []
    for proto in sorted({r["student"] for r in rows}):
        sub = [r for r in rows if r["student"] == proto]
        out += P.grid_pairs(sub)
    return out


def _print(record: dict) -> None:
    print(f"teacher {record['teacher']['test_acc'] * 100:.1f} % on {record['teacher']['train_size']} images")
    for t in record["paired"]:
        if t["rule"] == "final":
            print(f"IPC {t['ipc']:>3} {t['protocol']:<18} {t['verdict']}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
