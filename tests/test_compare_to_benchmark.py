"""scripts/compare_to_benchmark.py sees the same noisy crops as the benchmark's last full run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from script_loading import load_script

from pipeline.provenance import file_sha256

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results.json"


def test_shipped_model_scores_what_the_benchmark_recorded(cxr_dir: Path) -> None:
    recorded = json.loads(RESULTS.read_text())["quality"]["cxr"]
    if recorded["models"].get("unet", {}).get("origin") != "shipped model":
        pytest.skip("the last benchmark run did not score the shipped model as 'unet'")
    shipped = ROOT / "pipeline" / "weights" / "cxr_default.pt"
    scored = recorded["models"]["unet"]
    if scored.get("sha256") != file_sha256(shipped):
        pytest.skip(
            "the shipped weights are not the ones the last benchmark run scored (run "
            f"{scored.get('run')}, "
            f"epoch {scored.get('checkpoint_epoch')}, sha256 "
            f"{scored.get('sha256', 'not recorded')}): rerun scripts/benchmark.py"
        )
    rows = load_script("compare_to_benchmark").compare([str(shipped)], RESULTS, threads=2)
    assert len(rows) == len(recorded["conditions"]) == 5
    for row, condition in zip(rows, recorded["conditions"].values()):
        unet = condition["summary"]["methods"]["unet"]
        assert row["condition"] == condition["label"]
        assert row["psnr"] == pytest.approx(unet["psnr"]["mean"], abs=0.01)
        assert row["delta_psnr"] == pytest.approx(
            row["psnr"] - condition["summary"]["methods"]["bm3d"]["psnr"]["mean"]
        )
