"""Detail kept (task transfer function) and the residual noise power spectrum."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from pipeline.detail import BANDS, band_name, band_transfer, pooled_transfer, transfer_spectra


@pytest.fixture
def textured() -> np.ndarray:
    """A 256x256 image with content at every frequency (white noise, lightly smoothed)."""
    rng = np.random.default_rng(0)
    return 0.5 + 0.1 * gaussian_filter(rng.normal(size=(256, 256)), 0.7)


def test_identity_keeps_everything_and_scaling_scales(textured: np.ndarray) -> None:
    same = band_transfer([transfer_spectra(textured, textured)])
    assert all(v == pytest.approx(1.0) for v in same.values())
    halved = band_transfer([transfer_spectra(textured, 0.5 + 0.5 * (textured - 0.5))])
    assert all(v == pytest.approx(0.5) for v in halved.values())
    assert list(same) == [band_name(b) for b in BANDS]


def test_blur_keeps_less_at_high_frequencies_as_its_transfer_says(textured: np.ndarray) -> None:
    sigma = 1.5
    t = band_transfer([transfer_spectra(textured, gaussian_filter(textured, sigma, mode="wrap"))])
    low, mid, high = (t[band_name(b)] for b in BANDS)
    assert 1.0 > low > mid > high > 0
    # a Gaussian blur of std s px multiplies frequency f by exp(-2 pi^2 s^2 f^2): at 0.15 cycles/px
    assert mid == pytest.approx(np.exp(-2 * np.pi**2 * sigma**2 * 0.15**2), abs=0.08)


def test_noise_left_in_does_not_bias_it_and_shows_in_the_residual_spectrum(
    textured: np.ndarray,
) -> None:
    rng = np.random.default_rng(1)
    spectra = [
        transfer_spectra(textured, textured + rng.normal(0, 0.05, textured.shape)) for _ in range(8)
    ]
    assert all(v == pytest.approx(1.0, abs=0.05) for v in band_transfer(spectra).values())
    nps = pooled_transfer(spectra)["nps"]
    assert np.nanmedian(nps[5:45]) == pytest.approx(0.05**2, rel=0.1), (
        "white noise: flat NPS at its variance"
    )
    smooth = band_transfer([transfer_spectra(textured, gaussian_filter(textured, 1.0))])
    assert smooth[band_name(BANDS[1])] < band_transfer(spectra)[band_name(BANDS[1])], (
        "a smoother keeps less"
    )


def test_pooling_adds_sums_before_dividing(textured: np.ndarray) -> None:
    blurred = gaussian_filter(textured, 1.0)
    flat = np.full_like(textured, 0.5)
    flat[::2] += 1e-3  # almost no content: a per-image T of it would swing the mean
    a, b = transfer_spectra(textured, blurred), transfer_spectra(flat, 0.5 * flat)
    pooled = band_transfer([a, b])[band_name(BANDS[0])]
    assert pooled == pytest.approx(band_transfer([a])[band_name(BANDS[0])], abs=0.01)
    with pytest.raises(ValueError, match="shapes differ"):
        transfer_spectra(textured, textured[:10])
