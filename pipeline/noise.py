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
- ``poisson_gaussian``: X-ray quantum noise plus electronic noise. The image is taken as
  the detector signal; full signal (1.0) corresponds to ``photons`` quanta per pixel at full
  dose, and a ``dose`` fraction scales the count down (a simulated low-dose acquisition of
  the same patient). Counts are Poisson-sampled, Gaussian read noise of ``read_noise``
  counts is added, and the result is scaled back to [0, 1] by the expected full-signal
  count. Lower dose or fewer photons mean relatively more noise.
- ``salt_pepper``: a fraction ``amount`` of pixels replaced by 0 or 1 (dead/hot pixels).
- ``speckle``: multiplicative noise ``x + x * N(0, speckle_sigma)``.
- ``mixed``: per image, gaussian or poisson_gaussian with equal probability (blind
  training over both families).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pipeline.config import NoiseConfig

#: Purposes that get separate noise streams from one seed.
STREAMS = {"train": 1, "val": 2, "test": 3}


def noise_rng(seed: int, stream: str, epoch: int, index: int) -> np.random.Generator:
    """Independent Generator for one image of one epoch of one stream (train/val/test)."""
    return np.random.default_rng([seed, STREAMS[stream], epoch, index])


class NoiseModel(Protocol):
    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...

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
        sigma = self._draw_sigma(rng)
        return _finish(clean + sigma * rng.standard_normal(clean.shape, dtype=np.float32), self.clip)

    def std(self, clean: np.ndarray) -> float:
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
        full = self._draw_count(rng)
        counts = rng.poisson(np.clip(clean, 0.0, None).astype(np.float64) * full)
        counts = counts + self.read_noise * rng.standard_normal(clean.shape)
        return _finish(counts / full, self.clip)

    def std(self, clean: np.ndarray) -> float:
        full = self.photons * self.dose
        if self.photons_min is not None and self.photons_min < self.photons:
            full = np.sqrt(self.photons_min * self.photons) * self.dose  # geometric mean
        variance = (np.clip(clean, 0, None) * full + self.read_noise**2) / full**2
        return float(np.sqrt(np.mean(variance)))


@dataclass(frozen=True)
class SaltPepperNoise:
    """A fraction `amount` of pixels set to 0 or 1 with equal probability."""

    amount: float = 0.05

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noisy = clean.astype(np.float32, copy=True)
        hit = rng.random(clean.shape) < self.amount
        noisy[hit] = (rng.random(int(hit.sum())) < 0.5).astype(np.float32)
        return noisy

    def std(self, clean: np.ndarray) -> float:
        return float(np.sqrt(np.mean(self.amount * (0.5 - clean + clean**2))))


@dataclass(frozen=True)
class SpeckleNoise:
    """Multiplicative noise x + x * N(0, sigma)."""

    sigma: float = 0.1
    clip: bool = True

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return _finish(clean * (1 + self.sigma * rng.standard_normal(clean.shape, dtype=np.float32)), self.clip)

    def std(self, clean: np.ndarray) -> float:
        return float(self.sigma * np.sqrt(np.mean(clean**2)))


@dataclass(frozen=True)
class MixedNoise:
    """Gaussian or Poisson-Gaussian noise, chosen per image with equal probability."""

    gaussian: GaussianNoise
    poisson_gaussian: PoissonGaussianNoise

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        model = self.gaussian if rng.random() < 0.5 else self.poisson_gaussian
        return model(clean, rng)

    def std(self, clean: np.ndarray) -> float:
        return 0.5 * (self.gaussian.std(clean) + self.poisson_gaussian.std(clean))


def make_noise(cfg: NoiseConfig) -> NoiseModel:
    """Build the noise model a config section describes."""
    gaussian = GaussianNoise(cfg.sigma, cfg.sigma_max, cfg.clip)
    poisson = PoissonGaussianNoise(cfg.photons, cfg.dose, cfg.read_noise, cfg.photons_min, cfg.clip)
    models: dict[str, NoiseModel] = {
        "gaussian": gaussian,
        "poisson_gaussian": poisson,
        "salt_pepper": SaltPepperNoise(cfg.amount),
        "speckle": SpeckleNoise(cfg.speckle_sigma, cfg.clip),
        "mixed": MixedNoise(gaussian, poisson),
    }
    return models[cfg.kind]


def add_noise(
    images: list[np.ndarray], noise: NoiseModel, seed: int, stream: str, epoch: int = 0
) -> list[np.ndarray]:
    """Noisy copies of `images`, image i drawn from :func:`noise_rng` (seed, stream, epoch, i)."""
    return [noise(img, noise_rng(seed, stream, epoch, i)) for i, img in enumerate(images)]
