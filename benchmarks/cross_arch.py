"""Does a selection made with one network still help another? The cross-architecture record (issue 25).

    .venv/bin/python benchmarks/cross_arch.py --scale cpu --dataset fashion-mnist --ipc 10,50 --seeds 5 \
        --students convnet,resnet18:16,efficientnet-lite0-frozen@64 \
        --reuse results/bps_evidence_fashion-mnist_cpu.json,results/bps_evidence_fashion-mnist_cpu_ipc50.json \
        --out results/cross_arch_fashion-mnist_cpu.json

One modelling (Stage 1, its patterns, the teacher) from :func:`ddlib.presets.bps` at ``--scale`` with ``--set``
overrides, as ``bps_evidence.py``'s; every method selects once per seed, and the same selections train KD
students of each architecture of ``--students`` (``name`` or ``name:width``; registry names of
:mod:`ddlib.models`), all distilling from the one shared teacher (the chapters' ConvNet; a teacher per
architecture would confound the student with its teacher), the student protocol otherwise the preset's.
Paired over seeds: seed ``s`` gives every method of one architecture the same initial weights and stream.

``--reuse`` takes the students of an architecture equal to the preset's own student (the DD ConvNet) from
evidence records (``bps_evidence.py``'s) instead of training them again, once this machine has reproduced
the record's teacher and patterns and one of its students bit for bit (as ``bps_evidence.py --join``).

Recorded: the grid (one row per method, IPC, student architecture, seed), accuracy rows, and ``paired``:
every method against random per (IPC, architecture), the cross-architecture table of chapter 5
(:func:`ddlib.results.cross_arch_verdicts`). Nothing is tuned on test accuracy.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_students(text: str) -> list[tuple[str, int | None]]:
    """``"convnet,resnet18:16"`` -> ``[("convnet", None), ("resnet18", 16)]``, each name checked."""
    from ddlib import models
    from ddlib.utils import ParamError, check_int

    out = []
    for item in [t.strip() for t in text.split(",") if t.strip()]:
        name, _, width = item.partition(":")
        models.check_model(name)
        out.append((name, check_int("students width", int(width), 1, 4096) if width else None))
    if not out:
        raise ParamError("students: name at least one architecture, e.g. convnet,resnet18:16")
    return out


def label(name: str, width: int | None) -> str:
    """What the record and the book call a student architecture: ``"ResNet-18 (width 16)"``,
    ``"EfficientNet-Lite0, frozen, 64 px"``; any registry name reads as itself."""
    from ddlib import models
    from ddlib.results import display_name

    choice = models.parse(name)
    text = display_name(choice.spec.name)
    extra = [f"width {width}"] if width is not None else []
    text += f" ({', '.join(extra)})" if extra else ""
    return text + (", frozen" if choice.frozen else "") + (f", {choice.input_size} px" if choice.input_size else "")


def _evidence_script():
    spec = importlib.util.spec_from_file_location("bps_evidence", ROOT / "benchmarks" / "bps_evidence.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="cpu")
    ap.add_argument("--dataset", default=None)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--ipc", default="10,50")
    ap.add_argument("--methods", default="bps,random,herding,centroids")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--students", default="convnet,resnet18:16,efficientnet-lite0-frozen@64")
    ap.add_argument("--reuse", default="", help="evidence records whose ConvNet KD students stand for that column")
    ap.add_argument("--device", default=None)
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)

    from ddlib import presets, results
    from ddlib.bps import pipeline as P
    from ddlib.cli.common import parse_ints

    ev_script = _evidence_script()
    sets = ev_script.parse_sets(a.set)
    if a.dataset is not None:
        sets["dataset"] = a.dataset
    sets["ipcs"] = parse_ints("ipc", a.ipc)
    sets["methods"] = [m for m in a.methods.split(",") if m]
    p = presets.bps(a.scale, **sets)
    archs = parse_students(a.students)
    seeds = list(range(a.seeds))
    start = time.perf_counter()
    d = p.datasets()
    mod = P.modelling(d["pool"], p.pipeline, list(p.methods) + ["bps"], device=a.device, progress=not a.quiet,
                      teacher_ds=d["teacher"], encoder_ds=d["encoder"], teacher=True)
    base = dataclasses.replace(p.student, loss="kd")
    reused, joined = [], []
    for path in [r for r in a.reuse.split(",") if r]:
        rec = ev_script._load_join(path)
        joined.append(ev_script._verify_join(rec, path, mod, d["eval"], {"kd": base}, p, device=a.device,
                                             progress=not a.quiet))
        reused += [{**r, "student": label(base.model, base.width if base.model != "convnet" else None),
                    "joined": True} for r in rec["grid"]
                   if r.get("setting", "main") == "main" and r["student"] == "kd" and r["method"] in p.methods
                   and r["ipc"] in p.ipcs and r["seed"] in seeds]
    grid = list(reused)
    for name, width in archs:
        same = name == base.model
        cfg = dataclasses.replace(base, model=name, width=base.width if same and width is None else width,
                                  depth=base.depth if same else None)
        key = label(name, width)
        have = {(r["method"], r["ipc"], r["seed"]) for r in grid if r["student"] == key}
        if len(have) == len(p.methods) * len(p.ipcs) * len(seeds):
            continue  # every student of this architecture came from a reused record
        rows = P.evaluate_grid(d["eval"], mod["inputs"], p.methods, p.ipcs, seeds, {key: cfg}, teacher=mod["teacher"],
                               select_cfg=p.select, device=a.device, progress=not a.quiet)
        grid += [r for r in rows if (r["method"], r["ipc"], r["seed"]) not in have]
    label_ds = results.dataset_label(p.dataset)
    acc = [{**r, "dataset": label_ds} for r in P.grid_accuracy(grid)]
    paired = [t for t in P.grid_pairs(grid) if t["baseline"] == "random"]
    trained = sum(not r["cached"] and not r.get("joined") for r in grid)
    results.write(
        a.out, what=f"BPS and coreset baselines on {label_ds} with KD students of several architectures, paired over "
                    f"{len(seeds)} seeds (the cross-architecture table)",
        config={"scale": a.scale, "overrides": sets, "dataset": d["pool"].spec, "pipeline": p.pipeline.as_dict(),
                "students": {label(n, w): {**dataclasses.asdict(base), "model": n,
                                              "width": base.width if n == base.model and w is None else w}
                             for n, w in archs},
                "teacher": "shared: the preset's teacher (every architecture distils from it)", "seeds": seeds,
                "methods": list(p.methods), "ipcs": list(p.ipcs)},
        rows=acc, paired=paired, grid=grid, joined=joined,
        teacher={"test_acc": mod["teacher_acc"], "model": p.teacher.model, "width": p.teacher.width},
        modelling=mod["info"],
        timings={"wall_s": time.perf_counter() - start, "students_trained": trained,
                 "students_joined": sum(bool(r.get("joined")) for r in grid),
                 "student_seconds_trained": sum(r["student_seconds"] for r in grid
                                                if not r["cached"] and not r.get("joined"))})
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
