"""The presets: frozen dataclasses holding a workflow's data settings and the library's configs."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ddlib.baselines import ForgettingConfig
from ddlib.bps.distill import StudentConfig, TeacherConfig
from ddlib.bps.encoder import EncoderConfig
from ddlib.bps.patterns import PatternConfig
from ddlib.bps.pipeline import PipelineConfig, load_datasets
from ddlib.bps.select import SelectConfig
from ddlib.sfm.inherit import GoldenConfig, ProbeConfig
from ddlib.sfm.synth import SynthConfig
from ddlib.utils import ParamError


def given(**kw: Any) -> dict[str, Any]:
    """The keyword arguments that are not None."""
    return {k: v for k, v in kw.items() if v is not None}

__all__ = ["DataPreset", "Stage1Preset", "BPSPreset", "SynthPreset", "ResultsPreset", "given"]

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
    Every IPC of ``ipcs`` is selected; students train on those of ``student_ipcs`` (None: all of them),
    so a book build can show the selections of a large IPC and leave its students to the records.
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
    student_ipcs: tuple[int, ...] | None = None
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
    def trained_ipcs(self) -> tuple[int, ...]:
        """The IPCs whose selections train students: ``student_ipcs``, or every IPC of ``ipcs`` when None."""
        return self.ipcs if self.student_ipcs is None else self.student_ipcs

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
        return dataclasses.replace(self.synth, method="lgm", **given(augs_per_batch=self.augs_per_batch))

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
    synthesis: tuple[str, ...] = ("sfm", "lgm")  # the methods distilled live (the rest: the records)

    @property
    def students(self) -> dict[str, StudentConfig]:
        return self.bps.students

    # what the chapter reads by its parameters' names
    dataset = property(lambda self: self.bps.dataset)
    per_class = property(lambda self: self.bps.per_class)
    test_per_class = property(lambda self: self.bps.test_per_class)
    modelling_test_per_class = property(lambda self: self.bps.modelling_test_per_class)
    ipcs = property(lambda self: self.bps.ipcs)
    trained_ipcs = property(lambda self: self.bps.trained_ipcs)
    methods = property(lambda self: self.bps.methods)
    seeds = property(lambda self: self.bps.seeds)
    seed = property(lambda self: self.bps.seed)
    sfm_dataset = property(lambda self: self.ci.dataset)
    sfm_per_class = property(lambda self: self.ci.per_class)
    sfm_test_per_class = property(lambda self: self.ci.test_per_class)
    sfm_encoder_epochs = property(lambda self: self.ci.encoder_epochs)
    sfm_encoder_width = property(lambda self: self.ci.encoder_width)
    sfm_ipc = property(lambda self: self.ci.ipc)


