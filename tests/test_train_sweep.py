"""scripts/train_sweep.py: epochs planned from a calibration run, then every variant trained side by
side."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml
from script_loading import load_script

ROOT = Path(__file__).resolve().parents[1]


def test_seconds_per_epoch_leaves_out_the_warm_up_epoch(tmp_path) -> None:
    sweep = load_script("train_sweep")
    log = tmp_path / "train_log.csv"
    log.write_text("epoch,seconds,val_psnr\n1,9.0,nan\n2,1.0,nan\n3,2.0,30\n")
    assert sweep.seconds_per_epoch(log) == 1.5
    log.write_text("epoch,seconds,val_psnr\n1,4.0,nan\n")
    assert sweep.seconds_per_epoch(log) == 4.0
    assert sweep.epochs_for_budget(2.0, 100.0) == int(100 * sweep.BUDGET_SHARE / 2.0)
    assert sweep.epochs_for_budget(500.0, 10.0) == 1


def test_sweep_trains_each_variant_for_its_planned_epochs(tmp_path) -> None:
    sweep = load_script("train_sweep")
    common = [
        "data.max_train=128",
        "data.max_val=16",
        "data.max_test=16",
        "train.batch_size=64",
        "train.progress=false",
        "run.stages=[train]",
        "model.name=conv",
        "train.optimizer=adam",
        "train.lr=0.003",
        "run.threads=1",
    ]
    features = {"small": 4, "wide": 8}
    variants = [sweep.Variant(name, [f"model.features={n}"]) for name, n in features.items()]
    done = sweep.sweep(
        str(ROOT / "configs" / "mnist_conv.yaml"),
        common,
        variants,
        budget=3.0,
        calibrate=1.0,
        out=tmp_path / "out",
        export=tmp_path / "exported",
        grace=60.0,
    )
    listed = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert [v["name"] for v in listed] == ["small", "wide"]
    for v in done:
        assert v.returncode == 0 and v.epochs >= 1 and v.seconds_per_epoch > 0
        resolved = yaml.safe_load((Path(v.run_dir) / "config.yaml").read_text())
        assert resolved["train"]["epochs"] == v.epochs and resolved["run"]["name"] == v.name
        exported = torch.load(tmp_path / "exported" / f"{v.name}.pt", weights_only=True)
        assert (
            "optimizer_state" not in exported
            and exported["config"]["model"]["features"] == features[v.name]
        )
