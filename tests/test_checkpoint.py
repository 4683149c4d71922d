"""Checkpoints: one builder, atomic saves, safe loads, format versions, stripped copies."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.checkpoint import (
    FORMAT_VERSION,
    build_checkpoint,
    load_model,
    read_checkpoint,
    save_checkpoint,
    strip_training_state,
)
from pipeline.config import Config, InferenceConfig
from pipeline.errors import PipelineError
from pipeline.models import build_model


def _tiny() -> tuple[torch.nn.Module, Config]:
    cfg = Config()
    cfg.model.name, cfg.model.features = "conv", 4
    torch.manual_seed(0)
    return build_model(cfg.model), cfg


def test_build_save_read_and_strip(tmp_path: Path) -> None:
    model, cfg = _tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    ckpt = build_checkpoint(
        model, cfg, epoch=3, optimizer=optimizer, state={"log": [1]}, provenance={"x": "y"}
    )
    path = save_checkpoint(ckpt, tmp_path / "a" / "best.pt")
    back = read_checkpoint(path)
    assert (
        back["format_version"] == FORMAT_VERSION
        and back["epoch"] == 3
        and back["provenance"] == {"x": "y"}
    )
    assert back["optimizer_state"] is not None and back["state"] == {"log": [1]}
    small = strip_training_state(back)
    assert not {"optimizer_state", "scheduler_state", "state"} & set(small)
    assert small["config"] == cfg.to_dict()
    loaded = load_model(save_checkpoint(small, tmp_path / "small.pt"))
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in model.state_dict().items())
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["best.pt"]


def test_older_files_load_and_newer_ones_are_refused(tmp_path: Path) -> None:
    assert load_model(None).config.model.name == "unet"
    model, cfg = _tiny()
    older = build_checkpoint(model, cfg)
    del older["format_version"]  # as written before versioning
    torch.save(older, tmp_path / "older.pt")
    assert load_model(tmp_path / "older.pt").meta["format_version"] == FORMAT_VERSION
    newer = {**build_checkpoint(model, cfg), "format_version": FORMAT_VERSION + 1}
    torch.save(newer, tmp_path / "newer.pt")
    with pytest.raises(PipelineError, match="newer"):
        read_checkpoint(tmp_path / "newer.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(PipelineError, match="not a checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    with pytest.raises(PipelineError, match="not found"):
        read_checkpoint(tmp_path / "missing.pt")


def test_version_1_tile_settings_move_to_the_inference_section(tmp_path: Path) -> None:
    model, cfg = _tiny()
    old = build_checkpoint(model, cfg)
    del old["format_version"]
    del old["config"]["inference"]
    old["config"]["evaluate"].update(tile_size=256, tile_overlap=0.5, batch_size=64)
    torch.save(old, tmp_path / "v1.pt")
    loaded = load_model(tmp_path / "v1.pt")
    assert (loaded.config.inference.tile_size, loaded.config.inference.overlap) == (256, 0.5)
    assert (
        loaded.config.inference.batch_size == InferenceConfig().batch_size
        and loaded.meta["format_version"] == FORMAT_VERSION
    )
