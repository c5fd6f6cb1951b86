"""Where each flat name goes: the configs of each workflow (:data:`PARTS`), the names written by hand
(:data:`NAMED`) and the derived ``<part>_<field>`` of every other config field (:data:`TABLES`)."""
from __future__ import annotations

from ddlib.baselines import ForgettingConfig
from ddlib.bps.distill import StudentConfig, TeacherConfig
from ddlib.bps.encoder import EncoderConfig
from ddlib.bps.patterns import PatternConfig
from ddlib.bps.select import SelectConfig
from ddlib.sfm.inherit import GoldenConfig, ProbeConfig
from ddlib.sfm.synth import SynthConfig

__all__ = ["PARTS", "SET_BY_THE_PRESET", "NAMED", "derived_names", "TABLES", "unknown_name"]

# ----------------------------------------------------------------------------- where each name goes
#: Each workflow's configs: part -> class (``"encoder.pattern"``: the config held in a field of another).
#: Every field of every part is reachable by the derived flat name ``<part>_<field>`` (dots become
#: underscores: ``teacher_epochs`` -> ``teacher.epochs``, ``encoder_pattern_k`` -> ``encoder.pattern.k``),
#: except the fields of :data:`SET_BY_THE_PRESET`.
PARTS: dict[str, dict[str, type]] = {
    "data": {},
    "bps": {"encoder": EncoderConfig, "encoder.pattern": PatternConfig, "pattern": PatternConfig,
            "teacher": TeacherConfig, "forgetting": ForgettingConfig, "select": SelectConfig, "student": StudentConfig},
    "synth": {"synth": SynthConfig, "probe": ProbeConfig, "golden": GoldenConfig},
}

#: Fields no flat name sets, because the workflow sets them itself (with the reason).
SET_BY_THE_PRESET: dict[str, str] = {
    "encoder.pattern": "a config of its own, part encoder.pattern",
    "select.ipc": "each IPC of ipcs in turn",
    "synth.image_size": "from the backbone (ddlib.sfm.synth.default_image_sizes) or the name image_size",
    "synth.crop": "from the backbone (ddlib.sfm.synth.default_image_sizes)",
    "synth.channels": "from the backbone (ddlib.sfm.synth.default_image_sizes)",
}

#: The names written by hand, per workflow: the preset's own fields (``"field"``), names that set several
#: fields, and the chapters' short names. They are applied first, in this order, then the derived names, so
#: a specific name (``teacher_width``, derived) wins over a general one (``width``). Two derived rules complete
#: the BPS configs (:func:`_bps_configs`): the pseudo-part ``models`` is the classifiers' architecture of the
#: chapters (``backbone`` "convnet" gives ConvNet classifiers with ``width``/``depth``, anything else
#: ResNet-18), which the teacher takes unless a ``teacher_*`` name says otherwise; the forgetting run
#: (``recipes.forgetting``: the teacher's run or DeepCore's) and the students follow the teacher's
#: architecture unless a ``forgetting_*``/``student_*`` name says otherwise.
NAMED: dict[str, dict[str, tuple[str, ...]]] = {
    "data": {
        "dataset": ("dataset",), "per_class": ("per_class",), "test_per_class": ("test_per_class",),
        "seed": ("seed",), "ipc": ("ipc",),
    },
    "bps": {
        "dataset": ("dataset",),
        "per_class": ("per_class",),                                # the selection pool (None: every image)
        "teacher_per_class": ("teacher_per_class",),                # the teacher's and forgetting run's data
        "encoder_per_class": ("encoder_per_class",),                # what Stage 1 learns from (None: the pool)
        "test_per_class": ("test_per_class",),                      # the students' test split
        "modelling_test_per_class": ("modelling_test_per_class",),  # the modelling run's (chapter 1's)
        "ipcs": ("ipcs",),
        "student_ipcs": ("student_ipcs",),                          # IPCs that train students (None: ipcs)
        "methods": ("methods",),
        "seeds": ("seeds",),                                        # students per selection: seeds 0..n-1
        "hard_label_methods": ("hard_label_methods",),              # also trained with hard labels (KD vs CE)
        "show_class": ("show_class",),
        "projection": ("projection",),
        # the chapters' one seed; the CLI's --data-seed and --seed set one each
        "seed": ("data_seed", "seed", "encoder.seed", "teacher.seed"),
        "data_seed": ("data_seed",),
        "selection_seed": ("seed",),
        # Stage 1 (the chapters' names set the classifiers' architecture too; the CLI's encoder_* do not)
        "backbone": ("encoder.backbone", "models.backbone"),
        "width": ("encoder.convnet_width", "models.width"),
        "depth": ("encoder.convnet_depth", "models.depth"),
        "encoder_width": ("encoder.convnet_width",),
        "encoder_depth": ("encoder.convnet_depth",),
        "encoder_batch": ("encoder.batch_size",),
        "input_size": ("encoder.input_size",),
        "freeze_backbone": ("encoder.freeze_backbone",),
        "neck_dim": ("encoder.neck_dim",),
        "frozen_views": ("encoder.frozen_views",),
        "clu_weight": ("encoder.clu_weight",),
        "clu_assign": ("encoder.clu_assign",),
        "clu_refresh": ("encoder.clu_refresh",),
        "queue_size": ("encoder.queue_size",),
        "warmup_epochs": ("encoder.warmup_epochs",),
        "clu_warmup_epochs": ("encoder.clu_warmup_epochs",),
        # the kNN + Infomap recipe: the chapters' names also set the encoder's L_clu partitions, the CLI's
        # --knn-k / --min-sim only the patterns Stage 2 selects from
        "k": ("pattern.k", "encoder.pattern.k"),
        "min_sim": ("pattern.min_sim", "encoder.pattern.min_sim"),
        "knn_k": ("pattern.k",),
        "knn_min_sim": ("pattern.min_sim",),
        "teacher_batch": ("teacher.batch_size",),
        # the forgetting baseline's scoring run: "teacher" (its events counted on the teacher's own run) or
        # "deepcore" (a run of its own, DeepCore's selection recipe: ddlib.baselines.DEEPCORE_FORGETTING)
        "forgetting_recipe": ("recipes.forgetting",),
        "never_learned": ("forgetting.never_learned",),   # "deepcore" (0 events, the default) | "toneva" (infinite)
        "el2n_epoch": ("forgetting.el2n_epoch",),
        # Stage 2
        "k_ratio": ("select.k_ratio",),
        "centre_frac": ("select.centre_frac",),
        "gmm_backend": ("select.gmm_backend",),
        # Stage 3: the students
        "loss": ("student.loss",),
        "last_epochs": ("student.last_epochs",),
        "temperature": ("student.temperature",),
        "min_crop": ("student.min_crop",),
        "student_batch": ("student.batch_size",),
    },
    "synth": {  # chapters 3 and 4 (sfm, ci) and the CLI's distill / evaluate-synthetic
        "dataset": ("dataset",),
        "per_class": ("per_class",),
        "test_per_class": ("test_per_class",),
        "seed": ("data_seed", "seed", "synth.seed", "probe.seed", "golden.seed"),
        "data_seed": ("data_seed",),
        "probe_seed": ("probe.seed", "seed"),     # the CLI's evaluate-synthetic --seed (probe and real baselines)
        "backbone": ("backbone",),                # the distillation backbone (chapter 3's name)
        "distill_backbone": ("backbone",),        # the same (chapter 4's name)
        "eval_backbones": ("eval_backbones",),
        "encoder_epochs": ("encoder_epochs",),    # the in-house encoder's epochs and ConvNet width
        "encoder_width": ("encoder_width",),
        "image_size": ("image_size",),            # px pretrained (EfficientNet, timm) backbones see
        "method": ("synth.method",),
        "ipc": ("synth.ipc",),
        "steps": ("synth.steps",),
        "lr": ("synth.lr",),
        "grow_every": ("synth.grow_every",),
        "parameterisation": ("synth.parameterisation",),
        "init": ("synth.init",),
        "augs_per_batch": ("augs_per_batch",),    # LGM's views per step (the LGM run only; SFM keeps SFM-1)
        "chunk_size": ("chunk_size",),            # SFM's two-pass step (the chunked run only)
        "projector_lr": ("probe.projector_lr",),  # CI's projector (reference: 10 × the probe's)
        "probe_batch": ("probe.batch_size",),
        "views": ("probe.views",),
        "runs": ("probe.runs",),
    },
}


def derived_names(workflow: str) -> dict[str, tuple[str, ...]]:
    """``<part>_<field>`` -> ``("<part>.<field>",)`` for every field of every config of ``workflow``
    (:data:`PARTS`), except :data:`SET_BY_THE_PRESET`."""
    import dataclasses

    out = {}
    for part, cls in PARTS[workflow].items():
        for f in dataclasses.fields(cls):
            target = f"{part}.{f.name}"
            if target not in SET_BY_THE_PRESET:
                out[f"{part.replace('.', '_')}_{f.name}"] = (target,)
    return out


#: Per workflow: flat name -> the fields it sets, ``"part.field"`` (a config of the preset) or ``"field"``
#: (the preset's own): :data:`NAMED` first, then :func:`derived_names`. Names are applied in this order.
TABLES: dict[str, dict[str, tuple[str, ...]]] = {
    wf: {**named, **{k: v for k, v in derived_names(wf).items() if k not in named}} for wf, named in NAMED.items()
}

def unknown_name(name: str, workflow: str) -> str:
    """The message for a name no preset of ``workflow`` takes: the closest accepted names, the hand-written
    ones, and the rule that reaches every config field."""
    import difflib

    wf = "synth" if workflow in ("sfm", "ci") else workflow
    close = difflib.get_close_matches(str(name), list(TABLES[wf]), n=3)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    parts = ", ".join(p.replace(".", "_") for p in PARTS[wf]) or "none"
    return (f"{name!r} is not a parameter of the {workflow} preset; {hint}accepted: {', '.join(NAMED[wf])}, "
            f"or <part>_<field> for any field of the configs ({parts}; ddlib.presets.TABLES lists all)")


