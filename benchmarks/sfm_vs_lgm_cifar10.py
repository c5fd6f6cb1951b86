"""SFM against LGM on CIFAR-10 at equal step budgets: accuracy against steps, wall time and peak memory.

Both methods distil on EfficientNet-Lite0 (ImageNet weights) from the same noise, with the same image
parameterisation, augmentation, optimiser and step budget; they differ only in the loss (issue 10).
For each IPC and each distillation seed, one run per method is checkpointed at ``--checkpoints`` steps
(the images after s steps of a run are those of a run of s steps); every checkpoint's set is scored by
the linear probe on Lite0, and the final one also by probe / CI / KD on EfficientNet-Lite2 (the golden
head lives on Lite0). Random real images (3 draws) and the real images nearest the class centres are
scored the same way. One JSON record under ``results/`` holds every accuracy (rows), each run's time to
every checkpoint, its peak memory and its final flow cosine (``runs``), SFM's one statistics pass, and
the departures from the reference; :func:`ddlib.results.synthesis_cost_curve` reads it back.

    # the CPU record (one core; see CPU below for the time)
    python benchmarks/sfm_vs_lgm_cifar10.py --threads 1
    # seconds, a digits stand-in (what tests/test_sfm_vs_lgm.py runs)
    python benchmarks/sfm_vs_lgm_cifar10.py --size tiny --out /tmp/x.json
    # the reference's sizes on a GPU
    python benchmarks/sfm_vs_lgm_cifar10.py --size gpu --device cuda

Resumable: every run (with its checkpoints) and every evaluation is a cached artifact (``DDLIB_CACHE``),
so the same command after an interruption redoes at most the run it was in; the record is rewritten
after every run with ``"complete": false`` until the last. Across machines (a new checkout has no cache):
an unfinished record at ``--out`` written for the same config and backbones is continued, its finished
runs and scored sets taken from it (each run keeps the commit and date of the invocation that ran it,
``recorded_by``; ``timings.earlier`` lists the earlier invocations), so committing the partial record
is enough to go on later with the command it records (``provenance.command``: the same ``--dataset``
string, which is part of the config); ``--no-resume`` starts afresh. Each distillation runs in a fresh process
(``--isolate``, default for cpu/gpu) so that its peak memory is its own, not what earlier runs left;
``--jobs N`` runs N of them at once (give each ``--threads`` cores of its own), and each run records in
``concurrent_runs`` how many shared the machine while it ran. More seeds (or IPCs) later: a record of
their own (``--ipcs 10 --seeds 3,4 --out <another file>``), which :func:`ddlib.results.latest_synthesis`
joins with every record of the same config but for its IPCs and seeds; ``--seeds '' --real-seeds 3,4``
draws and scores more random real sets only.

CPU (``--size cpu``): departures from the reference, recorded in the JSON and equal for both methods:
64-px synthetic images without a crop margin, seen by Lite0 (and Lite2) at 64 px instead of
256 -> 224 (and 260); 1,000 steps at Adam lr 0.01 with a pyramid level every 100 steps (complete at
step 600) instead of 5,000 at 2e-3 every 200; LGM's ``augs_per_batch`` 10 at IPC 1 (the reference) but
1 at IPC 10, so that both IPCs push C·IPC·augs = 100 views through the double backward per step; SFM is
SFM-1 (the paper's default); the probe, projector and KD heads train 300 epochs at base lr 0.1 (projector
1.0, the reference's ratio of ten) on a bank of 10 augmented views, 3 runs, instead of 1,000 epochs at
1e-3 on fresh views, 5 runs; the golden head trains the reference's 10 epochs on a bank of 2 augmented
views of the 50,000 training images instead of fresh views; 200 test images per class. Measured step
times on the shared 2-core machine (one thread, load about 3) at 64 px: SFM 0.12 s (IPC 1) and
1.7 s (IPC 10), LGM 1.4 s (IPC 1, 10 views) and 2.2 s (IPC 10, 1 view): about 4.5 hours of distillation
for 3 seeds, plus about 20 minutes of feature passes and evaluations.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

import ddlib
from ddlib import artifacts, data, results
from ddlib.sfm import inherit, stats, synth
from ddlib.sfm.backbones import backbone_key, get_backbone
from ddlib.utils import get_device

ROOT = Path(__file__).resolve().parents[1]
CIFAR = "cifar10:" + str(ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.xz")

#: per size: the data, the backbones' input size, the run and the evaluation
SIZES: dict[str, dict[str, Any]] = {
    "cpu": dict(dataset=CIFAR, per_class=None, test_per_class=200, image_size=64, steps=1000,
                checkpoints=(250, 500, 1000), ipcs=(1, 10), seeds=(0, 1, 2), lr=0.01, grow_every=100,
                lgm_augs={1: 10, 10: 1}, real_seeds=(0, 1, 2),
                probe=dict(epochs=300, lr=0.1, projector_lr=1.0, views=10, runs=3),
                golden=dict(epochs=10, views=2), isolate=True),
    "gpu": dict(dataset=CIFAR, per_class=None, test_per_class=None, image_size=None, steps=5000,
                checkpoints=(1000, 2500, 5000), ipcs=(1, 10), seeds=(0, 1, 2), lr=2e-3, grow_every=200,
                lgm_augs={1: 10, 10: 10}, real_seeds=(0, 1, 2), probe=dict(), golden=dict(), isolate=True),
    "tiny": dict(dataset="digits", per_class=10, test_per_class=5, image_size=32, steps=6, checkpoints=(3, 6),
                 ipcs=(1, 2), seeds=(0, 1), lr=0.05, grow_every=2, lgm_augs={1: 2, 2: 1}, real_seeds=(0, 1),
                 probe=dict(epochs=5, lr=0.1, projector_lr=1.0, views=2, runs=1),
                 golden=dict(epochs=2, views=1), isolate=False),
}
DISTILL, EVAL = "efficientnet-lite0", "efficientnet-lite2"


def departures(size: dict[str, Any], image_size: int, crop: int) -> list[str]:
    """The differences from the reference protocol (METHODS.md §2), as recorded."""
    out = []
    if size["image_size"] is not None:
        out.append(f"backbones see {size['image_size']} px (native 224 / 260); synthetic images {image_size} px "
                   f"cropped to {crop} (reference 256 -> 224)")
    if (size["steps"], size["lr"], size["grow_every"]) != (5000, 2e-3, 200):
        out.append(f"{size['steps']} steps at lr {size['lr']}, a pyramid level every {size['grow_every']} steps "
                   "(reference 5,000 at 2e-3, every 200)")
    if any(a != 10 for a in size["lgm_augs"].values()):
        out.append("LGM augs_per_batch per IPC " + ", ".join(f"{k}: {v}" for k, v in size["lgm_augs"].items())
                   + " (reference 10)")
    if size["probe"]:
        out.append(f"probe / projector / KD heads: {size['probe']} (reference 1,000 epochs at 1e-3, projector 1e-2, "
                   "fresh views, 5 runs)")
    if size["golden"]:
        out.append(f"golden head: {size['golden']} (reference fresh augmented views every epoch)")
    if size["per_class"] is not None or size["test_per_class"] is not None:
        out.append(f"training images per class {size['per_class'] or 'all'}, test images per class "
                   f"{size['test_per_class'] or 'all'}")
    out.append("LGM's real batches are class-balanced (the reference's are shuffled)")
    return out


def _cached(stage: str, ds_key: Any, spec: Any, upstream: list[str], compute) -> tuple[Any, dict[str, Any]]:  # noqa: ANN001
    """``compute()`` once, cached with the time it took: (value, {wall_s, cached[, original_wall_s]})."""
    key = artifacts.make_key(stage, ds_key, spec, upstream)
    t0 = time.perf_counter()
    obj = artifacts.load(key)
    if obj is None:
        obj = {"value": compute(), "wall_s": time.perf_counter() - t0}
        artifacts.save(key, obj)
        return obj["value"], {"wall_s": obj["wall_s"], "cached": False}
    return obj["value"], {"wall_s": time.perf_counter() - t0, "cached": True, "original_wall_s": obj["wall_s"]}


def _load(size: dict[str, Any], dataset: str) -> Any:
    return data.load(dataset, per_class=size["per_class"], test_per_class=size["test_per_class"], seed=0)


def _backbone(name: str, ds: Any, size: dict[str, Any]) -> torch.nn.Module:
    return get_backbone(name, ds, image_size=size["image_size"])


def run_config(size: dict[str, Any], ds: Any, phi_d: torch.nn.Module, method: str, ipc: int,
               seed: int) -> synth.SynthConfig:
    """One run's config: the same for both methods but the loss and LGM's views."""
    image_size, crop = synth.default_image_sizes(int(phi_d.image_size))
    return synth.SynthConfig(method=method, ipc=ipc, steps=size["steps"], lr=size["lr"], image_size=image_size,
                             crop=crop, grow_every=size["grow_every"], seed=seed,
                             augs_per_batch=size["lgm_augs"][ipc] if method == "lgm" else None,
                             channels=int(ds.image_shape[0]))


def _one_run(size: dict[str, Any], dataset: str, device: torch.device, method: str, ipc: int, seed: int) -> None:
    """``--one-run``: a run in a process of its own (``--isolate``); its result lands in the artifact cache."""
    ds = _load(size, dataset)
    bb = _backbone(DISTILL, ds, size)
    synth.distill_cached(bb, ds, run_config(size, ds, bb, method, ipc, seed), backbone_key(bb), device=device,
                         progress=False, snapshots=size["checkpoints"][:-1])


def recorded_progress(path: Path, config: dict[str, Any], backbones: dict[str, Any]) -> dict[str, Any] | None:
    """What an unfinished record at ``path`` already holds, when it was written for this ``config`` and these
    ``backbones`` (else None, with the reason printed): ``scores`` ((set, ipc, steps) -> seed -> protocol ->
    {"acc"}), ``runs`` (name -> the recorded run, with ``recorded_by``: the commit and date of the
    invocation that ran it) and ``earlier`` (the invocations so far: commit, date, wall_s)."""
    if not path.exists():
        return None
    rec = results.load_file(path)[0].data  # a broken record stops the run with its name
    why = ("it is complete" if rec.get("complete", True) else
           "its config differs" if rec.get("config") != results.strict(config) else
           "its backbones differ" if rec.get("backbones") != results.strict(backbones) else None)
    if why:
        print(f"not continuing {path}: {why}", flush=True)
        return None
    prov = rec["provenance"]
    this = {"commit": prov.get("commit"), "date": prov.get("date")}
    scores: dict[tuple[str, int, int | None], dict[int, dict[str, Any]]] = {}
    for row in rec["rows"]:
        for seed, acc in zip(row["seeds"], row["per_seed"], strict=True):
            scores.setdefault((row["set"], row["ipc"], row["steps"]), {}).setdefault(seed, {})[row["protocol"]] = \
                {"acc": acc}
    runs = {name: {**r, "recorded_by": r.get("recorded_by", this)} for name, r in rec.get("runs", {}).items()}
    earlier = [*rec["timings"].get("earlier", []), {**this, "wall_s": rec["timings"]["wall_s"]}]
    return {"scores": scores, "runs": runs, "earlier": earlier}


def _small(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in ("acc", "acc_std", "accs", "bytes", "stored_bytes", "golden_acc") if k in r}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="cpu")
    ap.add_argument("--dataset", default=None, help="default: the size's (CIFAR-10's JPEG copy for cpu/gpu)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default torch's)")
    ap.add_argument("--isolate", action=argparse.BooleanOptionalAction, default=None,
                    help="each distillation in a fresh process (default: the size's)")
    ap.add_argument("--ipcs", default=None, help="comma-separated IPCs (default: the size's)")
    ap.add_argument("--seeds", default=None,
                    help="comma-separated distillation seeds (default: the size's; '' for none: real sets only)")
    ap.add_argument("--real-seeds", default=None,
                    help="comma-separated draws of random real images (default: the size's)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="isolated runs at once (default 1); give each --threads cores of its own")
    ap.add_argument("--methods", default="sfm,lgm",
                    help="synthesis methods to run: sfm, lgm or both (default sfm,lgm)")
    ap.add_argument("--eval-backbones", default=EVAL,
                    help=f"comma-separated backbones that score the final sets by probe / CI / KD (default {EVAL}); "
                         "a record of other backbones is a record of its own (its config names them)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                    help="continue an unfinished record at --out written for the same config (default)")
    ap.add_argument("--one-run", default=None, help=argparse.SUPPRESS)  # "method,ipc,seed": --isolate's child
    args = ap.parse_args(argv)
    size = dict(SIZES[args.size])
    for name in ("ipcs", "seeds", "real_seeds"):
        text = getattr(args, name)
        if text is not None:
            try:
                size[name] = tuple(int(v) for v in text.split(",") if v.strip())
            except ValueError:
                ap.error(f"--{name.replace('_', '-')} {text!r}: give comma-separated integers")
    if not size["ipcs"]:
        ap.error("--ipcs: give at least one IPC")
    bad = [i for i in size["ipcs"] if i not in size["lgm_augs"]]
    if bad:
        ap.error(f"--ipcs {bad}: LGM's augs_per_batch is set for IPC {sorted(size['lgm_augs'])} only at this size")
    if args.jobs < 1:
        ap.error(f"--jobs {args.jobs}: must be 1 or more")
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if not methods or any(m not in ("sfm", "lgm") for m in methods):
        ap.error(f"--methods {args.methods!r}: give sfm, lgm or sfm,lgm")
    evals = tuple(dict.fromkeys(b.strip() for b in args.eval_backbones.split(",") if b.strip()))
    if not evals or DISTILL in evals:
        ap.error(f"--eval-backbones {args.eval_backbones!r}: give one or more backbones other than {DISTILL} "
                 "(the distillation backbone is scored by its probe on every set)")
    dataset = args.dataset or size["dataset"]
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    isolate = size["isolate"] if args.isolate is None else args.isolate
    device = get_device(args.device)
    if args.one_run:
        method, ipc, seed = args.one_run.split(",")
        _one_run(size, dataset, device, method, int(ipc), int(seed))
        return 0
    out = Path(args.out or ROOT / "results" / f"sfm_vs_lgm_cifar10_{args.size}.json")
    t_start = time.perf_counter()
    command = "python " + " ".join(["benchmarks/sfm_vs_lgm_cifar10.py", *(argv if argv is not None else sys.argv[1:])])

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:8.1f} s] {msg}", flush=True)

    ds = _load(size, dataset)
    phi_d = _backbone(DISTILL, ds, size)
    phi_es = {name: _backbone(name, ds, size) for name in evals}
    key_d = backbone_key(phi_d)
    image_size, crop = synth.default_image_sizes(int(phi_d.image_size))
    probe_cfg, golden_cfg = inherit.ProbeConfig(**size["probe"]), inherit.GoldenConfig(**size["golden"])
    say(f"{ds.name}: {len(ds.train_y)} training / {len(ds.test_y)} test images; {DISTILL} and {', '.join(evals)} at "
        f"{phi_d.image_size} px; synthetic {image_size} px cropped to {crop}")

    # SFM's one pass over the training set (class centres), timed once and kept with its time
    _, stats_info = _cached("sfm-vs-lgm-statistics", ds.key(), {}, [key_d], lambda: stats.class_centres(
        phi_d, ds.train_x, ds.train_y, ds.num_classes, 256, device))
    say(f"SFM statistics pass: {stats_info.get('original_wall_s', stats_info['wall_s']):.1f} s")
    golden = inherit.golden_head(phi_d, ds, golden_cfg, device)
    golden_acc = _golden_acc(golden, phi_d, ds, device)
    say(f"golden head on {DISTILL}: test accuracy {100 * golden_acc:.1f} %")

    def evaluate(set_id: dict[str, Any], images: torch.Tensor, labels: torch.Tensor, final: bool) -> dict[str, Any]:
        """probe on Lite0 (every set), and probe / CI / KD on each evaluation backbone for final sets; cached per
        set and backbone (so a record of another backbone reuses the runs and the Lite0 probes)."""
        out_: dict[str, Any] = {}
        todo = [(DISTILL, phi_d, ("probe",))] + ([(n, bb, inherit.MODES) for n, bb in phi_es.items()] if final else [])
        for name, bb, modes in todo:
            spec = {"set": set_id, "modes": list(modes), "probe": probe_cfg, "golden": golden_cfg}
            res, _ = _cached("sfm-vs-lgm-eval", ds.key(), spec, [backbone_key(bb), key_d], lambda: {
                m: _small(r) for m, r in inherit.evaluate_modes(images, labels, ds, phi_d, bb, modes, probe_cfg,
                                                                golden_cfg, device).items()})
            out_.update({f"{m} on {name}": r for m, r in res.items()})
        return out_

    config = {"size": args.size, "dataset": ds.spec, "distill_backbone": DISTILL, "eval_backbone": ",".join(evals),
              "backbone_px": phi_d.image_size, "image_size": image_size, "crop": crop, "ipcs": list(size["ipcs"]),
              "seeds": list(size["seeds"]), "real_seeds": list(size["real_seeds"]), "max_steps": size["steps"],
              "checkpoints": list(size["checkpoints"]), "lr": size["lr"], "grow_every": size["grow_every"],
              "sfm_augs_per_batch": synth.DEFAULT_AUGS["sfm"],
              "lgm_augs_per_batch": {str(k): v for k, v in size["lgm_augs"].items()},
              "probe": probe_cfg, "golden": golden_cfg, "isolate": isolate,
              "departures": departures(size, image_size, crop),
              **({"methods": list(methods)} if methods != ("sfm", "lgm") else {})}
    backbones = {"distill": {"name": DISTILL, "key": key_d},
                 **{("eval" if i == 0 else f"eval{i + 1}"): {"name": n, "key": backbone_key(bb)}
                    for i, (n, bb) in enumerate(phi_es.items())}}
    done = recorded_progress(out, config, backbones) if args.resume else None
    # (set, ipc, steps) -> seed -> protocol -> scores; run name -> its record
    scores: dict[tuple[str, int, int | None], dict[int, dict[str, Any]]] = done["scores"] if done else {}
    runs: dict[str, dict[str, Any]] = done["runs"] if done else {}
    earlier = done["earlier"] if done else []
    if done:
        say(f"continuing {out}: {len(runs)} runs recorded by earlier invocations")
    plan = [(ipc, seed, method) for ipc in size["ipcs"] for seed in size["seeds"] for method in methods]

    def write(complete: bool) -> None:
        rows = []
        for (set_name, ipc, steps), per_seed in sorted(scores.items(), key=lambda kv: (kv[0][1], kv[0][0],
                                                                                       kv[0][2] or 0)):
            seeds = sorted(per_seed)
            for protocol in sorted({p for s in seeds for p in per_seed[s]}):
                vals = [per_seed[s][protocol]["acc"] for s in seeds if protocol in per_seed[s]]
                mean = sum(vals) / len(vals)
                rows.append({"method": set_name if steps is None else f"{set_name} ({steps} steps)",
                             "set": set_name, "steps": steps, "dataset": results.dataset_label(ds.name), "ipc": ipc,
                             "protocol": protocol, "mode": protocol.split(" on ")[0],
                             "eval_backbone": protocol.split(" on ")[1], "mean": mean,
                             "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0, "per_seed": vals,
                             "seeds": [s for s in seeds if protocol in per_seed[s]]})
        timings = {"wall_s": round(time.perf_counter() - t_start, 1), "sfm_statistics": stats_info,
                   **({"earlier": earlier} if earlier else {})}
        results.write(out, what=f"{' vs '.join(m.upper() for m in methods)} on CIFAR-10 at equal step budgets "
                                "(EfficientNet-Lite0): linear-probe accuracy against steps, probe / CI / KD on "
                                f"{', '.join(results.display_name(n) for n in evals)} for the final sets, "
                                "random and centroid-nearest real images; wall time and peak memory per run",
                      config=config, rows=rows, timings=timings, command=command, complete=complete, runs=runs,
                      train_size=len(ds.train_y), test_size=len(ds.test_y), golden_acc=golden_acc,
                      backbones=backbones)

    # the real sets: random draws and the images nearest the class centres (in φ_distill)
    for ipc in size["ipcs"]:
        wanted = [("random-real", s) for s in size["real_seeds"]] + [("centroid-real", 0)]
        for name, s in wanted:
            if s in scores.get((name, ipc, None), {}):
                continue  # scored by an earlier invocation of this record
            st = inherit.random_real(ds, ipc, s) if name == "random-real" else \
                inherit.centroid_real(phi_d, ds, ipc, device)
            sc = evaluate({"real": name, "ipc": ipc, "seed": s}, st["images"], st["labels"], final=True)
            scores.setdefault((name, ipc, None), {})[s] = sc
        say(f"real sets at IPC {ipc} scored")

    todo = [p for p in plan if not (f"{p[2]}-ipc{p[0]}-seed{p[1]}" in runs and all(
        p[1] in scores.get((p[2], p[0], s), {}) for s in size["checkpoints"]))]  # else run and scored earlier
    cfgs = {p: run_config(size, ds, phi_d, p[2], p[0], p[1]) for p in todo}
    existed = {p for p in todo if artifacts.exists(synth.images_key(ds, cfgs[p], key_d, size["checkpoints"][:-1]))}

    def record(ipc: int, seed: int, method: str, concurrent: int) -> None:
        """Score one finished run (from the cache when it ran in a child) and rewrite the record."""
        t0 = time.perf_counter()
        res = synth.distill_cached(phi_d, ds, cfgs[(ipc, seed, method)], key_d, device=device, progress=False,
                                   snapshots=size["checkpoints"][:-1])
        fresh = (ipc, seed, method) not in existed
        if isolate and fresh and not res["cached"]:
            raise RuntimeError("the isolated run did not reach the cache (is DDLIB_CACHE writable?)")
        # loaded from an earlier invocation: this call's time, the run's own as original_wall_s; else the run's
        times = {"wall_s": float(res["wall_time"]), "cached": False} if fresh else \
            synth.run_times(res, time.perf_counter() - t0)
        cum = torch.tensor(res["history"]["step_time"]).cumsum(0)
        fc = res["history"]["flow_cos"]
        runs[f"{method}-ipc{ipc}-seed{seed}"] = {
            "method": method, "ipc": ipc, "seed": seed, "config": res["config"], **times,
            "loop_s_at": {str(s): float(cum[s - 1]) for s in size["checkpoints"]},
            "flow_cos_at": {str(s): float(sum(fc[max(0, s - 10):s]) / len(fc[max(0, s - 10):s]))
                            for s in size["checkpoints"]},
            "step_s_median": statistics.median(res["history"]["step_time"]), "peak_mem_bytes": res["peak_mem"],
            "peak_mem_kind": res["peak_mem_kind"], "device": res["device"], "levels": res["levels"],
            **({"concurrent_runs": concurrent} if fresh else {})}
        for s in size["checkpoints"]:
            images = res["images"] if s == size["steps"] else res["snapshots"][s]
            sc = evaluate({"run": res["key"], "steps": s}, images, res["labels"], final=s == size["steps"])
            scores.setdefault((method, ipc, s), {})[seed] = sc
        say(f"[{len(runs)}/{len(plan)}] {method} IPC {ipc} seed {seed}: {res['wall_time']:.0f} s "
            f"({'computed' if fresh else 'loaded'}), peak {res['peak_mem'] / 2**20:.0f} MiB, probe "
            + ", ".join(f"{s}: {100 * scores[(method, ipc, s)][seed]['probe on ' + DISTILL]['acc']:.1f} %"
                        for s in size["checkpoints"]))
        write(complete=False)

    if not isolate:  # in this process, one after another
        for p in todo:
            record(*p, concurrent=1)
    else:  # each run not in the cache in a child process, --jobs at a time, the longest (LGM) first
        for p in [p for p in todo if p in existed]:
            record(*p, concurrent=1)
        queue = sorted((p for p in todo if p not in existed), key=lambda p: p[2] != "lgm")
        running: dict[tuple[int, int, str], subprocess.Popen] = {}
        together: dict[tuple[int, int, str], int] = {}  # the most runs at once during each run (shared cores)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(ddlib.__file__).parents[1]),
                                                            os.environ.get("PYTHONPATH", "")])}
        while queue or running:
            while queue and len(running) < args.jobs:
                ipc, seed, method = p = queue.pop(0)
                running[p] = subprocess.Popen([
                    sys.executable, __file__, "--size", args.size, "--dataset", dataset, "--device", str(device),
                    "--threads", str(threads), "--one-run", f"{method},{ipc},{seed}"], env=env)
            for p in running:
                together[p] = max(together.get(p, 1), len(running))
            for p, child in list(running.items()):
                if child.poll() is None:
                    continue
                del running[p]
                if child.returncode != 0:
                    for other in running.values():
                        other.terminate()
                    raise RuntimeError(f"the {p[2]} run at IPC {p[0]}, seed {p[1]} failed "
                                       f"(exit code {child.returncode})")
                record(*p, concurrent=together[p])
            time.sleep(0.2 if running else 0)
    write(complete=True)
    say(f"wrote {out}")
    return 0


def _golden_acc(golden: torch.nn.Linear, phi: torch.nn.Module, ds: Any, device: torch.device) -> float:
    test = inherit.dataset_features(phi, ds, "test", device=device)
    return float((golden(test).argmax(1) == ds.test_y).float().mean())


if __name__ == "__main__":
    raise SystemExit(main())
