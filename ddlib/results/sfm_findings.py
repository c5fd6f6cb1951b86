"""What chapters 3 and 4 read from their own records: the flow cosines of SFM, chunked SFM and LGM on the same
fixed views, the SFM regime chosen on held-out training images, where Classifier Inheritance pays against a
new probe, and whether a live result holds on every evaluation backbone.

Each reader returns ``(table, glue)`` (or a sentence) so a chapter computes nothing inline and types no
number: :func:`flow_cosine_findings` (``benchmarks/sfm_flow_cosine.py``), :func:`regime_findings`
(``benchmarks/sfm_regime.py``), :func:`ci_projector_findings` (``benchmarks/ci_projector.py``),
:func:`ci_versus_probe` (CI minus the probe in a synthesis record, ``benchmarks/sfm_vs_lgm_cifar10.py``) and
:func:`across_backbones` (a live evaluation, :func:`ddlib.sfm.inherit.evaluate_modes`' results).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from ddlib.results.records import CLAIM_SEEDS, Record, _is_number, dataset_label, load
from ddlib.results.synthesis import latest_synthesis
from ddlib.results.verdicts import MINUS, bound, display_name, points, slug, verdict_table

__all__ = ["FLOW_METRICS", "FIT_NAMES", "across_backbones", "ci_projector_findings", "ci_versus_probe",
           "flow_cosine_findings", "regime_findings"]

#: the flow cosines of ``sfm_flow_cosine.py``'s rows, as a table names them (keys: the rows' fields)
FLOW_METRICS = {"history_last": "last step, on its own views", "per_view_mean": "one view per image",
                "mean_view": "each image averaged over the views", "clean": "un-augmented images"}
#: ``ci_projector.py``'s fits, as a table names them
FIT_NAMES = {"adam": "Adam (the reference's fit)", "adam-rate/10": "Adam at a tenth of the rate",
                  "adam-wd0.01": "Adam with weight decay", "adam-early-stop": "Adam, stopped on held-out views",
                  "ridge": "ridge, λ on held-out views"}


def _newest(records: Iterable[Record] | None, test) -> Record | None:  # noqa: ANN001
    found = [r for r in (load() if records is None else records) if test(r)]
    return max(found, key=lambda r: str(r.provenance.get("date")), default=None)


def _cos(v: float, signed: bool = True) -> str:
    """A cosine or a difference of cosines as the tables print it: ``+0.018``, ``−0.056``, ``0.000``."""
    return points(v, signed, digits=3)


def flow_cosine_findings(record: Record | None = None, records: Iterable[Record] | None = None, *,
                         key: str = "flowrec") -> tuple[pd.DataFrame, dict[str, str | float]]:
    """Chunked SFM and LGM against direct SFM on every flow cosine of a ``sfm_flow_cosine.py`` record (the
    newest when ``record`` is None): paired differences over its seeds with 95 % intervals, as the record holds
    them (``cosine_differences``).

    Table: ``comparison``, ``flow cosine``, ``difference``, ``95 % interval``, ``verdict`` ("no detectable
    difference", "LGM higher", "SFM higher"). Glue: ``<key>_n_seeds``, ``<key>_views``, ``<key>_steps``;
    per method (``sfm``, ``sfm_chunked``, ``lgm``) and metric (:data:`FLOW_METRICS`) the mean cosine
    ``<key>_<method>_<metric>``; per comparison ``<key>_<method>_<metric>_diff``, ``_interval`` ("−0.007 to
    0.006"), ``_verdict`` and ``_higher`` (the side ahead, or "neither"); per compared method ``<key>_<method>_summary`` ("cannot be told apart on any of
    the 4 cosines", or where they differ); ``<key>_sfm_step_sd`` (the spread of SFM's own estimate over its last tenth of
    steps, averaged over seeds). Without a record every value reads "not recorded yet"."""
    rec = record if record is not None else _newest(records, lambda r: "cosine_differences" in r.data)
    cols = ["comparison", "flow cosine", "difference", "95 % interval", "verdict"]
    if rec is None:
        return pd.DataFrame(columns=cols), {f"{key}_n_seeds": "not recorded yet"}
    glue: dict[str, str | float] = {f"{key}_n_seeds": len(rec.config.get("seeds") or []),
                                    f"{key}_views": int(rec.config.get("eval_views") or 0),
                                    f"{key}_steps": int((rec.config.get("synth") or {}).get("steps") or 0)}
    for method in dict.fromkeys(r["method"] for r in rec.rows):
        mine = [r for r in rec.rows if r["method"] == method]
        for metric in FLOW_METRICS:
            vals = [float(r[metric]) for r in mine if _is_number(r.get(metric))]
            if vals:
                glue[f"{key}_{slug(method)}_{metric}"] = _cos(sum(vals) / len(vals), False)
    sds = [float(r["history_last_tenth_std"]) for r in rec.rows if r["method"] == "SFM"
           and _is_number(r.get("history_last_tenth_std"))]
    glue[f"{key}_sfm_step_sd"] = _cos(sum(sds) / len(sds), False) if sds else "not recorded"
    rows = []
    for d in rec.data["cosine_differences"]:
        lo, hi = (float(x) for x in d["ci95"])
        higher = d["method"] if lo > 0 else d["baseline"] if hi < 0 else None
        verdict = f"{display_name(higher)} higher" if higher else "no detectable difference"
        stem = f"{key}_{slug(d['method'])}_{d['metric']}"
        glue.update({f"{stem}_diff": _cos(float(d["diff_mean"])), f"{stem}_verdict": verdict,
                     # the difference with its sign's meaning: "LGM − SFM −0.056"
                     f"{stem}_diff_named": f"{display_name(d['method'])} {MINUS} {display_name(d['baseline'])} "
                                           f"{_cos(float(d['diff_mean']))}",
                     f"{stem}_higher": display_name(higher) if higher else "neither",
                     f"{stem}_interval": f"{_cos(lo, False)} to {_cos(hi, False)}"})
        rows.append({"comparison": f"{display_name(d['method'])} {MINUS} {display_name(d['baseline'])}",
                     "flow cosine": FLOW_METRICS.get(d["metric"], d["metric"]),
                     "difference": _cos(float(d["diff_mean"])),
                     "95 % interval": f"[{_cos(lo, False)}, {_cos(hi, False)}]", "verdict": verdict})
    for method in dict.fromkeys(r["comparison"] for r in rows):
        mine = [r for r in rows if r["comparison"] == method]
        differ = [r for r in mine if r["verdict"] != "no detectable difference"]
        name = slug(next(d["method"] for d in rec.data["cosine_differences"]
                         if f"{display_name(d['method'])} {MINUS}" in method))
        glue[f"{key}_{name}_summary"] = (
            f"cannot be told apart on any of the {len(mine)} cosines" if not differ else
            f"differ on {len(differ)} of the {len(mine)} cosines (" + ", ".join(
                f"{r['flow cosine']}: {r['verdict']}" for r in differ) + ")")
    from ddlib.plots.tables import whole_table

    return whole_table(pd.DataFrame(rows, columns=cols)), glue


def _regime_label(synth: Mapping[str, Any]) -> str:
    start = {"real": "from real images", "noise": "from noise"}.get(str(synth.get("init")), str(synth.get("init")))
    return f"{start}, {synth.get('image_size')} px, lr {synth.get('lr'):g}"


def _other_rates(regimes: Mapping[str, Any], rows: list[dict], chosen: str, at: int | None) -> str:
    """One sentence on the regimes that start as ``chosen`` does at another rate: at how many of the budgets
    both ran it scored higher and by how much, and at the budget ``at`` the gap against the spread between draws
    (the larger of the two rows' standard deviations over seeds; two draws give no interval). "" when the
    record has none."""
    mine = regimes.get(chosen, {}).get("synth", {})
    acc = {(r["regime"], int(r["steps"])): r for r in rows if _is_number(r.get("steps"))}
    if (chosen, at) not in acc:
        return ""
    said, n_draws = [], len(acc[(chosen, at)].get("seeds") or [])
    for name, reg in regimes.items():
        s = reg["synth"]
        if name == chosen or s.get("init") != mine.get("init") or s.get("lr") == mine.get("lr") or (name, at) not in acc:
            continue
        gaps = {b: 100 * (float(acc[(name, b)]["mean"]) - float(acc[(chosen, b)]["mean"]))
                for (n, b) in acc if n == name and (chosen, b) in acc}
        higher = [g for g in gaps.values() if g > 0]
        spread = 100 * max(float(acc[(name, at)].get("std") or 0.0), float(acc[(chosen, at)].get("std") or 0.0))
        where = "inside" if abs(gaps[at]) <= spread else "beyond"
        span = (f" (by {min(higher):.1f} to {max(higher):.1f} points)" if len(higher) > 1 else
                f" (by {higher[0]:.1f} points)" if higher else "")
        said.append(f"a rate of {s['lr']:g} scored higher than {mine.get('lr'):g} at {len(higher)} of the "
                    f"{len(gaps)} budgets{span}; at {at:,} steps the gap, {points(gaps[at])} points, is {where} the "
                    f"{spread:.1f}-point spread between the {n_draws} draws")
    if not said:
        return ""
    record_lr = regimes.get("cifar-record", {}).get("synth", {}).get("lr")  # sfm_regime.py's name for it
    why = ", the CIFAR-10 record's rate" if record_lr == mine.get("lr") else ""
    few = "Too few draws for a verdict: the" if n_draws < CLAIM_SEEDS else "The"
    return f"Started the same way, {'; '.join(said)}. {few} chapter keeps the rate of {mine.get('lr'):g}{why}."


def regime_findings(record: Record | None = None, records: Iterable[Record] | None = None, *,
                    chosen: str = "init-real", protocol: str = "probe on efficientnet-lite2",
                    steps: int | None = None, key: str = "regime") -> tuple[pd.DataFrame, dict[str, str | float]]:
    """The SFM regimes of a ``sfm_regime.py`` record (the newest when ``record`` is None), scored on held-out
    training images: one row per regime (how it starts, its image size and rate) and random real images, one
    column per step budget, the validation accuracy (%) under ``protocol``.

    Glue: ``<key>_val_per_class``, ``<key>_n_seeds``, ``<key>_protocol``; ``<key>_random`` (random real
    images, %); the best regime from noise at its largest budget, ``<key>_noise_best`` (%),
    ``<key>_noise_steps``, ``<key>_noise_label``; the ``chosen`` regime at its smallest and largest budgets,
    ``<key>_chosen_first`` / ``<key>_chosen_first_steps`` and ``<key>_chosen_last`` /
    ``<key>_chosen_last_steps`` (%), with ``<key>_chosen_label`` and ``<key>_chosen_lr``; at ``steps`` (a
    chapter's budget) ``<key>_chosen_at`` (%) and ``<key>_chosen_vs_random`` ("+1.6 points, 95 % interval
    −17.9 to 21.1, 2 paired draws", from the record's paired differences; "not recorded" without one);
    ``<key>_other_rates``: one sentence on the regimes that start as ``chosen`` does at another rate, at that
    budget, with the gap and whether it exceeds the spread between draws ("" when there is none)."""
    rec = record if record is not None else _newest(records, lambda r: isinstance(r.config.get("regimes"), Mapping))
    if rec is None:
        return pd.DataFrame(columns=["regime"]), {f"{key}_n_seeds": "not recorded yet"}
    regimes = rec.config["regimes"]
    want = lambda r: str(r.get("protocol", "")).split(" [")[0] == protocol  # noqa: E731
    rows = [r for r in rec.rows if want(r) and _is_number(r.get("mean"))]
    budgets = sorted({int(r["steps"]) for r in rows if _is_number(r.get("steps"))})
    acc = {(r["regime"], int(r["steps"])): 100 * float(r["mean"]) for r in rows if _is_number(r.get("steps"))}
    random = next((100 * float(r["mean"]) for r in rows if r["method"] == "random-real"), None)
    table = []
    for name, reg in regimes.items():
        table.append({"regime": _regime_label(reg["synth"]), **{
            f"{b:,} steps (%)": f"{acc[(name, b)]:.1f}" if (name, b) in acc else "not run" for b in budgets}})
    table.append({"regime": "random real images", **{f"{b:,} steps (%)": f"{random:.1f}" if random is not None
                                                     else "not run" for b in budgets}})
    glue: dict[str, str | float] = {
        f"{key}_val_per_class": int(rec.config.get("validation_per_class") or 0),
        f"{key}_n_seeds": len({s for r in rows for s in r.get("seeds") or []}),
        f"{key}_protocol": display_name(protocol), f"{key}_random": f"{random:.1f}" if random is not None else "n/a"}
    noise = [(acc[(n, max(b for (m, b) in acc if m == n))], max(b for (m, b) in acc if m == n), n)
             for n, reg in regimes.items() if reg["synth"].get("init") == "noise" and any(m == n for m, _ in acc)]
    if noise:
        best, n_steps, name = max(noise)
        glue.update({f"{key}_noise_best": f"{best:.1f}", f"{key}_noise_steps": f"{n_steps:,}",
                     f"{key}_noise_label": _regime_label(regimes[name]["synth"])})
    mine = sorted(b for (m, b) in acc if m == chosen)
    if mine:
        glue.update({f"{key}_chosen_first": f"{acc[(chosen, mine[0])]:.1f}", f"{key}_chosen_first_steps": mine[0],
                     f"{key}_chosen_last": f"{acc[(chosen, mine[-1])]:.1f}", f"{key}_chosen_last_steps": mine[-1],
                     f"{key}_chosen_label": _regime_label(regimes[chosen]["synth"]),
                     f"{key}_chosen_lr": f"{regimes[chosen]['synth']['lr']:g}"})
    at = steps if steps is not None else (mine[-1] if mine else None)
    glue[f"{key}_chosen_at"] = f"{acc[(chosen, at)]:.1f}" if (chosen, at) in acc else "not recorded"
    glue[f"{key}_other_rates"] = _other_rates(regimes, rows, chosen, at)
    d = next((d for d in rec.data.get("differences") or [] if d.get("regime") == chosen
              and d.get("steps") == at and str(d.get("protocol")).split(" [")[0] == protocol), None)
    n = int(d.get("n_seeds") or 0) if d is not None else 0
    glue[f"{key}_chosen_vs_random"] = "not recorded" if d is None else (
        f"{points(100 * d['diff_mean'])} points, 95 % interval {bound(100 * d['ci95'][0])} to "
        f"{bound(100 * d['ci95'][1])}, {n} paired draws" if n >= CLAIM_SEEDS else
        f"{points(100 * d['diff_mean'])} points over {n} paired draw{'s' if n != 1 else ''} (too few for an "
        "interval: a measurement, not a verdict)")
    from ddlib.plots.tables import whole_table

    return whole_table(pd.DataFrame(table)), glue


def ci_projector_findings(record: Record | None = None, records: Iterable[Record] | None = None, *,
                          split: str = "test", key: str = "ciproj") -> tuple[pd.DataFrame, dict[str, str | float]]:
    """CI minus the probe for every projector fit and grid cell of a ``ci_projector.py`` record (the newest when
    ``record`` is None), paired over its random real draws, on ``split`` ("test" or "val").

    Table: one row per fit (:data:`FIT_NAMES`) and one for the probe's accuracy, one column per cell
    ("IPC 5 × 10 views", whose C·IPC·views pairs fit the projector); a fit's cell reads "−4.7 [−6.0, −3.4]"
    (points, 95 % interval), the probe's "38.8 %". Glue: ``<key>_dataset``, ``<key>_n_seeds``,
    ``<key>_golden`` (the golden head's accuracy, %), ``<key>_pairs_min`` / ``_max``; at the smallest and
    largest cell the probe's accuracy ``<key>_probe_first`` / ``_last`` and the best fit's CI − probe
    ``<key>_best_first`` / ``_last`` (points, with ``<key>_best_fit_first`` / ``_last``), and every fit's
    ``<key>_<fit>_first`` / ``_last`` (``<fit>`` slugged: ``adam``, ``ridge``); the ridge path's smallest
    penalty, nearly the plain least-squares map, ``<key>_unpenalised_alpha`` and its accuracy at every cell
    ``<key>_unpenalised`` ("51.3, 59.7, 45.6"); ``<key>_n_pays``
    (cells and fits where CI is ahead) and ``<key>_pays``, one sentence per fit: at which IPCs CI is ahead of
    the probe, behind it or level with it ("against the probe, fit by ridge, λ on held-out views, CI is ahead
    at IPC 1, 5 and 10; fit by Adam (the reference's fit), CI is behind at IPC 10, level at IPC 1 and 5")."""
    rec = record if record is not None else _newest(
        records, lambda r: isinstance(r.config.get("fits"), Mapping) and "differences" in r.data)
    if rec is None:  # every name the prose cites, so a page reads before the study is recorded
        names = ["dataset", "n_seeds", "golden", "pairs_min", "pairs_max", "n_pays", "adam_first", "adam_last",
                 "ridge_first", "ridge_last", "unpenalised", "unpenalised_alpha"] + [
            f"{what}_{end}" for what in ("probe", "best", "best_fit", "cell") for end in ("first", "last")]
        return pd.DataFrame(columns=["fit"]), {f"{key}_pays": "not recorded yet",
                                               **{f"{key}_{n}": "not recorded yet" for n in names}}
    diffs = [d for d in rec.data["differences"] if d.get("split") == split]
    cells = sorted({(int(d["ipc"]), int(d["views"]), int(d["pairs"])) for d in diffs}, key=lambda c: (c[2], c[0]))
    head = {c: f"IPC {c[0]} × {c[1]} views" for c in cells}
    probe = {(int(r["ipc"]), int(r["views"])): 100 * float(r["mean" if split == "test" else "val_mean"])
             for r in rec.rows if str(r.get("protocol", "")).startswith("probe")}
    fits = [f for f in rec.config["fits"] if any(d["fit"] == f"ci {f}" for d in diffs)]
    by = {(d["fit"][3:], int(d["ipc"]), int(d["views"])): d for d in diffs}
    table, pays = [], []
    for fit in fits:
        row = {"fit": FIT_NAMES.get(fit, fit)}
        for c in cells:
            d = by.get((fit, c[0], c[1]))
            if d is None:
                row[head[c]] = "not run"
                continue
            lo, hi = (100 * float(x) for x in d["ci95"])
            row[head[c]] = f"{points(100 * float(d['diff_mean']))} [{bound(lo)}, {bound(hi)}]"
            if lo > 0:
                pays.append((c, fit))
        table.append(row)
    table.append({"fit": "probe accuracy (%)", **{head[c]: f"{probe[c[:2]]:.1f}" if c[:2] in probe else "not run"
                                                   for c in cells}})
    glue: dict[str, str | float] = {
        f"{key}_dataset": display_name(dataset_label(rec.config.get("dataset"))),
        f"{key}_n_seeds": len(rec.config.get("seeds") or []), f"{key}_n_pays": len(pays),
        f"{key}_golden": f"{100 * float(rec.data['golden_acc'][split]):.1f}" if "golden_acc" in rec.data else "n/a"}
    if cells:
        glue.update({f"{key}_pairs_min": f"{cells[0][2]:,}", f"{key}_pairs_max": f"{cells[-1][2]:,}"})
        for end, c in (("first", cells[0]), ("last", cells[-1])):
            best = max((by[(f, c[0], c[1])] for f in fits if (f, c[0], c[1]) in by), key=lambda d: d["diff_mean"])
            glue.update({f"{key}_probe_{end}": f"{probe[c[:2]]:.1f}" if c[:2] in probe else "not run",
                         f"{key}_best_{end}": points(100 * float(best["diff_mean"])),
                         f"{key}_best_fit_{end}": FIT_NAMES.get(best["fit"][3:], best["fit"][3:]),
                         f"{key}_cell_{end}": f"IPC {c[0]} with {c[1]} views ({c[2]:,} pairs)"})
    for fit in fits:  # each fit's CI − probe at the smallest and the largest cell
        for end, c in (("first", cells[0]), ("last", cells[-1])) if cells else ():
            d = by.get((fit, c[0], c[1]))
            glue[f"{key}_{slug(fit)}_{end}"] = points(100 * float(d["diff_mean"])) if d else "not run"

    path = [r for r in rec.rows if "α=" in str(r.get("protocol"))]  # the ridge path, fit on every view
    alphas = sorted({float(str(r["protocol"]).split("α=")[1].split()[0]) for r in path})
    if alphas:  # the smallest penalty: nearly the plain least-squares map
        small = {(int(r["ipc"]), int(r["views"])): 100 * float(r["mean" if split == "test" else "val_mean"])
                 for r in path if float(str(r["protocol"]).split("α=")[1].split()[0]) == alphas[0]}
        glue[f"{key}_unpenalised_alpha"] = f"{alphas[0]:g}"
        glue[f"{key}_unpenalised"] = ", ".join(f"{small[c[:2]]:.1f}" for c in cells if c[:2] in small)

    def at(cs: list[tuple]) -> str:
        ks = [str(c[0]) for c in cs]
        return "IPC " + (ks[0] if len(ks) == 1 else ", ".join(ks[:-1]) + " and " + ks[-1])

    parts = []
    for fit in fits:
        ds = {c: by[(fit, c[0], c[1])] for c in cells if (fit, c[0], c[1]) in by}
        ahead = [c for c, d in ds.items() if d["ci95"][0] > 0]
        behind = [c for c, d in ds.items() if d["ci95"][1] < 0]
        level = [c for c in ds if c not in ahead + behind]
        said = [f"ahead at {at(ahead)}" if ahead else "", f"behind at {at(behind)}" if behind else "",
                f"level at {at(level)}" if level and (ahead or behind) else ""]
        said = [w for w in said if w] or ["never told apart from it"]
        parts.append(f"fit by {FIT_NAMES.get(fit, fit)}, CI is " + ", ".join(said))
    glue[f"{key}_pays"] = ("against the probe, " + "; ".join(parts) if parts else "no fit recorded")
    from ddlib.plots.tables import whole_table

    return whole_table(pd.DataFrame(table, columns=["fit", *head.values()])), glue


def ci_versus_probe(record: Record | None = None, records: Iterable[Record] | None = None, *,
                    sets: Sequence[str] = ("sfm", "random-real"), backbone: str = "efficientnet-lite2",
                    key: str = "ci_rec") -> tuple[pd.DataFrame, dict[str, str | float]]:
    """CI minus the probe on ``backbone`` for each of ``sets`` at every IPC of a synthesis record (default:
    :func:`~ddlib.results.latest_synthesis`), paired over the seeds both hold (distillation seed *s* or random
    real draw *s*), as :func:`~ddlib.results.verdict_table`'s ``(table, glue)``. Chapter 4 cites it for the
    recorded CIFAR-10 evidence; ``<key>_<set>_ci_ipc<k>`` and ``<key>_<set>_probe_ipc<k>`` hold the mean
    accuracies (%)."""
    from ddlib.metrics import paired_stats

    rec = record if record is not None else latest_synthesis(load() if records is None else records)
    rows, glue_acc, expected = [], {}, []
    last = max((r["steps"] for r in (rec.rows if rec else []) if _is_number(r.get("steps"))), default=None)
    by = {(r["set"], r.get("ipc"), r.get("protocol")): dict(zip(r["seeds"], r["per_seed"]))
          for r in (rec.rows if rec else []) if "set" in r and r.get("steps") in (last, None)
          and isinstance(r.get("seeds"), list)}
    ipcs = sorted({k[1] for k in by if _is_number(k[1])})
    for s in sets:
        for k in ipcs:
            ci, pr = by.get((s, k, f"ci on {backbone}"), {}), by.get((s, k, f"probe on {backbone}"), {})
            expected.append((f"{s} / ci", f"{s} / probe", k, backbone))
            common = sorted(set(ci) & set(pr))
            if not common:
                continue
            rows.append({"method": f"{s} / ci", "baseline": f"{s} / probe", "ipc": k, "protocol": backbone,
                         "rule": "final", **paired_stats([ci[c] for c in common], [pr[c] for c in common], "ci",
                                                         "probe")})
            glue_acc.update({f"{key}_{slug(s)}_ci_ipc{k}": round(100 * sum(ci[c] for c in common) / len(common), 1),
                             f"{key}_{slug(s)}_probe_ipc{k}": round(100 * sum(pr[c] for c in common) / len(common),
                                                                    1)})
    table, glue = verdict_table(rows, expected=expected, key=key, title="CI against a new probe",
                                axis="evaluated on",
                                dataset=dataset_label(rec.config.get("dataset")) if rec is not None else None)
    return table, {**glue, **glue_acc}


def across_backbones(results: Mapping[tuple, Mapping[str, Any]], *, method: str = "SFM",
                     baseline: str = "random real", mode: str = "probe") -> str:
    """One sentence: does ``method``'s lead (or lag) over ``baseline`` under ``mode`` hold on every evaluation
    backbone of a live evaluation (``{(set, backbone, mode): result}`` with per-run ``accs``, as chapter 4
    builds it)? "On EfficientNet-Lite2 and the in-house encoder SFM − random real images reads −12.4 and
    −3.0 points (probe): the same sign on every backbone." """
    def mean(k: tuple) -> float | None:
        accs = [float(a) for a in (results.get(k) or {}).get("accs") or [] if _is_number(a)]
        return 100 * sum(accs) / len(accs) if accs else None

    backbones = list(dict.fromkeys(b for _, b, _ in results))
    diffs = {b: (mean((method, b, mode)), mean((baseline, b, mode))) for b in backbones}
    diffs = {b: a - r for b, (a, r) in diffs.items() if a is not None and r is not None}
    if not diffs:
        return f"{display_name(method)} against {display_name(baseline)}: not run on any backbone"
    names = [n if n[:1].isupper() else f"the {n}" for n in map(display_name, diffs)]  # "the in-house encoder"
    where = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    signs = {d > 0 for d in diffs.values()}
    what = ("one backbone only: no claim across backbones" if len(diffs) == 1 else
            "the same sign on every backbone" if len(signs) == 1 else
            "the sign changes with the backbone (means of one draw of images: no verdict)")
    return (f"on {where}, {display_name(method)} {MINUS} {display_name(baseline)} reads "
            + " and ".join(points(d) for d in diffs.values()) + f" points ({display_name(mode)}): {what}")

