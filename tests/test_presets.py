"""ddlib.presets: every scale builds valid configs, an override changes exactly its fields, bad input names
itself, and chapters that share work share its configs (so their cached artifacts are the same)."""
from __future__ import annotations

import dataclasses
import functools

import pytest

from ddlib import data, presets
from ddlib.bps.distill import teacher_key
from ddlib.bps.encoder import encoder_key
from ddlib.utils import ParamError

SCALES = [*presets.SCALES, None]
FUNCTIONS = (presets.data, presets.stage1, presets.bps, presets.sfm, presets.ci, presets.results)


def _flat(obj: object, prefix: str = "") -> dict[str, object]:
    """A preset as {"encoder.epochs": 10, ...} (its configs' fields by path)."""
    out: dict[str, object] = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            out.update(_flat(v, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = v
    return out


def _changed(before: object, after: object) -> set[str]:
    a, b = _flat(before), _flat(after)
    return {k for k in a if a[k] != b[k]}


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__name__)
def test_every_scale_builds_valid_configs(fn, scale) -> None:  # noqa: ANN001
    p = fn(scale)
    assert dataclasses.is_dataclass(p)
    for v in _flat(p).values():  # every config inside was built (and validated) by its own class
        assert not isinstance(v, dict)
    assert fn(scale) == p  # deterministic


def test_every_name_of_the_table_is_accepted_and_none_means_the_preset() -> None:
    for workflow, fn in (("bps", presets.bps), ("synth", presets.ci), ("data", presets.data)):
        base = fn("cpu")
        for name in presets.TABLES[workflow]:
            assert fn("cpu", **{name: None}) == base, name


@pytest.mark.parametrize("name, value, fields", [
    ("encoder_epochs", 3, {"encoder.epochs"}),
    ("encoder_width", 16, {"encoder.convnet_width"}),
    ("width", 16, {"encoder.convnet_width", "teacher.width", "forgetting.width", "student.width"}),
    ("k", 12, {"pattern.k", "encoder.pattern.k"}),
    ("knn_k", 12, {"pattern.k"}),
    ("min_sim", 0.4, {"pattern.min_sim", "encoder.pattern.min_sim"}),
    ("teacher_epochs", 4, {"teacher.epochs", "forgetting.epochs", "forgetting.el2n_epoch"}),
    ("teacher_width", 64, {"teacher.width", "forgetting.width", "student.width"}),
    ("forgetting_epochs", 5, {"forgetting.epochs", "forgetting.el2n_epoch"}),
    ("student_epochs", 3, {"student.epochs"}),
    ("student_width", 64, {"student.width"}),
    ("loss", "ce", {"student.loss"}),
    ("clu_weight", 0.0, {"encoder.clu_weight"}),
    ("k_ratio", 0.2, {"select.k_ratio"}),
    ("centre_frac", 1.0, {"select.centre_frac"}),
    ("seed", 3, {"data_seed", "seed", "encoder.seed", "teacher.seed"}),
    ("selection_seed", 3, {"seed"}),
    ("data_seed", 3, {"data_seed"}),
    ("per_class", 50, {"per_class"}),
    ("seeds", 2, {"seeds"}),
    ("ipcs", [5], {"ipcs", "student_ipcs"}),  # naming ipcs alone trains students at all of them
    ("student_ipcs", [50], {"student_ipcs"}),
    ("backbone", "resnet18", {"encoder.backbone", "teacher.model", "teacher.width", "teacher.depth",
                              "forgetting.model", "forgetting.width", "forgetting.depth", "student.model",
                              "student.width", "student.depth"}),
])
def test_a_bps_override_changes_exactly_its_fields(name: str, value: object, fields: set[str]) -> None:
    base, new = presets.bps("cpu"), presets.bps("cpu", **{name: value})
    assert _changed(base, new) == fields


@pytest.mark.parametrize("name, value, fields", [
    ("steps", 7, {"synth.steps"}),
    ("lr", 0.02, {"synth.lr"}),
    ("probe_epochs", 9, {"probe.epochs"}),
    ("views", 3, {"probe.views"}),
    ("golden_epochs", 9, {"golden.epochs"}),
    ("golden_views", 3, {"golden.views"}),
    ("projector_lr", 0.5, {"probe.projector_lr"}),
    ("augs_per_batch", 3, {"augs_per_batch"}),
    ("distill_backbone", "convnet-random", {"backbone"}),
    ("seed", 2, {"data_seed", "seed", "synth.seed", "probe.seed", "golden.seed"}),
    ("probe_seed", 2, {"seed", "probe.seed"}),
    ("image_size", 48, {"image_size"}),
])
def test_a_synthesis_override_changes_exactly_its_fields(name: str, value: object, fields: set[str]) -> None:
    base, new = presets.ci("cpu"), presets.ci("cpu", **{name: value})
    assert _changed(base, new) == fields
    if name == "augs_per_batch":
        assert new.lgm.augs_per_batch == 3 and new.synth.augs_per_batch == base.synth.augs_per_batch


@pytest.mark.parametrize("fn, kwargs, words", [
    (presets.bps, {"encoder_epoch": 3}, ["encoder_epoch", "encoder_epochs"]),  # names it and the accepted names
    (presets.bps, {"teacher_epochs": 0}, ["teacher epochs", "teacher_epochs"]),
    (presets.bps, {"k_ratio": 3.0}, ["k_ratio"]),
    (presets.bps, {"ipcs": [0]}, ["ipcs"]),
    (presets.bps, {"methods": ["bps", "magic"]}, ["method", "magic"]),
    (presets.bps, {"per_class": 1}, ["per_class"]),
    (presets.bps, {"dataset": "no-such-data"}, ["dataset"]),
    (presets.stage1, {"teacher_epochs": 3}, ["teacher_epochs", "stage1"]),
    (presets.stage1, {"projection": "tsne"}, ["projection"]),
    (presets.ci, {"views": -1}, ["views"]),
    (presets.ci, {"eval_backbones": "inhouse"}, ["eval_backbones"]),
    (presets.ci, {"eval_backbones": ["resnet-9000"]}, ["backbone", "resnet-9000"]),
    (presets.sfm, {"chunk_size": 0}, ["chunk_size"]),
    (presets.data, {"ipc": 0}, ["ipc"]),
    (presets.results, {"sfm_steps": 0}, ["steps"]),
    (presets.results, {"recorded": "yes"}, ["recorded"]),
    (presets.bps, {"student_ipcs": [3]}, ["student_ipcs", "IPC 3", "ipcs=[1, 2]"]),
    (presets.bps, {"student_ipcs": "ten"}, ["student_ipcs", "ipcs=[1, 2]"]),
    (presets.results, {"synthesis": ["lgm"]}, ["synthesis", "'sfm'"]),
    (presets.results, {"synthesis": ["sfm", "gan"]}, ["synthesis", "'gan'", "'lgm'"]),
    (presets.results, {"nonsense": 1}, ["nonsense", "sfm_steps"]),
])
def test_bad_overrides_name_themselves(fn, kwargs: dict, words: list[str]) -> None:  # noqa: ANN001
    with pytest.raises(ParamError) as err:
        fn("test", **kwargs)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.__name__)
def test_a_bad_scale_names_the_scales(fn) -> None:  # noqa: ANN001
    with pytest.raises(ParamError, match="scale='huge'.*'test', 'cpu', 'gpu'"):
        fn("huge")


@pytest.mark.parametrize("scale", SCALES)
def test_chapter_5_builds_on_chapters_2_and_4(scale) -> None:  # noqa: ANN001
    r, b, c = presets.results(scale), presets.bps(scale), presets.ci(scale)
    assert r.bps.pipeline == b.pipeline  # encoder, patterns, teacher, forgetting run, Stage 2: chapter 2's
    assert (r.dataset, r.per_class, r.modelling_test_per_class) == (b.dataset, b.per_class, b.modelling_test_per_class)
    assert r.ci.synth == c.synth and r.ci.golden == c.golden  # the SFM images and the golden head: chapter 4's
    assert (r.ci.dataset, r.ci.per_class, r.ci.test_per_class, r.ci.encoder_epochs, r.ci.encoder_width) == \
        (c.dataset, c.per_class, c.test_per_class, c.encoder_epochs, c.encoder_width)
    assert r.students["KD"].loss == "kd" and r.students["hard labels"].loss == "ce"


@pytest.mark.parametrize("scale", SCALES)
def test_chapter_1_is_chapter_2s_stage_1(scale) -> None:  # noqa: ANN001
    s, b = presets.stage1(scale), presets.bps(scale)
    assert (s.encoder, s.pattern) == (b.encoder, b.pattern)
    assert (s.dataset, s.per_class, s.test_per_class, s.seed) == (b.dataset, b.per_class,
                                                                 b.modelling_test_per_class, b.data_seed)
    assert s.encoder_per_class == b.encoder_per_class  # Stage 1 learns from chapter 2's encoder data


def test_chapter_1_loads_chapter_2s_encoder_data_and_pool() -> None:
    """With an encoder subsample smaller than the pool, chapter 1 trains on what chapter 2's modelling trains
    on and partitions chapter 2's pool: the same encoder and pattern keys, so the cache is shared."""
    from ddlib.bps.encoder import encoder_key

    kw = dict(per_class=20, encoder_per_class=12)
    s, b = presets.stage1("test", **kw), presets.bps("test", **kw)
    ds1, db = s.datasets(), b.datasets()
    assert len(ds1["encoder"].train_y) == 12 * ds1["pool"].num_classes < len(ds1["pool"].train_y)
    assert ds1["pool"].key() == db["pool"].key() and ds1["encoder"].key() == db["encoder"].key()
    assert encoder_key(ds1["encoder"], s.encoder) == encoder_key(db["encoder"], b.encoder)


def test_shared_artifact_keys_match_at_the_test_scale() -> None:
    """The cache keys of chapter 1's encoder and chapter 2's teacher are chapter 5's."""
    r, s, b = presets.results("test"), presets.stage1("test"), presets.bps("test")
    ds = data.load(b.dataset, per_class=b.per_class, seed=b.data_seed, test_per_class=b.modelling_test_per_class)
    ds5 = data.load(r.dataset, per_class=r.per_class, seed=r.bps.data_seed, test_per_class=r.modelling_test_per_class)
    assert encoder_key(ds, s.encoder) == encoder_key(ds5, r.bps.encoder)
    assert teacher_key(ds, b.teacher) == teacher_key(ds5, r.bps.teacher)


def test_the_gpu_scale_is_the_papers_cifar10_setting() -> None:
    """Issue 22: the gpu scale is the paper's CIFAR-10 setting; the reference (the configs' defaults, the CLI
    without --scale) differs from it only in Stage 1's backbone, which the paper starts from ImageNet weights."""
    g, ref = presets.bps("gpu"), presets.bps(None)
    assert g.dataset == "cifar10" and g.ipcs == (10, 50) and (g.per_class, g.test_per_class) == (None, None)
    assert (g.encoder.backbone, g.encoder.weights, g.encoder.input_size) == ("resnet18-imagenet", "imagenet", 224)
    assert (g.encoder.queue_size, g.encoder.epochs, g.pattern.k) == (65536, 30, 30)
    assert (g.teacher.model, g.teacher.epochs, g.student.model, g.student.epochs) == ("resnet18", 200, "resnet18", 500)
    assert (g.forgetting.source, g.forgetting.epochs, g.forgetting.schedule) == ("separate", 40, "constant")
    stage1 = {"backbone", "weights", "input_size"}
    assert _changed(dataclasses.replace(ref.encoder, **{k: getattr(g.encoder, k) for k in stage1}), g.encoder) == set()
    assert (g.pattern, g.teacher, g.forgetting, g.select, g.student, g.seeds) == \
        (ref.pattern, ref.teacher, ref.forgetting, ref.select, ref.student, ref.seeds)
    assert ref.ipcs == (10,) and ref.methods is None  # the CLI's select --ipc 10; --method is asked for
    c = presets.ci("gpu")  # the synthesis papers' protocol, named backbones
    assert c.distill_backbone.startswith("timm:vit_base") and c.ipc == 1 and c.steps == 5000 and c.dataset == "imagenette"


def test_chapter_5_routes_its_parameters() -> None:
    r = presets.results("cpu", sfm_steps=50, sfm_dataset="digits", student_epochs=7, probe_epochs=11, seed=2)
    assert r.ci.steps == 50 and r.sfm_dataset == "digits" and r.ci.probe.epochs == 11
    assert r.students["KD"].epochs == 7 and r.seed == 2 and r.ci.synth.seed == 2
    # at cpu, chapter 5's selection part is chapter 2's own (its students come from the cache)
    assert r.ipcs == presets.bps("cpu").ipcs and presets.results("cpu").bps == presets.bps("cpu")


def _field_paths(cls: type, prefix: str) -> set[str]:
    out = set()
    for f in dataclasses.fields(cls):
        out.add(f"{prefix}.{f.name}")
    return out


@pytest.mark.parametrize("workflow, fn", [("bps", presets.bps), ("synth", presets.ci)])
def test_every_config_field_is_reachable_by_a_flat_name(workflow: str, fn) -> None:  # noqa: ANN001
    """Issue 23: a setting is written once, as its config's field; the flat name ``<part>_<field>`` reaches it
    (only the fields the preset sets itself are left out, each with its reason)."""
    fields = set().union(*(_field_paths(cls, part) for part, cls in presets.PARTS[workflow].items()))
    reached = {t for targets in presets.TABLES[workflow].values() for t in targets}
    missing = fields - reached - set(presets.SET_BY_THE_PRESET)
    assert not missing, f"fields no flat name reaches: {sorted(missing)}"
    assert all(presets.SET_BY_THE_PRESET[f] for f in presets.SET_BY_THE_PRESET)
    # a derived name sets exactly its field (the preset's derived rules aside)
    base = fn("cpu")
    for name, (target,) in presets.derived_names(workflow).items():
        if name in presets.NAMED[workflow]:
            continue
        part, _, field = target.rpartition(".")
        value = getattr(functools.reduce(getattr, part.split("."), base), field)
        if isinstance(value, bool):
            new = not value
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and field not in ("ipc",):
            new = (value - 1 if value > 1 else value + 1) if isinstance(value, int) else value * 0.5 if value else 0.5
        else:
            continue  # strings and None need a valid value of their own; covered by the routes below
        try:
            after = fn("cpu", **{name: new})
        except presets.ParamError:
            continue  # a value the config refuses (e.g. beyond a range) still shows the route reached it
        assert target in _changed(base, after), (name, target)


def test_an_unknown_name_is_named_with_the_closest_accepted_ones() -> None:
    with pytest.raises(ParamError, match=r"'teacher_epoch' is not a parameter of the bps preset; did you mean "
                                         r"'teacher_epochs'"):
        presets.bps("cpu", teacher_epoch=3)


def test_all_as_the_one_item_of_a_list_is_every_method() -> None:
    """``-p hard_label_methods all`` reaches a chapter as ["all"] (a list parameter given as text)."""
    assert presets.bps("test", hard_label_methods=["all"]).hard_label_methods == presets.bps(
        "test", hard_label_methods="all").hard_label_methods


def test_the_book_trains_students_where_the_chapter_needs_them() -> None:
    """Issue 21 (book under 15 minutes): the cpu scale selects IPC 1, 10 and 50 but trains students at 1 and
    10 (IPC 50's are the records'), and chapter 5 distils SFM only; naming ``ipcs`` alone trains students at
    every named IPC, as the exercises read; the test and gpu scales train and distil everything."""
    b = presets.bps("cpu")
    assert b.ipcs == (1, 10, 50) and b.trained_ipcs == (1, 10)
    assert presets.bps("cpu", ipcs=[1, 10, 50, 100]).trained_ipcs == (1, 10, 50, 100)
    assert presets.bps("cpu", ipcs=[1, 10, 50], student_ipcs=[50]).trained_ipcs == (50,)
    assert presets.bps("cpu", student_ipcs=[1, 10, 50]).student_ipcs is None  # all of them: None
    for scale in ("test", "gpu", None):
        assert presets.bps(scale).trained_ipcs == presets.bps(scale).ipcs
    r = presets.results("cpu")
    assert r.trained_ipcs == (1, 10) and r.synthesis == ("sfm",)
    assert presets.results("test").synthesis == presets.results("gpu").synthesis == ("sfm", "lgm")
    assert presets.results("cpu", synthesis=["LGM", "sfm"]).synthesis == ("sfm", "lgm")
    from ddlib import book

    assert {"synthesis", "student_ipcs"} <= book.list_parameters()  # -p synthesis sfm,lgm reads as a list
