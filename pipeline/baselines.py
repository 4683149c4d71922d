"""Classical denoisers behind one interface, for comparison with the learned models.

``make_baseline(name, sigma)`` returns a :class:`Baseline`, a
:class:`~pipeline.denoiser.Denoiser` like the trained models: it maps a float32 (H, W)
image in [0, 1] to a float32 (H, W) image in [0, 1].

``sigma`` is the Gaussian noise std in [0, 1] units: fixed when the baseline is made, else
offered per call (``baseline(image, sigma=...)``) and used by those that take it
(:data:`TAKES`: ``bm3d`` and ``tv``; the others estimate it, as their parameters were
chosen with it estimated), else estimated per image with
:func:`pipeline.metrics.estimate_noise_sigma` (which underestimates strong, clipped noise).

Parameter choices (checked on MNIST digits, a camera crop and a smooth synthetic image at
sigma 0.05-0.5, with estimated sigma):

- ``bm3d``: the ``bm3d`` package, default profile, both stages, ``sigma_psd = sigma``; for
  correlated noise ``make_baseline("bm3d", psd=...)`` gives it the noise power spectrum
  instead (an (H, W) array in the package's convention, e.g. from ``XrayNoise.psd``).
- ``nlm``: fast-mode non-local means, 5x5 patches searched within 6 pixels,
  ``sigma = sigma`` (subtracted from patch distances) and ``h = 0.8 * sigma``; within
  0.5 dB of the best factor in 0.4-1.2 in every case tried.
- ``tv``: Chambolle total variation with ``weight = 0.7 * sigma`` (best or near-best
  factor in 0.3-1.5; gives 0.35 at sigma 0.5, near the 0.3 tuned for MNIST).
- ``wavelet``: BayesShrink soft thresholding (``db1``, default levels); ``sigma`` passed
  through, or estimated by scikit-image when None.
- ``median``: 3x3 median filter with reflected borders; ``sigma`` is not used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy.ndimage import median_filter
from skimage.restoration import denoise_nl_means, denoise_tv_chambolle, denoise_wavelet

from pipeline.denoiser import Kind, NoiseFact
from pipeline.errors import require
from pipeline.metrics import estimate_noise_sigma

BASELINES: tuple[str, ...] = ("bm3d", "nlm", "tv", "wavelet", "median")

NLM_H_FACTOR = 0.8
NLM_PATCH_SIZE = 5
NLM_PATCH_DISTANCE = 6
TV_WEIGHT_FACTOR = 0.7

#: The noise facts each baseline uses when a caller offers them (preferred first).
TAKES: dict[str, tuple[NoiseFact, ...]] = {"bm3d": ("psd", "sigma"), "tv": ("sigma",)}

SigmaFn = Callable[[np.ndarray, "float | None"], np.ndarray]
PsdFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Baseline:
    """A classical denoiser (a :class:`~pipeline.denoiser.Denoiser`).

    It takes and returns float32 (H, W) in [0, 1].

    Attributes
    ----------
    name : the method's name in tables (e.g. ``"bm3d"``).
    fn : ``fn(image, sigma) -> array``; ``sigma`` may be None (estimate it or ignore it).
    sigma : noise std in [0, 1] units always given to ``fn``; None: the one offered per
        call when ``"sigma"`` is in `takes`, else estimated per image.
    psd_fn : ``psd_fn(image, psd) -> array`` for correlated noise, used when a PSD is
        offered and ``"psd"`` is in `takes`.
    psd : a noise power spectrum always given to ``psd_fn``.
    takes : the noise facts used when offered per call.
    """

    name: str
    fn: SigmaFn
    sigma: float | None = None
    psd_fn: PsdFn | None = None
    psd: np.ndarray | None = None
    takes: tuple[NoiseFact, ...] = ()
    kind: Kind = "baseline"

    def __call__(
        self, image: np.ndarray, *, sigma: float | None = None, psd: np.ndarray | None = None
    ) -> np.ndarray:
        """Denoise `image`; `sigma` and `psd` are used when :attr:`takes` names them."""
        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 2:
            raise ValueError(f"{self.name}: expected a 2-D (H, W) image; got shape {image.shape}")
        psd = self.psd if self.psd is not None else psd if "psd" in self.takes else None
        if psd is not None and self.psd_fn is not None:
            out = self.psd_fn(image, psd)
        else:
            out = self.fn(
                image,
                self.sigma if self.sigma is not None else sigma if "sigma" in self.takes else None,
            )
        return np.clip(np.asarray(out).reshape(image.shape), 0.0, 1.0).astype(
            np.float32, copy=False
        )


def _with_sigma(fn: Callable[[np.ndarray, float], np.ndarray]) -> SigmaFn:
    """Resolve a None sigma to an estimate; return the input unchanged when sigma is 0."""

    def run(image: np.ndarray, sigma: float | None) -> np.ndarray:
        sigma = estimate_noise_sigma(image) if sigma is None else sigma
        return image.copy() if sigma <= 0 else fn(image, sigma)

    return run


def _nlm(image: np.ndarray, sigma: float) -> np.ndarray:
    return denoise_nl_means(
        image,
        h=NLM_H_FACTOR * sigma,
        sigma=sigma,
        fast_mode=True,
        patch_size=NLM_PATCH_SIZE,
        patch_distance=NLM_PATCH_DISTANCE,
        channel_axis=None,
    )


def _tv(image: np.ndarray, sigma: float) -> np.ndarray:
    return denoise_tv_chambolle(image, weight=TV_WEIGHT_FACTOR * sigma, channel_axis=None)


def _wavelet(image: np.ndarray, sigma: float | None) -> np.ndarray:
    return denoise_wavelet(
        image, sigma=sigma, method="BayesShrink", mode="soft", rescale_sigma=True, channel_axis=None
    )


def _median(image: np.ndarray, sigma: float | None) -> np.ndarray:
    return median_filter(image, size=3, mode="reflect")


def _bm3d(module, image: np.ndarray, sigma: float) -> np.ndarray:
    return module.bm3d(image, sigma_psd=sigma)


def _bm3d_psd(module, image: np.ndarray, psd: np.ndarray) -> np.ndarray:
    psd = np.asarray(psd, dtype=np.float64)
    if psd.shape != image.shape:
        raise ValueError(
            f"bm3d: the noise PSD has shape {psd.shape}, the image {image.shape}; they must match"
        )
    return module.bm3d(image, sigma_psd=psd)


def _bm3d_module():
    """The bm3d package, with numpy's removed ``trapz`` restored for its coloured-noise path."""
    module = require("bm3d", "bm3d", "the BM3D baseline")
    if not hasattr(np, "trapz"):
        # numpy 2.4 removed np.trapz; bm4d (used by bm3d) still calls it when given a noise PSD.
        # np.trapezoid is the same function under its new name.
        np.trapz = np.trapezoid  # type: ignore[attr-defined]
    return module


def make_baseline(name: str, sigma: float | None = None, psd: np.ndarray | None = None) -> Baseline:
    """A classical denoiser by name (one of :data:`BASELINES`).

    Parameters
    ----------
    name : ``"bm3d"``, ``"nlm"``, ``"tv"``, ``"wavelet"`` or ``"median"``.
    sigma : noise std in [0, 1] units; None: estimated from each image.
    psd : bm3d only: the (H, W) noise power spectrum of correlated noise (E|FFT2(noise)|^2,
        unnormalised FFT), used instead of sigma; the image must have the same shape.

    Raises
    ------
    ValueError : unknown name, negative sigma, or a PSD for another baseline than bm3d.
    MissingDependencyError : ``bm3d`` requested but the package is not installed.
    """
    if sigma is not None and not sigma >= 0:
        raise ValueError(f"sigma must be >= 0 (or None to estimate it); got {sigma!r}")
    if psd is not None and name != "bm3d":
        raise ValueError(f"only bm3d takes a noise PSD, not {name}")
    psd_fn: PsdFn | None = None
    if name == "bm3d":
        module = _bm3d_module()
        fn: SigmaFn = _with_sigma(partial(_bm3d, module))
        psd_fn = partial(_bm3d_psd, module)
    elif name == "nlm":
        fn = _with_sigma(_nlm)
    elif name == "tv":
        fn = _with_sigma(_tv)
    elif name == "wavelet":
        fn = _wavelet
    elif name == "median":
        fn = _median
    else:
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    return Baseline(
        name=name,
        fn=fn,
        sigma=None if sigma is None else float(sigma),
        psd_fn=psd_fn,
        psd=psd,
        takes=TAKES.get(name, ()),
    )
