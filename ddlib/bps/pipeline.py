"""BPS and the baselines end to end: one modelling, every method and IPC, timed.

Data flows one way: dataset -> Stage-1 modelling (encoder, embeddings, patterns; cached) ->
teacher (cached) -> entropies / forgetting scores (cached) -> selections for every IPC. Every
selector draws on the same :class:`~ddlib.baselines.SelectionInputs`, so the methods differ only
in their selection rule; the student protocol of :mod:`ddlib.bps.distill` is then the same for all.

:data:`SELECTORS` is the one registry of methods: BPS (through the adapter :func:`select_bps_inputs`,
which takes the same ``(inputs, ipc, seed)`` as every baseline) first, then the baselines of
:data:`ddlib.baselines.SELECTORS`. It lives here because BPS sits above the baselines module;
:func:`selectors` binds BPS's own Stage-2 config.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ddlib import baselines
from ddlib.baselines import ForgettingConfig, SelectionInputs, forgetting_scores
from ddlib.bps.distill import TeacherConfig, teacher_entropies, train_teacher
from ddlib.bps.encoder import EncoderConfig, model_patterns
from ddlib.bps.patterns import PatternConfig
from ddlib.bps.select import SelectConfig, select_bps
from ddlib.utils import ParamError, check_choice, config_dict


def select_bps_inputs(inputs: SelectionInputs, ipc: int, seed: int = 0, cfg: SelectConfig = SelectConfig()) -> dict:
    """BPS Stage 2 under the selectors' signature: :func:`~ddlib.bps.select.select_bps` on the shared
    inputs (embeddings, labels, patterns, teacher entropies) at ``ipc``, with ``cfg``'s other settings.
    ``seed`` is recorded only (Stage 2 is deterministic)."""
    if inputs.entropies is None or inputs.patterns is None:
        raise ParamError("method='bps' needs patterns and teacher entropies (run modelling with 'bps')")
    sel = select_bps(inputs.embeddings, inputs.labels, inputs.patterns, inputs.entropies, replace(cfg, ipc=ipc))
    sel["config"] = {"method": "bps", "seed": seed, **sel["config"]}
    return sel


def selectors(select_cfg: SelectConfig = SelectConfig()) -> dict[str, Callable[[SelectionInputs, int, int], dict]]:
    """The registry with BPS's Stage-2 config bound: ``{"bps": ..., "random": ..., ...}``, BPS first."""
    return {"bps": lambda inputs, ipc, seed=0: select_bps_inputs(inputs, ipc, seed, select_cfg), **baselines.SELECTORS}


#: Every selection method, ``(inputs, ipc, seed) -> selection``: BPS (default Stage-2 config) and the baselines.
SELECTORS = selectors()
METHODS = tuple(SELECTORS)


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


def check_methods(methods) -> list[str]:
    """The method names, each checked against :data:`METHODS`."""
    if isinstance(methods, str):
        methods = [m.strip() for m in methods.split(",") if m.strip()]
    if not methods:
        raise ParamError(f"methods is empty; choose from {list(METHODS)}")
    return [check_choice("method", m, METHODS) for m in methods]


def modelling(ds, cfg: PipelineConfig, methods=METHODS, device=None, progress: bool = True) -> dict:
    """The shared inputs for ``methods``: ``{"inputs": SelectionInputs, "seconds": {...}, "teacher_acc", "info"}``.

    The teacher (and its entropies) is computed only when BPS is among the methods, the forgetting
    run only when forgetting is. Times are wall seconds, near 0 when the artifact was cached.
    """
    methods = check_methods(methods)
    sec: dict[str, float] = {}
    t = time.perf_counter()
    mp = model_patterns(ds, cfg.encoder, cfg.pattern, device=device, progress=progress)
    sec["modelling"] = time.perf_counter() - t
    inputs = SelectionInputs(mp["embeddings"], ds.train_y, mp["patterns"])
    out = {"inputs": inputs, "seconds": sec, "teacher_acc": None,
           "info": {"num_patterns": mp.get("num_patterns"), "modelling_key": mp.get("key"),
                    "stage1_seconds": mp.get("seconds")}}
    if "bps" in methods:
        t = time.perf_counter()
        teacher = train_teacher(ds, cfg.teacher, device=device, progress=progress)
        sec["teacher"] = time.perf_counter() - t
        t = time.perf_counter()
        inputs.entropies = teacher_entropies(teacher, ds.train_x, device=device)
        sec["entropies"] = time.perf_counter() - t
        out["teacher_acc"] = getattr(teacher, "test_acc", None)
        out["teacher"] = teacher
    if "forgetting" in methods:
        t = time.perf_counter()
        inputs.scores = forgetting_scores(ds, cfg.forgetting, seed=cfg.teacher.seed, device=device, progress=progress)
        sec["forgetting"] = time.perf_counter() - t
    return out


def select(method: str, inputs: SelectionInputs, ipc: int, seed: int = 0,
           select_cfg: SelectConfig = SelectConfig()) -> dict:
    """One method at one IPC; the result carries ``"seconds"`` (the selection's own wall time)."""
    check_choice("method", method, METHODS)
    t = time.perf_counter()
    sel = selectors(select_cfg)[method](inputs, ipc, seed)
    sel["seconds"] = time.perf_counter() - t
    return sel


def run_selection(ds, methods, ipcs, seed: int = 0, cfg: PipelineConfig = PipelineConfig(), device=None,
                  progress: bool = True) -> dict:
    """Every method at every IPC from one modelling: ``{"selections": {method: {ipc: sel}}, "modelling": ...}``."""
    methods = check_methods(methods)
    mod = modelling(ds, cfg, methods, device=device, progress=progress)
    sels = {m: {int(k): select(m, mod["inputs"], int(k), seed, cfg.select) for k in ipcs} for m in methods}
    return {"selections": sels, "modelling": mod}


def selection_table(inputs: SelectionInputs, selections: dict) -> list[dict]:
    """One row per (method, IPC): images, selection seconds, centre share (common criterion, see
    :func:`ddlib.metrics.assign_roles`), BPS's own centre share, pattern coverage, fill distance, MMD."""
    from ddlib import metrics

    rows = []
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
                         "mmd": metrics.mmd(inputs.embeddings, inputs.labels, idx)["mean"]})
    return rows


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
