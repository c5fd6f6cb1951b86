"""Every scale's settings for every stage, once: the chapters, the CLI and the benchmarks read them here.

One function per workflow returns a frozen preset holding the data settings and the library's configs:

- :func:`data` (chapter 0), :func:`stage1` (chapter 1: the Stage-1 encoder and patterns),
  :func:`bps` (chapter 2, ``python -m ddlib select`` / ``evaluate``, ``benchmarks/bps_results.py``),
- :func:`sfm` (chapter 3), :func:`ci` (chapter 4, ``python -m ddlib distill`` / ``evaluate-synthetic``,
  ``benchmarks/sfm_ci_cifar10.py``),
- :func:`results` (chapter 5: chapter 2's and chapter 4's presets with chapter 5's own budget).

Each takes a scale of :data:`SCALES` (``test``: seconds, what the test-suite runs; ``cpu``: the book's
default, minutes on 2 CPU cores; ``gpu``: the full-scale runs) or ``None``, the *reference*: the
configs' own defaults on every image, which is what the CLI runs without ``--scale``. The ``gpu`` scale is
the papers' setting: for BPS the CIFAR-10 one (Stage 1 fine-tuning torchvision's ImageNet ResNet-18 at
224 px, the reference's queue, epochs and k, ResNet-18 teacher and students, DeepCore's forgetting run); it
differs from the reference configs only in Stage 1's backbone (the configs default to the CIFAR ResNet-18
from scratch, which runs offline). The ``gpu`` synthesis presets are the SFM/LGM protocol on ImageNette
with ViT-B backbones (:data:`VALUES` says in one line each where they depart). ``tests/test_gpu_dry_run.py``
runs the ``gpu`` code path on a CPU with only the sizes cut.

Overrides are flat names, as the chapters' parameter cells and the CLI's options call them
(``encoder_epochs``, ``teacher_epochs``, ``width``, ...); ``None`` means "the preset's value". Where each
name goes is written once, in :data:`TABLES`; :data:`VALUES` holds each scale's values. An unknown name or
a bad value raises :class:`~ddlib.utils.ParamError` naming it and what is accepted.

Chapters share settings by construction: :func:`stage1` is :func:`bps`'s Stage 1, and :func:`results`
calls :func:`bps` and :func:`ci` with chapter 5's changes (:data:`RESULTS_CHANGES`), so the artifacts
chapters 1, 2 and 4 cached (encoder, patterns, teacher, forgetting run, backbone, SFM images, golden
head) are the ones chapter 5 loads.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ddlib.bps.distill import StudentConfig, TeacherConfig
from ddlib.presets.build import (ALL_IMAGES, FORGETTING_RECIPES, _bps_configs, _check_dataset, _methods, _resolve,
                                 _synth_preset, given)
from ddlib.presets.kinds import BPSPreset, DataPreset, ResultsPreset, Stage1Preset, SynthPreset
from ddlib.presets.names import NAMED, PARTS, SET_BY_THE_PRESET, TABLES, derived_names, unknown_name
from ddlib.presets.values import (ALL_METHODS, LIVE_SYNTHESIS, PROJECTIONS, RESULTS_CHANGES, SCALES, SYNTHESIS_METHODS,
                                  VALUES)
from ddlib.utils import ParamError, check_choice, check_int

__all__ = ["SCALES", "TABLES", "NAMED", "PARTS", "SET_BY_THE_PRESET", "VALUES", "RESULTS_CHANGES", "ALL_METHODS",
           "ALL_IMAGES", "PROJECTIONS", "FORGETTING_RECIPES", "DataPreset", "Stage1Preset", "BPSPreset", "SynthPreset",
           "ResultsPreset", "LIVE_SYNTHESIS", "SYNTHESIS_METHODS", "data", "stage1", "bps", "sfm", "ci", "results", "fields", "student_for", "derived_names",
           "unknown_name", "STAGE1_NAMES"]

# ----------------------------------------------------------------------------- the functions
def data(scale: str | None = "cpu", **overrides: Any) -> DataPreset:
    """Chapter 0's data at ``scale`` (see :data:`VALUES`), with ``overrides`` (None: the preset's value)."""
    plain, _ = _resolve("data", scale, overrides)
    _check_dataset(plain, minimum=1)
    check_int("seed", plain["seed"], 0, 2**32 - 1)
    check_int("ipc", plain["ipc"], 1, 1000)
    return DataPreset(dataset=plain.get("dataset"), per_class=plain.get("per_class"),
                      test_per_class=plain.get("test_per_class"), seed=plain["seed"], ipc=plain["ipc"])


#: the names :func:`stage1` takes (the rest of :func:`bps`'s are about teacher, selection and students)
STAGE1_NAMES = ("dataset", "per_class", "encoder_per_class", "modelling_test_per_class", "seed", "data_seed", "backbone", "width",
                "depth", "encoder_backbone", "encoder_width", "encoder_depth", "encoder_epochs", "encoder_batch",
                "queue_size", "warmup_epochs", "clu_warmup_epochs", "clu_weight", "k", "min_sim", "knn_k",
                "knn_min_sim", "show_class", "projection")


def stage1(scale: str | None = "cpu", **overrides: Any) -> Stage1Preset:
    """Chapter 1: BPS's Stage 1 exactly as :func:`bps` builds it (so chapters 1 and 2 share its cache)."""
    unknown = [k for k in overrides if k not in STAGE1_NAMES]
    if unknown:
        raise ParamError(f"{unknown[0]!r} is not a parameter of the stage1 preset; accepted: {list(STAGE1_NAMES)}")
    return bps(scale, **overrides).stage1


def bps(scale: str | None = "cpu", **overrides: Any) -> BPSPreset:
    """BPS and the baselines at ``scale`` (None: the reference), with flat ``overrides`` of :data:`TABLES`."""
    plain, parts = _resolve("bps", scale, overrides)
    _check_dataset(plain, minimum=2, names=("per_class", "teacher_per_class", "encoder_per_class", "test_per_class",
                                            "modelling_test_per_class"))
    ipcs = plain.get("ipcs")
    if isinstance(ipcs, int) and not isinstance(ipcs, bool):
        ipcs = [ipcs]
    if not isinstance(ipcs, (list, tuple)) or not ipcs:
        raise ParamError(f"ipcs={ipcs!r} must be a non-empty list of positive integers, e.g. [1, 10, 50]")
    ipcs = tuple(sorted({check_int("ipcs", k, 1) for k in ipcs}))
    student_ipcs = _student_ipcs(plain.get("student_ipcs"), ipcs, "ipcs" in given(**overrides)
                                 and "student_ipcs" not in given(**overrides))
    methods = _methods(plain.get("methods"))
    projection = plain.get("projection")
    if projection is not None:
        check_choice("projection", projection, PROJECTIONS)
    configs = _bps_configs(parts)
    return BPSPreset(dataset=plain.get("dataset"), per_class=plain.get("per_class"),
                     teacher_per_class=plain.get("teacher_per_class"), encoder_per_class=plain.get("encoder_per_class"),
                     hard_label_methods=_methods(plain.get("hard_label_methods")) or (),
                     test_per_class=plain.get("test_per_class"),
                     modelling_test_per_class=plain.get("modelling_test_per_class"),
                     data_seed=check_int("data_seed", plain.get("data_seed", 0), 0, 2**32 - 1),
                     seed=check_int("seed", plain.get("seed", 0), 0, 2**32 - 1), ipcs=ipcs,
                     student_ipcs=student_ipcs, methods=methods,
                     seeds=check_int("seeds", plain["seeds"], 1, 1000), show_class=plain.get("show_class"),
                     projection=projection, **configs)


def _student_ipcs(value: Any, ipcs: tuple[int, ...], ipcs_given: bool) -> tuple[int, ...] | None:
    """``student_ipcs`` checked against ``ipcs`` (None: students at every IPC). A scale's value gives way
    when the caller names ``ipcs`` and not ``student_ipcs``: ``-p ipcs 1,10,50,100`` trains students at
    all four, as it reads."""
    if value is None or ipcs_given:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ParamError(f"student_ipcs={value!r} must be a non-empty list of IPCs among ipcs={list(ipcs)}, or None")
    chosen = tuple(sorted({check_int("student_ipcs", k, 1) for k in value}))
    extra = [k for k in chosen if k not in ipcs]
    if extra:
        raise ParamError(f"student_ipcs={list(chosen)}: IPC {extra[0]} is not selected; accepted: IPCs among "
                         f"ipcs={list(ipcs)} (add it to ipcs), or None for all of them")
    return None if chosen == ipcs else chosen


def sfm(scale: str | None = "cpu", **overrides: Any) -> SynthPreset:
    """Chapter 3: SFM, chunked SFM and LGM on one frozen backbone, at ``scale`` with ``overrides``."""
    return _synth_preset("sfm", scale, overrides)


def ci(scale: str | None = "cpu", **overrides: Any) -> SynthPreset:
    """Chapter 4 and the CLI's synthesis commands: SFM images evaluated by probe, CI and KD heads."""
    return _synth_preset("ci", scale, overrides)


def results(scale: str | None = "cpu", recorded: bool = True, synthesis: Any = None,
            **overrides: Any) -> ResultsPreset:
    """Chapter 5: :func:`bps` and :func:`ci` at ``scale`` with :data:`RESULTS_CHANGES`, then ``overrides``.

    ``synthesis`` names the methods distilled live (None: :data:`LIVE_SYNTHESIS` of the scale, both at the
    reference), among :data:`SYNTHESIS_METHODS`; SFM is always among them (the sets are compared with it).

    A name prefixed ``sfm_`` goes to the synthesis preset without its prefix (``sfm_steps`` -> ``steps``);
    ``seed`` goes to both; any other name to the selection preset if it has it, else to the synthesis one.
    """
    if scale is not None:
        check_choice("scale", scale, SCALES)
    if not isinstance(recorded, bool):
        raise ParamError(f"recorded={recorded!r} must be True or False")
    to_bps: dict[str, Any] = {}
    to_ci: dict[str, Any] = {}
    for name, value in overrides.items():
        if name == "seed":
            to_bps[name] = to_ci[name] = value
        elif name.startswith("sfm_"):
            to_ci[name[4:]] = value
        elif name in TABLES["bps"]:
            to_bps[name] = value
        elif name in TABLES["synth"]:
            to_ci[name] = value
        else:
            accepted = sorted({*TABLES["bps"], *TABLES["synth"], *(f"sfm_{n}" for n in TABLES["synth"])})
            raise ParamError(f"{name!r} is not a parameter of the results preset; accepted: {accepted}")
    if synthesis is None:
        synthesis = LIVE_SYNTHESIS[scale] if scale is not None else SYNTHESIS_METHODS
    if isinstance(synthesis, str):
        synthesis = [synthesis]
    if not isinstance(synthesis, (list, tuple)):
        raise ParamError(f"synthesis={synthesis!r} must be a list among {list(SYNTHESIS_METHODS)}, e.g. [\"sfm\", \"lgm\"]")
    chosen = tuple(check_choice("synthesis", str(m).lower(), SYNTHESIS_METHODS) for m in synthesis)
    if "sfm" not in chosen:
        raise ParamError(f"synthesis={list(synthesis)} must include 'sfm' (every other set is compared with SFM's); "
                         f"accepted: lists among {list(SYNTHESIS_METHODS)}")
    changes = RESULTS_CHANGES[scale] if scale is not None else {"bps": {}, "ci": {}}
    return ResultsPreset(bps=bps(scale, **{**changes["bps"], **given(**to_bps)}),
                         ci=ci(scale, **{**changes["ci"], **given(**to_ci)}), recorded=recorded,
                         synthesis=tuple(m for m in SYNTHESIS_METHODS if m in chosen))


def fields(workflow: str, part: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of config ``part`` that ``overrides`` set (None values skipped), by :data:`TABLES`.

    The CLI's ``evaluate`` uses it to apply the teacher options to the teacher a selection recorded.
    """
    table = TABLES["synth" if workflow in ("sfm", "ci") else workflow]
    out: dict[str, Any] = {}
    for name, targets in table.items():
        if overrides.get(name) is None:
            continue
        for t in targets:
            p, _, f = t.rpartition(".")
            if p == part:
                out[f] = overrides[name]
    return out


def student_for(teacher: TeacherConfig, student: StudentConfig, overrides: Mapping[str, Any]) -> StudentConfig:
    """``student`` with the teacher's architecture, unless ``overrides`` name the student's model.

    A ``student_width``/``student_depth`` override still wins over the teacher's.
    """
    if overrides.get("student_model") is not None:
        return student
    width = overrides.get("student_width")
    depth = overrides.get("student_depth")
    return dataclasses.replace(student, model=teacher.model, width=teacher.width if width is None else width,
                               depth=teacher.depth if depth is None else depth)


