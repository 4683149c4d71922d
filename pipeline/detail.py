"""How much of the clean image's content a denoiser keeps, by spatial frequency (AAPM TG-233).

The task transfer function measured on the actual content: for a clean image ``c`` and a
method's output ``o`` (each mean-subtracted and Hann-windowed), in a band of radial spatial
frequency ``B``::

    T(B) = sum over B of Re(F(o) * conj(F(c))) / sum over B of |F(c)|^2

Noise left in the output is independent of the clean image, so it adds nothing to the numerator
on average: T is not biased by noise, and a method that smooths keeps less (T < 1). Pooled over
images, the sums are added before dividing (:func:`pooled_transfer`). Beside it, the noise power
spectrum of the residual ``o - c`` shows the texture of what a method leaves in or takes out.

Spectra are kept as radial profiles in bins of :data:`BIN_WIDTH` cycles/pixel (0 to 0.5), so any
band whose edges are multiples of it is a sum of bins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

#: Width of a radial frequency bin, cycles/pixel.
BIN_WIDTH = 0.01
#: Number of radial bins from 0 to the Nyquist frequency 0.5 cycles/pixel.
N_BINS = 50
#: The reported bands (cycles/pixel); the 0.1-0.2 band is the acceptance column.
BANDS: tuple[tuple[float, float], ...] = ((0.02, 0.1), (0.1, 0.2), (0.2, 0.3))
#: The band the acceptance judges.
ACCEPTANCE_BAND = (0.1, 0.2)


def band_name(band: Sequence[float]) -> str:
    """Key of a band in tables and JSON, e.g. ``T_0.1-0.2``."""
    return f"T_{band[0]:g}-{band[1]:g}"


def _windowed_fft(image: np.ndarray) -> np.ndarray:
    """FFT of the mean-subtracted, 2-D Hann-windowed image (float64)."""
    data = np.asarray(image, dtype=np.float64)
    window = np.outer(np.hanning(data.shape[0]), np.hanning(data.shape[1]))
    return np.fft.rfft2((data - data.mean()) * window)


def _radial_bins(shape: tuple[int, int]) -> np.ndarray:
    """Radial frequency bin of each coefficient of an rfft2 of `shape` (-1 beyond Nyquist)."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    bins = np.floor(np.hypot(fy, fx) / BIN_WIDTH).astype(np.int64)
    bins[bins >= N_BINS] = -1
    return bins


def _weights(shape: tuple[int, int]) -> np.ndarray:
    """Weights of rfft2 coefficients: 2 for a coefficient and its mirror image, else 1.

    The first and last column stand for themselves only.
    """
    weights = np.full((shape[0], shape[1] // 2 + 1), 2.0)
    weights[:, 0] = 1.0
    if shape[1] % 2 == 0:
        weights[:, -1] = 1.0
    return weights


def _radial_sum(values: np.ndarray, bins: np.ndarray) -> np.ndarray:
    inside = bins >= 0
    return np.bincount(bins[inside], weights=values[inside], minlength=N_BINS)[:N_BINS]


def transfer_spectra(clean: np.ndarray, output: np.ndarray) -> dict[str, list[float]]:
    """Radial sums for one image: ``cross``, ``clean`` and ``residual``.

    ``cross`` is Re F(o) conj F(c), ``clean`` is |F(c)|^2 and ``residual`` is |F(o - c)|^2.

    Each is a list of :data:`N_BINS` sums; ``count`` is the number of coefficients per bin, so a
    residual power spectrum is ``residual / count`` (normalised by the window's energy).
    """
    if clean.shape != output.shape:
        raise ValueError(f"shapes differ: clean {clean.shape}, output {output.shape}")
    fc, fo = _windowed_fft(clean), _windowed_fft(output)
    fr = _windowed_fft(np.asarray(output, np.float64) - np.asarray(clean, np.float64))
    bins, weights = _radial_bins(clean.shape), _weights(clean.shape)
    window_energy = float(
        np.sum(np.outer(np.hanning(clean.shape[0]), np.hanning(clean.shape[1])) ** 2)
    )
    return {
        "cross": _radial_sum(weights * np.real(fo * np.conj(fc)), bins).tolist(),
        "clean": _radial_sum(weights * np.abs(fc) ** 2, bins).tolist(),
        "residual": (_radial_sum(weights * np.abs(fr) ** 2, bins) / window_energy).tolist(),
        "count": _radial_sum(weights, bins).tolist(),
    }


def pooled_transfer(spectra: Iterable[dict[str, list[float]]]) -> dict[str, np.ndarray]:
    """Pooled T(f) per bin, residual NPS per bin and the bin centres, over several images."""
    cross = clean = residual = count = np.zeros(N_BINS)
    for s in spectra:
        cross = cross + np.asarray(s["cross"])
        clean = clean + np.asarray(s["clean"])
        residual = residual + np.asarray(s["residual"])
        count = count + np.asarray(s["count"])
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "frequency": (np.arange(N_BINS) + 0.5) * BIN_WIDTH,
            "transfer": np.where(clean > 0, cross / clean, np.nan),
            "nps": np.where(count > 0, residual / count, np.nan),
            "cross": cross,
            "clean": clean,
        }


def band_transfer(
    spectra: Iterable[dict[str, list[float]]], bands: Sequence[Sequence[float]] = BANDS
) -> dict[str, float]:
    """Pooled T per band (``band_name`` -> value).

    T is the band's summed cross over its summed clean power.
    """
    pooled = pooled_transfer(spectra)
    out: dict[str, float] = {}
    for band in bands:
        lo, hi = round(band[0] / BIN_WIDTH), round(band[1] / BIN_WIDTH)
        clean = float(pooled["clean"][lo:hi].sum())
        out[band_name(band)] = (
            float(pooled["cross"][lo:hi].sum() / clean) if clean > 0 else float("nan")
        )
    return out


def by_method(
    spectra: dict[tuple[str, str], dict[str, list[float]]],
    images: set[str] | None = None,
) -> dict[str, list[dict[str, list[float]]]]:
    """Method -> its spectra (from :func:`pipeline.evaluate.read_spectra`).

    Only over `images` when given.
    """
    out: dict[str, list[dict[str, list[float]]]] = {}
    for (image, method), s in sorted(spectra.items()):
        if images is None or image in images:
            out.setdefault(method, []).append(s)
    return out


def curves(spectra: list[dict[str, list[float]]]) -> dict[str, list[float | None]]:
    """Pooled frequency, T(f) and residual NPS as JSON-ready lists (None where undefined)."""
    pooled = pooled_transfer(spectra)
    return {
        k: [float(v) if np.isfinite(v) else None for v in pooled[k]]
        for k in ("frequency", "transfer", "nps")
    }
