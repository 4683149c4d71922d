"""Noise models: seeded reproducibility (also across processes), statistics, ranges."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pipeline.config import (
    GaussianNoiseConfig,
    PoissonGaussianNoiseConfig,
    SaltPepperNoiseConfig,
    SpeckleNoiseConfig,
    XrayNoiseConfig,
    noise_config,
)
from pipeline.noise import (
    GaussianNoise,
    PoissonGaussianNoise,
    XrayNoise,
    add_noise,
    make_noise,
    neighbour_correlation,
    noise_rng,
)


def test_same_seed_same_noise_different_seed_different(smooth_image) -> None:
    noise = make_noise(GaussianNoiseConfig(sigma=0.5))
    a = noise(smooth_image, noise_rng(3, "test", 0, 5))
    b = noise(smooth_image, noise_rng(3, "test", 0, 5))
    c = noise(smooth_image, noise_rng(3, "test", 0, 6))
    d = noise(smooth_image, noise_rng(3, "train", 0, 5))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)


@pytest.mark.parametrize("kind", ["poisson_gaussian", "xray"])
def test_noise_identical_in_another_process(kind: str, smooth_image) -> None:
    here = add_noise(
        [smooth_image], make_noise(noise_config({"kind": kind, "photons": 500})), 11, "test"
    )[0]
    code = (
        "import numpy as np, sys\nfrom pipeline.config import noise_config\nfrom pipeline.noise "
        "import add_noise, make_noise\nimg = np.frombuffer(sys.stdin.buffer.read(), "
        "np.float32).reshape(64, 64)\n"
        f"out = add_noise([img], make_noise(noise_config({{'kind': {kind!r}, 'photons': 500}})), "
        "11, 'test')[0]\nsys.stdout.buffer.write(out.tobytes())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], input=smooth_image.tobytes(), capture_output=True, check=True
    )
    there = np.frombuffer(proc.stdout, np.float32).reshape(64, 64)
    assert np.array_equal(here, there)


def test_gaussian_statistics_without_clipping(rng) -> None:
    clean = np.full((256, 256), 0.5, np.float32)
    noisy = GaussianNoise(0.1, clip=False)(clean, rng)
    assert noisy.dtype == np.float32
    assert abs(float((noisy - clean).std()) - 0.1) < 0.003
    assert abs(float((noisy - clean).mean())) < 0.003


def test_tutorial_noise_is_clipped(rng, smooth_image) -> None:
    noisy = make_noise(GaussianNoiseConfig(sigma=0.5))(smooth_image, rng)
    assert noisy.min() >= 0.0 and noisy.max() <= 1.0


def test_blind_sigma_range_varies_per_image(smooth_image) -> None:
    noise = GaussianNoise(0.0, 0.4, clip=False)
    stds = [
        float((noise(smooth_image, noise_rng(0, "train", 0, i)) - smooth_image).std())
        for i in range(20)
    ]
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
    sp = make_noise(SaltPepperNoiseConfig(amount=0.1))(smooth_image, rng)
    changed = np.mean(sp != smooth_image)
    assert 0.07 < changed < 0.13 and set(np.unique(sp[sp != smooth_image])) <= {0.0, 1.0}
    sk = make_noise(SpeckleNoiseConfig(sigma=0.2, clip=False))(smooth_image, rng)
    rel = (sk - smooth_image) / smooth_image
    assert abs(float(rel.std()) - 0.2) < 0.02


def _flat_xray_noise(level: float, **kwargs) -> tuple[XrayNoise, np.ndarray]:
    model = make_noise(XrayNoiseConfig(clip=False, **kwargs))
    clean = np.full((256, 256), level, np.float32)
    return model, model(clean, np.random.default_rng([7, int(level * 100)])) - clean


@pytest.mark.parametrize(
    ("level", "dose"), [(0.2, 1.0), (0.5, 1.0), (0.8, 1.0), (0.2, 0.25), (0.5, 0.25)]
)
def test_xray_flat_field_variance_follows_the_log_transform(level: float, dose: float) -> None:
    """Variance 1/(mu^2 lambda) + read term (delta method; the unit-energy kernel keeps it).

    The delta method holds where lambda is large: these levels have 111 to 1100 photons.
    """
    model, noise = _flat_xray_noise(level, dose=dose)
    lam = 2000 * dose * np.exp(-3.0 * level)
    expected = (lam + 3.0**2) / (3.0 * lam) ** 2
    assert abs(float(noise.var()) / expected - 1) < 0.05
    assert abs(model.std(np.full((8, 8), level, np.float32)) ** 2 / expected - 1) < 0.05


@pytest.mark.parametrize("kernel_a", [0.0, 0.3, [0.5, 0.1]])
def test_xray_neighbour_correlation_is_the_kernels(kernel_a) -> None:
    _, noise = _flat_xray_noise(0.3, kernel_a=kernel_a, read_noise=0.0)
    a_rows, a_cols = (kernel_a, kernel_a) if isinstance(kernel_a, float) else kernel_a
    across = np.corrcoef(noise[:, :-1].ravel(), noise[:, 1:].ravel())[0, 1]
    down = np.corrcoef(noise[:-1].ravel(), noise[1:].ravel())[0, 1]
    assert abs(across - neighbour_correlation(a_cols)) < 0.05
    assert abs(down - neighbour_correlation(a_rows)) < 0.05


def test_xray_darker_display_values_are_less_noisy() -> None:
    stds = [float(_flat_xray_noise(level)[1].std()) for level in (0.1, 0.4, 0.7, 0.95)]
    assert stds == sorted(stds) and stds[-1] > 3 * stds[0]


def test_xray_noise_is_clipped_and_lower_dose_noisier(smooth_image) -> None:
    rms = []
    for dose in (1.0, 0.25, 0.1):
        model = make_noise(XrayNoiseConfig(dose=dose))
        noisy = model(smooth_image, np.random.default_rng(0))
        assert noisy.dtype == np.float32 and noisy.min() >= 0.0 and noisy.max() <= 1.0
        rms.append(float(np.sqrt(np.mean((noisy - smooth_image) ** 2))))
        assert abs(rms[-1] / model.std(smooth_image) - 1) < 0.1
    assert rms == sorted(rms)


def test_xray_psd_holds_the_noise_power_with_the_kernels_shape() -> None:
    model, noise = _flat_xray_noise(0.5, kernel_a=[0.3, 0.1])
    psd = model.psd(np.full((8, 8), 0.5, np.float32), noise.shape)
    assert psd.shape == noise.shape
    assert abs(psd.mean() / noise.size / noise.var() - 1) < 0.05  # Parseval
    measured = np.abs(np.fft.fft2(noise)) ** 2
    # averaged over the lowest and highest row frequencies: the [a,1,a] kernel passes lows, damps
    # highs
    low, high = measured[:8].mean() / psd[:8].mean(), measured[120:136].mean() / psd[120:136].mean()
    assert abs(low - 1) < 0.15 and abs(high - 1) < 0.15 and psd[0, 0] > 2 * psd[128, 0]


def test_xray_blind_ranges_vary_per_image(smooth_image) -> None:
    model = make_noise(XrayNoiseConfig(dose=0.05, dose_max=1.0, kernel_a=0.0, kernel_a_max=0.5))
    draws = [model._draw(noise_rng(0, "train", 0, i)) for i in range(40)]
    doses = np.array([d for d, _ in draws])
    assert (
        doses.min() >= 0.05 and doses.max() <= 1.0 and np.mean(doses < np.sqrt(0.05)) > 0.25
    )  # log-uniform
    a = np.array([k for _, k in draws])
    assert a.min() >= 0 and a.max() <= 0.5 and not np.allclose(a[:, 0], a[:, 1])


def test_xray_config_defaults_and_checks() -> None:
    cfg = XrayNoiseConfig()
    assert (cfg.photons, cfg.read_noise, cfg.mu, cfg.kernel_a) == (2000.0, 3.0, 3.0, 0.3)
    assert PoissonGaussianNoiseConfig().photons == 1e4
    mixed = noise_config({"kind": "mixed", "mixed_kinds": ["gaussian", "xray"]})
    assert mixed.components[1].noise.photons == 2000.0
    for bad in (
        {"dose": 0.5, "dose_max": 0.2},
        {"kernel_a": [0.1, 0.2, 0.3]},
        {"kernel_a": 1.5},
        {"kernel_a": 0.3, "kernel_a_max": 0.1},
    ):
        with pytest.raises(ValueError):
            XrayNoiseConfig(**bad)


def test_mixed_can_draw_xray(smooth_image) -> None:
    noise = make_noise(
        noise_config(
            {"kind": "mixed", "mixed_kinds": ["gaussian", "xray"], "sigma": 0.0, "clip": False}
        )
    )
    # sigma 0 leaves the image as it is; xray noise changes it.
    changed = [
        not np.array_equal(noise(smooth_image, noise_rng(0, "train", 0, i)), smooth_image)
        for i in range(12)
    ]
    assert any(changed) and not all(changed)


def test_mixed_uses_both_families(smooth_image) -> None:
    noise = make_noise(
        noise_config(
            {"kind": "mixed", "sigma": 0.05, "photons": 100, "read_noise": 0, "clip": False}
        )
    )
    # Poisson noise of 100 photons keeps values on a grid of 1/100; Gaussian noise does not.
    on_grid = []
    for i in range(12):
        out = noise(smooth_image, noise_rng(0, "train", 0, i))
        on_grid.append(bool(np.allclose(out * 100, np.round(out * 100), atol=1e-3)))
    assert any(on_grid) and not all(on_grid)
