"""Tables (pandas DataFrames) the chapters show: class balance of a dataset's splits, the cost of distillation runs."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch


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


def cost_table(results: dict[str, dict]) -> pd.DataFrame:
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
