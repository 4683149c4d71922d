"""Checks of a denoiser's output on scans without a clean reference (see :mod:`pipeline.adapt`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.image import center_crop

#: Side of the central crop the noise estimates and checks are computed on.
CHECK_CROP = 1024
#: Half-width of the removed part's autocorrelation map.
MAP_LAGS = 4


def noise_level(pixels: np.ndarray) -> float:
    """Estimated noise std (wavelet MAD, [0, 1] units) on the central crop.

    It is made for white noise: on correlated noise it reads low, since the finest wavelet
    band holds only part of that noise's power.
    """
    from pipeline.metrics import estimate_noise_sigma

    return estimate_noise_sigma(center_crop(pixels, CHECK_CROP))


def autocorrelation_map(values: np.ndarray, lags: int = MAP_LAGS) -> np.ndarray:
    """Normalised autocorrelation of `values` for row and column lags in [-lags, lags].

    The centre (lag 0) is 1; a map of NaN where `values` are constant.
    """
    x = center_crop(values, CHECK_CROP).astype(np.float64)
    x = x - x.mean()
    h, w = x.shape
    spectrum = np.fft.rfft2(x, s=(2 * h, 2 * w))  # zero padded: linear, not circular, correlation
    corr = np.fft.irfft2(np.abs(spectrum) ** 2, s=(2 * h, 2 * w))
    corr = np.fft.fftshift(corr)[h - lags : h + lags + 1, w - lags : w + lags + 1]
    return corr / corr[lags, lags] if corr[lags, lags] > 0 else np.full_like(corr, np.nan)


def scan_checks(noisy: np.ndarray, output: np.ndarray) -> dict[str, Any]:
    """Noise before/after and the removed part's lag-1 autocorrelations."""
    removed = noisy - output
    corr = autocorrelation_map(removed)
    c = MAP_LAGS
    return {
        "noise_before": noise_level(noisy),
        "noise_after": noise_level(output),
        "removed_std": float(center_crop(removed, CHECK_CROP).std()),
        "removed_lag1_rows": float(corr[c + 1, c]),  # neighbour one row down
        "removed_lag1_columns": float(corr[c, c + 1]),  # neighbour one column right
        "removed_autocorrelation": corr,
    }
