"""Tables (pandas DataFrames) the chapters show: class balance of a dataset's splits, the cost of distillation runs,
and :class:`WholeTable`, a frame that the notebook and the book always show whole."""
from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

import pandas as pd
import torch
from pandas.api.types import is_integer_dtype

__all__ = ["WholeTable", "whole_table", "class_balance", "run_costs"]


class WholeTable(pd.DataFrame):
    """A DataFrame shown whole: every row and column and every cell uncut, whatever pandas' display options
    (a plain frame of more than 60 rows shows its first and last five). Row numbers are left out; an index
    that names something (a name, several levels, labels that are not integers) is shown. Filtering,
    sorting or copying one gives a :class:`WholeTable` again."""

    @property
    def _constructor(self) -> type[WholeTable]:
        return WholeTable

    def _shows_index(self) -> bool:
        idx = self.index
        return idx.nlevels > 1 or any(n is not None for n in idx.names) or not is_integer_dtype(idx.dtype)

    @staticmethod
    def _whole() -> AbstractContextManager:
        return pd.option_context("display.max_rows", None, "display.min_rows", None, "display.max_columns", None,
                                 "display.max_colwidth", None, "display.width", None)

    def _repr_html_(self) -> str:
        with self._whole():
            return self.to_html(index=self._shows_index(), max_rows=None, max_cols=None, notebook=True)

    def __repr__(self) -> str:
        with self._whole():
            return self.to_string(index=self._shows_index(), max_rows=None, max_cols=None)


def whole_table(frame: pd.DataFrame) -> WholeTable:
    """``frame`` as a :class:`WholeTable` (the same data; shown whole, without row numbers)."""
    return frame if isinstance(frame, WholeTable) else WholeTable(frame)


def class_balance(labels_by_split: dict[str, torch.Tensor], classes: Sequence[str]) -> pd.DataFrame:
    """A table with one row per class: the count and share (%) of each split, and a total row."""
    table = pd.DataFrame(index=pd.Index(list(classes), name="class"))
    for split, y in labels_by_split.items():
        counts = torch.bincount(y.cpu(), minlength=len(classes)).numpy()
        table[split] = counts
        table[f"{split} %"] = (100 * counts / max(1, counts.sum())).round(1)
    table.loc["total"] = table.sum(numeric_only=True).round(1)
    count_cols = list(labels_by_split)
    table[count_cols] = table[count_cols].astype(int)
    return table


def run_costs(results: dict[str, dict]) -> pd.DataFrame:
    """Wall time, time per step, peak memory and final flow cosine of distillation results (name -> result)."""
    rows = {}
    for name, r in results.items():
        steps = len(r["history"]["loss"])
        rows[name] = {"steps": steps, "wall time (s)": round(r["wall_time"], 2),
                      "ms per step": round(1000 * r["wall_time"] / max(steps, 1), 1),
                      "statistics pass (s)": round(r.get("stats_time", 0.0), 2),
                      "peak memory (MiB)": round(r["peak_mem"] / 2**20, 1),
                      "final loss": round(r["history"]["loss"][-1], 4),
                      "final flow cosine": round(r["history"]["flow_cos"][-1], 4)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("method")
