"""A split fixed in a CSV file: which file is train, validation or test, and whose it is.

The CSV (``data.split_csv``) has the columns ``file`` (relative to ``data.root``), ``patient``,
``split`` (``train``, ``val`` or ``test``) and optionally ``source`` (the site or collection).
It is written once by a script (e.g. ``scripts/make_multisite_split.py``) and committed, so that
every run, benchmark and learning-curve point uses the same patients in the same parts.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pipeline.errors import PipelineError

SPLITS = ("train", "val", "test")


def read_split_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a split CSV, checked: known columns and split names, one patient per split.

    Raises
    ------
    PipelineError: the file is missing, lacks a column, names an unknown split, or puts one
        patient's files into two splits.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"data.split_csv not found: {path} (give the CSV that fixes the split)")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("file", "patient", "split") if c not in (reader.fieldnames or [])]
        if missing:
            raise PipelineError(
                f"{path} has no column {', '.join(missing)} (needs file, patient, split)"
            )
        rows = [{k: (v or "").strip() for k, v in row.items()} for row in reader]
    where: dict[str, str] = {}
    for n, row in enumerate(rows, start=2):
        if row["split"] not in SPLITS:
            raise PipelineError(
                f"{path}, line {n}: split {row['split']!r} is not one of {', '.join(SPLITS)}"
            )
        if where.setdefault(row["patient"], row["split"]) != row["split"]:
            raise PipelineError(
                f"{path}, line {n}: patient {row['patient']} is in both {where[row['patient']]} "
                f"and {row['split']}"
            )
    return rows


def subset_rows(
    rows: list[dict[str, str]], max_train_patients: int | None, seed: int
) -> list[dict[str, str]]:
    """The rows with the training part cut to `max_train_patients` patients (for learning curves).

    Each source's training patients are put in an order drawn from `seed`; the first k
    patients overall are those of lowest rank fraction (rank / patients of their source), so
    every source keeps its share of the training part, and a smaller training part is a subset
    of every larger one drawn with the same seed. Validation and test rows are kept as they are.
    """
    if max_train_patients is None:
        return rows
    import numpy as np

    rng = np.random.default_rng(seed)
    source_of = {r["patient"]: r.get("source", "") for r in rows if r["split"] == "train"}
    ranked: list[tuple[float, str]] = []
    for source in sorted(set(source_of.values())):
        patients = sorted(p for p, s in source_of.items() if s == source)
        for rank, i in enumerate(rng.permutation(len(patients))):
            ranked.append(((rank + 0.5) / len(patients), patients[i]))
    kept = {patient for _, patient in sorted(ranked)[:max_train_patients]}
    return [r for r in rows if r["split"] != "train" or r["patient"] in kept]
