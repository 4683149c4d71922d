"""scripts/ship_model.py: an exported checkpoint shipped with its run's log and the data paths it
was trained from."""

from __future__ import annotations

import hashlib
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


def test_a_fine_tuned_split_run_records_its_split_and_the_model_it_started_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = tmp_path / "weights" / "start.pt"
    start.parent.mkdir()
    start.write_bytes(b"the model it started from")
    start.with_suffix(".json").write_text(
        json.dumps(
            {"training_steps": ["denoise run configs/first.yaml"], "commit_when_shipped": "abc"}
        )
    )
    cfg = Config(
        run=RunConfig(output_dir=Path("runs")),
        data=DataConfig(kind="folder", root=Path("data"), split_csv=Path("configs/splits/s.csv")),
        model=ModelConfig(name="unet", channels=[4, 8]),
    )
    cfg.train.init_from = start
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    save_checkpoint(
        build_checkpoint(build_model(cfg.model), cfg, epoch=3), run / "checkpoints" / "best.pt"
    )
    (run / "split.csv").write_text(
        "file,patient,split,source\n"
        "a1.png,a:1,train,a\na2.png,a:1,train,a\nb1.png,b:1,train,b\n"
        "b2.png,b:2,val,b\na3.png,a:3,test,a\nb3.png,b:3,test,b\n"
    )
    (run / "environment.json").write_text(
        json.dumps({"commit": "0123abcd", "cuda": None, "torch": "2.13.0+cpu", "cpu_count": 2})
    )
    dest = tmp_path / "shipped.pt"
    monkeypatch.setattr(
        sys, "argv", ["ship_model.py", str(run), "--config", "configs/s.yaml", "--dest", str(dest)]
    )
    ship.main()

    record = json.loads(dest.with_suffix(".json").read_text())
    assert record["training_data"].startswith(
        "the patient split configs/splits/s.csv (6 radiographs of 5 patients from 2 sources): "
        "3 training radiographs of 2 patients (a 2, b 1), 1 validation radiographs of 1 patients, "
        "2 test radiographs of 2 patients held out"
    )
    assert (
        record["initialised_from"]["sha256"]
        == hashlib.sha256(b"the model it started from").hexdigest()
    )
    assert record["training_steps"] == [
        "denoise run configs/first.yaml",
        "denoise run configs/s.yaml",
    ]
    assert record["initialised_from"]["commit_when_shipped"] == "abc"
    assert record["training_commit"] == "0123abcd"  # from the run folder's environment.json
    assert record["trained_on"]["cpu_count"] == 2
