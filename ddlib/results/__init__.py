"""Result records and the tables the book shows of them: ``from ddlib import results``.

One package, one module per job; every public name is re-exported here, so ``results.write(...)``,
``results.load()`` and every reader keep their one name:

- :mod:`~ddlib.results.records`: the one writer (:func:`write`), the schema, the reader (:func:`load`,
  :class:`Record`, :class:`ResultsError`), :func:`accuracy_table`, :func:`records_table`;
- :mod:`~ddlib.results.evidence`: BPS's paired evidence (:func:`latest_evidence`, :func:`paired_table`,
  :func:`versus_table`, :func:`epoch_curve`, :func:`hlr_table`, :func:`teacher_text`...);
- :mod:`~ddlib.results.synthesis`: SFM, LGM and real sets (:func:`latest_synthesis`, :func:`synthesis_versus`,
  :func:`synthesis_cost_curve`, :func:`synthesis_by_steps`);
- :mod:`~ddlib.results.costs`: every time and memory number (:func:`cost_table`, :func:`cost_appendix`);
- :mod:`~ddlib.results.verdicts`: a family of paired comparisons as one table in plain words
  (:func:`verdict_table`, :func:`display_name`), the same in chapters 2, 4 and 5;
- :mod:`~ddlib.results.reconcile`: this build's one-seed run beside the five-seed record
  (:func:`live_versus_record`);
- :mod:`~ddlib.results.sfm_findings`: what chapters 3 and 4 read from their records (:func:`flow_cosine_findings`,
  :func:`regime_findings`, :func:`ci_projector_findings`, :func:`ci_versus_probe`, :func:`across_backbones`);
- :mod:`~ddlib.results.selection_verdicts` and :mod:`~ddlib.results.synthesis_verdicts`: what the chapters
  show, each a function returning ``(table, glue)`` (:func:`selection_verdicts`, :func:`synthesis_verdicts`,
  :func:`inheritance_verdicts`, :func:`selection_gains`, ...);
- :mod:`~ddlib.results.cross_arch`: the cross-architecture table (:func:`cross_arch_verdicts`,
  :func:`latest_cross_arch`).

Inside the package imports point down (``records`` <- ``evidence``, ``synthesis``, ``costs`` <- ``verdicts``
<- the two ``*_verdicts`` and ``cross_arch``); nothing in a lower layer of ddlib imports it (CONTRIBUTING.md, "The layers").
The tables the book shows are :class:`ddlib.plots.WholeTable`: never cut short on the page.
"""
from __future__ import annotations

from ddlib.results.costs import BOOK_DEFAULT_SCALE, COST_COLUMNS, chapter_time, cost_appendix, cost_table
from ddlib.results.evidence import (
                                    CROSS_ARCH_PREFIX,
                                    PAIRED_COLUMNS,
                                    bps_split_ablation,
                                    epoch_curve,
                                    evidence_summary,
                                    hlr_table,
                                    latest_evidence,
                                    paired_table,
                                    recorded_patterns,
                                    regime_differences,
                                    teacher_text,
                                    verdict_of,
                                    versus_table,
)
from ddlib.results.records import (
                                    ACCURACY_COLUMNS,
                                    CLAIM_SEEDS,
                                    KEYS,
                                    PROVENANCE_KEYS,
                                    RESULT_DIRS,
                                    VERSUS_COLUMNS,
                                    Record,
                                    ResultsError,
                                    accuracy_rows,
                                    accuracy_table,
                                    dataset_label,
                                    device_words,
                                    load,
                                    load_file,
                                    records_overview,
                                    records_table,
                                    result_files,
                                    strict,
                                    write,
)
from ddlib.results.cross_arch import cross_arch_verdicts, latest_cross_arch
from ddlib.results.selection_verdicts import (
                                    COARSER,
                                    SELECTION_FAMILIES,
                                    selection_accuracy,
                                    selection_balance,
                                    selection_costs,
                                    selection_gains,
                                    selection_hlr,
                                    selection_verdicts,
)
from ddlib.results.sfm_findings import (
                                        FIT_NAMES,
                                        FLOW_METRICS,
                                        across_backbones,
                                        ci_projector_findings,
                                        ci_versus_probe,
                                        flow_cosine_findings,
                                        regime_findings,
)
from ddlib.results.synthesis import (
                                    COST_CURVE_COLUMNS,
                                    latest_synthesis,
                                    synthesis_by_steps,
                                    synthesis_cost_curve,
                                    synthesis_versus,
)
from ddlib.results.reconcile import AGREEMENT, live_versus_record
from ddlib.results.synthesis_verdicts import (
                                    inheritance_summary,
                                    inheritance_verdicts,
                                    recorded_across_backbones,
                                    synthesis_cost_summary,
                                    synthesis_costs,
                                    synthesis_steps,
                                    synthesis_verdicts,
)
from ddlib.results.verdicts import (
                                    DISPLAY_NAMES,
                                    MINUS,
                                    VERDICT_COLUMNS,
                                    bound,
                                    comparison_name,
                                    display_name,
                                    headline,
                                    phrase,
                                    points,
                                    slug,
                                    split_columns,
                                    verdict_table,
)

__all__ = ["FIT_NAMES", "FLOW_METRICS", "across_backbones", "ci_projector_findings", "ci_versus_probe",
           "flow_cosine_findings", "recorded_across_backbones", "regime_findings", "ACCURACY_COLUMNS", "AGREEMENT", "BOOK_DEFAULT_SCALE", "CLAIM_SEEDS", "COARSER", "CROSS_ARCH_PREFIX", "COST_COLUMNS", "COST_CURVE_COLUMNS",
           "DISPLAY_NAMES", "KEYS", "MINUS", "PAIRED_COLUMNS", "PROVENANCE_KEYS", "RESULT_DIRS",
           "SELECTION_FAMILIES", "VERDICT_COLUMNS", "VERSUS_COLUMNS", "Record", "ResultsError", "accuracy_rows",
           "accuracy_table", "bps_split_ablation", "chapter_time", "comparison_name", "cost_appendix", "cost_table",
           "cross_arch_verdicts", "dataset_label", "device_words", "display_name", "epoch_curve", "evidence_summary", "headline",
           "hlr_table", "inheritance_summary", "inheritance_verdicts", "latest_cross_arch", "latest_evidence", "latest_synthesis", "live_versus_record", "load",
           "bound", "load_file", "paired_table", "phrase", "points", "recorded_patterns", "records_overview",
           "records_table", "result_files", "selection_accuracy", "selection_balance", "selection_costs",
           "selection_gains", "selection_hlr", "selection_verdicts", "slug", "split_columns", "strict",
           "synthesis_by_steps", "synthesis_cost_curve", "synthesis_cost_summary", "synthesis_costs",
           "synthesis_steps", "synthesis_verdicts", "synthesis_versus", "regime_differences", "teacher_text", "verdict_of", "verdict_table",
           "versus_table", "write"]
