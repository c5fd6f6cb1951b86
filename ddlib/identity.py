"""What made an artifact, and the one-line refusal when the run that reads it differs.

Every artifact a command reads carries the identity of what made it: a synthetic set (``images.pt``) its
dataset, class names, channels, image size and backbone (:func:`ddlib.sfm.sets.save_synthetic`); a selection
its dataset spec, class names, channels and pool size (``python -m ddlib select``); cached features and golden
heads carry theirs in their key (:mod:`ddlib.artifacts`). A consumer compares what it is about to use with
:func:`check`, which raises one :class:`~ddlib.utils.ParamError` naming the artifact, the first field that
differs, both values and what to do. A field an older artifact did not record is not compared.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ddlib.utils import ParamError

#: the fields compared, in this order, and how a message names them
FIELDS = {"dataset": "dataset", "classes": "classes", "channels": "channels", "image_size": "image size",
          "n_train": "training images", "backbone": "backbone"}


def dataset_name(spec_or_name: Any) -> str | None:
    """A dataset's name without the path of its ``prefix:PATH`` form (``cifar10:/a/b.tar`` -> ``cifar10``), so
    that one dataset moved to another path is still itself; None when not recorded."""
    name = spec_or_name.get("name") if isinstance(spec_or_name, Mapping) else spec_or_name
    if not isinstance(name, str) or not name:
        return None
    prefix, sep, rest = name.partition(":")
    return prefix if sep and prefix != "imagefolder" else name


def of_dataset(ds: Any) -> dict[str, Any]:
    """The identity of a loaded dataset: name, class names, channels, image size (px) and training images."""
    c, _, w = (int(v) for v in ds.image_shape)
    return {"dataset": dataset_name(getattr(ds, "spec", None) or ds.name), "classes": list(ds.classes),
            "channels": c, "image_size": w, "n_train": int(len(ds.train_y))}


def _show(field: str, value: Any) -> str:
    if field == "classes" and isinstance(value, Sequence) and not isinstance(value, str):
        head = ", ".join(map(repr, list(value)[:4])) + (", …" if len(value) > 4 else "")
        return f"{len(value)} classes [{head}]"
    return repr(value)


def mismatch(recorded: Mapping[str, Any], here: Mapping[str, Any], fields: Sequence[str] = tuple(FIELDS)) -> str | None:
    """``"dataset 'digits' there, 'fashion-mnist' here"`` for the first of ``fields`` both record and that
    differs; None when none does."""
    for f in fields:
        a, b = recorded.get(f), here.get(f)
        if a is None or b is None:
            continue
        if (list(a) if isinstance(a, (list, tuple)) else a) != (list(b) if isinstance(b, (list, tuple)) else b):
            return f"{FIELDS.get(f, f)} {_show(f, a)} there, {_show(f, b)} here"
    return None


def check(what: str, recorded: Mapping[str, Any], here: Mapping[str, Any], advice: str,
          fields: Sequence[str] = tuple(FIELDS)) -> None:
    """Raise a :class:`ParamError` ``"{what} was made for another run: {difference}; {advice}"`` when
    :func:`mismatch` finds a difference."""
    diff = mismatch(recorded, here, fields)
    if diff:
        raise ParamError(f"{what} was made for another run ({diff}); {advice}")
