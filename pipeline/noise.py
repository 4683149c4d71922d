"""Noise models: ``noisy = noise(clean, rng)`` with an explicit numpy Generator.

Every model maps a float32 image in [0, 1] (high = bright) to a noisy float32 image.
Randomness comes only from the Generator passed in, so the same seed gives the same noise
in any process. :func:`noise_rng` derives one independent Generator per (seed, purpose,
epoch, image index), which makes noisy sets reproducible without storing them.

Physical meaning
----------------
- ``gaussian``: additive white noise of std ``sigma`` (in [0, 1] units; the tutorial's
  "noise factor" 0.5 is sigma 0.5). With ``sigma_max`` each image draws its own sigma
  uniformly in [sigma, sigma_max], for training blind models.
- ``poisson_gaussian``: quantum plus electronic noise in the *linear* domain. The image is
  taken as the detector signal itself (bright = many photons = relatively little noise), which fits
  a raw photon-counting image, not a displayed radiograph (see ``xray``); full signal (1.0)
  corresponds to ``photons`` quanta per pixel at full dose, and a ``dose`` fraction scales the count
  down (a simulated low-dose acquisition of the same patient). Counts are Poisson-sampled, Gaussian
  read noise of ``read_noise`` counts is added, and the result is scaled back to [0, 1] by the
  expected full-signal count. Lower dose or fewer photons mean relatively more noise.
- ``xray``: low-dose radiography in the log domain, where bright means attenuating (see
  :class:`XrayNoise` for the physics and its sources).
- ``salt_pepper``: a fraction ``amount`` of pixels replaced by 0 or 1 (dead/hot pixels).
- ``speckle``: multiplicative noise ``x + x * N(0, speckle_sigma)``.
- ``mixed``: per image, one of several of the kinds above (gaussian, poisson_gaussian,
  xray), each with probability proportional to its weight (blind training over several
  families).

The config sections that build these models are in :mod:`pipeline.config.noise`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.ndimage import correlate1d

#: Purposes that get separate noise streams from one seed.
STREAMS = {"train": 1, "val": 2, "test": 3}


def noise_rng(seed: int, stream: str, epoch: int, index: int) -> np.random.Generator:
    """Independent Generator for one image of one epoch of one stream (train/val/test)."""
    return np.random.default_rng([seed, STREAMS[stream], epoch, index])


class NoiseModel(Protocol):
    """A noise model: adds noise to a clean image and tells the noise std it adds."""

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A noisy copy of `clean` (float32 in [0, 1]), drawn from `rng`."""

    def std(self, clean: np.ndarray) -> float:
        """Root-mean-square noise std this model adds to `clean` (for sigma-aware baselines)."""
        ...


def _finish(noisy: np.ndarray, clip: bool) -> np.ndarray:
    if clip:
        noisy = np.clip(noisy, 0.0, 1.0)
    return noisy.astype(np.float32, copy=False)


@dataclass(frozen=True)
class GaussianNoise:
    """Additive Gaussian noise; sigma drawn in [sigma, sigma_max] per image when given."""

    sigma: float
    sigma_max: float | None = None
    clip: bool = True

    def _draw_sigma(self, rng: np.random.Generator) -> float:
        if self.sigma_max is None or self.sigma_max <= self.sigma:
            return self.sigma
        return float(rng.uniform(self.sigma, self.sigma_max))

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A noisy copy of `clean`, with sigma drawn per image when there is a range."""
        sigma = self._draw_sigma(rng)
        return _finish(
            clean + sigma * rng.standard_normal(clean.shape, dtype=np.float32), self.clip
        )

    def std(self, clean: np.ndarray) -> float:
        """Sigma, or the middle of its range."""
        if self.sigma_max is None:
            return self.sigma
        return 0.5 * (self.sigma + self.sigma_max)


@dataclass(frozen=True)
class PoissonGaussianNoise:
    """Quantum (Poisson) plus electronic (Gaussian) noise of an X-ray detector."""

    photons: float = 1e4
    dose: float = 1.0
    read_noise: float = 10.0
    photons_min: float | None = None
    clip: bool = True

    def _draw_count(self, rng: np.random.Generator) -> float:
        photons = self.photons
        if self.photons_min is not None and self.photons_min < self.photons:
            photons = float(np.exp(rng.uniform(np.log(self.photons_min), np.log(self.photons))))
        return photons * self.dose

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A noisy copy of `clean`: Poisson counts plus read noise, scaled back to [0, 1]."""
        full = self._draw_count(rng)
        counts = rng.poisson(np.clip(clean, 0.0, None).astype(np.float64) * full)
        counts = counts + self.read_noise * rng.standard_normal(clean.shape)
        return _finish(counts / full, self.clip)

    def std(self, clean: np.ndarray) -> float:
        """Root-mean-square std of the counts' noise over `clean`, in [0, 1] units."""
        full = self.photons * self.dose
        if self.photons_min is not None and self.photons_min < self.photons:
            full = np.sqrt(self.photons_min * self.photons) * self.dose  # geometric mean
        variance = (np.clip(clean, 0, None) * full + self.read_noise**2) / full**2
        return float(np.sqrt(np.mean(variance)))


#: Counts at or below this are read as this (a ray absorbed completely), so the log is finite.
XRAY_MIN_COUNT = 0.5

#: Gauss-Hermite nodes for the expected squared error of the log transform (std and psd).
_HERMITE_NODES = 48


def detector_kernel_1d(a: float) -> np.ndarray:
    """The [a, 1, a] kernel scaled to unit energy (sum of squares 1)."""
    k = np.array([a, 1.0, a])
    return k / np.sqrt(np.sum(k**2))


def neighbour_correlation(a: float) -> float:
    """Lag-1 correlation of noise filtered by :func:`detector_kernel_1d` (a).

    The correlation of each pixel with its next pixel along that axis.
    """
    k = detector_kernel_1d(a)
    return float(np.sum(k[:-1] * k[1:]))


@dataclass(frozen=True)
class XrayNoise:
    """Low-dose radiograph noise: pre-log Poisson quanta, detector blur, read noise, log.

    Physics. A displayed radiograph (MONOCHROME2, bright = attenuating) shows line integrals
    of attenuation, so a display value ``p`` in [0, 1] is taken as one: the transmission is
    ``T = exp(-mu * p)`` (``mu`` 3 spans a 20:1 range of transmitted intensity). A ray that
    crosses nothing delivers ``photons`` quanta (N0) per pixel at full dose, so the expected
    count is ``lambda = N0 * dose * T``: bone and mediastinum (bright) get the fewest photons
    and the most noise. Quantum noise ``Poisson(lambda) - lambda`` is spread over
    neighbouring pixels by the scintillator, modelled as a separable 3x3 kernel built from
    ``[a, 1, a]`` with unit energy (variance kept, neighbours correlated; ``kernel_a`` per
    axis for anisotropic detectors). Electronic noise of ``read_noise`` counts is white and
    added after. The noisy counts go back to display values with the log,
    ``p' = -ln(max(counts, eps) / (N0 * dose)) / mu``, clipped to [0, 1]. The per-pixel
    variance is about ``(lambda + read_noise**2) / (mu * lambda)**2``.

    Sources. Pre-log Poisson plus electronic Gaussian noise is the usual low-dose
    simulation (Zeng et al. 2015, "A simple low-dose x-ray CT simulation from high-dose scan",
    IEEE TNS); DeepDRR (Unberath et al. 2018) adds Poisson noise to simulated radiographs and
    correlates it by the detector's response; Veldkamp et al. 2009 (Med. Phys., "A technique
    for simulating the effect of dose reduction on image quality in digital chest
    radiography") measure and reproduce the correlated (coloured) noise of chest detectors.
    Published tools use about 10^3 to 10^4 photons per pixel at full dose.

    deepinv's ``LogPoissonNoise`` has the uncorrelated core (``-log(Poisson(N0 e^(-mu x))/N0)/mu``)
    but is not used: it has no detector correlation, read noise, dose or floor on the count
    (a zero count gives infinity), draws from a torch Generator instead of the numpy one
    every model here takes, and installing deepinv needs torchvision, which would replace
    this environment's torch.

    Blind training: with ``dose_max`` each call draws the dose log-uniformly in
    [dose, dose_max]; with ``kernel_a_max`` each axis's a uniformly in [kernel_a, kernel_a_max].
    """

    photons: float = 2000.0
    dose: float = 1.0
    read_noise: float = 3.0
    mu: float = 3.0
    kernel_a: tuple[float, float] = (0.3, 0.3)
    dose_max: float | None = None
    kernel_a_max: tuple[float, float] | None = None
    clip: bool = True

    def _draw(self, rng: np.random.Generator) -> tuple[float, tuple[float, float]]:
        dose = self.dose
        if self.dose_max is not None and self.dose_max > self.dose:
            dose = float(np.exp(rng.uniform(np.log(self.dose), np.log(self.dose_max))))
        a = self.kernel_a
        if self.kernel_a_max is not None:
            a = (
                float(rng.uniform(a[0], self.kernel_a_max[0])),
                float(rng.uniform(a[1], self.kernel_a_max[1])),
            )
        return dose, a

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A noisy copy of `clean` in the display (log) domain."""
        dose, (a_rows, a_cols) = self._draw(rng)
        full = self.photons * dose
        expected = full * np.exp(-self.mu * np.clip(clean, 0.0, 1.0).astype(np.float64))
        quanta = rng.poisson(expected) - expected
        if clean.ndim >= 2:
            quanta = correlate1d(quanta, detector_kernel_1d(a_rows), axis=-2, mode="reflect")
        quanta = correlate1d(quanta, detector_kernel_1d(a_cols), axis=-1, mode="reflect")
        counts = expected + quanta + self.read_noise * rng.standard_normal(clean.shape)
        display = -np.log(np.maximum(counts, XRAY_MIN_COUNT) / full) / self.mu
        return _finish(display, self.clip)

    def _nominal(self) -> tuple[float, tuple[float, float]]:
        """Dose and kernel a for std/psd.

        The geometric-mean dose and mid-range a of a blind model.
        """
        dose = self.dose if self.dose_max is None else float(np.sqrt(self.dose * self.dose_max))
        a = self.kernel_a
        if self.kernel_a_max is not None:
            a = (0.5 * (a[0] + self.kernel_a_max[0]), 0.5 * (a[1] + self.kernel_a_max[1]))
        return dose, a

    def _error_parts(self, clean: np.ndarray, dose: float) -> tuple[float, float]:
        """Mean squared display error split into its quantum and read-noise parts.

        Per pixel, counts are taken as Gaussian with the Poisson mean and the Poisson plus
        read variance, pushed through the log, floor and clip by Gauss-Hermite quadrature
        (exact for the transform, second order for the count distribution). The quantum
        share of each pixel's error is lambda / (lambda + read_noise**2).
        """
        full = self.photons * dose
        p = np.clip(np.asarray(clean, np.float64), 0.0, 1.0)
        levels, inverse = np.unique(np.round(p, 4), return_inverse=True)
        lam = full * np.exp(-self.mu * levels)
        x, w = np.polynomial.hermite_e.hermegauss(_HERMITE_NODES)
        counts = lam[:, None] + np.sqrt(lam + self.read_noise**2)[:, None] * x[None, :]
        display = -np.log(np.maximum(counts, XRAY_MIN_COUNT) / full) / self.mu
        if self.clip:
            display = np.clip(display, 0.0, 1.0)
        error = ((display - levels[:, None]) ** 2) @ (w / w.sum())
        share = lam / (lam + self.read_noise**2)
        per_pixel = error[inverse.reshape(p.shape)]
        quantum = share[inverse.reshape(p.shape)] * per_pixel
        return float(np.mean(quantum)), float(np.mean(per_pixel - quantum))

    def std(self, clean: np.ndarray) -> float:
        """True RMS of (noisy - clean) over the image (at the nominal dose of a blind model)."""
        quantum, read = self._error_parts(clean, self._nominal()[0])
        return float(np.sqrt(quantum + read))

    def psd(self, clean: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Stationary noise power spectrum of this noise on `clean`, for BM3D's ``sigma_psd``.

        The (H, W) array of E|FFT2(noise)|^2 (unnormalised FFT, the ``bm3d`` package's
        convention, where white noise of std s has s^2 * H * W everywhere): the quantum part
        has the detector kernel's shape, the read-noise part is flat, and together they hold
        the image's mean squared noise (:meth:`std` squared).
        """
        dose, (a_rows, a_cols) = self._nominal()
        quantum, read = self._error_parts(clean, dose)
        rows = _kernel_response(a_rows, shape[0])
        cols = _kernel_response(a_cols, shape[1])
        return (shape[0] * shape[1] * (quantum * np.outer(rows, cols) + read)).astype(np.float64)


def _kernel_response(a: float, n: int) -> np.ndarray:
    """|DFT|^2 of the unit-energy [a, 1, a] kernel at the n frequencies of an n-point FFT.

    Its mean is 1.
    """
    k = detector_kernel_1d(a)
    f = np.fft.fftfreq(n)
    return (k[1] + 2 * k[0] * np.cos(2 * np.pi * f)) ** 2


@dataclass(frozen=True)
class SaltPepperNoise:
    """A fraction `amount` of pixels set to 0 or 1 with equal probability."""

    amount: float = 0.05

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A copy of `clean` with a fraction ``amount`` of pixels set to 0 or 1."""
        noisy = clean.astype(np.float32, copy=True)
        hit = rng.random(clean.shape) < self.amount
        noisy[hit] = (rng.random(int(hit.sum())) < 0.5).astype(np.float32)
        return noisy

    def std(self, clean: np.ndarray) -> float:
        """Root-mean-square std that the replaced pixels add to `clean`."""
        return float(np.sqrt(np.mean(self.amount * (0.5 - clean + clean**2))))


@dataclass(frozen=True)
class SpeckleNoise:
    """Multiplicative noise x + x * N(0, sigma)."""

    sigma: float = 0.1
    clip: bool = True

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A noisy copy of `clean`: x + x * N(0, sigma)."""
        return _finish(
            clean * (1 + self.sigma * rng.standard_normal(clean.shape, dtype=np.float32)), self.clip
        )

    def std(self, clean: np.ndarray) -> float:
        """Root-mean-square std of the multiplicative noise over `clean`."""
        return float(self.sigma * np.sqrt(np.mean(clean**2)))


@dataclass(frozen=True)
class MixedNoise:
    """One of several noise models, chosen per image with probability proportional to its weight.

    One uniform draw ``r`` picks the model whose share of the cumulated weights holds
    ``r * sum(weights)``; equal weights (the default) give each model the same chance.
    """

    models: tuple[NoiseModel, ...]
    weights: tuple[float, ...] | None = None

    def _weights(self) -> np.ndarray:
        return (
            np.ones(len(self.models)) if self.weights is None else np.asarray(self.weights, float)
        )

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A noisy copy of `clean` from one model, drawn by weight."""
        weights = self._weights()
        drawn = rng.random() * float(weights.sum())
        index = min(
            int(np.searchsorted(np.cumsum(weights), drawn, side="right")), len(self.models) - 1
        )
        return self.models[index](clean, rng)

    def std(self, clean: np.ndarray) -> float:
        """Weighted mean of the models' stds."""
        weights = self._weights()
        return float(np.sum(weights * [m.std(clean) for m in self.models]) / weights.sum())


class NoiseSettings(Protocol):
    """What :func:`make_noise` takes: a noise config section (:mod:`pipeline.config.noise`)."""

    def build(self) -> NoiseModel:
        """The noise model of this section."""


def make_noise(cfg: NoiseSettings) -> NoiseModel:
    """Build the noise model a config section describes (its own ``build``)."""
    return cfg.build()


def add_noise(
    images: list[np.ndarray], noise: NoiseModel, seed: int, stream: str, epoch: int = 0
) -> list[np.ndarray]:
    """Noisy copies of `images`, image i drawn from :func:`noise_rng` (seed, stream, epoch, i)."""
    return [noise(img, noise_rng(seed, stream, epoch, i)) for i, img in enumerate(images)]
