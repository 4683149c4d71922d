"""Crash-safe records: atomic replacement, appends that survive a cut line, strict JSON."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.records import append_csv_row, read_csv, replacing, write_csv, write_json


def test_write_csv_keeps_given_columns_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = write_csv(
        [{"a": 1, "b": None, "c": np.float32(0.5)}], tmp_path / "sub" / "x.csv", ["a", "b", "c"]
    )
    assert path.read_text() == "a,b,c\n1,,0.5\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.csv"]


def test_failed_replacement_keeps_the_old_file(tmp_path: Path) -> None:
    path = write_csv([{"a": 1}], tmp_path / "x.csv")
    with pytest.raises(RuntimeError), replacing(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert read_csv(path) == [{"a": "1"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv"]


def test_append_after_a_cut_line_and_widening(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    append_csv_row({"a": 1, "b": 2}, path, durable=True)
    with path.open("a") as fh:
        fh.write("3,")  # a row cut by a kill
    assert read_csv(path) == [{"a": "1", "b": "2"}]
    append_csv_row({"a": 4, "b": 5, "c": 6}, path)  # a new key rewrites the header once
    assert read_csv(path) == [{"a": "1", "b": "2", "c": ""}, {"a": "4", "b": "5", "c": "6"}]
    append_csv_row({"a": 7, "z": 8}, path, ["a", "b", "c"])  # fixed columns: extra keys left out
    assert read_csv(path)[-1] == {"a": "7", "b": "", "c": ""}


def test_write_json_is_strict(tmp_path: Path) -> None:
    path = write_json(
        {"x": math.nan, "y": np.int64(3), "p": Path("a/b"), "v": np.arange(2)}, tmp_path / "r.json"
    )
    assert json.loads(path.read_text()) == {"x": None, "y": 3, "p": "a/b", "v": [0, 1]}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert os.access(path, os.R_OK)
