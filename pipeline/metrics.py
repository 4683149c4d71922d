"""Image quality metrics, noise estimates and small statistics.

PSNR, SSIM, the fine-detail filter of training's detail penalty, no-reference noise estimates and
small statistics.

PSNR and SSIM wrap :mod:`skimage.metrics` with the default window settings, so numbers
agree with scikit-image exactly. ``data_range`` is always explicit: a 12-bit image stored
as uint16 has range 4095, not 65535 (see :func:`data_range_for`), and pipeline images
(float32 in [0, 1]) have range 1.0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.restoration import estimate_sigma

CONFIDENCE = 0.95


def _check_pair(
    clean: np.ndarray, test: np.ndarray, data_range: float
) -> tuple[np.ndarray, np.ndarray]:
    clean, test = np.asarray(clean), np.asarray(test)
    if clean.ndim != 2 or clean.shape != test.shape:
        raise ValueError(
            f"metrics take two 2-D arrays of the same shape; got {clean.shape} and {test.shape}"
        )
    if not (math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive finite number; got {data_range!r}")
    return clean, test


def psnr(clean: np.ndarray, test: np.ndarray, *, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` when the arrays are identical).

    Parameters
    ----------
    clean, test : 2-D arrays of the same shape.
    data_range : max minus min of the possible values (1.0 for pipeline images); required.
    """
    clean, test = _check_pair(clean, test, data_range)
    with np.errstate(divide="ignore"):  # identical arrays: inf, without a warning
        return float(peak_signal_noise_ratio(clean, test, data_range=data_range))


def ssim(clean: np.ndarray, test: np.ndarray, *, data_range: float) -> float:
    """Mean structural similarity (scikit-image defaults: 7x7 uniform window).

    Parameters
    ----------
    clean, test : 2-D arrays of the same shape, each side at least 7 pixels.
    data_range : max minus min of the possible values (1.0 for pipeline images); required.
    """
    clean, test = _check_pair(clean, test, data_range)
    return float(structural_similarity(clean, test, data_range=data_range))


#: Scale (pixels) of the Laplacian of Gaussian that defines "fine detail" for
#: ``train.detail_weight``.
DETAIL_SIGMA = 1.0


def detail_highpass(clean: np.ndarray, sigma: float = DETAIL_SIGMA) -> np.ndarray:
    """The clean image's fine detail: its Laplacian of Gaussian at scale `sigma` (float64)."""
    from scipy.ndimage import gaussian_laplace

    return gaussian_laplace(np.asarray(clean, dtype=np.float64), sigma)


def data_range_for(dtype: str, bits_stored: int | None = None) -> float:
    """The data range of stored values: ``2**bits - 1`` for integers, 1.0 for floats.

    Parameters
    ----------
    dtype : numpy dtype name of the stored values (``"uint16"``, ``"uint8"``, ``"float32"``).
    bits_stored : significant bits (12 for 12-bit DICOM in uint16); None: the dtype's width.

    Examples
    --------
    >>> data_range_for("uint16", 12)
    4095.0
    """
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return 1.0
    if dt.kind not in "ui":
        raise ValueError(f"no data range for dtype {dtype!r} (expected an integer or float type)")
    width = np.iinfo(dt).bits
    bits = width if bits_stored is None else int(bits_stored)
    if not 1 <= bits <= width:
        raise ValueError(f"bits_stored must be in 1..{width} for {dtype}; got {bits_stored!r}")
    return float(2**bits - 1)


def estimate_noise_sigma(image: np.ndarray) -> float:
    """No-reference estimate of the Gaussian noise std, in the image's units.

    Uses the wavelet-domain median absolute deviation of
    :func:`skimage.restoration.estimate_sigma` (Donoho & Johnstone). Clipping at 0 and 1
    makes it underestimate strong noise.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"estimate_noise_sigma takes a 2-D array; got shape {image.shape}")
    return float(estimate_sigma(image, channel_axis=None))


def summarize(values: Sequence[float] | np.ndarray) -> dict[str, float | int]:
    """Mean, sample std and the 95% confidence interval of the mean (t distribution).

    Returns
    -------
    dict with ``mean``, ``std`` (ddof=1), ``ci_low``, ``ci_high`` and ``n``; statistics that
    are undefined (no values; std and CI of one value) are NaN.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    n = int(x.size)
    nan = float("nan")
    mean = float(x.mean()) if n else nan
    if n < 2:
        return {"mean": mean, "std": nan, "ci_low": nan, "ci_high": nan, "n": n}
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "n": n}


def paired_difference(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
) -> dict[str, float | int]:
    """Mean of ``a - b`` over paired values, with its 95% CI (see :func:`summarize`)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired values need equal lengths; got {a.size} and {b.size}")
    return summarize(a - b)
