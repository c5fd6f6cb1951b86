"""How a preset is built: the scale's values and the caller's names mapped through the table onto the
configs' fields, with the derived rules of the BPS configs (classifiers, the forgetting run's recipe)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ddlib import data as datasets
from ddlib.baselines import ForgettingConfig
from ddlib.bps.distill import StudentConfig, TeacherConfig
from ddlib.bps.encoder import EncoderConfig
from ddlib.bps.patterns import PatternConfig
from ddlib.bps.pipeline import check_methods
from ddlib.bps.select import SelectConfig
from ddlib.models import BACKBONES
from ddlib.presets.kinds import SynthPreset, given
from ddlib.presets.names import TABLES, unknown_name
from ddlib.presets.values import ALL_METHODS, SCALES, VALUES
from ddlib.sfm import backbones
from ddlib.sfm.inherit import GoldenConfig, ProbeConfig
from ddlib.sfm.synth import SynthConfig
from ddlib.utils import ParamError, check_choice, check_int

__all__ = ["FORGETTING_RECIPES", "ALL_IMAGES"]



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
    for knobs in (VALUES[workflow][scale], given(**overrides)):
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
    """The chapters' classifiers for a Stage-1 backbone: the backbone itself when it is a network trained from
    scratch (the DD ConvNet, ResNet-18, any such one of ddlib.models.BACKBONES), else ResNet-18."""
    if backbone is None:
        return None
    spec = BACKBONES.get(backbone)
    return backbone if spec is not None and spec.weights is None else "resnet18"


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
                         f"e.g. {backbones.backbone_names()[:2]}")
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


def _methods(methods: Any) -> tuple[str, ...] | None:
    """Method names checked against the selector registry; :data:`ALL_METHODS` is every registered one."""
    from ddlib.selectors import names

    if methods is None:
        return None
    return tuple(names()) if methods == ALL_METHODS else tuple(check_methods(methods))


