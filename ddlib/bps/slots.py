"""Stage 2's slots against the patterns: what the slot rule gives each class's patterns at an IPC
(:func:`slots_per_pattern`, :func:`slots_summary`, :func:`slots_report`), the words for BPS's balance
(:func:`balance_words`), and a coarser partition chosen on the training data alone (:func:`merge_patterns`).
Chapters 1 and 2 and ``benchmarks/bps_evidence.py --merged-patterns`` use them; the selection itself is
:mod:`ddlib.bps.select`."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ddlib.bps.select import _np, _roles_of_budget, pattern_slots
from ddlib.utils import ParamError, check_float, check_int

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["balance_words", "merge_patterns", "slots_per_pattern", "slots_report", "slots_summary"]


def slots_per_pattern(labels: torch.Tensor | np.ndarray, patterns: torch.Tensor | np.ndarray, ipcs: list[int],
                      centre_frac: float = 0.5) -> pd.DataFrame:
    """What Stage 2's slot rule gives each class's patterns at every IPC of ``ipcs``: one row per (IPC,
    class) with ``patterns`` (the class's), ``with_slot`` (patterns that get at least one slot),
    ``with_margin`` (patterns that get a centre *and* a margin), ``centres`` and ``margins`` (BPS's own
    roles, ``int(centre_frac·b + 0.5)`` centres of a budget ``b``) and ``largest_slots`` (the slots of the
    class's largest pattern). A ``pandas.DataFrame``; :func:`slots_summary` reads it per IPC.

    A pattern of one slot is all centre: with many small patterns, a small IPC is spent on the centres of
    the largest ones, and the centre/margin balance never acts (chapter 2, "Slots against patterns")."""
    import pandas as pd

    y, pat = _np(labels).astype(np.int64), _np(patterns).astype(np.int64)
    if len(y) != len(pat):
        raise ParamError(f"labels has {len(y)} entries but patterns has {len(pat)}")
    check_float("centre_frac", centre_frac, 0.0, 1.0)
    rows = []
    for k in ipcs:
        k = check_int("ipc", k, 1)
        for c in np.unique(y):
            _, counts = np.unique(pat[y == c], return_counts=True)
            counts = counts[np.argsort(-counts, kind="stable")]
            budgets = counts if counts.sum() <= k else pattern_slots(counts, k)
            roles = [_roles_of_budget(b, n, centre_frac) for b, n in zip(budgets, counts) if b > 0]
            rows.append({"ipc": k, "class": int(c), "patterns": len(counts), "with_slot": int((budgets > 0).sum()),
                         "with_margin": sum(1 for a, b in roles if a > 0 and b > 0),
                         "centres": sum(a for a, _ in roles), "margins": sum(b for _, b in roles),
                         "largest_slots": int(budgets[0])})
    return pd.DataFrame(rows, columns=["ipc", "class", "patterns", "with_slot", "with_margin", "centres", "margins",
                                       "largest_slots"])


def slots_summary(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`slots_per_pattern`'s rows per IPC, as the chapter shows them: the mean over classes of each
    count with its range in brackets ("44.4 (40–48)"): ``patterns`` per class, those ``with a slot``, those
    ``with both`` a centre and a margin; and ``centres (%)``, the share of BPS's picks that are centres."""
    import pandas as pd

    def cell(v: pd.Series) -> str:
        lo, hi = int(v.min()), int(v.max())
        return f"{v.mean():.1f} ({lo}–{hi})" if lo != hi else f"{lo}"

    out = []
    for k, g in table.groupby("ipc", sort=True):
        picks = int(g.centres.sum() + g.margins.sum())
        out.append({"IPC": int(k), "patterns": cell(g.patterns), "with a slot": cell(g.with_slot),
                    "with both": cell(g.with_margin),
                    "centres (%)": round(100 * float(g.centres.sum()) / max(picks, 1), 1)})
    return pd.DataFrame(out, columns=["IPC", "patterns", "with a slot", "with both", "centres (%)"])


def balance_words(centre_pct: float) -> str:
    """How much of BPS's centre/margin split acts, read from the share of its picks that are centres (%):
    "barely acts" from 75 %, "acts in part" from 60 %, else "acts" (a half split gives 50 %, a budget of
    one slot per pattern 100 %)."""
    return "barely acts" if centre_pct >= 75 else "acts in part" if centre_pct >= 60 else "acts"


def slots_report(labels: torch.Tensor | np.ndarray, partitions: dict[str, torch.Tensor | np.ndarray],
                 ipcs: list[int], centre_frac: float = 0.5) -> tuple[pd.DataFrame, dict[str, str | float]]:
    """:func:`slots_summary` of several partitions of the same images (name -> per-class pattern ids) in one
    table with a ``partition`` column first, and the glue a chapter cites: per partition ``name`` (its
    :func:`~ddlib.results.slug`-like key: lower case, ``_`` for other characters) and IPC ``k``,
    ``slots_<name>_ipc<k>_patterns`` / ``_with_slot`` / ``_with_margin`` (means over classes),
    ``_with_slot_min`` / ``_with_slot_max``, ``_centre_pct`` (BPS's picks that are centres, %) and ``_balance``
    (:func:`balance_words`)."""
    import re

    import pandas as pd

    tables, glue = [], {}
    for name, pat in partitions.items():
        t = slots_per_pattern(labels, pat, ipcs, centre_frac)
        tables.append(slots_summary(t).assign(partition=name))
        key = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
        for k, g in t.groupby("ipc"):
            stem = f"slots_{key}_ipc{int(k)}"
            glue.update({f"{stem}_patterns": round(float(g.patterns.mean()), 2),
                         f"{stem}_with_slot": round(float(g.with_slot.mean()), 2),
                         f"{stem}_with_slot_min": int(g.with_slot.min()), f"{stem}_with_slot_max": int(g.with_slot.max()),
                         f"{stem}_with_margin": round(float(g.with_margin.mean()), 2),
                         f"{stem}_centre_pct": round(100 * float(g.centres.sum()) /
                                                     max(float(g.centres.sum() + g.margins.sum()), 1.0), 2)})
            glue[f"{stem}_balance"] = balance_words(glue[f"{stem}_centre_pct"])
    table = pd.concat(tables, ignore_index=True)
    return table[["partition", *[c for c in table.columns if c != "partition"]]], glue


def merge_patterns(embeddings: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray,
                   patterns: torch.Tensor | np.ndarray, ipc: int, min_slots: int = 2) -> torch.Tensor:
    """A coarser partition, chosen on the training data alone: per class, the smallest pattern is merged into
    the pattern whose mean embedding (L2-normalised) is nearest by cosine, again and again, until every
    pattern gets at least ``min_slots`` slots at ``ipc`` (:func:`pattern_slots`) or one pattern is left.

    With ``min_slots=2`` and BPS's half split every pattern then gets a centre *and* a margin at ``ipc``:
    the finest partition, by this merging order, on which Stage 2's balance acts. Not the reference's: its
    partition is Infomap's (:mod:`ddlib.bps.patterns`); this rule is the book's ablation (chapter 2). Ties:
    of equal sizes the pattern with the larger id merges first; of equal cosines the lower id receives.
    Returns per-class ids (N,), 0 the class's largest pattern, as :func:`ddlib.bps.patterns.partition`."""
    e = _np(embeddings).astype(np.float64)
    y, pat = _np(labels).astype(np.int64), _np(patterns).astype(np.int64)
    if not (len(e) == len(y) == len(pat)):
        raise ParamError(f"embeddings, labels and patterns differ in length: {len(e)}, {len(y)}, {len(pat)}")
    ipc, min_slots = check_int("ipc", ipc, 1), check_int("min_slots", min_slots, 1)
    out = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        where = np.nonzero(y == c)[0]
        ids, inv = np.unique(pat[where], return_inverse=True)
        sums = np.zeros((len(ids), e.shape[1]))
        np.add.at(sums, inv.reshape(-1), e[where] / np.maximum(np.linalg.norm(e[where], axis=1, keepdims=True), 1e-12))
        sizes = np.bincount(inv.reshape(-1), minlength=len(ids))
        owner = np.arange(len(ids))  # original pattern -> the pattern it now belongs to
        alive = list(range(len(ids)))
        while len(alive) > 1:
            order = sorted(alive, key=lambda i: (-sizes[i], i))
            if pattern_slots(sizes[order], ipc).min() >= min_slots:
                break
            small = order[-1]
            mu = sums[small] / max(np.linalg.norm(sums[small]), 1e-12)
            rest = [i for i in alive if i != small]
            cos = [float(sums[i] @ mu) / max(float(np.linalg.norm(sums[i])), 1e-12) for i in rest]
            into = rest[int(np.argmax(cos))]
            sums[into] += sums[small]
            sizes[into] += sizes[small]
            owner[owner == small] = into
            alive.remove(small)
        merged = owner[inv.reshape(-1)]
        out[where] = _relabel(merged)
    return torch.from_numpy(out)


def _relabel(raw: np.ndarray) -> np.ndarray:
    """Ids 0..M-1 by decreasing size, ties by first occurrence (as :mod:`ddlib.bps.patterns` numbers them)."""
    uniq, first, inv, counts = np.unique(raw, return_index=True, return_inverse=True, return_counts=True)
    new = np.empty(len(uniq), dtype=np.int64)
    new[np.lexsort((first, -counts))] = np.arange(len(uniq))
    return new[inv.reshape(-1)]
