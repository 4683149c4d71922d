"""The training penalty on lost content (pipeline.transfer_loss) and train.transfer_weight."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from pipeline.config import load_config
from pipeline.detail import pooled_transfer, transfer_spectra
from pipeline.runner import run
from pipeline.train import make_loss
from pipeline.transfer_loss import batch_transfer, transfer_penalty
from tests.test_train import tiny_config


def _pairs(count: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Clean textures and smoothed, slightly noisy outputs of them (N, H, W), odd width included."""
    rng = np.random.default_rng(0)
    clean = np.stack([gaussian_filter(rng.random((64, 81)), 1.5) for _ in range(count)])
    out = gaussian_filter(clean, (0, 1.0, 1.0)) + 0.01 * rng.standard_normal(clean.shape)
    return clean, out


def test_batch_transfer_equals_the_pooled_detail_kept_of_the_evaluation() -> None:
    clean, out = _pairs()
    pooled = pooled_transfer([transfer_spectra(c, o) for c, o in zip(clean, out)])
    band = slice(10, 20)  # bins of 0.01 cycles/pixel: 0.1-0.2
    expected = pooled["cross"][band].sum() / pooled["clean"][band].sum()
    got = batch_transfer(torch.tensor(out)[:, None], torch.tensor(clean)[:, None])
    assert 0.3 < expected < 0.95
    assert math.isclose(float(got), expected, rel_tol=1e-4)


def test_penalty_is_zero_for_kept_content_and_positive_for_smoothing() -> None:
    clean, out = (torch.tensor(a, dtype=torch.float32)[:, None] for a in _pairs())
    assert float(transfer_penalty(clean, clean)) < 1e-10
    assert float(transfer_penalty(2 * clean, clean)) == 0.0  # sharpening is not rewarded either way
    smoothed = float(transfer_penalty(out, clean))
    assert math.isclose(smoothed, (1 - float(batch_transfer(out, clean))) ** 2, rel_tol=1e-6)
    assert smoothed > 0.001


def test_transfer_weight_adds_the_penalty_and_its_gradient_keeps_content() -> None:
    clean, out = (torch.tensor(a, dtype=torch.float32)[:, None] for a in _pairs())
    plain, weighted = make_loss("l1"), make_loss("l1", transfer_weight=0.5)
    assert torch.isclose(
        weighted(out, clean), plain(out, clean) + 0.5 * transfer_penalty(out, clean)
    )
    guess = out.clone().requires_grad_(True)
    transfer_penalty(guess, clean).backward()
    step = guess.detach() - 0.5 * guess.grad / guess.grad.abs().max()
    assert batch_transfer(step, clean) > batch_transfer(out, clean)


def test_transfer_weight_trains_end_to_end(tmp_path) -> None:
    result = run(
        tiny_config(
            tmp_path,
            "train.epochs=1",
            "train.loss=l1",
            "train.transfer_weight=0.05",
            "data.max_train=64",
        )
    )
    assert load_config(result.run_dir / "config.yaml").train.transfer_weight == 0.05
    assert result.checkpoint.exists()
