"""Every scale's settings for every stage, once: the chapters, the CLI and the benchmarks read them here.

One function per workflow returns a frozen preset holding the data settings and the library's configs:

- :func:`data` (chapter 0), :func:`stage1` (chapter 1: the Stage-1 encoder and patterns),
  :func:`bps` (chapter 2, ``python -m ddlib select`` / ``evaluate``, ``benchmarks/bps_results.py``),
- :func:`sfm` (chapter 3), :func:`ci` (chapter 4, ``python -m ddlib distill`` / ``evaluate-synthetic``,
  ``benchmarks/sfm_ci_cifar10.py``),
- :func:`results` (chapter 5: chapter 2's and chapter 4's presets with chapter 5's own budget).

Each takes a scale of :data:`SCALES` (``test``: seconds, what the test-suite runs; ``cpu``: the book's
default, minutes on 2 CPU cores; ``gpu``: the full-scale runs) or ``None``, the *reference*: the
configs' own defaults on every image, which is what the CLI runs without ``--scale``. In every BPS
config (encoder, patterns, teacher, forgetting run, Stage 2, students) the ``gpu`` scale equals the
reference; it adds the chapters' dataset and IPCs. The ``gpu`` synthesis presets differ from the
reference in the IPC (10, not 1) and name EfficientNet-Lite0 as the distillation backbone.

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
from dataclasses import dataclass, field
from typing import Any

from ddlib import data as datasets
from ddlib.baselines import ForgettingConfig
from ddlib.bps.distill import StudentConfig, TeacherConfig
from ddlib.bps.encoder import EncoderConfig
from ddlib.bps.patterns import PatternConfig
from ddlib.bps.pipeline import PipelineConfig, check_methods, load_datasets
from ddlib.bps.select import SelectConfig
from ddlib.sfm import backbones
from ddlib.sfm.inherit import GoldenConfig, ProbeConfig
from ddlib.sfm.synth import SynthConfig
from ddlib.utils import ParamError, check_choice, check_int

#: the scales of the chapters and of ``--scale``; ``None`` is the reference (the configs' defaults)
SCALES = ("test", "cpu", "gpu", "workshop")
#: ``methods`` (and ``hard_label_methods``) "all": every registered selector (:func:`ddlib.selectors.names`) when
#: the preset is built, so a selector registered by a user joins the chapters' runs
ALL_METHODS = "all"
PROJECTIONS = ("umap", "pca")

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

# ----------------------------------------------------------------------------- the values of each scale
#: Each scale's values, per workflow (flat names of :data:`TABLES`; a name left out keeps the configs'
#: default). ``None`` keys the reference: the values the CLI takes without ``--scale`` beyond the configs'
#: defaults. Edit here: the chapters, the CLI and the benchmarks follow.
VALUES: dict[str, dict[str | None, dict[str, Any]]] = {
    "data": {  # chapter 0; per_class None: every training image
        "test": dict(dataset="fashion-mnist", per_class=30, test_per_class=10, seed=0, ipc=5),
        "cpu": dict(dataset="fashion-mnist", per_class=500, test_per_class=100, seed=0, ipc=10),
        "gpu": dict(dataset="fashion-mnist", per_class=None, test_per_class=None, seed=0, ipc=10),
        # book/workshop.md: every hands-on chapter in <= 3 minutes on a 2-core laptop from the imported cache
        "workshop": dict(dataset="fashion-mnist", per_class=300, test_per_class=100, seed=0, ipc=10),
        None: dict(seed=0, ipc=10),
    },
    "bps": {  # chapters 1 and 2 (chapter 5 with RESULTS_CHANGES); modelling_test_per_class is chapter 1's split
        "test": dict(dataset="fashion-mnist", per_class=24, test_per_class=4, modelling_test_per_class=4,
                     ipcs=[1, 2], methods=ALL_METHODS, backbone="convnet", width=8, depth=2, encoder_epochs=2,
                     encoder_batch=32, queue_size=128, warmup_epochs=0, clu_warmup_epochs=1, k=10, min_sim=0.5,
                     hard_label_methods=["bps", "random"], forgetting_recipe="teacher",
                     teacher_epochs=1, student_epochs=2, last_epochs=1, seeds=1, k_ratio=0.1, show_class=0,
                     projection="pca", seed=0),
        # issue 9's regime: a full-data teacher (>= 90 % on Fashion-MNIST), every image in the selection pool,
        # Stage 1 on 1,000 images per class, students long enough that the ranking of methods settles
        "cpu": dict(dataset="fashion-mnist", per_class=None, teacher_per_class=None, encoder_per_class=1000,
                    test_per_class=200, modelling_test_per_class=None, ipcs=[1, 10, 50], methods=ALL_METHODS,
                    backbone="convnet", width=32, depth=3, encoder_width=64, encoder_epochs=10, encoder_batch=128,
                    queue_size=4096, warmup_epochs=1, clu_warmup_epochs=3, k=30, min_sim=0.5, teacher_epochs=12,
                    forgetting_recipe="teacher", student_epochs=100, last_epochs=21, seeds=1, k_ratio=0.1,
                    hard_label_methods=["bps", "random"],
                    show_class=6, projection="umap", seed=0),
        "gpu": dict(dataset="fashion-mnist", per_class=None, test_per_class=None, modelling_test_per_class=None,
                    ipcs=[1, 10, 50], methods=ALL_METHODS, backbone="resnet18", width=128, depth=3,
                    encoder_epochs=30, encoder_batch=256, queue_size=65536, warmup_epochs=5, clu_warmup_epochs=5,
                    k=30, min_sim=0.5, teacher_epochs=200, student_epochs=500, last_epochs=21, seeds=3, k_ratio=0.1,
                    hard_label_methods=ALL_METHODS,
                    show_class=6, projection="umap", seed=0),
        # book/workshop.md: a 3,000-image pool that every model learns from, so that an exercise that changes
        # Stage 1 or the teacher re-runs in minutes; students short enough for an exercise's new grid
        "workshop": dict(dataset="fashion-mnist", per_class=300, teacher_per_class=300, encoder_per_class=300,
                         test_per_class=100, modelling_test_per_class=100, ipcs=[1, 10], methods=ALL_METHODS,
                         backbone="convnet", width=32, depth=3, encoder_width=32, encoder_epochs=5, encoder_batch=128,
                         queue_size=1024, warmup_epochs=1, clu_warmup_epochs=2, k=20, min_sim=0.5, teacher_epochs=10,
                         forgetting_recipe="teacher", student_epochs=40, last_epochs=10, seeds=1, k_ratio=0.1,
                         hard_label_methods=["bps", "random"], show_class=6, projection="umap", seed=0),
        None: dict(ipcs=[10], seeds=3, seed=0),  # the CLI's: select --ipc 10, evaluate --seeds 3
    },
    "sfm": {  # chapter 3
        "test": dict(dataset="digits", per_class=20, backbone="convnet-random", encoder_epochs=1, encoder_width=16,
                     ipc=1, steps=6, lr=0.01, grow_every=2, augs_per_batch=2, chunk_size=4, seed=0),
        "cpu": dict(dataset="fashion-mnist", per_class=100, backbone="inhouse", encoder_epochs=5, encoder_width=32,
                    ipc=1, steps=150, lr=0.01, grow_every=25, augs_per_batch=10, chunk_size=5, seed=0),
        "gpu": dict(dataset="fashion-mnist", per_class=None, backbone="efficientnet-lite0", encoder_epochs=20,
                    encoder_width=64, ipc=10, steps=5000, lr=2e-3, grow_every=200, augs_per_batch=10, chunk_size=50,
                    seed=0),
        # chapter 3 distils SFM, chunked SFM and LGM again at every run (it measures their cost): 100 steps
        "workshop": dict(dataset="fashion-mnist", per_class=100, backbone="inhouse", encoder_epochs=5, encoder_width=32,
                         ipc=1, steps=100, lr=0.01, grow_every=15, augs_per_batch=10, chunk_size=5, seed=0),
        None: dict(seed=0),
    },
    # chapter 4 (augs_per_batch: chapter 5's LGM run); the CLI's distill and evaluate-synthetic. cpu: distilled
    # on EfficientNet-Lite0, evaluated on Lite2 (and the in-house encoder, a weak backbone) at 64 px; the golden
    # head from a bank of augmented views (golden_views) for more epochs than the reference's 10 (a subsample)
    "ci": {
        "test": dict(dataset="fashion-mnist", per_class=20, test_per_class=10, distill_backbone="inhouse",
                     eval_backbones=["inhouse", "convnet-random"], encoder_epochs=1, encoder_width=8, image_size=32,
                     ipc=1, steps=4, lr=0.01, grow_every=2, augs_per_batch=2, probe_epochs=20, probe_lr=0.1,
                     projector_lr=1.0, views=2, runs=1, golden_epochs=20, golden_views=2, seed=0),
        "cpu": dict(dataset="fashion-mnist", per_class=100, test_per_class=100, distill_backbone="efficientnet-lite0",
                    eval_backbones=["efficientnet-lite2", "inhouse"], encoder_epochs=5, encoder_width=32,
                    image_size=64, ipc=1, steps=200, lr=0.05, grow_every=15, augs_per_batch=10, probe_epochs=300,
                    probe_lr=0.1, projector_lr=1.0, views=10, runs=2, golden_epochs=100, golden_views=2, seed=0),
        "gpu": dict(dataset="fashion-mnist", per_class=None, test_per_class=None, distill_backbone="efficientnet-lite0",
                    eval_backbones=["efficientnet-lite2", "efficientnet-lite0", "inhouse"], encoder_epochs=20,
                    encoder_width=64, image_size=None, ipc=10, steps=5000, lr=2e-3, grow_every=200, augs_per_batch=10,
                    probe_epochs=1000, probe_lr=1e-3, projector_lr=1e-2, views=None, runs=5, golden_epochs=10,
                    golden_views=None, seed=0),
        "workshop": dict(dataset="fashion-mnist", per_class=100, test_per_class=100, distill_backbone="efficientnet-lite0",
                         eval_backbones=["efficientnet-lite2", "inhouse"], encoder_epochs=5, encoder_width=32,
                         image_size=64, ipc=1, steps=200, lr=0.05, grow_every=15, augs_per_batch=10, probe_epochs=200,
                         probe_lr=0.1, projector_lr=1.0, views=10, runs=1, golden_epochs=100, golden_views=2, seed=0),
        None: dict(seed=0),
    },
}

#: Chapter 5 runs chapter 2's selection and chapter 4's synthesis with these changes of its own budget
#: (everything else, and so every cached artifact, is theirs): fewer methods at ``test``; none at ``cpu``,
#: where it loads chapter 2's students from the cache and evaluates its synthetic sets with chapter 4's
#: probe (its rate, epochs and runs); what it adds to a build is recorded in results/book_build_cpu.json.
RESULTS_CHANGES: dict[str, dict[str, dict[str, Any]]] = {
    "test": {"bps": dict(methods=["bps", "random", "herding"]), "ci": dict(probe_lr=ProbeConfig.lr)},
    "cpu": {"bps": {}, "ci": {}},
    "gpu": {"bps": {}, "ci": {}},
    "workshop": {"bps": {}, "ci": {}},
}


# ----------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class DataPreset:
    """The data of chapter 0: ``data.load(dataset, per_class=, seed=, test_per_class=)`` and the IPC shown."""

    dataset: str
    per_class: int | None
    test_per_class: int | None
    seed: int
    ipc: int


@dataclass(frozen=True)
class Stage1Preset:
    """BPS Stage 1 (chapter 1): the data, the encoder and the kNN + Infomap recipe; :func:`bps`'s own.

    The encoder learns from ``encoder_per_class`` images per class (None: the pool) and then embeds and
    partitions every image of the pool (``per_class``), exactly as chapter 2's modelling does, so the two
    chapters share one cached encoder and one cached partition."""

    dataset: str
    per_class: int | None
    test_per_class: int | None
    seed: int
    encoder: EncoderConfig
    pattern: PatternConfig
    show_class: int | str | None
    projection: str | None
    encoder_per_class: int | None = None

    def datasets(self, **load_kw: Any) -> dict[str, Any]:
        """``pool`` (embedded and partitioned) and ``encoder`` (what Stage 1 learns from; the pool itself
        when its budget equals it), loaded as :meth:`BPSPreset.datasets` loads them."""
        if self.dataset is None:
            raise ParamError("dataset is not set; give one (a name of ddlib.data.available())")
        d = load_datasets(self.dataset, per_class=self.per_class, teacher_per_class=self.per_class,
                          encoder_per_class=self.encoder_per_class,
                          test_per_class=self.test_per_class, modelling_test_per_class=self.test_per_class,
                          seed=self.seed, **load_kw)
        return {"pool": d["pool"], "encoder": d["encoder"]}


@dataclass(frozen=True)
class BPSPreset:
    """BPS and the coreset baselines, Stages 1-3 (chapters 1, 2, 5; ``select``, ``evaluate``).

    The methods select among ``per_class`` training images per class (the pool; None: all of them).
    The teacher and the forgetting run learn from ``teacher_per_class`` per class (None: the whole
    training set, as the reference's teacher), Stage 1 from ``encoder_per_class`` (None: the pool).
    The students are tested on ``test_per_class`` test images per class; the modelling (encoder,
    teacher) runs on ``modelling_test_per_class`` (chapter 1's split, so its cache is shared).
    ``seed`` is the selection's (random, k-center, ties), ``data_seed`` the subsampling's.
    :meth:`datasets` loads the pool and the teacher's, the encoder's and the students' data.
    """

    dataset: str | None
    per_class: int | None
    test_per_class: int | None
    modelling_test_per_class: int | None
    data_seed: int
    seed: int
    ipcs: tuple[int, ...]
    methods: tuple[str, ...] | None
    seeds: int
    show_class: int | str | None
    projection: str | None
    teacher_per_class: int | None = None
    encoder_per_class: int | None = None
    hard_label_methods: tuple[str, ...] = ()
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    pattern: PatternConfig = field(default_factory=PatternConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    forgetting: ForgettingConfig = field(default_factory=ForgettingConfig)
    select: SelectConfig = field(default_factory=SelectConfig)
    student: StudentConfig = field(default_factory=StudentConfig)

    @property
    def pipeline(self) -> PipelineConfig:
        """Stages 1-2's configs, as :func:`ddlib.bps.pipeline.run_selection` takes them."""
        return PipelineConfig(encoder=self.encoder, pattern=self.pattern, teacher=self.teacher,
                              forgetting=self.forgetting, select=self.select)

    def datasets(self, **load_kw: Any) -> dict[str, Any]:
        """The data this preset names, loaded: ``pool`` (selection; its test split the modelling's),
        ``teacher`` and ``encoder`` (the pool itself where their budget equals it), and ``eval`` (the pool
        with the students' test split). ``load_kw`` go to :func:`ddlib.data.load` (e.g. ``image_size``)."""
        if self.dataset is None:
            raise ParamError("dataset is not set; give one (a name of ddlib.data.available())")
        return load_datasets(self.dataset, per_class=self.per_class, teacher_per_class=self.teacher_per_class,
                             encoder_per_class=self.encoder_per_class, test_per_class=self.test_per_class,
                             modelling_test_per_class=self.modelling_test_per_class, seed=self.data_seed, **load_kw)

    @property
    def stage1(self) -> Stage1Preset:
        return Stage1Preset(dataset=self.dataset, per_class=self.per_class, test_per_class=self.modelling_test_per_class,
                            seed=self.data_seed, encoder=self.encoder, pattern=self.pattern,
                            show_class=self.show_class, projection=self.projection,
                            encoder_per_class=self.encoder_per_class)

    @property
    def students(self) -> dict[str, StudentConfig]:
        """The two training protocols of chapter 5, identical but for the loss: KD and hard labels."""
        return {"KD": dataclasses.replace(self.student, loss="kd"),
                "hard labels": dataclasses.replace(self.student, loss="ce")}


@dataclass(frozen=True)
class SynthPreset:
    """Synthesis on a frozen backbone and its evaluation (chapters 3, 4, 5; ``distill``, ``evaluate-synthetic``).

    ``synth`` is the SFM run; its ``image_size``/``crop``/``channels`` are set once the backbone is known
    (:func:`ddlib.sfm.synth.default_image_sizes`). ``encoder_epochs``/``encoder_width`` configure the
    in-house backbone, ``image_size`` the input size of pretrained ones (None: their own).
    """

    dataset: str | None
    per_class: int | None
    test_per_class: int | None
    data_seed: int
    seed: int
    backbone: str | None
    eval_backbones: tuple[str, ...]
    encoder_epochs: int | None
    encoder_width: int | None
    image_size: int | None
    augs_per_batch: int | None
    chunk_size: int | None
    synth: SynthConfig = field(default_factory=SynthConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    golden: GoldenConfig = field(default_factory=GoldenConfig)

    @property
    def distill_backbone(self) -> str | None:
        return self.backbone

    @property
    def ipc(self) -> int:
        return self.synth.ipc

    @property
    def steps(self) -> int:
        return self.synth.steps

    @property
    def lgm(self) -> SynthConfig:
        """The LGM run: the SFM run's settings with LGM's loss and its ``augs_per_batch``."""
        return dataclasses.replace(self.synth, method="lgm", **_given(augs_per_batch=self.augs_per_batch))

    @property
    def chunked(self) -> SynthConfig:
        """The SFM run with its two-pass, memory-lean step of ``chunk_size`` images."""
        return dataclasses.replace(self.synth, chunk_size=self.chunk_size)


@dataclass(frozen=True)
class ResultsPreset:
    """Chapter 5: chapter 2's selection preset (``bps``) and chapter 4's synthesis preset (``ci``)."""

    bps: BPSPreset
    ci: SynthPreset
    recorded: bool = True

    @property
    def students(self) -> dict[str, StudentConfig]:
        return self.bps.students

    # what the chapter reads by its parameters' names
    dataset = property(lambda self: self.bps.dataset)
    per_class = property(lambda self: self.bps.per_class)
    test_per_class = property(lambda self: self.bps.test_per_class)
    modelling_test_per_class = property(lambda self: self.bps.modelling_test_per_class)
    ipcs = property(lambda self: self.bps.ipcs)
    methods = property(lambda self: self.bps.methods)
    seeds = property(lambda self: self.bps.seeds)
    seed = property(lambda self: self.bps.seed)
    sfm_dataset = property(lambda self: self.ci.dataset)
    sfm_per_class = property(lambda self: self.ci.per_class)
    sfm_test_per_class = property(lambda self: self.ci.test_per_class)
    sfm_encoder_epochs = property(lambda self: self.ci.encoder_epochs)
    sfm_encoder_width = property(lambda self: self.ci.encoder_width)
    sfm_ipc = property(lambda self: self.ci.ipc)


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
                "queue_size", "warmup_epochs", "clu_warmup_epochs", "k", "min_sim", "knn_k", "knn_min_sim",
                "show_class", "projection")


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
                     seed=check_int("seed", plain.get("seed", 0), 0, 2**32 - 1), ipcs=ipcs, methods=methods,
                     seeds=check_int("seeds", plain["seeds"], 1, 1000), show_class=plain.get("show_class"),
                     projection=projection, **configs)


def _methods(methods: Any) -> tuple[str, ...] | None:
    """Method names checked against the selector registry; :data:`ALL_METHODS` is every registered one."""
    from ddlib.selectors import names

    if methods is None:
        return None
    return tuple(names()) if methods == ALL_METHODS else tuple(check_methods(methods))


def sfm(scale: str | None = "cpu", **overrides: Any) -> SynthPreset:
    """Chapter 3: SFM, chunked SFM and LGM on one frozen backbone, at ``scale`` with ``overrides``."""
    return _synth_preset("sfm", scale, overrides)


def ci(scale: str | None = "cpu", **overrides: Any) -> SynthPreset:
    """Chapter 4 and the CLI's synthesis commands: SFM images evaluated by probe, CI and KD heads."""
    return _synth_preset("ci", scale, overrides)


def results(scale: str | None = "cpu", recorded: bool = True, **overrides: Any) -> ResultsPreset:
    """Chapter 5: :func:`bps` and :func:`ci` at ``scale`` with :data:`RESULTS_CHANGES`, then ``overrides``.

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
    changes = RESULTS_CHANGES[scale] if scale is not None else {"bps": {}, "ci": {}}
    return ResultsPreset(bps=bps(scale, **{**changes["bps"], **_given(**to_bps)}),
                         ci=ci(scale, **{**changes["ci"], **_given(**to_ci)}), recorded=recorded)


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


# ----------------------------------------------------------------------------- the machinery
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


def _given(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


def _resolve(workflow: str, scale: str | None, overrides: Mapping[str, Any]) -> tuple[dict[str, Any], _Parts]:
    """The scale's values with ``overrides``, mapped through the table: (the preset's own fields, the parts)."""
    if scale is not None:
        check_choice("scale", scale, SCALES)
    table = TABLES["synth" if workflow in ("sfm", "ci") else workflow]
    for name in overrides:
        if name not in table:
            raise ParamError(unknown_name(name, workflow))
    plain: dict[str, Any] = {}
    parts = _Parts()
    # the scale's values first, then the caller's: a name the caller gives wins over any value of the scale,
    # however specific (width=16 sets the encoder's width even where the scale names an encoder_width)
    for knobs in (VALUES[workflow][scale], _given(**overrides)):
        for name, targets in table.items():
            value = knobs.get(name)
            if value is None:
                continue
            for t in targets:
                part, _, f = t.rpartition(".")
                if part:
                    parts.set(part, f, value, name)
                else:
                    plain[f] = value
    return plain, parts


class _Parts:
    """The fields each config part gets, and which preset names set them (for error messages)."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {}
        self.names: dict[str, set[str]] = {}
        self.field_names: dict[tuple[str, str], set[str]] = {}

    def set(self, part: str, f: str, value: Any, name: str) -> None:
        self.values.setdefault(part, {})[f] = value
        self.names.setdefault(part, set()).add(name)
        self.field_names.setdefault((part, f), set()).add(name)

    def get(self, part: str) -> dict[str, Any]:
        return dict(self.values.get(part, {}))

    def build(self, cls: Any, part: str, kwargs: dict[str, Any] | None = None) -> Any:
        """``cls(**kwargs)`` (default: the part's fields); a ParamError also names the preset names that set it."""
        import re

        try:
            return cls(**(self.get(part) if kwargs is None else kwargs))
        except ParamError as e:
            m = re.match(r"\s*([\w .\[\]]+?)=", str(e))  # the field the config refused, e.g. "teacher lr=nan"
            field_ = m.group(1).split()[-1].split("[")[0] if m else None
            names = sorted(self.field_names.get((part, field_), ()) or self.names.get(part, ()))
            raise ParamError(f"{e} (set by {', '.join(names)})" if names else str(e)) from None
        except TypeError as e:  # a value of the wrong kind where a config compares or computes
            raise ParamError(f"{part}: {e}") from None


def _classifier(backbone: str | None) -> str | None:
    """The chapters' classifiers for a Stage-1 backbone: the DD ConvNet for "convnet", else ResNet-18."""
    if backbone is None:
        return None
    return "convnet" if backbone == "convnet" else "resnet18"


def _bps_configs(parts: _Parts) -> dict[str, Any]:
    """The BPS configs from the table's parts, with the derived rules of :data:`TABLES`."""
    enc_pattern = parts.build(PatternConfig, "encoder.pattern")
    encoder = parts.build(EncoderConfig, "encoder", {**parts.get("encoder"), "pattern": enc_pattern})
    models, t = parts.get("models"), parts.get("teacher")
    model = t.get("model") or _classifier(models.get("backbone"))
    if model is not None:
        t["model"] = model
    if model == "convnet":  # the chapters' width/depth, where no teacher_* name says otherwise
        for k in ("width", "depth"):
            if k not in t and k in models:
                t[k] = models[k]
    teacher = parts.build(TeacherConfig, "teacher", t)
    f = {**_forgetting_recipe(parts, teacher), **parts.get("forgetting")}
    f["el2n_epoch"] = min(f.get("el2n_epoch", ForgettingConfig.el2n_epoch), f.get("epochs", ForgettingConfig.epochs))
    s = parts.get("student")
    if "model" not in s:
        s = {"model": teacher.model, "width": teacher.width, "depth": teacher.depth, **s}
    return dict(encoder=encoder, pattern=parts.build(PatternConfig, "pattern"), teacher=teacher,
                forgetting=parts.build(ForgettingConfig, "forgetting", f), select=parts.build(SelectConfig, "select"),
                student=parts.build(StudentConfig, "student", s))


#: the forgetting baseline's scoring runs (``forgetting_recipe``): the teacher's own run, or DeepCore's recipe
FORGETTING_RECIPES = ("teacher", "deepcore")


def _forgetting_recipe(parts: _Parts, teacher: TeacherConfig) -> dict[str, Any]:
    """The forgetting run's fields before its own names: the teacher's architecture, and either the teacher's
    recipe (``"teacher"``: the events are counted on its run) or DeepCore's (``"deepcore"``, a run of its own:
    :data:`ddlib.baselines.DEEPCORE_FORGETTING`). Without a recipe, ``forgetting_source`` decides."""
    given = parts.get("forgetting")
    recipe = parts.get("recipes").get("forgetting") or ("teacher" if given.get("source") == "teacher" else "deepcore")
    check_choice("forgetting_recipe", recipe, FORGETTING_RECIPES)
    arch = {"model": teacher.model, "width": teacher.width, "depth": teacher.depth}
    if recipe == "deepcore":
        return {**arch, "source": "separate"}
    return {**arch, "source": "teacher", "epochs": teacher.epochs, "batch_size": teacher.batch_size, "lr": teacher.lr,
            "momentum": teacher.momentum, "weight_decay": teacher.weight_decay, "augment": teacher.augment,
            "schedule": "cosine", "nesterov": False}


#: what a per-class budget may say for "every image" when None already means "the preset's value"
ALL_IMAGES = "all"


def _check_dataset(plain: dict[str, Any], minimum: int, names: tuple[str, ...] = ("per_class",)) -> None:
    if plain.get("dataset") is not None:
        datasets.validate_name(plain["dataset"])
    for name in names:
        if plain.get(name) == ALL_IMAGES:
            plain[name] = None  # an override "all" undoes a preset's subsample
        if plain.get(name) is not None:
            if isinstance(plain[name], str):
                raise ParamError(f"{name}={plain[name]!r} must be a positive integer or {ALL_IMAGES!r} (every image)")
            check_int(name, plain[name], minimum)


def _synth_preset(workflow: str, scale: str | None, overrides: Mapping[str, Any]) -> SynthPreset:
    plain, parts = _resolve(workflow, scale, overrides)
    _check_dataset(plain, minimum=2, names=("per_class", "test_per_class", "image_size"))
    backbone = plain.get("backbone")
    if backbone is not None:
        backbones.check_name(backbone)
    evals = plain.get("eval_backbones", [])
    if isinstance(evals, str) or not isinstance(evals, (list, tuple)) or (not evals and "eval_backbones" in plain):
        raise ParamError(f"eval_backbones={evals!r} must be a non-empty list of backbone names, "
                         f"e.g. {list(backbones.NAMES[:2])}")
    for name in evals:
        backbones.check_name(name)
    for name, hi in (("encoder_epochs", None), ("encoder_width", 1024), ("augs_per_batch", None),
                     ("chunk_size", None)):
        if plain.get(name) is not None:
            check_int(name, plain[name], 1, hi)
    out = SynthPreset(dataset=plain.get("dataset"), per_class=plain.get("per_class"),
                      test_per_class=plain.get("test_per_class"),
                      data_seed=check_int("data_seed", plain.get("data_seed", 0), 0, 2**32 - 1),
                      seed=check_int("seed", plain.get("seed", 0), 0, 2**32 - 1), backbone=backbone,
                      eval_backbones=tuple(evals), encoder_epochs=plain.get("encoder_epochs"),
                      encoder_width=plain.get("encoder_width"), image_size=plain.get("image_size"),
                      augs_per_batch=plain.get("augs_per_batch"), chunk_size=plain.get("chunk_size"),
                      synth=parts.build(SynthConfig, "synth"), probe=parts.build(ProbeConfig, "probe"),
                      golden=parts.build(GoldenConfig, "golden"))
    parts.build(lambda: out.lgm, "synth", {})  # the LGM and chunked runs validate now too
    if out.chunk_size is not None:
        parts.build(lambda: out.chunked, "synth", {})
    return out


__all__ = ["SCALES", "TABLES", "VALUES", "RESULTS_CHANGES", "DataPreset", "Stage1Preset", "BPSPreset", "SynthPreset",
           "ResultsPreset", "data", "stage1", "bps", "sfm", "ci", "results", "fields", "student_for"]
