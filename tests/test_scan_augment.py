"""data.scan_augment: display gamma/window, pixel size and rotation of training patches."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import ScanAugmentConfig, config_from_dict, noise_config
from pipeline.errors import PipelineError
from pipeline.ingest.patches import PatchSampler
from pipeline.ingest.scan_augment import ScanAugment
from pipeline.noise import make_noise
from pipeline.train.data import NoisyPairs

RAMP_WIDTH = 1024
STEP = 1.0 / (RAMP_WIDTH - 1)  # grey levels per pixel along x


def ramp() -> np.ndarray:
    """A horizontal ramp from 0 to 1: its gradient says how a patch was resampled and turned."""
    return np.tile(np.linspace(0.0, 1.0, RAMP_WIDTH, dtype=np.float32), (RAMP_WIDTH, 1))


def interior_gradient(patch: np.ndarray) -> tuple[float, float]:
    """Median (d/dx, d/dy) away from the patch's border."""
    inner = patch[8:-8, 8:-8].astype(np.float64)
    return float(np.median(np.diff(inner, axis=1))), float(np.median(np.diff(inner, axis=0)))


def test_all_off_draws_exactly_as_before():
    images = [np.random.default_rng(1).random((300, 280)).astype(np.float32)]
    noise = make_noise(noise_config({"kind": "gaussian", "sigma": 0.1}))
    plain = NoisyPairs(images, noise, 7, patch_size=64, patches_per_image=3, min_patch_std=0.0)
    off = NoisyPairs(
        images,
        noise,
        7,
        patch_size=64,
        patches_per_image=3,
        min_patch_std=0.0,
        scan_augment=ScanAugment(**ScanAugmentConfig().model_dump()),
    )
    for i in range(3):
        for a, b in zip(plain[i], off[i], strict=True):
            assert np.array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("scale", [2.0, 0.5, 1.25])
def test_scale_resamples_the_pixel_size(scale):
    sampler = PatchSampler(64, min_std=0.0)
    patch = ScanAugment(scale=(scale, scale)).patch(ramp(), sampler, np.random.default_rng(0))
    assert patch.shape == (64, 64) and patch.dtype == np.float32
    dx, dy = interior_gradient(patch)
    assert dx == pytest.approx(STEP / scale, rel=0.02)
    assert abs(dy) < 1e-6


def test_rotation_turns_the_patch_by_at_most_the_limit():
    sampler = PatchSampler(64, min_std=0.0)
    turns = []
    for seed in range(6):
        patch = ScanAugment(rotate=20.0).patch(ramp(), sampler, np.random.default_rng(seed))
        dx, dy = interior_gradient(patch)
        assert np.hypot(dx, dy) == pytest.approx(STEP, rel=0.03)  # a turn keeps the slope
        turns.append(np.degrees(np.arctan2(dy, dx)))
    assert max(abs(t) for t in turns) <= 20.5
    assert max(abs(t) for t in turns) > 3.0  # turned at all


def test_display_window_and_gamma_stay_in_range_and_are_seeded():
    patch = np.linspace(0.0, 1.0, 64 * 64, dtype=np.float32).reshape(64, 64)
    aug = ScanAugment(gamma=(1.5, 1.5))
    out = aug.display(patch, np.random.default_rng(0))
    assert np.allclose(out, patch**1.5, atol=1e-6)
    windowed = ScanAugment(window=0.2, gamma=(0.7, 1.4))
    a = windowed.display(patch, np.random.default_rng(3))
    b = windowed.display(patch, np.random.default_rng(3))
    assert np.array_equal(a, b)
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert not np.allclose(a, patch, atol=1e-3)
    assert np.all(np.diff(a.ravel()) >= 0)  # a display change keeps the order of grey levels


def test_config_refuses_bad_ranges_and_geometry_without_patches():
    with pytest.raises(ValueError, match="low <= high"):
        ScanAugmentConfig(gamma=(1.4, 0.7))
    with pytest.raises(ValueError):
        ScanAugmentConfig(rotate=90.0)
    cfg = config_from_dict({"data": {"scan_augment": {"scale": [0.8, 1.25], "rotate": 5}}})
    assert cfg.data.scan_augment.scale == (0.8, 1.25)
    noise = make_noise(noise_config({"kind": "gaussian", "sigma": 0.1}))
    images = [np.zeros((32, 32), np.float32)]
    with pytest.raises(PipelineError, match="data.patch_size"):
        NoisyPairs(images, noise, 0, scan_augment=ScanAugment(rotate=5.0))
