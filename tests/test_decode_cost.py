"""scripts/decode_cost.py: decoding time of a split's part, per source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pipeline.records import write_csv
from tests.script_loading import load_script


def test_decode_cost_counts_files_and_megapixels_per_source(tmp_path: Path) -> None:
    rows = []
    for i, (source, side, split) in enumerate(
        [("a", 100, "train"), ("a", 200, "train"), ("b", 50, "train"), ("b", 300, "test")]
    ):
        Image.fromarray(np.full((side, side), i * 40, np.uint8)).save(tmp_path / f"{i}.png")
        rows.append({"file": f"{i}.png", "patient": f"p{i}", "split": split, "source": source})
    write_csv(rows, tmp_path / "split.csv")
    script = load_script("decode_cost")
    totals = script.measure(tmp_path / "split.csv", tmp_path, "train")
    assert {k: v[:2] for k, v in totals.items()} == {"a": [2, 0.05], "b": [1, 0.0025]}
    assert all(v[2] > 0 for v in totals.values())
    table = script.markdown(totals, "python scripts/decode_cost.py")
    assert "| all | 3 | 0 |" in table and "0.00 GiB" in table
