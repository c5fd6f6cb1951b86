"""Synthesis as the book shows it: SFM against LGM and against real images as verdict tables, Classifier
Inheritance against a new probe, accuracy per step budget, and what the methods cost.

The recorded views read :func:`~ddlib.results.latest_synthesis` and :func:`~ddlib.results.synthesis_by_steps`;
the evaluation views read what :func:`ddlib.sfm.inherit.evaluate_modes` returns, keyed ``(set, backbone,
mode)``, so chapter 4 and chapter 5 compute nothing inline. Chapter 4 ("Probe, CI and KD on every
evaluation backbone") and chapter 5 ("SFM against LGM at equal steps") tell the story.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from ddlib.results.records import Record, _is_number, dataset_label, load
from ddlib.results.synthesis import latest_synthesis, synthesis_by_steps, synthesis_cost_curve, synthesis_versus
from ddlib.results.verdicts import MINUS, bound, display_name, points, slug, verdict_table
from ddlib.utils import ParamError

__all__ = ["inheritance_summary", "inheritance_verdicts", "recorded_across_backbones", "synthesis_cost_summary",
           "synthesis_costs", "synthesis_steps", "synthesis_verdicts"]

_MODES = ("probe", "ci", "kd")  # ddlib.sfm.inherit.MODES, in the order the book shows them


def _protocol_order(protocol: str) -> tuple:
    mode, _, backbone = str(protocol).partition(" on ")
    return (_MODES.index(mode) if mode in _MODES else len(_MODES), backbone)


def _listed(values: Any) -> str:
    return ", ".join(map(str, values or [])) or "none"


def _sources(record: Record) -> str:
    """Every file of a (joined) synthesis record with its IPCs, seeds and random real draws."""
    parts = record.data.get("merged_from") or [{"source": record.source, **record.config}]
    return " and ".join(f"{m['source']} (IPC {_listed(m.get('ipcs'))}; distillation seeds {_listed(m.get('seeds'))}; "
                        f"random real draws {_listed(m.get('real_seeds'))})" for m in parts)


def synthesis_verdicts(record: Record | None = None, baseline: str = "lgm", *, method: str = "sfm",
                       key: str | None = None, columns: str | None = None,
                       records: Iterable[Record] | None = None) -> tuple[pd.DataFrame, dict[str, str | float]]:
    """``method``'s final synthetic sets against ``baseline`` (``"lgm"`` at the same step budget, or
    ``"random-real"``: random real images, draw *s* paired with seed *s*) per IPC and evaluation, as a verdict
    table (:func:`~ddlib.results.synthesis_versus`'s rows; the heads keep their final epoch).

    ``record``: a synthesis record (default: :func:`~ddlib.results.latest_synthesis` of ``records``, the
    repository's when None). Every recorded IPC and evaluation of ``method`` is expected: one without its
    pair reads "not run". Returns ``(table, glue)``: :func:`~ddlib.results.verdicts.verdict_table`'s glue
    (``key`` default ``f"{method}_vs_{baseline}"``, slugged) plus ``<key>_source`` (each file with its IPCs,
    seeds and draws) and ``<key>_steps`` (the step budget compared). Chapter 5 shows it for LGM and for
    random real images.
    """
    record = record if record is not None else latest_synthesis(load() if records is None else records)
    key = key or slug(f"{method}_vs_{baseline}")
    rows = synthesis_versus(record, method, (baseline,)) if record is not None else pd.DataFrame()
    mine = [r for r in (record.rows if record is not None else []) if r.get("set") == method]
    ipcs = sorted({r.get("ipc") for r in mine if _is_number(r.get("ipc"))} | set(
        (record.config.get("ipcs") or []) if record is not None else []))
    protocols = sorted({str(r.get("protocol")) for r in mine if r.get("protocol")}, key=_protocol_order)
    synthetic = baseline in {r.get("set") for r in (record.rows if record is not None else []) if r.get("steps")}
    title = (f"{display_name(method)} against {display_name(baseline)}"
             + (" at equal steps" if synthetic else ""))
    table, glue = verdict_table(rows, expected=[(method, baseline, k, p) for k in ipcs for p in protocols],
                                columns=columns, key=key, title=title, axis="evaluation",
                                dataset=dataset_label(record.config.get("dataset")) if record is not None else None)
    steps = [r["steps"] for r in mine if _is_number(r.get("steps"))]
    glue[f"{key}_source"] = _sources(record) if record is not None else "none"
    glue[f"{key}_steps"] = int(max(steps)) if steps else 0
    return table, glue


def synthesis_cost_summary(record: Record | None = None, *, method: str = "sfm", baseline: str = "lgm",
                           protocol: str | None = None, key: str = "sfm_lgm",
                           records: Iterable[Record] | None = None) -> tuple[pd.DataFrame, dict[str, str | float]]:
    """Accuracy and cost of ``method`` and ``baseline`` at the last common step budget, per IPC, from a record
    of synthesis runs checkpointed at equal steps (:func:`~ddlib.results.synthesis_cost_curve`).

    ``protocol``: the evaluation read (default: the one scored at the most step budgets, the checkpoints'
    probe). Table: ``IPC``, each method's accuracy (%), the seeds, and ``baseline``'s wall time and peak
    memory as multiples of ``method``'s (SFM's time includes its statistics pass). Glue: ``<key>_text`` (one
    sentence per IPC: "at IPC 1, after 1,000 steps SFM reaches 44.0 % and LGM 39.8 % (5 seeds), LGM taking
    4.1 times SFM's time and 7.9 times its peak memory"; a record still being filled says so),
    ``<key>_protocol``, ``<key>_steps``, ``<key>_views`` (augmented views per image and step of each), and
    per IPC ``<key>_ipc<k>_<method>_acc``, ``..._<baseline>_acc``, ``..._time_ratio``, ``..._mem_ratio``.
    Chapter 5 ("SFM against LGM at equal steps") uses it beside :func:`synthesis_verdicts`.
    """
    from ddlib.plots.tables import whole_table

    record = record if record is not None else latest_synthesis(load() if records is None else records)
    curve = synthesis_cost_curve([record]) if record is not None else pd.DataFrame()
    runs = curve[curve.steps.notna()] if len(curve) else curve
    if protocol is None and len(runs):
        protocol = runs.groupby("protocol").steps.nunique().idxmax()
    a_name, b_name = display_name(method), display_name(baseline)
    cols = ["IPC", f"{a_name} (%)", f"{b_name} (%)", "seeds", f"{b_name} time ÷ {a_name}",
            f"{b_name} memory ÷ {a_name}"]
    glue: dict[str, str | float] = {f"{key}_protocol": display_name(protocol) if protocol else "not run"}
    out, lines = [], []
    runs = runs[runs.protocol == protocol] if len(runs) else runs
    last = int(runs.steps.max()) if len(runs) else 0
    for k in sorted(runs.ipc.unique()) if len(runs) else []:
        at = runs[(runs.ipc == k) & (runs.steps == last)].set_index("set")
        if method not in at.index or baseline not in at.index:
            out.append({"IPC": int(k), cols[1]: "not run", cols[2]: "not run", "seeds": "not run",
                        cols[4]: "not run", cols[5]: "not run"})
            continue
        s, g = at.loc[method], at.loc[baseline]
        t_ratio, m_ratio = g.seconds / max(s.seconds, 1e-9), g.peak_mem_mib / max(s.peak_mem_mib, 1e-9)
        n = int(min(s.n_seeds, g.n_seeds))
        out.append({"IPC": int(k), cols[1]: f"{100 * s.accuracy_mean:.1f}", cols[2]: f"{100 * g.accuracy_mean:.1f}",
                    "seeds": str(n), cols[4]: f"{t_ratio:.1f}", cols[5]: f"{m_ratio:.1f}"})
        stem = f"{key}_ipc{int(k)}"
        glue.update({f"{stem}_{slug(method)}_acc": round(100 * s.accuracy_mean, 4),
                     f"{stem}_{slug(baseline)}_acc": round(100 * g.accuracy_mean, 4),
                     f"{stem}_time_ratio": round(t_ratio, 4), f"{stem}_mem_ratio": round(m_ratio, 4)})
        lines.append(f"at IPC {int(k)}, after {last:,} steps {a_name} reaches {100 * s.accuracy_mean:.1f} % and "
                     f"{b_name} {100 * g.accuracy_mean:.1f} % ({n} seeds), {b_name} taking {t_ratio:.1f} times "
                     f"{a_name}'s time and {m_ratio:.1f} times its peak memory")
    done = ("" if not len(curve) or curve.complete.all()
            else " (the record is still being filled: runs in progress are missing)")
    glue[f"{key}_text"] = ("; ".join(lines) or "no step budget has both methods recorded yet") + done
    glue[f"{key}_steps"] = last
    views = (record.config.get(f"{baseline}_augs_per_batch") or {}) if record is not None else {}
    glue[f"{key}_views"] = "; ".join(
        f"at IPC {int(k)}, {a_name} {record.config.get(f'{method}_augs_per_batch')} and {b_name} "
        f"{views.get(str(int(k)), '?') if isinstance(views, Mapping) else views}"
        for k in sorted(runs.ipc.unique())) if len(runs) else "not recorded yet"
    return whole_table(pd.DataFrame(out, columns=cols)), glue


def synthesis_steps(records: Iterable[Record] | None = None, *, mode: str = "probe",
                    key: str = "steps") -> tuple[pd.DataFrame, dict[str, str | float]]:
    """Accuracy of the recorded synthesis runs per step budget (``benchmarks/sfm_ci_cifar10.py``), read by
    ``mode`` on the distillation backbone at the smallest recorded IPC: one row per set, one column per
    budget ("44.0 ± 0.8" %, "not run" where a set has no run at a budget), and its glue.

    Glue: ``<key>_text`` ("on EfficientNet-Lite0 (112-px images, 100 training images per class), IPC 1: SFM's
    probe reached 18.2 % after 100 steps, then 51.1 % after 1000 steps; random real images 32.1 %": the
    records' own setting, which need not be the equal-steps record's), ``<key>_ipc``, ``<key>_budgets``. Chapter 5
    ("Synthesis needs its steps") uses it.
    """
    from ddlib.plots.tables import whole_table

    syn = synthesis_by_steps(load() if records is None else records)
    syn = syn[(syn["mode"] == mode) & (syn.eval_backbone == syn.distill_backbone)] if len(syn) else syn
    if not len(syn):
        return whole_table(pd.DataFrame(columns=["set"])), {
            f"{key}_text": "none recorded yet (benchmarks/sfm_ci_cifar10.py --steps)", f"{key}_ipc": 0,
            f"{key}_budgets": "none"}
    k = syn.ipc.min()
    syn = syn[syn.ipc == k].drop_duplicates(["set", "steps"], keep="last")
    budgets = sorted(syn.steps.unique())
    sets = list(dict.fromkeys(syn["set"]))
    cell = {(s, b): f"{100 * a:.1f} ± {100 * d:.1f}" for s, b, a, d in
            zip(syn["set"], syn.steps, syn.accuracy_mean, syn.accuracy_std, strict=True)}
    table = pd.DataFrame([{"set": display_name(s), **{f"{b:,} steps (%)": cell.get((s, b), "not run")
                                                       for b in budgets}} for s in sets])
    first = next((s for s in sets if s in ("sfm",)), sets[0])
    mine = syn[syn["set"] == first].sort_values("steps")
    real = syn[syn["set"] == "random-real"].sort_values("steps")
    px, pool = syn.image_size.iloc[-1], syn.per_class.iloc[-1]
    setting = ", ".join([*([f"{int(px)}-px images"] if pd.notna(px) else []),
                         f"{int(pool):,} training images per class" if pd.notna(pool) else "every training image"])
    text = (f"on {display_name(syn.distill_backbone.iloc[0])} ({setting}), IPC {k}: {display_name(first)}'s {mode} "
            "reached " + ", then ".join(
        f"{100 * a:.1f} % after {s} steps" for s, a in zip(mine.steps, mine.accuracy_mean, strict=True))
        + (f"; random real images {100 * real.accuracy_mean.iloc[-1]:.1f} %" if len(real) else ""))
    return whole_table(table), {f"{key}_text": text, f"{key}_ipc": int(k),
                                f"{key}_budgets": ", ".join(f"{b:,}" for b in budgets)}


def _pairs(results: Mapping[tuple, Mapping[str, Any]]) -> dict[tuple, list[float]]:
    out = {}
    for (set_name, backbone, mode), r in results.items():
        accs = r.get("accs") if isinstance(r, Mapping) else None
        out[(str(set_name), str(backbone), str(mode))] = [float(a) for a in accs or [] if _is_number(a)]
    return out


def inheritance_verdicts(results: Mapping[tuple, Mapping[str, Any]], *, ipc: int, family: str = "modes",
                         method: str = "SFM", key: str | None = None,
                         columns: str | None = None) -> tuple[pd.DataFrame, dict[str, str | float]]:
    """Evaluations of synthetic and real sets as a verdict table, paired over their runs (run *r* of every
    evaluation uses seed ``cfg.seed + r``: the same head initialisation and batch order stream).

    ``results``: ``{(set, backbone, mode): result}`` with each result's per-run ``accs``
    (:func:`ddlib.sfm.inherit.evaluate_modes`), as chapter 4 (and chapter 5's synthesis part) build them.
    ``family="modes"``: on ``method``'s images, CI and KD against a new probe, per evaluation backbone;
    ``family="sets"``: ``method`` against every other set (the real-image baselines) per backbone and mode.
    Every evaluation of ``method``'s is expected: one whose other side is missing reads "not run". One run
    gives a difference without an interval ("one seed, no interval"). Returns
    :func:`~ddlib.results.verdicts.verdict_table`'s ``(table, glue)`` (``key`` default ``f"ci_{family}"``).
    """
    from ddlib.metrics import paired_stats

    if family not in ("modes", "sets"):
        raise ParamError(f"family={family!r}: choose 'modes' (CI and KD against the probe) or 'sets' "
                         f"({method} against the real-image sets)")
    accs = _pairs(results)
    backbones = list(dict.fromkeys(b for _, b, _ in accs))
    modes = sorted({m for _, _, m in accs}, key=lambda m: _MODES.index(m) if m in _MODES else len(_MODES))
    if family == "modes":  # every mode of method's that has run on a backbone, against that backbone's probe
        wanted = [(f"{method} / {m}", f"{method} / probe", ipc, b, (method, b, m), (method, b, "probe"))
                  for m in modes if m != "probe" for b in backbones if (method, b, m) in accs]
    else:  # every evaluation of method's, against each other set under it
        others = [s for s in dict.fromkeys(s for s, _, _ in accs) if s != method]
        wanted = [(method, o, ipc, f"{m} on {b}", (method, b, m), (o, b, m)) for o in others for b in backbones
                  for m in modes if (method, b, m) in accs]
    rows = []
    for a_label, b_label, k, protocol, a_key, b_key in wanted:
        a, b = accs.get(a_key, []), accs.get(b_key, [])
        n = min(len(a), len(b))
        if n:
            rows.append({"method": a_label, "baseline": b_label, "ipc": k, "protocol": protocol, "rule": "final",
                         **paired_stats(a[:n], b[:n], a_label, b_label)})
    title = (f"CI and KD against a new probe on {display_name(method)}'s images" if family == "modes"
             else f"{display_name(method)} against real images of the same budget")
    return verdict_table(rows, expected=[w[:4] for w in wanted], key=key or f"ci_{family}", title=title,
                         axis="backbone" if family == "modes" else "evaluation", columns=columns)


def inheritance_summary(results: Mapping[tuple, Mapping[str, Any]], *, distill_backbone: str, method: str = "SFM",
                        key: str = "ci") -> tuple[pd.DataFrame, dict[str, str | float]]:
    """Accuracy of every set on every evaluation backbone by probe, CI and KD (mean over runs, %), and CI
    minus the probe; "not run" where a mode was not evaluated. Columns: ``set``, ``backbone``, the three modes
    and ``CI − probe`` (six, each cell within a column of the page). The glue keeps full precision, so prose
    that formats it to one decimal reads as the table does.

    ``results``: as :func:`inheritance_verdicts`'. Glue (numbers in %): every accuracy as
    ``<key>_<set>_<backbone>_<mode>``; ``<key>_ci_gain_mean`` (``method``'s CI minus probe, averaged over the
    backbones); ``<key>_best_other`` (the backbone other than ``distill_backbone`` where ``method``'s CI is
    best) with ``<key>_<set>_<mode>_best_other`` for every set and mode there and
    ``<key>_<set>_ci_gain_best_other``; ``<key>_<set>_probe_mean`` (over the backbones);
    ``<key>_distill_probe`` (``method``'s probe on ``distill_backbone``, when evaluated). Chapter 4 ("Probe,
    CI and KD on every evaluation backbone") and chapter 5's synthesis part use it.
    """
    from ddlib.plots.tables import whole_table

    acc = {k: 100 * sum(v) / len(v) for k, v in _pairs(results).items() if v}
    sets = list(dict.fromkeys(s for s, _, _ in acc))
    backbones = list(dict.fromkeys(b for _, b, _ in acc))
    table, glue = [], {}
    for s in sets:
        for b in backbones:
            row = {"set": display_name(s), "backbone": display_name(b)}
            row.update({f"{display_name(m)} (%)": f"{acc[(s, b, m)]:.1f}" if (s, b, m) in acc else "not run"
                        for m in _MODES})
            gain = acc[(s, b, "ci")] - acc[(s, b, "probe")] if {(s, b, "ci"), (s, b, "probe")} <= acc.keys() else None
            row[f"CI {MINUS} probe"] = points(gain) if gain is not None else "not run"
            table.append(row)
    glue.update({f"{key}_{slug(s)}_{slug(b)}_{m}": v for (s, b, m), v in acc.items()})
    gains = [acc[(method, b, "ci")] - acc[(method, b, "probe")] for b in backbones
             if {(method, b, "ci"), (method, b, "probe")} <= acc.keys()]
    glue[f"{key}_ci_gain_mean"] = sum(gains) / len(gains) if gains else 0.0
    others = [b for b in backbones if b != distill_backbone and (method, b, "ci") in acc] or \
        [b for b in backbones if (method, b, "ci") in acc]
    best = max(others, key=lambda b: acc[(method, b, "ci")]) if others else None
    glue[f"{key}_best_other"] = display_name(best) if best else "none"
    for s in sets:
        probes = [acc[(s, b, "probe")] for b in backbones if (s, b, "probe") in acc]
        if probes:
            glue[f"{key}_{slug(s)}_probe_mean"] = sum(probes) / len(probes)
        if best is not None:
            glue.update({f"{key}_{slug(s)}_{m}_best_other": acc[(s, best, m)] for m in _MODES
                         if (s, best, m) in acc})
            if {(s, best, "ci"), (s, best, "probe")} <= acc.keys():
                glue[f"{key}_{slug(s)}_ci_gain_best_other"] = acc[(s, best, "ci")] - acc[(s, best, "probe")]
    if (method, distill_backbone, "probe") in acc:
        glue[f"{key}_distill_probe"] = acc[(method, distill_backbone, "probe")]
    cols = ["set", "backbone", *(f"{display_name(m)} (%)" for m in _MODES), f"CI {MINUS} probe"]
    return whole_table(pd.DataFrame(table, columns=cols)), glue


def synthesis_costs(synthesis: Mapping[str, Mapping[str, Any]], *, method: str = "SFM", baseline: str = "LGM",
                    key: str = "synthesis_costs") -> tuple[pd.DataFrame, dict[str, str | float]]:
    """This build's distillation runs (``{name: ddlib.sfm.synth.distill result}``): steps, wall time, time per
    step, peak memory and final flow cosine (:func:`ddlib.plots.run_costs`'s columns that fit the page),
    and ``baseline``'s wall time and peak memory as multiples of ``method``'s in the glue
    (``<key>_time_ratio``, ``<key>_mem_ratio``). Chapter 5 ("Cost: time and memory") uses it; its cell is
    left out of output comparisons (times vary)."""
    from ddlib.plots.tables import run_costs, whole_table

    table = run_costs(dict(synthesis))[["steps", "wall time (s)", "ms per step", "peak memory (MiB)",
                                         "final flow cosine"]]
    glue: dict[str, str | float] = {}
    if method in synthesis and baseline in synthesis:
        a, b = synthesis[method], synthesis[baseline]
        glue[f"{key}_time_ratio"] = round(float(b["wall_time"]) / max(float(a["wall_time"]), 1e-9), 4)
        glue[f"{key}_mem_ratio"] = round(max(float(b["peak_mem"]), 1.0) / max(float(a["peak_mem"]), 1.0), 4)
    return whole_table(table), glue


def recorded_across_backbones(record: Record | None = None, records: Iterable[Record] | None = None, *,
                              method: str = "sfm", baseline: str = "random-real", mode: str = "probe",
                              key: str = "sfm_backbones") -> tuple[pd.DataFrame, dict[str, str | float]]:
    """Does ``method``'s recorded lead (or lag) over ``baseline`` hold on every evaluation backbone? From a
    record of ``method``'s sets scored on several backbones (``sfm_vs_lgm_cifar10.py --methods sfm
    --eval-backbones A,B``; default: :func:`~ddlib.results.latest_synthesis` with ``methods=[method]``),
    paired over seeds as :func:`~ddlib.results.synthesis_verdicts`. Returns its ``(table, glue)`` plus
    ``<key>_sentence`` (it starts in lower case: the chapters cite it after a colon): "on CIFAR-10 at IPC 1 (5 paired seeds), SFM − random real images by the probe reads
    +9.1 [5.0, 13.2] on EfficientNet-Lite1 and +12.0 [...] on EfficientNet-Lite2: ahead on both." (or "not
    recorded yet")."""
    rec = record if record is not None else latest_synthesis(load() if records is None else records,
                                                             methods=[method])
    if rec is None:
        table, glue = synthesis_verdicts(None, baseline, method=method, key=key, records=[])
        return table, {**glue, f"{key}_sentence": f"not recorded yet ({method} scored on several backbones: "
                                                  "benchmarks/sfm_vs_lgm_cifar10.py --methods sfm --eval-backbones)"}
    table, glue = synthesis_verdicts(rec, baseline, method=method, key=key)
    rows = synthesis_versus(rec, method, (baseline,))
    rows = rows[rows.protocol.str.startswith(f"{mode} on ")]
    rows = rows[rows.protocol != f"{mode} on {rec.config.get('distill_backbone')}"]  # the distillation backbone
    parts, signs, single = [], set(), []
    for ipc in sorted(rows.ipc.unique()):
        here = rows[rows.ipc == ipc]
        n = int(here.n_seeds.min()) if len(here) else 0
        if n < 2:  # one seed so far (a record being filled): its differences, no interval and no verdict
            single.append(str(ipc))
            cells = [f"{points(100 * r.diff_mean)} on {display_name(r.protocol.split(' on ')[1])}"
                     for r in here.itertuples()]
            parts.append(f"at IPC {ipc} (one seed so far, no interval) " + " and ".join(cells))
            continue
        cells = [f"{points(100 * r.diff_mean)} [{bound(100 * r.ci95[0])}, "
                 f"{bound(100 * r.ci95[1])}] on {display_name(r.protocol.split(' on ')[1])}"
                 for r in here.itertuples()]
        signs |= {(1 if r.diff_mean > 0 else -1) if r.excludes_zero else 0 for r in here.itertuples()}
        parts.append(f"at IPC {ipc} ({n} paired seeds) " + " and ".join(cells))
    if not parts:
        return table, {**glue, f"{key}_sentence": f"{display_name(method)} against {display_name(baseline)}: not "
                                                  "scored on another backbone in the record"}
    n_bb = rows.protocol.nunique()
    every = "both backbones tested" if n_bb == 2 else f"all {n_bb} backbones tested"
    what = ("one seed only: no verdict yet" if not signs else
            "one backbone only: no claim across backbones" if n_bb < 2 else
            f"{display_name(method)} ahead on {every}" if signs == {1} else
            f"{display_name(method)} behind on {every}" if signs == {-1} else
            f"no detectable difference on {every}" if signs == {0} else "the verdict changes with the backbone")
    if signs and single:
        what += f" with an interval (IPC {', '.join(single)}: one seed, no verdict yet)"
    sentence = (f"on {display_name(dataset_label(rec.config.get('dataset')))}, {display_name(method)} {MINUS} "
                f"{display_name(baseline)} by the {display_name(mode)} reads " + "; ".join(parts) + f": {what}")
    return table, {**glue, f"{key}_sentence": sentence}
