"""Deterministic splits by group: all images of one patient (or report) land in one split.

:func:`split_groups` splits one pool of patients by fraction; :func:`stratified_split` splits
each source (site) separately, so every source is represented in every split.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np


def group_of(path: Path, pattern: str | None) -> str:
    """Patient (group) key of a file: the regex's first group on the file name, else the path."""
    if pattern:
        match = re.search(pattern, path.name)
        if match:
            return match.group(1)
    return str(path)


def split_groups(
    keys: list[str], val_fraction: float, test_fraction: float, seed: int
) -> list[str]:
    """Assign each key's group to 'train', 'val' or 'test', deterministically from `seed`.

    Whole groups move together, so no patient's images cross splits. At least one group
    goes to train; val and test get theirs by fraction (rounded, at least one when the
    fraction is non-zero and groups remain).
    """
    groups = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(groups))
    n = len(groups)
    n_test = (
        min(n - 1, max(1 if test_fraction > 0 else 0, round(n * test_fraction))) if n > 1 else 0
    )
    n_val = (
        min(n - 1 - n_test, max(1 if val_fraction > 0 else 0, round(n * val_fraction)))
        if n > 1
        else 0
    )
    assignment: dict[str, str] = {}
    for rank, idx in enumerate(order):
        assignment[groups[idx]] = (
            "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
        )
    return [assignment[k] for k in keys]


def stratified_split(
    sources: dict[str, str],
    test_fraction: float,
    val_fraction: float,
    seed: int,
    min_test: int = 0,
    min_val: int = 0,
    keep_test: set[str] | None = None,
) -> dict[str, str]:
    """Assign each patient to 'train', 'val' or 'test', separately within each source.

    Parameters
    ----------
    sources: patient key -> the source (site, collection) it comes from.
    test_fraction, val_fraction: share of each source's patients in test and validation.
    seed: the permutation of each source's patients is drawn from it (same seed, same split).
    min_test, min_val: at least this many patients of each source in test / validation,
        as long as one patient of the source is left for training.
    keep_test: patients that must be in test (e.g. the test patients of an earlier split);
        they count towards their source's test share.

    Returns
    -------
    patient key -> split. Whole patients move together, so no patient crosses splits.
    """
    keep = keep_test or set()
    rng = np.random.default_rng(seed)
    assignment: dict[str, str] = {}
    for source in sorted(set(sources.values())):
        patients = sorted(p for p, s in sources.items() if s == source)
        n = len(patients)
        kept = [p for p in patients if p in keep]
        others = [patients[i] for i in rng.permutation(n) if patients[i] not in keep]
        n_test = max(len(kept), min_test, round(n * test_fraction))
        n_test = min(n_test, max(n - 1, len(kept)))
        n_val = min(max(min_val, round(n * val_fraction)), n - n_test - 1)
        ranked = kept + others
        for rank, patient in enumerate(ranked):
            split = "test" if rank < n_test else "val" if rank < n_test + max(n_val, 0) else "train"
            assignment[patient] = split
    return assignment
