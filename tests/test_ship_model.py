"""scripts/ship_model.py: an exported checkpoint shipped with its run's log and the data paths it
was trained from."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from script_loading import load_script

from pipeline.checkpoint import (
    build_checkpoint,
    read_checkpoint,
    save_checkpoint,
    strip_training_state,
)
from pipeline.config import Config, DataConfig, ModelConfig, RunConfig
from pipeline.models import build_model

ship = load_script("ship_model")


def test_replace_paths_only_rewrites_strings_that_start_with_the_prefix() -> None:
    section = {
        "root": [".gpu/data/a.png", "other/.gpu/data/b.png"],
        "groups": {"csv": ".gpu/data/m.csv"},
        "n": 3,
    }
    out = ship.replace_paths(section, [(".gpu/data", "../shared/data")])
    assert out == {
        "root": ["../shared/data/a.png", "other/.gpu/data/b.png"],
        "groups": {"csv": "../shared/data/m.csv"},
        "n": 3,
    }


def test_an_exported_checkpoint_is_shipped_with_its_run_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = Config(
        run=RunConfig(output_dir=tmp_path / "device_runs"),
        data=DataConfig(kind="folder", root=Path(".gpu/data/scans")),
        model=ModelConfig(name="unet", channels=[4, 8]),
    )
    torch.manual_seed(0)
    exported = tmp_path / "u.pt"
    save_checkpoint(
        strip_training_state(build_checkpoint(build_model(cfg.model), cfg, epoch=7)), exported
    )
    run_log = tmp_path / "run"
    run_log.mkdir()
    (run_log / "train_log.csv").write_text(
        "epoch,val_psnr,seconds\n1,,2.5\n2,30.5,3.0\n3,31.25,2.5\n"
    )
    (run_log / "environment.json").write_text(
        json.dumps({"cuda": "NVIDIA H200", "torch": "2.11", "cpu_count": 16, "python": "3.12"})
    )
    dest = tmp_path / "weights" / "shipped.pt"
    dest.parent.mkdir()
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "ship_model.py",
            str(exported),
            "--run-log",
            str(run_log),
            "--replace-path",
            ".gpu/data=../shared/data",
            "--dest",
            str(dest),
        ],
    )
    ship.main()

    shipped = read_checkpoint(dest)
    assert shipped["config"]["data"]["root"] == "../shared/data/scans"
    assert shipped["config"]["run"]["output_dir"] == "runs", (
        "the training machine's absolute folder is not kept"
    )
    record = json.loads(dest.with_suffix(".json").read_text())
    assert record == shipped["provenance"]
    assert (
        record["epoch"] == 7
        and record["best_val_psnr"] == 31.25
        and record["training_seconds"] == 8.0
    )
    assert record["trained_on"]["cuda"] == "NVIDIA H200"
    assert record["paths_replaced"] == [
        ".gpu/data -> ../shared/data",
        "run.output_dir (absolute on the training machine) -> runs",
    ]
    original = read_checkpoint(exported)["model_state"]
    assert shipped["model_state"].keys() == original.keys()
    assert all(torch.equal(shipped["model_state"][k], original[k]) for k in original), (
        "the weights are copied unchanged"
    )
