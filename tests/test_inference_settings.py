"""Inference settings travel as one InferenceConfig, validated once, with one default."""

from __future__ import annotations

import argparse
import inspect

import pytest
from pydantic import ValidationError

from pipeline.apply import ApplyOptions, apply_folder
from pipeline.config import InferenceConfig, ModelConfig
from pipeline.errors import ConfigError, PipelineError
from pipeline.inference import (
    DEFAULT_INFERENCE,
    ModelDenoiser,
    denoiser_from_checkpoint,
    settings_from_options,
)
from pipeline.models import build_model, weight_layout
from pipeline.monai import Denoise


def test_one_default_everywhere() -> None:
    assert DEFAULT_INFERENCE == InferenceConfig()
    denoiser = ModelDenoiser(build_model(ModelConfig(name="conv", features=4)), device="cpu")
    assert (denoiser.tile_size, denoiser.overlap, denoiser.batch_size) == (512, 0.25, 1)
    for function in (denoiser_from_checkpoint, apply_folder, Denoise.__init__):
        assert (
            inspect.signature(function)
            .parameters["settings" if function is denoiser_from_checkpoint else "inference"]
            .default
            is DEFAULT_INFERENCE
        )


def test_apply_folder_takes_typed_settings_only() -> None:
    assert list(inspect.signature(apply_folder).parameters) == [
        "input_dir",
        "output_dir",
        "model",
        "options",
        "inference",
    ]
    assert ApplyOptions(fmt="PNG").fmt == "png"
    with pytest.raises(PipelineError, match="output format 'bmp'"):
        ApplyOptions(fmt="bmp")


def test_command_options_are_validated_once_with_a_clear_message() -> None:
    options = argparse.Namespace(tile_size=4, overlap=0.25, batch_size=0, device="cpu")
    with pytest.raises(ConfigError) as err:
        settings_from_options(options)
    text = str(err.value)
    assert "\n" not in text and "--tile-size 4: input should be greater than or equal to 8" in text
    assert "--batch-size 0" in text
    good = settings_from_options(
        argparse.Namespace(tile_size=None, overlap=0.5, batch_size=3, device="cpu")
    )
    assert good == InferenceConfig(tile_size=None, overlap=0.5, batch_size=3, device="cpu")


def test_settings_cannot_change_on_the_way() -> None:
    with pytest.raises(ValidationError):
        DEFAULT_INFERENCE.tile_size = 64  # type: ignore[misc]


def test_cpu_inference_uses_channels_last_weights_with_the_same_output() -> None:
    import numpy as np
    import torch

    torch.manual_seed(0)
    model = build_model(ModelConfig(name="unet", channels=[4, 8, 16]))
    with torch.no_grad():  # not the identity a residual model starts as
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.1)
    image = np.random.default_rng(0).random((40, 56), dtype=np.float32)
    with torch.inference_mode():
        expected = model.eval()(torch.from_numpy(image)[None, None])[0, 0].numpy()
    denoiser = ModelDenoiser(model, InferenceConfig(tile_size=None), device="cpu")
    weights = [p for p in model.parameters() if p.dim() == 4]
    assert weight_layout(torch.device("cpu")) is torch.channels_last
    assert weight_layout(torch.device("cuda")) is torch.contiguous_format
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    assert not all(p.is_contiguous() for p in weights)
    assert np.abs(denoiser(image) - expected).max() < 1e-5
