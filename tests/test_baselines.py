"""Classical baselines: one interface, each improves a noisy smooth image."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from pipeline.baselines import BASELINES, Baseline, make_baseline
from pipeline.denoiser import Denoiser
from pipeline.errors import MissingDependencyError
from pipeline.metrics import psnr


@pytest.fixture
def noisy_pair(smooth_image, rng):
    clean = smooth_image[8:56, :48]  # 48x48 with a smooth blob and an edge
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    return clean, noisy


def test_names_match_the_config():
    assert BASELINES == ("bm3d", "nlm", "tv", "wavelet", "median")


@pytest.mark.parametrize("sigma", [0.1, None])
@pytest.mark.parametrize("name", BASELINES)
def test_baseline_improves_psnr(name, sigma, noisy_pair):
    clean, noisy = noisy_pair
    method = make_baseline(name, sigma=sigma)
    assert isinstance(method, Baseline) and isinstance(method, Denoiser) and method.name == name
    out = method(noisy)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert psnr(clean, out, data_range=1.0) > psnr(clean, noisy, data_range=1.0) + 2.0


def test_bm3d_tiny_image(rng):
    noisy = np.clip(0.5 + rng.normal(0, 0.1, (16, 16)), 0, 1).astype(np.float32)
    out = make_baseline("bm3d", sigma=0.1)(noisy)
    assert out.shape == (16, 16) and out.dtype == np.float32
    assert np.std(out) < np.std(noisy)


def test_unknown_name_lists_allowed():
    with pytest.raises(ValueError) as err:
        make_baseline("gauss")
    assert all(name in str(err.value) for name in BASELINES)


def test_bad_input():
    with pytest.raises(ValueError, match="sigma"):
        make_baseline("tv", sigma=-0.1)
    with pytest.raises(ValueError, match="2-D"):
        make_baseline("median")(np.zeros((2, 8, 8), np.float32))


def test_zero_sigma_leaves_image(noisy_pair):
    _, noisy = noisy_pair
    np.testing.assert_array_equal(make_baseline("nlm", sigma=0.0)(noisy), noisy)


def test_missing_bm3d_names_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # makes `import bm3d` fail
    with pytest.raises(MissingDependencyError, match="pip install bm3d"):
        make_baseline("bm3d", sigma=0.1)


def test_bm3d_given_the_psd_beats_bm3d_given_sigma_on_correlated_noise(smooth_image):
    from pipeline.config import XrayNoiseConfig
    from pipeline.noise import make_noise

    noise = make_noise(XrayNoiseConfig(dose=0.1, kernel_a=0.4))
    noisy = noise(smooth_image, np.random.default_rng(0))
    with_sigma = make_baseline("bm3d", sigma=noise.std(smooth_image))(noisy)
    with_psd = make_baseline("bm3d", psd=noise.psd(smooth_image, smooth_image.shape))(noisy)
    assert with_psd.shape == smooth_image.shape and with_psd.dtype == np.float32
    assert (
        psnr(smooth_image, with_psd, data_range=1.0)
        > psnr(smooth_image, with_sigma, data_range=1.0) + 1.0
    )


def test_psd_only_for_bm3d_and_of_the_images_shape(noisy_pair):
    _, noisy = noisy_pair
    with pytest.raises(ValueError, match="only bm3d"):
        make_baseline("tv", psd=np.ones((4, 4)))
    with pytest.raises(ValueError, match="shape"):
        make_baseline("bm3d", psd=np.ones((4, 4)))(noisy)
