"""BPS and the baselines end to end: one modelling, every method and IPC, timed.

Data flows one way: dataset -> Stage-1 modelling (encoder, embeddings, patterns; cached) ->
teacher (cached) -> entropies / forgetting scores (cached) -> selections for every IPC. Every
selector draws on the same :class:`~ddlib.baselines.SelectionInputs`, so the methods differ only
in their selection rule; the student protocol of :mod:`ddlib.bps.distill` is then the same for all.

The methods are the one registry of :mod:`ddlib.selectors`: the baselines register in
:mod:`ddlib.baselines`, BPS here (the adapter :func:`select_bps_inputs`, which takes the same
``(inputs, ipc, seed, cap)`` as every baseline and its Stage-2 config), and :func:`modelling` computes what
the chosen ones need.
"""
from __future__ import annotations

import contextlib

import time
from dataclasses import dataclass, field, replace

from ddlib import baselines  # noqa: F401 - registers the baselines in ddlib.selectors
from ddlib import selectors as registry
from ddlib.baselines import ForgettingConfig, SelectionInputs, forgetting_scores
from ddlib.bps.distill import TeacherConfig, teacher_entropies, train_teacher
from ddlib.bps.encoder import EncoderConfig, model_patterns
from ddlib.bps.patterns import PatternConfig
from ddlib.bps.select import SelectConfig, select_bps
from ddlib.metrics import RULES
from ddlib.selectors import names, register
from ddlib.utils import ParamError, config_dict

__all__ = ["select_bps_inputs", "PipelineConfig", "load_datasets", "check_methods", "modelling", "select",
           "run_selection", "selection_table", "evaluate_all", "evaluate_grid", "student_key", "STUDENT_FIELDS",
           "grid_pairs", "grid_accuracy"]


@register("bps", needs=("patterns", "teacher"), takes_config=True, first=True,
          summary="per pattern: centres (highest cosine to the pattern mean) + margins (teacher entropy, "
                  "GMM-filtered)")
def select_bps_inputs(inputs: SelectionInputs, ipc: int, seed: int = 0, cap: bool = False,
                      config: SelectConfig = SelectConfig()) -> dict:
    """BPS Stage 2 under the selectors' signature: :func:`~ddlib.bps.select.select_bps` on the shared
    inputs (embeddings, labels, patterns, teacher entropies) at ``ipc``, with ``config``'s other settings.
    ``seed`` is recorded only (Stage 2 is deterministic). A class smaller than ``ipc`` is an error naming it,
    unless ``cap=True`` (taken whole, recorded as ``config["capped"]``), as for every selector."""
    from ddlib.utils import check_ipc

    if inputs.entropies is None or inputs.patterns is None:
        raise ParamError("method='bps' needs patterns and teacher entropies (run modelling with 'bps')")
    capped = check_ipc(ipc, inputs.labels, inputs.classes, cap)
    sel = select_bps(inputs.embeddings, inputs.labels, inputs.patterns, inputs.entropies, replace(config, ipc=ipc))
    budget = {"cap": True, "capped": {str(c): n for c, n in capped.items()}} if cap else {}
    sel["config"] = {"method": "bps", "seed": seed, **sel["config"], **budget}
    return sel


@dataclass(frozen=True)
class PipelineConfig:
    """Every stage's config; defaults are the reference's full-scale settings."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    pattern: PatternConfig = field(default_factory=PatternConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    forgetting: ForgettingConfig = field(default_factory=ForgettingConfig)
    select: SelectConfig = field(default_factory=SelectConfig)

    def __post_init__(self) -> None:
        for name, cls in (("encoder", EncoderConfig), ("pattern", PatternConfig), ("teacher", TeacherConfig),
                          ("forgetting", ForgettingConfig), ("select", SelectConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ParamError(f"{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")

    def as_dict(self) -> dict:
        return {k: config_dict(getattr(self, k)) for k in ("encoder", "pattern", "teacher", "forgetting", "select")}


def load_datasets(dataset: str, *, per_class: int | None = None, teacher_per_class: int | None = None,
                  encoder_per_class: int | None = None, test_per_class: int | None = None,
                  modelling_test_per_class: int | None = None, seed: int = 0, **load_kw) -> dict:
    """The data of one BPS run: ``pool`` (what every method selects from; per-class subsample ``per_class``,
    test split ``modelling_test_per_class``), ``teacher`` (``teacher_per_class``; the pool itself when equal),
    ``encoder`` (``encoder_per_class``, default the pool) and ``eval`` (the pool with the students' test split
    ``test_per_class``). Subsamples are drawn with the same ``seed``, so a smaller one lies inside a larger one
    (:func:`ddlib.data.positions_in` maps between them)."""
    import dataclasses

    from ddlib import data

    def load(pc: int | None, tpc: int | None):  # noqa: ANN202
        return data.load(dataset, per_class=pc, seed=seed, test_per_class=tpc, **load_kw)

    pool = load(per_class, modelling_test_per_class)
    teacher = pool if teacher_per_class == per_class else load(teacher_per_class, modelling_test_per_class)
    encoder = pool if encoder_per_class is None or encoder_per_class == per_class else load(encoder_per_class,
                                                                                             modelling_test_per_class)
    if test_per_class == modelling_test_per_class:
        ev = pool
    else:
        test = load(1, test_per_class)
        ev = dataclasses.replace(pool, test_x=test.test_x, test_y=test.test_y, test_patterns=test.test_patterns)
    return {"pool": pool, "teacher": teacher, "encoder": encoder, "eval": ev}


def check_methods(methods) -> list[str]:
    """The method names, each checked against the registry (:func:`ddlib.selectors.names`)."""
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if not methods:
        raise ParamError(f"methods is empty; choose from {list(names())}")
    return [registry.get(m).name for m in methods]


def modelling(ds, cfg: PipelineConfig, methods=None, device=None, progress: bool = True, *,
              teacher_ds=None, encoder_ds=None, teacher: bool | None = None) -> dict:
    """The shared inputs for ``methods``: ``{"inputs": SelectionInputs, "seconds": {...}, "teacher_acc", "info"}``.

    ``ds`` is the selection pool: every method selects among its training images. ``teacher_ds``: the
    data the teacher and the forgetting run learn from (default ``ds``; the full training set when the
    pool is a subsample, as the reference's teacher sees all 50,000 CIFAR-10 images): the teacher's
    entropies and the forgetting scores are then read for the pool's images. ``encoder_ds``: the
    images Stage 1 learns from (default ``ds``); the embeddings are always of the whole pool.

    What is computed follows what the methods' selectors need (:mod:`ddlib.selectors`): Stage 1 always (the
    features and patterns); the teacher and its entropies for ``"teacher"`` or ``teacher=True`` (KD students
    need it); a forgetting run for ``"forgetting"`` (on the teacher's own run when the config says so). Times
    are wall seconds, near 0 when the artifact was cached.
    """
    from ddlib.data import positions_in

    methods = check_methods(names() if methods is None else methods)
    needs = set().union(*(registry.get(m).needs for m in methods))
    teacher_ds = ds if teacher_ds is None else teacher_ds
    sec: dict[str, float] = {}
    wants_teacher_scores = "forgetting" in needs and cfg.forgetting.source == "teacher"
    model = None
    # the teacher first: it does not depend on Stage 1, so a chapter run beside chapter 1 (python -m ddlib book
    # --jobs 2) trains it while chapter 1 trains the encoder, then finds Stage 1 in the cache
    if "teacher" in needs or teacher or wants_teacher_scores:
        t = time.perf_counter()
        model = train_teacher(teacher_ds, cfg.teacher, device=device, progress=progress,
                              el2n_epoch=cfg.forgetting.el2n_epoch if wants_teacher_scores else None)
        sec["teacher"] = time.perf_counter() - t
    t = time.perf_counter()
    mp = model_patterns(ds, cfg.encoder, cfg.pattern, device=device, progress=progress, train_ds=encoder_ds)
    sec["modelling"] = time.perf_counter() - t
    inputs = SelectionInputs(mp["embeddings"], ds.train_y, mp["patterns"], classes=list(ds.classes))
    out = {"inputs": inputs, "seconds": sec, "teacher_acc": None,
           "info": {"num_patterns": mp.get("num_patterns"), "modelling_key": mp.get("key"),
                    "stage1_seconds": mp.get("seconds"), "pool_size": len(ds.train_y),
                    "teacher_train_size": len(teacher_ds.train_y),
                    "encoder_train_size": len((encoder_ds or ds).train_y)}}
    if model is not None:
        t = time.perf_counter()
        inputs.entropies = teacher_entropies(model, ds.train_x, device=device)
        sec["entropies"] = time.perf_counter() - t
        out["teacher_acc"] = getattr(model, "test_acc", None)
        out["teacher"] = model
    if "forgetting" in needs:
        t = time.perf_counter()
        scores = getattr(out.get("teacher"), "scores", None) if wants_teacher_scores else None
        if scores is None:  # a run of its own (or a teacher cached before teachers recorded their scores)
            scores = forgetting_scores(teacher_ds, cfg.forgetting, seed=cfg.teacher.seed, device=device,
                                       progress=progress)
        scores = {**scores, "never_learned": cfg.forgetting.never_learned}
        if teacher_ds is not ds:
            pos = positions_in(ds, teacher_ds).numpy()
            scores.update({k: scores[k][pos] for k in ("forgetting", "learned", "el2n") if k in scores})
        inputs.scores = scores
        sec["forgetting"] = time.perf_counter() - t
    return out


def select(method: str, inputs: SelectionInputs, ipc: int, seed: int = 0,
           select_cfg: SelectConfig = SelectConfig(), cap: bool = False) -> dict:
    """One method at one IPC; the result carries ``"seconds"`` (the selection's own wall time). ``cap``: take a
    class smaller than ``ipc`` whole (recorded in the selection's config) instead of refusing it."""
    t = time.perf_counter()
    sel = registry.get(method)(inputs, ipc, seed, cap, config=select_cfg)
    sel["seconds"] = time.perf_counter() - t
    return sel


def run_selection(ds, methods, ipcs, seed: int = 0, cfg: PipelineConfig = PipelineConfig(), device=None,
                  progress: bool = True, *, teacher_ds=None, encoder_ds=None, cap: bool = False) -> dict:
    """Every method at every IPC from one modelling: ``{"selections": {method: {ipc: sel}}, "modelling": ...}``
    (``teacher_ds``, ``encoder_ds``: see :func:`modelling`). An IPC larger than a class of ``ds`` is refused
    before any modelling, unless ``cap`` (see :func:`select`)."""
    from ddlib.utils import check_ipc

    methods = check_methods(methods)
    for k in ipcs:
        check_ipc(k, ds.train_y, list(ds.classes), cap)
    mod = modelling(ds, cfg, methods, device=device, progress=progress, teacher_ds=teacher_ds, encoder_ds=encoder_ds)
    sels = {m: {int(k): select(m, mod["inputs"], int(k), seed, cfg.select, cap) for k in ipcs} for m in methods}
    return {"selections": sels, "modelling": mod}


def selection_table(inputs: SelectionInputs, selections: dict) -> list[dict]:
    """One row per (method, IPC): images, selection seconds, centre share (common criterion, see
    :func:`ddlib.metrics.assign_roles`), BPS's own centre share, pattern coverage, fill distance, MMD."""
    from ddlib import metrics

    rows = []
    mmd_ref = metrics.mmd_reference(inputs.embeddings, inputs.labels)  # the classes' own terms, computed once
    for m, per_ipc in selections.items():
        for k, sel in per_ipc.items():
            idx = sel["indices"]
            roles = metrics.assign_roles(inputs.embeddings, inputs.labels, idx, inputs.patterns)
            rows.append({"method": m, "ipc": k, "images": len(idx), "seconds": sel.get("seconds"),
                         "centre_share": metrics.centre_margin_share(roles)["centre"],
                         "own_centre_share": metrics.centre_margin_share(sel["role"])["centre"] if m == "bps" else None,
                         "pattern_coverage": metrics.pattern_coverage(inputs.labels, idx, inputs.patterns)
                         if inputs.patterns is not None else None,
                         "fill_distance": metrics.fill_distance(inputs.embeddings, inputs.labels, idx)["mean"],
                         "mmd": metrics.mmd(inputs.embeddings, inputs.labels, idx, reference=mmd_ref)["mean"]})
    return rows


def same_picks(selections: dict, ipc: int) -> list[list[str]]:
    """The groups of methods whose selections at ``ipc`` hold exactly the same images (``selections``:
    :func:`run_selection`'s ``{method: {ipc: selection}}``), each of two or more, in the methods' order: at IPC 1
    herding's first pick is the class centroid's, so their students are the same students."""
    groups: dict[frozenset, list[str]] = {}
    for m, per_ipc in selections.items():
        if ipc in per_ipc:
            groups.setdefault(frozenset(int(i) for i in per_ipc[ipc]["indices"]), []).append(m)
    return [g for g in groups.values() if len(g) > 1]


def evaluate_all(ds, selections: dict, student, seeds, teacher=None, teacher_cfg=None, device=None,
                 progress: bool = True) -> list[dict]:
    """Students (one protocol for all) on every selection: one row per (method, IPC) with mean, std, per seed."""
    from ddlib.bps.distill import evaluate_selection

    rows = []
    for m, per_ipc in selections.items():
        for k, sel in per_ipc.items():
            r = evaluate_selection(ds, sel["indices"], student, seeds, teacher=teacher, teacher_cfg=teacher_cfg,
                                   ipc=k, device=device, progress=progress)
            rows.append({"method": m, "ipc": k, "mean": r["mean"], "std": r["std"], "per_seed": r["per_seed"],
                         "student_seconds": sum(r["seconds"]), "selection_seconds": sel.get("seconds")})
    return rows


# ----------------------------------------------------------------------------- paired evaluation over seeds


def evaluate_grid(ds, inputs: SelectionInputs, methods, ipcs, seeds, students: dict, teacher=None,
                  select_cfg: SelectConfig = SelectConfig(), device=None, progress: bool = True) -> list[dict]:
    """Students for every (method, IPC, student protocol, seed), paired over seeds.

    ``students``: ``{name: StudentConfig}`` (e.g. ``{"kd": ..., "ce": ...}``). For seed ``s`` every
    method selects with ``seed=s`` (random draws a fresh subset per seed; k-center its first centre;
    deterministic rules give the same picks) and every student trains with ``seed=s``: the same
    initial weights and the same augmentation stream for every method, so differences between methods
    at one seed come from the images alone. One row per student: ``method``, ``ipc``, ``student``
    (the protocol's name), ``seed``, ``best_last``, ``final`` (accuracies as fractions), ``accs`` (the
    evaluated epochs), ``n_images``, ``selection_seconds``, ``student_seconds`` (the training's own time, also
    when ``cached``: the student was loaded from the artifact cache, where every result is stored).

    Students sharing a protocol and IPC train together through :mod:`ddlib.bps.grid` when it supports their
    model on ``device`` (on CPU stacks of one: bit for bit the one-by-one students; see :func:`_train_jobs`),
    else one by one. Under torchrun each (IPC, protocol)'s students are split over the ranks and their results
    gathered (:func:`_train_jobs`): every rank returns the same rows.
    """
    from ddlib.bps.distill import train_student
    from ddlib.utils import check_int

    methods = check_methods(methods)
    seeds = [check_int("seed", s, 0, 2**32 - 1) for s in seeds]
    if not seeds:
        raise ParamError("seeds must name at least one seed")
    rows = []
    for k in sorted({int(i) for i in ipcs}):
        sels = {(m, s): select(m, inputs, k, s, select_cfg) for m in methods for s in seeds}
        for name, cfg in students.items():
            rcfg = cfg.resolved(ds.name, ds.num_classes, k)
            if rcfg.loss == "kd" and teacher is None:
                raise ParamError(f"student {name!r} distils from a teacher (loss='kd'): pass teacher=")
            jobs = [(m, s) for m in methods for s in seeds]
            results = _train_jobs(ds, [(sels[j]["indices"], j[1]) for j in jobs], rcfg, teacher, device, progress,
                                  train_student)
            for (m, s), r in zip(jobs, results):
                rows.append({"method": m, "ipc": k, "student": name, "loss": rcfg.loss, "seed": s,
                             "best_last": r["best_acc"], "final": r["last_acc"], "accs": r["accs"],
                             "n_images": len(sels[(m, s)]["indices"]), "selection_seconds": sels[(m, s)]["seconds"],
                             "student_seconds": r["seconds"], "cached": r["cached"]})
    return rows


def student_key(ds, indices, cfg, teacher, seed: int) -> str:
    """The artifact key of one student's result: the dataset (its test split included), the selected images,
    the resolved protocol, the teacher (its own key) and the seed."""
    import hashlib

    import numpy as np

    from ddlib import artifacts

    digest = hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:24]
    who = "no-teacher" if cfg.loss != "kd" or teacher is None else getattr(teacher, "ddlib_key", None)
    if who is None:
        return ""  # a teacher of unknown provenance: not cached
    return artifacts.make_key("student", ds.key(), cfg, [who, f"indices={digest}", f"seed={int(seed)}"])


#: What a stored student holds: ``train_student``'s result (a student trained by the grid is stored the same way).
STUDENT_FIELDS = ("best_acc", "last_acc", "accs", "seconds")


def _train_jobs(ds, jobs, cfg, teacher, device, progress, one_by_one) -> list[dict]:
    """Each job's result, from the cache when this student was trained before (so an interrupted grid
    resumes, and a chapter reuses another's students), else trained and stored under :func:`student_key`.

    The students still to train go to :func:`ddlib.bps.grid.train_students` when
    :func:`ddlib.bps.grid.supports` ``(cfg, device)`` (on CPU: stacks of one, the same students bit for bit
    as ``one_by_one`` = ``train_student`` with one intra-op thread; on CUDA: stacks, equal within float
    rounding), else to ``one_by_one`` each. Either way the artifact stores :data:`STUDENT_FIELDS` under the
    same key (the record's meta says ``stack_size`` when the grid trained it).

    Under torchrun rank 0 looks the jobs up; the ones to train are split round-robin over the ranks
    (:func:`ddlib.distributed.split_map`: a student's result depends on its seed, not on the rank that trains
    it), every rank gets every result, rank 0 stores them and the others wait."""
    from ddlib import artifacts, distributed

    keys = [student_key(ds, idx, cfg, teacher, s) for idx, s in jobs]
    out: list[dict | None] = distributed.on_main(lambda: [artifacts.load(k) if k else None for k in keys])
    todo = [i for i, r in enumerate(out) if r is None]
    # in one process, hold the locks of the students to train: a chapter that needs the students another is
    # training (chapter 5 beside chapter 2) waits for them and loads them instead of training them again
    solo = distributed.world_size() == 1 and any(keys[i] for i in todo)
    with artifacts.computing_all([keys[i] for i in todo if keys[i]]) if solo else contextlib.nullcontext():
        if solo:
            for i in todo:
                out[i] = artifacts.load(keys[i]) if keys[i] else None
            todo = [i for i, r in enumerate(out) if r is None]
        _train_todo(ds, jobs, keys, out, todo, cfg, teacher, device, progress, one_by_one)
    return [r if "cached" in r else {**r, "cached": True} for r in out]


def _train_todo(ds, jobs, keys, out, todo, cfg, teacher, device, progress, one_by_one) -> None:
    """Train the jobs ``todo`` (indices into ``jobs``), storing each under its key as soon as it is trained and
    setting ``out[i]``; see :func:`_train_jobs`."""
    from ddlib import artifacts, distributed
    from ddlib.bps import grid

    if todo:
        stacked = grid.supports(cfg, device)
        sub = [jobs[i] for i in todo]

        def store(j: int, r: dict) -> None:
            """Keep sub[j]'s result, stored as soon as it is trained: an interrupted grid keeps every student
            it finished (a long run resumes from them), not only whole batches of jobs."""
            i = todo[j]
            stored = {k: r[k] for k in STUDENT_FIELDS}
            if keys[i] and distributed.is_main():
                meta = {"stage": "student", "seed": jobs[i][1], **{k: r[k] for k in ("stack_size",) if k in r}}
                artifacts.save(keys[i], stored, meta=meta)
            out[i] = {**stored, "cached": False}

        if distributed.world_size() == 1:
            if stacked:
                grid.train_students(ds, sub, cfg, teacher, device=device, progress=progress, on_done=store)
            else:
                for j, (idx, s) in enumerate(sub):
                    store(j, one_by_one(ds, idx, cfg, teacher, seed=s, device=device, progress=progress))
        else:
            def train(part: list) -> list[dict]:
                if stacked:
                    return grid.train_students(ds, part, cfg, teacher, device=device, progress=progress)
                return [one_by_one(ds, idx, cfg, teacher, seed=s, device=device, progress=progress)
                        for idx, s in part]

            for j, r in enumerate(distributed.split_map(train, sub)):
                store(j, r)
        distributed.barrier()


def grid_pairs(rows: list[dict], baseline: str = "random", confidence: float = 0.95) -> list[dict]:
    """Every comparison of :func:`evaluate_grid`'s rows as a paired difference over seeds with its interval.

    - each method against ``baseline`` (same IPC, student protocol and rule): for the KD protocol this
      is DD-Ranking's improvement over random (IOR);
    - within each method and IPC, every student protocol against the others (e.g. KD minus CE: does
      distillation beat hard labels?).

    Rows: ``method``, ``baseline`` (a method, or ``"<method> / <protocol>"``), ``ipc``, ``protocol``,
    ``rule``, ``n_seeds``, ``diff_mean``, ``ci95`` (low, high), ``excludes_zero``, ``verdict``.
    """
    from ddlib.metrics import paired_stats

    by: dict[tuple, dict[int, dict]] = {}
    for r in rows:
        by.setdefault((r["method"], r["ipc"], r["student"]), {})[r["seed"]] = r
    out = []

    def add(a_key, b_key, method, base_label, protocol, ipc):
        a, b = by[a_key], by[b_key]
        common = sorted(set(a) & set(b))
        if len(common) < 1:
            return
        for rule in RULES:
            out.append({"method": method, "baseline": base_label, "ipc": ipc, "protocol": protocol, "rule": rule,
                        **paired_stats([a[s][rule] for s in common], [b[s][rule] for s in common], method,
                                       base_label, confidence)})

    keys = sorted(by)
    for (m, k, st) in keys:
        if m != baseline and (baseline, k, st) in by:
            add((m, k, st), (baseline, k, st), m, baseline, st, k)
    protocols = sorted({st for (_, _, st) in keys})
    for (m, k, st) in keys:
        for other in protocols:
            if other < st and (m, k, other) in by:  # e.g. "kd - ce": does distillation beat hard labels?
                add((m, k, st), (m, k, other), f"{m} / {st}", f"{m} / {other}", f"{st} - {other}", k)
    return out


def grid_accuracy(rows: list[dict]) -> list[dict]:
    """:func:`evaluate_grid`'s rows summarised per (method, IPC, protocol, rule): mean, std (ddof 1), per seed."""
    import numpy as np

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["ipc"], r["student"]), []).append(r)
    out = []
    for (m, k, st), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["seed"])
        for rule in RULES:
            v = np.array([r[rule] for r in rs], dtype=float)
            out.append({"method": m, "ipc": k, "protocol": st, "rule": rule, "mean": float(v.mean()),
                        "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "per_seed": v.tolist(),
                        "seeds": [r["seed"] for r in rs]})
    return out
