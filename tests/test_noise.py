"""Noise models: seeded reproducibility (also across processes), statistics, ranges."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pipeline.config import NoiseConfig
from pipeline.noise import GaussianNoise, PoissonGaussianNoise, add_noise, make_noise, noise_rng


def test_same_seed_same_noise_different_seed_different(smooth_image) -> None:
    noise = make_noise(NoiseConfig(kind="gaussian", sigma=0.5))
    a = noise(smooth_image, noise_rng(3, "test", 0, 5))
    b = noise(smooth_image, noise_rng(3, "test", 0, 5))
    c = noise(smooth_image, noise_rng(3, "test", 0, 6))
    d = noise(smooth_image, noise_rng(3, "train", 0, 5))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


def test_noise_identical_in_another_process(smooth_image) -> None:
    here = add_noise([smooth_image], make_noise(NoiseConfig(kind="poisson_gaussian", photons=500)), 11, "test")[0]
    code = (
        "import numpy as np, sys\n"
        "from pipeline.config import NoiseConfig\n"
        "from pipeline.noise import add_noise, make_noise\n"
        "img = np.frombuffer(sys.stdin.buffer.read(), np.float32).reshape(64, 64)\n"
        "out = add_noise([img], make_noise(NoiseConfig(kind='poisson_gaussian', photons=500)), 11, 'test')[0]\n"
        "sys.stdout.buffer.write(out.tobytes())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], input=smooth_image.tobytes(), capture_output=True, check=True)
    there = np.frombuffer(proc.stdout, np.float32).reshape(64, 64)
    assert np.array_equal(here, there)


def test_gaussian_statistics_without_clipping(rng) -> None:
    clean = np.full((256, 256), 0.5, np.float32)
    noisy = GaussianNoise(0.1, clip=False)(clean, rng)
    assert noisy.dtype == np.float32
    assert abs(float((noisy - clean).std()) - 0.1) < 0.003
    assert abs(float((noisy - clean).mean())) < 0.003


def test_tutorial_noise_is_clipped(rng, smooth_image) -> None:
    noisy = make_noise(NoiseConfig(sigma=0.5))(smooth_image, rng)
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0


def test_blind_sigma_range_varies_per_image(smooth_image) -> None:
    noise = GaussianNoise(0.0, 0.4, clip=False)
    stds = [float((noise(smooth_image, noise_rng(0, "train", 0, i)) - smooth_image).std()) for i in range(20)]
    assert min(stds) < 0.15 and max(stds) > 0.25


@pytest.mark.parametrize("level", [0.2, 0.8])
def test_poisson_gaussian_variance_is_signal_dependent(level: float, rng) -> None:
    model = PoissonGaussianNoise(photons=1000, dose=0.5, read_noise=5, clip=False)
    clean = np.full((300, 300), level, np.float32)
    noisy = model(clean, rng)
    full = 1000 * 0.5
    expected = np.sqrt(level * full + 25) / full
    assert abs(float(noisy.std()) - expected) / expected < 0.03
    assert abs(float(noisy.mean()) - level) < 0.005
    assert abs(model.std(clean) - expected) < 1e-6


def test_lower_dose_is_noisier(rng) -> None:
    clean = np.full((128, 128), 0.5, np.float32)
    full = PoissonGaussianNoise(1e4, dose=1.0)(clean, np.random.default_rng(0)).std()
    low = PoissonGaussianNoise(1e4, dose=0.1)(clean, np.random.default_rng(0)).std()
    assert low > 2.5 * full


def test_salt_pepper_and_speckle(rng, smooth_image) -> None:
    sp = make_noise(NoiseConfig(kind="salt_pepper", amount=0.1))(smooth_image, rng)
    changed = np.mean(sp != smooth_image)
    assert 0.07 < changed < 0.13 and set(np.unique(sp[sp != smooth_image])) <= {0.0, 1.0}
    sk = make_noise(NoiseConfig(kind="speckle", speckle_sigma=0.2, clip=False))(smooth_image, rng)
    rel = (sk - smooth_image) / smooth_image
    assert abs(float(rel.std()) - 0.2) < 0.02


def test_mixed_uses_both_families(smooth_image) -> None:
    noise = make_noise(NoiseConfig(kind="mixed", sigma=0.05, photons=100, read_noise=0, clip=False))
    # Poisson noise of 100 photons keeps values on a grid of 1/100; Gaussian noise does not.
    on_grid = []
    for i in range(12):
        out = noise(smooth_image, noise_rng(0, "train", 0, i))
        on_grid.append(bool(np.allclose(out * 100, np.round(out * 100), atol=1e-3)))
    assert any(on_grid) and not all(on_grid)
