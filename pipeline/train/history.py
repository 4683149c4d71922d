"""The per-epoch training log (``train_log.csv``): writing, reading, its best epoch."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pipeline.records import read_csv, write_csv

LOG_FIELDS = ("epoch", "train_loss", "val_loss", "val_psnr", "lr", "seconds", "samples_per_second")


def write_log(rows: list[dict[str, Any]], path: Path) -> None:
    """Write the per-epoch training log as CSV (replaced whole each epoch: it is small)."""
    write_csv(rows, path, LOG_FIELDS)


def read_log(path: Path) -> list[dict[str, float]]:
    """A train_log.csv's rows with every value as a float (nan where a field is empty)."""
    return [
        {k: float(v) if v not in ("", None) else math.nan for k, v in row.items()}
        for row in read_csv(path)
    ]


def best_val_psnr(rows: list[dict[str, float]]) -> float:
    """The best validation PSNR of a training log's rows (nan when no epoch was validated)."""
    values = [row["val_psnr"] for row in rows if not math.isnan(row["val_psnr"])]
    return max(values) if values else math.nan
