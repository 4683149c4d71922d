"""Deterministic splits by group: all images of one patient (or report) land in one split."""

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


def split_groups(keys: list[str], val_fraction: float, test_fraction: float, seed: int) -> list[str]:
    """Assign each key's group to 'train', 'val' or 'test', deterministically from `seed`.

    Whole groups move together, so no patient's images cross splits. At least one group
    goes to train; val and test get theirs by fraction (rounded, at least one when the
    fraction is non-zero and groups remain).
    """
    groups = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(groups))
    n = len(groups)
    n_test = min(n - 1, max(1 if test_fraction > 0 else 0, round(n * test_fraction))) if n > 1 else 0
    n_val = min(n - 1 - n_test, max(1 if val_fraction > 0 else 0, round(n * val_fraction))) if n > 1 else 0
    assignment: dict[str, str] = {}
    for rank, idx in enumerate(order):
        assignment[groups[idx]] = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
    return [assignment[k] for k in keys]
