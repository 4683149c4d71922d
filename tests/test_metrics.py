"""PSNR/SSIM agree with scikit-image, data ranges are explicit, statistics are exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from pipeline.metrics import (
    data_range_for,
    estimate_noise_sigma,
    paired_difference,
    psnr,
    ssim,
    summarize,
)

T_975_DF2 = 4.302652729911275  # scipy.stats.t.ppf(0.975, 2)
T_975_DF4 = 2.7764451051977987  # scipy.stats.t.ppf(0.975, 4)


@pytest.mark.parametrize("data_range", [1.0, 255.0, 4095.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_psnr_ssim_agree_with_skimage(rng, data_range, dtype):
    clean = rng.uniform(0, data_range, (40, 36)).astype(dtype)
    test = (clean + rng.normal(0, 0.1 * data_range, clean.shape)).astype(dtype)
    expected_psnr = peak_signal_noise_ratio(clean, test, data_range=data_range)
    expected_ssim = structural_similarity(clean, test, data_range=data_range)
    assert psnr(clean, test, data_range=data_range) == pytest.approx(expected_psnr, abs=1e-6)
    assert ssim(clean, test, data_range=data_range) == pytest.approx(expected_ssim, abs=1e-6)


def test_data_range_is_required_and_keyword_only(rng):
    a = rng.random((16, 16))
    with pytest.raises(TypeError):
        psnr(a, a)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ssim(a, a, 1.0)  # type: ignore[misc]
    with pytest.raises(ValueError, match="data_range"):
        psnr(a, a * 0.5, data_range=0.0)
    with pytest.raises(ValueError, match="2-D"):
        psnr(a, a[:8], data_range=1.0)


def test_data_range_for():
    assert data_range_for("uint16", 12) == 4095.0
    assert data_range_for("uint16", None) == 65535.0
    assert data_range_for("uint8", None) == 255.0
    assert data_range_for("uint8", 8) == 255.0
    assert data_range_for("float32", None) == 1.0
    with pytest.raises(ValueError, match="bits_stored"):
        data_range_for("uint8", 12)


def test_twelve_bit_psnr_depends_on_range(rng):
    clean = rng.integers(0, 4096, (32, 32)).astype(np.uint16)
    noisy = np.clip(clean + rng.normal(0, 50, clean.shape), 0, 4095).astype(np.uint16)
    right = psnr(clean, noisy, data_range=data_range_for("uint16", 12))
    wrong = psnr(clean, noisy, data_range=data_range_for("uint16", None))
    assert wrong - right == pytest.approx(20 * math.log10(65535 / 4095), abs=1e-9)


def test_estimate_noise_sigma(smooth_image, rng):
    noisy = smooth_image + rng.normal(0, 0.05, smooth_image.shape)
    assert estimate_noise_sigma(noisy) == pytest.approx(0.05, rel=0.2)
    assert estimate_noise_sigma(smooth_image) < 0.01


def test_summarize_known_values():
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    half = T_975_DF4 * math.sqrt(2.5) / math.sqrt(5)
    assert s["n"] == 5
    assert s["mean"] == pytest.approx(3.0)
    assert s["std"] == pytest.approx(math.sqrt(2.5))
    assert s["ci_low"] == pytest.approx(3.0 - half)
    assert s["ci_high"] == pytest.approx(3.0 + half)


def test_summarize_degenerate():
    one = summarize([2.5])
    assert one["n"] == 1 and one["mean"] == 2.5
    assert math.isnan(one["std"]) and math.isnan(one["ci_low"])
    empty = summarize([])
    assert empty["n"] == 0 and math.isnan(empty["mean"])


def test_paired_difference():
    d = paired_difference([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    half = T_975_DF2 * 1.0 / math.sqrt(3)
    assert d["n"] == 3 and d["mean"] == pytest.approx(2.0)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((2.0 - half, 2.0 + half))
    constant = paired_difference([3.0, 4.0, 5.0], [2.0, 3.0, 4.0])
    assert (constant["ci_low"], constant["ci_high"]) == pytest.approx((1.0, 1.0))
    with pytest.raises(ValueError, match="equal lengths"):
        paired_difference([1.0, 2.0], [1.0])
