"""Fit a noise model to a user's noisy scans, without a clean image: ``xray`` or white ``gaussian``.

What a denoiser removes from a scan, ``removed = noisy - denoise(noisy)``, carries the
scan's noise as that denoiser sees it. Its statistics are measured per band of display
value (bands of the denoised image, so bright, photon-starved anatomy and dark lung are
compared with themselves): the log variance, and the correlation of neighbouring pixels
along rows and along columns (the detector's spread of light, diluted by white read noise
where few quanta arrive). The same statistics are then computed for noise simulated by
the ``xray`` model (:class:`pipeline.noise.XrayNoise`) on the denoised scans and removed by
the same denoiser, and the simulation's parameters (quanta per unattenuated pixel
``photons * dose``, the detector kernel's ``a`` per axis, the read noise) are moved by
Nelder-Mead until the two agree. Passing both through the denoiser compares like with like:
noise the denoiser leaves in place is left in place in the simulation too. Each evaluation
draws the same random numbers (common random numbers), so the objective changes smoothly
with the parameters.

``mu`` (the display-to-attenuation scale) is not identifiable from noise alone and is kept
from the starting model's config, as is ``photons`` unless the fitted quanta exceed it.

The ``xray`` model cannot describe noise whose level does not depend on brightness (after
the log its variance grows with the display value, and at few quanta the log also shifts
bright values), so white ``gaussian`` noise (one parameter, sigma) is fitted the same way
and the family with the smaller mismatch is kept; both mismatches are recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.config import GaussianNoiseConfig, NoiseSection, XrayNoiseConfig
from pipeline.image import center_crop
from pipeline.noise import make_noise

#: Side of the central crop of each scan the fit runs on.
FIT_CROP = 384
#: Scans used for the fit (the first ones given).
FIT_SCANS = 8
#: Display-value bands (of the denoised image) the statistics are computed in.
BANDS = np.linspace(0.0, 1.0, 9)
#: Least pixels of a band for its statistics to count.
MIN_BAND_PIXELS = 2000
#: Weight of the correlation terms against the log-variance terms in the mismatch.
CORRELATION_WEIGHT = 10.0
#: Nelder-Mead evaluations at most.
MAX_EVALUATIONS = 160
#: Bounds of the fitted parameters: quanta per unattenuated pixel, kernel a, read noise (counts).
QUANTA_RANGE = (1.0, 1e6)
KERNEL_RANGE = (0.0, 0.95)
READ_NOISE_RANGE = (0.01, 100.0)
#: Bounds of the white gaussian alternative's sigma (display units).
SIGMA_RANGE = (1e-4, 0.5)

Denoise = Callable[[np.ndarray], np.ndarray]
log = logging.getLogger(__name__)


@dataclass
class NoiseFit:
    """The fitted noise section and how well it matches."""

    noise: NoiseSection
    mismatch: float
    alternatives: dict[str, float]
    start_mismatch: float
    evaluations: int
    observed: dict[str, list[float]] = field(default_factory=dict)
    simulated: dict[str, list[float]] = field(default_factory=dict)
    stopped_at_deadline: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The fit as JSON-ready values."""
        return {
            "noise": self.noise.model_dump(mode="json", exclude_none=True),
            "mismatch": self.mismatch,
            "mismatch_by_family": self.alternatives,
            "start_mismatch": self.start_mismatch,
            "evaluations": self.evaluations,
            "stopped_at_deadline": self.stopped_at_deadline,
            "observed": self.observed,
            "simulated": self.simulated,
        }


def removed_statistics(
    removed: Sequence[np.ndarray], reference: Sequence[np.ndarray]
) -> dict[str, list[float]]:
    """Per display band of `reference`: statistics of `removed`.

    They are its log variance and its lag-1 correlation along rows and columns.

    Bands with fewer than :data:`MIN_BAND_PIXELS` pixels are NaN.
    """
    stats: dict[str, list[float]] = {"log_variance": [], "rows": [], "columns": []}
    bands = [np.digitize(ref, BANDS[1:-1]) for ref in reference]
    centred = [r - r.mean() for r in removed]
    for band in range(len(BANDS) - 1):
        inside = [b == band for b in bands]
        values = np.concatenate([r[m] for r, m in zip(centred, inside)])
        if values.size < MIN_BAND_PIXELS:
            stats["log_variance"].append(float("nan"))
            stats["rows"].append(float("nan"))
            stats["columns"].append(float("nan"))
            continue
        variance = float(np.mean(values**2))
        stats["log_variance"].append(float(np.log(max(variance, 1e-20))))
        for key, axis in (("rows", 0), ("columns", 1)):
            products = [
                (r.take(range(r.shape[axis] - 1), axis) * r.take(range(1, r.shape[axis]), axis))[
                    m.take(range(m.shape[axis] - 1), axis)
                ]
                for r, m in zip(centred, inside)
            ]
            stats[key].append(float(np.mean(np.concatenate(products)) / max(variance, 1e-20)))
    return stats


def mismatch(a: dict[str, list[float]], b: dict[str, list[float]]) -> float:
    """How far simulated statistics are from the observed ones.

    The mean squared difference of the log variances plus weighted mean squared differences
    of the correlations.
    """
    total = 0.0
    for key, weight in (
        ("log_variance", 1.0),
        ("rows", CORRELATION_WEIGHT),
        ("columns", CORRELATION_WEIGHT),
    ):
        x, y = np.asarray(a[key]), np.asarray(b[key])
        both = np.isfinite(x) & np.isfinite(y)
        total += weight * float(np.mean((x[both] - y[both]) ** 2)) if both.any() else 0.0
    return total


def _noise_config(theta: np.ndarray, base: XrayNoiseConfig) -> XrayNoiseConfig:
    """Parameters (log quanta, a rows, a columns, log read noise) as an xray noise section."""
    photons = float(base.photons)
    quanta = float(np.clip(np.exp(theta[0]), *QUANTA_RANGE))
    a = [round(float(np.clip(v, *KERNEL_RANGE)), 4) for v in theta[1:3]]
    read = float(np.clip(np.exp(theta[3]), *READ_NOISE_RANGE))
    return XrayNoiseConfig(
        photons=max(photons, quanta),
        dose=min(quanta / photons, 1.0),
        read_noise=round(read, 4),
        mu=base.mu,
        kernel_a=a,
    )


def _start(base: XrayNoiseConfig) -> np.ndarray:
    """Starting parameters: the middle of the base section's ranges.

    The section's values where it has no range.
    """
    dose = float(np.sqrt(base.dose * base.dose_max)) if base.dose_max else base.dose
    a = base.kernel_a
    a_rows, a_cols = (a, a) if isinstance(a, (int, float)) else (a[0], a[-1])
    read = float(base.read_noise) if base.read_noise else 3.0
    return np.array([np.log(base.photons * dose), a_rows, a_cols, np.log(read)], dtype=float)


class _OutOfTime(Exception):
    """The fit's deadline passed: the best parameters evaluated so far are used."""


def fit_noise(
    scans: Sequence[np.ndarray],
    denoise: Denoise,
    base: NoiseSection,
    seed: int = 0,
    deadline: float | None = None,
) -> NoiseFit:
    """Fit xray and white gaussian noise to `scans` through `denoise`; the better fit.

    The scans hold display values in [0, 1]. See the module docstring. `base` (through its
    :meth:`~pipeline.config.NoiseSection.fit_start`) gives ``photons`` and ``mu`` (kept) and
    the xray starting point. `deadline` (a :func:`time.perf_counter` value) ends the search: no
    evaluation starts after it, and the best parameters evaluated by then are kept (the
    starting values when none was; ``stopped_at_deadline`` in the result says so).
    """
    noisy = [
        np.ascontiguousarray(center_crop(s, FIT_CROP), dtype=np.float32) for s in scans[:FIT_SCANS]
    ]
    denoised = [denoise(n) for n in noisy]
    observed = removed_statistics([n - d for n, d in zip(noisy, denoised)], denoised)
    base = base.fit_start()
    start = _start(base)
    if not np.isfinite(observed["log_variance"]).any():
        log.warning(
            "the scans have fewer than %d pixels in every display band: too few to fit the noise; "
            "the starting values are used",
            MIN_BAND_PIXELS,
        )
        return NoiseFit(_noise_config(start, base), float("nan"), {}, float("nan"), 0, observed, {})

    search = _Search(denoise, denoised, observed, seed, deadline)
    return _best_fit(search, start, base, _minimise(search, start, base))


class _Search:
    """The fit's state: the denoised crops, the observed statistics, every parameter tried."""

    def __init__(
        self,
        denoise: Denoise,
        denoised: list[np.ndarray],
        observed: dict[str, list[float]],
        seed: int,
        deadline: float | None,
    ) -> None:
        self.denoise, self.denoised, self.observed = denoise, denoised, observed
        self.seed, self.deadline = seed, deadline
        self.tried: dict[str, list[tuple[float, NoiseSection]]] = {"gaussian": [], "xray": []}

    def simulate(self, cfg: NoiseSection) -> dict[str, list[float]]:
        """Statistics of what `denoise` removes from the denoised crops with `cfg`'s noise."""
        model = make_noise(cfg)
        removed = []
        for index, clean in enumerate(self.denoised):
            sample = model(clean, np.random.default_rng([self.seed, 9, index])).astype(np.float32)
            removed.append(sample - self.denoise(sample))
        return removed_statistics(removed, self.denoised)

    def evaluate(self, family: str, cfg: NoiseSection) -> float:
        """The mismatch of `cfg` (recorded under `family`).

        Raises :class:`_OutOfTime` after the deadline.
        """
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise _OutOfTime
        value = mismatch(self.simulate(cfg), self.observed)
        self.tried[family].append((value, cfg))
        return value

    def evaluations(self) -> int:
        """The number of parameter sets evaluated so far."""
        return sum(map(len, self.tried.values()))


def _minimise(search: _Search, start: np.ndarray, base: NoiseSection) -> bool:
    """Fit white gaussian, then xray noise; True when the deadline stopped the search."""
    from scipy.optimize import minimize, minimize_scalar

    try:  # the one-parameter family first: a short budget still gets a fitted level
        minimize_scalar(
            lambda v: search.evaluate("gaussian", _gaussian_config(v)),
            bounds=np.log(SIGMA_RANGE),
            method="bounded",
            options={"xatol": 0.005, "maxiter": 40},
        )
        minimize(
            lambda t: search.evaluate("xray", _noise_config(t, base)),
            start,
            method="Nelder-Mead",
            options={
                "maxfev": MAX_EVALUATIONS,
                "xatol": 0.01,
                "fatol": 1e-5,
                "initial_simplex": start + np.vstack([np.zeros(4), np.diag([0.7, 0.2, 0.2, 0.5])]),
            },
        )
    except _OutOfTime:
        log.warning(
            "the noise fit stopped at its share of the time budget after %d evaluations; the best "
            "parameters so far are used",
            search.evaluations(),
        )
        return True
    return False


def _best_fit(search: _Search, start: np.ndarray, base: NoiseSection, late: bool) -> NoiseFit:
    """The better family's best parameters (the starting values when none was evaluated)."""
    tried, observed = search.tried, search.observed
    best = {
        family: min(values, key=lambda item: item[0]) for family, values in tried.items() if values
    }
    if not best:
        return NoiseFit(
            _noise_config(start, base), float("nan"), {}, float("nan"), 0, observed, {}, True
        )
    family = min(best, key=lambda name: best[name][0])
    value, fitted = best[family]
    start_value = (
        tried["xray"][0][0] if tried["xray"] else float("nan")
    )  # Nelder-Mead starts at `start`
    return NoiseFit(
        fitted,
        value,
        {name: fit[0] for name, fit in best.items()},
        start_value,
        search.evaluations(),
        observed,
        {} if late else search.simulate(fitted),
        late,
    )


def _gaussian_config(log_sigma: float) -> GaussianNoiseConfig:
    """White gaussian noise of std exp(`log_sigma`) as a noise section."""
    return GaussianNoiseConfig(sigma=round(float(np.clip(np.exp(log_sigma), *SIGMA_RANGE)), 6))
