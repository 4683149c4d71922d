"""Fitting the xray noise model to noisy images through a denoiser (pipeline.noisefit)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import correlate1d, gaussian_filter

from pipeline.config import XrayNoiseConfig
from pipeline.noise import make_noise
from pipeline.noisefit import fit_noise, mismatch, removed_statistics


def anatomy(seed: int, side: int = 256) -> np.ndarray:
    """A smooth image spanning most of the display range (bright 'bone' to dark 'lung')."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    image = 0.15 + 0.7 * x * (0.6 + 0.4 * y) + 0.1 * np.sin(6 * y + rng.uniform(0, 3))
    return np.clip(image, 0, 1).astype(np.float32)


def blur(image: np.ndarray) -> np.ndarray:
    """A stand-in denoiser: any fixed map works, the fit passes real and simulated noise through
    it."""
    return gaussian_filter(image, 2.0).astype(np.float32)


def test_statistics_see_white_and_correlated_noise():
    rng = np.random.default_rng(0)
    flat = [np.full((256, 256), 0.5, np.float32)]
    white = removed_statistics([rng.normal(0, 0.1, (256, 256))], flat)
    kernel = np.array([0.5, 1.0, 0.5]) / np.sqrt(1.5)
    correlated = correlate1d(rng.normal(0, 0.1, (256, 256)), kernel, axis=0)
    along_rows = removed_statistics([correlated], flat)
    band = int(np.nanargmax(np.isfinite(white["log_variance"])))  # the one band holding 0.5
    assert white["log_variance"][band] == pytest.approx(np.log(0.01), abs=0.05)
    assert abs(white["rows"][band]) < 0.03 and abs(white["columns"][band]) < 0.03
    assert along_rows["rows"][band] == pytest.approx(
        2 * 0.5 / (1 + 2 * 0.25), abs=0.03
    )  # [a,1,a]: 2a/(1+2a²)
    assert abs(along_rows["columns"][band]) < 0.03
    assert mismatch(white, white) == 0.0 and mismatch(white, along_rows) > 1.0


def test_fit_recovers_dose_and_anisotropic_detector_blur():
    truth = XrayNoiseConfig(photons=2000, dose=0.1, read_noise=3, mu=3.0, kernel_a=[0.5, 0.05])
    noise = make_noise(truth)
    scans = [noise(anatomy(i), np.random.default_rng(100 + i)).astype(np.float32) for i in range(3)]
    start = XrayNoiseConfig(photons=2000, dose=0.05, dose_max=1.0, kernel_a=0.0, kernel_a_max=0.5)
    fit = fit_noise(scans, blur, start, seed=0)
    a_rows, a_cols = fit.noise.kernel_a
    assert fit.noise.kind == "xray" and fit.noise.mu == 3.0 and fit.noise.photons == 2000
    assert fit.alternatives["gaussian"] > 10 * fit.alternatives["xray"]
    assert fit.noise.dose == pytest.approx(0.1, rel=0.3)
    assert a_rows == pytest.approx(0.5, abs=0.15) and a_cols < 0.2
    assert fit.mismatch < fit.start_mismatch / 10
    assert fit_noise(scans, blur, start, seed=0).noise == fit.noise  # reproducible


def test_too_few_pixels_keep_the_starting_values(caplog):
    start = XrayNoiseConfig(photons=2000, dose=0.1, kernel_a=0.3, read_noise=3)
    fit = fit_noise([np.full((20, 20), 0.5, np.float32)], blur, start)
    assert (
        fit.evaluations == 0
        and fit.noise.dose == pytest.approx(0.1)
        and fit.noise.kernel_a == [0.3, 0.3]
    )
    assert "too few to fit" in caplog.text


def test_white_gaussian_noise_is_fitted_as_gaussian():
    scans = [
        anatomy(i) + np.random.default_rng(200 + i).normal(0, 0.08, (256, 256)).astype(np.float32)
        for i in range(3)
    ]
    start = XrayNoiseConfig(photons=2000, dose=0.05, dose_max=1.0, kernel_a=0.0, kernel_a_max=0.5)
    fit = fit_noise([np.clip(s, 0, 1) for s in scans], blur, start, seed=0)
    assert fit.noise.kind == "gaussian" and fit.noise.sigma == pytest.approx(0.08, rel=0.1)
    assert fit.alternatives["xray"] > 3 * fit.alternatives["gaussian"]


def test_a_passed_deadline_stops_the_fit_with_the_starting_values(caplog):
    import time

    noise = make_noise(XrayNoiseConfig(photons=2000, dose=0.1, read_noise=3, mu=3.0, kernel_a=0.3))
    scans = [noise(anatomy(i), np.random.default_rng(i)).astype(np.float32) for i in range(2)]
    start = XrayNoiseConfig(photons=2000, dose=0.05, dose_max=1.0)
    fit = fit_noise(scans, blur, start, seed=0, deadline=time.perf_counter())
    assert fit.stopped_at_deadline and fit.evaluations == 0
    assert fit.noise.kind == "xray" and fit.to_dict()["stopped_at_deadline"] is True
    assert "stopped at its share of the time budget" in caplog.text
