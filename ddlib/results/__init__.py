"""Result records and the tables the book shows of them: ``from ddlib import results``.

One package, one module per job; every public name is re-exported here, so ``results.write(...)``,
``results.load()`` and every reader keep their one name:

- :mod:`~ddlib.results.records`: the one writer (:func:`write`), the schema, the reader (:func:`load`,
  :class:`Record`, :class:`ResultsError`), :func:`accuracy_table`, :func:`records_table`;
- :mod:`~ddlib.results.evidence`: BPS's paired evidence (:func:`latest_evidence`, :func:`paired_table`,
  :func:`versus_table`, :func:`epoch_curve`, :func:`hlr_table`, :func:`teacher_text`...);
- :mod:`~ddlib.results.synthesis`: SFM, LGM and real sets (:func:`latest_synthesis`, :func:`synthesis_versus`,
  :func:`synthesis_cost_curve`, :func:`synthesis_by_steps`);
- :mod:`~ddlib.results.costs`: every time and memory number (:func:`cost_table`).

Inside the package imports point down (``records`` <- ``evidence``, ``synthesis``, ``costs``); nothing in a
lower layer of ddlib imports it (CONTRIBUTING.md, "The layers").
"""
from __future__ import annotations

from ddlib.results.costs import COST_COLUMNS, cost_table
from ddlib.results.evidence import (PAIRED_COLUMNS, bps_split_ablation, epoch_curve, evidence_summary, hlr_table,
                                    latest_evidence, paired_table, teacher_text, verdict_of, versus_table)
from ddlib.results.records import (ACCURACY_COLUMNS, CLAIM_SEEDS, KEYS, PROVENANCE_KEYS, RESULT_DIRS, ROOT, RULES,
                                   VERSUS_COLUMNS, Record, ResultsError, accuracy_rows, accuracy_table, dataset_label,
                                   load, load_file, provenance, records_table, result_files, strict, write)
from ddlib.results.synthesis import (COST_CURVE_COLUMNS, latest_synthesis, synthesis_by_steps, synthesis_cost_curve,
                                     synthesis_versus)

__all__ = ["ACCURACY_COLUMNS", "CLAIM_SEEDS", "COST_COLUMNS", "COST_CURVE_COLUMNS", "KEYS", "PAIRED_COLUMNS",
           "PROVENANCE_KEYS", "RESULT_DIRS", "ROOT", "RULES", "VERSUS_COLUMNS", "Record", "ResultsError",
           "accuracy_rows", "accuracy_table", "bps_split_ablation", "cost_table", "dataset_label", "epoch_curve",
           "evidence_summary", "hlr_table", "latest_evidence", "latest_synthesis", "load", "load_file",
           "paired_table", "provenance", "records_table", "result_files", "strict", "synthesis_by_steps",
           "synthesis_cost_curve", "synthesis_versus", "teacher_text", "verdict_of", "versus_table", "write"]
