"""Every noise condition of the benchmarks, defined once: key -> (what it means, its noise config).

Each table takes its conditions by key, in the order of its tuple: the quality tables
:data:`QUALITY`, the radiograph acceptance (``scripts/benchmark.py``'s split part and
``scripts/radiograph_acceptance.py``) :data:`ACCEPTANCE`, and ``scripts/adapt_benchmark.py``
:data:`ADAPT`. A condition shared by several tables (``gaussian_25``) is the same noise in each.
"""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.config import (
    GaussianNoiseConfig,
    NoiseSection,
    PoissonGaussianNoiseConfig,
    XrayNoiseConfig,
)

Condition = tuple[str, NoiseSection]

QUALITY = (
    "gaussian_15",
    "gaussian_25",
    "gaussian_50",
    "poisson_gaussian_dose_0.25",
    "poisson_gaussian_dose_0.05",
)
ACCEPTANCE = ("xray_dose_0.25", "xray_dose_0.1", "gaussian_25", "gaussian_50")
ADAPT = ("xray_aniso", "gaussian_25")


def all_conditions() -> dict[str, Condition]:
    """Every condition by key (new config objects on each call, so a caller may change its own).

    - ``gaussian_S``: white Gaussian noise of std S/255, clipped;
    - ``poisson_gaussian_dose_D``: Poisson-Gaussian noise of 10⁴ photons at dose D, read noise 10;
    - ``xray_dose_D``: D of a standard exposure of 2000 photons per unattenuated pixel (mu 3,
      detector kernel a 0.3, read noise 3 counts);
    - ``xray_aniso``: another scanner: dose 0.05 of 2000 photons, mu 3, read noise 5, and a
      detector kernel wider along rows (a 0.6) than along columns (a 0.1).
    """
    conditions = {
        f"gaussian_{s}": (f"Gaussian σ={s}/255", GaussianNoiseConfig(sigma=s / 255, clip=True))
        for s in (15, 25, 50)
    }
    for dose in (0.25, 0.05):
        conditions[f"poisson_gaussian_dose_{dose}"] = (
            f"Poisson-Gaussian 10⁴ photons, dose {dose}, read noise 10",
            PoissonGaussianNoiseConfig(photons=1e4, dose=dose, read_noise=10.0, clip=True),
        )
    for dose in (0.25, 0.1):
        conditions[f"xray_dose_{dose}"] = (
            f"X-ray dose {dose} (2000 photons at full dose, mu 3, kernel a 0.3, read noise 3)",
            XrayNoiseConfig(
                photons=2000, dose=dose, mu=3.0, kernel_a=0.3, read_noise=3.0, clip=True
            ),
        )
    conditions["xray_aniso"] = (
        "xray, N0 2000, dose 0.05, read noise 5, mu 3, detector kernel a = 0.6 along rows and 0.1 "
        "along columns",
        XrayNoiseConfig(photons=2000, dose=0.05, read_noise=5.0, mu=3.0, kernel_a=[0.6, 0.1]),
    )
    return conditions


def noise_conditions(keys: Iterable[str]) -> dict[str, Condition]:
    """The conditions of `keys`, in their order.

    Raises
    ------
    KeyError: a key that names no condition.
    """
    every = all_conditions()
    return {key: every[key] for key in keys}
