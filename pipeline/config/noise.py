"""The noise section of a config: one class per noise kind, chosen by ``kind``.

Each kind holds only its own fields, builds its noise model (:mod:`pipeline.noise`) and
describes itself in words. ``mixed`` draws one of its components per image with
probability proportional to the component's weight. Sections of the older flat shape (all
kinds' fields in one mapping, ``mixed_kinds`` lists) are upgraded on loading by
:mod:`pipeline.config.upgrade`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, TypeAdapter, model_validator

from pipeline.config.sections import Section
from pipeline.config.upgrade import upgrade_noise

if TYPE_CHECKING:
    from pipeline.noise import NoiseModel

#: Quanta, display scale and detector kernel the ``xray`` fit starts from when the
#: starting model was not trained on ``xray`` noise.
FIT_START = {"photons": 1e4, "dose": 0.25, "kernel_a": 0.3, "read_noise": 3.0, "mu": 3.0}


def kernel_axes(value: float | list[float], name: str) -> tuple[float, float]:
    """(a_rows, a_cols) of a kernel_a value; a must lie in [0, 1]."""
    pair = [value, value] if isinstance(value, (int, float)) else list(value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be one number or [a_rows, a_cols]; got {value}")
    if any(not 0.0 <= a <= 1.0 for a in pair):
        raise ValueError(f"{name} values must lie in [0, 1]; got {value}")
    return float(pair[0]), float(pair[1])


class NoiseSection(Section):
    """Fields every noise kind has."""

    kind: str = Field(description="Noise model (see pipeline.noise).")
    fresh_each_epoch: bool = Field(
        True,
        description="Draw new training noise each epoch (False: one fixed noisy set); "
        "in a mixed component the mixture's own value counts.",
    )

    def build(self) -> NoiseModel:
        """The noise model this section describes."""
        raise NotImplementedError

    def describe(self) -> str:
        """The parameters in words, for logs and reports."""
        return str(self.kind)

    def fit_start(self) -> XrayNoiseConfig:
        """The ``xray`` section a noise fit (:mod:`pipeline.noisefit`) starts from."""
        return XrayNoiseConfig(**FIT_START)


class GaussianNoiseConfig(NoiseSection):
    """Additive white Gaussian noise."""

    kind: Literal["gaussian"] = Field("gaussian", description="Noise model (see pipeline.noise).")
    sigma: float = Field(
        0.5, ge=0.0, description="Std in [0,1] units (the tutorial's noise factor 0.5)."
    )
    sigma_max: float | None = Field(
        None,
        ge=0.0,
        description="Draw sigma uniformly in [sigma, sigma_max] per image (blind training).",
    )
    clip: bool = Field(True, description="Clip noisy values to [0, 1].")

    def build(self) -> NoiseModel:
        """The :class:`pipeline.noise.GaussianNoise` this section describes."""
        from pipeline.noise import GaussianNoise

        return GaussianNoise(self.sigma, self.sigma_max, self.clip)

    def describe(self) -> str:
        """The settings in words, for reports."""
        return f"sigma {self.sigma}" + (f"..{self.sigma_max}" if self.sigma_max else "")


class PoissonGaussianNoiseConfig(NoiseSection):
    """Quantum (Poisson) plus read (Gaussian) noise of a raw, linear detector signal."""

    kind: Literal["poisson_gaussian"] = Field(
        "poisson_gaussian", description="Noise model (see pipeline.noise)."
    )
    photons: float = Field(1e4, gt=0, description="Photons per pixel at full signal and full dose.")
    photons_min: float | None = Field(
        None, gt=0, description="Draw photons log-uniformly in [photons_min, photons] per image."
    )
    dose: float = Field(
        1.0, gt=0, le=1.0, description="Dose fraction of the full dose (0.25 = quarter dose)."
    )
    read_noise: float = Field(
        10.0, ge=0, description="Electronic (read) noise std in photon counts."
    )
    clip: bool = Field(True, description="Clip noisy values to [0, 1].")

    def build(self) -> NoiseModel:
        """The :class:`pipeline.noise.PoissonGaussianNoise` this section describes."""
        from pipeline.noise import PoissonGaussianNoise

        return PoissonGaussianNoise(
            self.photons, self.dose, self.read_noise, self.photons_min, self.clip
        )

    def describe(self) -> str:
        """The settings in words, for reports."""
        return (
            f"{self.photons:g} photons at full dose, dose {self.dose}, read noise {self.read_noise}"
        )

    def fit_start(self) -> XrayNoiseConfig:
        """Where a noise fit starts: the generic X-ray start with this section's photons."""
        return XrayNoiseConfig(**{**FIT_START, "photons": self.photons})


class XrayNoiseConfig(NoiseSection):
    """Low-dose radiograph noise in the log domain (see :class:`pipeline.noise.XrayNoise`)."""

    kind: Literal["xray"] = Field("xray", description="Noise model (see pipeline.noise).")
    photons: float = Field(
        2000.0,
        gt=0,
        description="Photons per pixel of an unattenuated ray at full dose (try 1e3-1e4).",
    )
    dose: float = Field(
        1.0, gt=0, le=1.0, description="Dose fraction of the full dose (0.25 = quarter dose)."
    )
    dose_max: float | None = Field(
        None,
        gt=0,
        le=1.0,
        description="Draw the dose log-uniformly in [dose, dose_max] per image or patch (blind "
        "training).",
    )
    read_noise: float = Field(
        3.0, ge=0, description="Electronic (read) noise std in photon counts."
    )
    mu: float = Field(
        3.0,
        gt=0,
        description="Attenuation of a display value p (transmission exp(-mu p)); 3.0 is a "
        "20:1 range of transmitted intensity.",
    )
    kernel_a: float | list[float] = Field(
        0.3,
        description="Detector kernel [a, 1, a] (normalised to unit energy) correlating quantum "
        "noise; one a, or [a_rows, a_cols] per axis; 0: white.",
    )
    kernel_a_max: float | list[float] | None = Field(
        None,
        description="Draw each axis's a uniformly in [kernel_a, kernel_a_max] per image or patch "
        "(blind training).",
    )
    clip: bool = Field(True, description="Clip noisy values to [0, 1].")

    @model_validator(mode="after")
    def _check_ranges(self) -> XrayNoiseConfig:
        if self.dose_max is not None and self.dose_max < self.dose:
            raise ValueError(f"dose_max ({self.dose_max}) must be at least dose ({self.dose})")
        low = kernel_axes(self.kernel_a, "kernel_a")
        if self.kernel_a_max is not None:
            high = kernel_axes(self.kernel_a_max, "kernel_a_max")
            if any(h < lo for lo, h in zip(low, high)):
                raise ValueError(
                    f"kernel_a_max {self.kernel_a_max} must be at least kernel_a "
                    f"{self.kernel_a} on each axis"
                )
        return self

    def build(self) -> NoiseModel:
        """The :class:`pipeline.noise.XrayNoise` this section describes."""
        from pipeline.noise import XrayNoise

        high = None if self.kernel_a_max is None else kernel_axes(self.kernel_a_max, "kernel_a_max")
        return XrayNoise(
            self.photons,
            self.dose,
            self.read_noise,
            self.mu,
            kernel_axes(self.kernel_a, "kernel_a"),
            self.dose_max,
            high,
            self.clip,
        )

    def describe(self) -> str:
        """The settings in words, for reports."""
        dose = f"{self.dose}..{self.dose_max}" if self.dose_max else f"{self.dose}"
        return (
            f"X-ray, {self.photons:g} photons unattenuated at full dose, dose {dose}, mu "
            f"{self.mu}, kernel a {self.kernel_a}, read noise {self.read_noise}"
        )

    def fit_start(self) -> XrayNoiseConfig:
        """Where a noise fit starts: this section itself."""
        return self


class SaltPepperNoiseConfig(NoiseSection):
    """A fraction of pixels replaced by 0 or 1 (dead or hot pixels)."""

    kind: Literal["salt_pepper"] = Field(
        "salt_pepper", description="Noise model (see pipeline.noise)."
    )
    amount: float = Field(0.05, ge=0, le=1, description="Fraction of pixels replaced.")

    def build(self) -> NoiseModel:
        """The :class:`pipeline.noise.SaltPepperNoise` this section describes."""
        from pipeline.noise import SaltPepperNoise

        return SaltPepperNoise(self.amount)


class SpeckleNoiseConfig(NoiseSection):
    """Multiplicative noise x + x * N(0, sigma)."""

    kind: Literal["speckle"] = Field("speckle", description="Noise model (see pipeline.noise).")
    sigma: float = Field(0.1, ge=0, description="Std of the multiplicative noise.")
    clip: bool = Field(True, description="Clip noisy values to [0, 1].")

    def build(self) -> NoiseModel:
        """The :class:`pipeline.noise.SpeckleNoise` this section describes."""
        from pipeline.noise import SpeckleNoise

        return SpeckleNoise(self.sigma, self.clip)


#: A noise kind a ``mixed`` section may draw from.
MixableNoiseConfig = Annotated[
    GaussianNoiseConfig | PoissonGaussianNoiseConfig | XrayNoiseConfig, Field(discriminator="kind")
]


class MixtureComponent(Section):
    """One noise kind of a mixture and how often it is drawn."""

    weight: float = Field(
        1.0, gt=0, description="Relative probability of this component per image."
    )
    noise: MixableNoiseConfig = Field(description="The component's noise section.")


def _default_components() -> list[MixtureComponent]:
    return [
        MixtureComponent(noise=GaussianNoiseConfig()),
        MixtureComponent(noise=PoissonGaussianNoiseConfig()),
    ]


class MixedNoiseConfig(NoiseSection):
    """Per image, one of several noise kinds (blind training over several families)."""

    kind: Literal["mixed"] = Field("mixed", description="Noise model (see pipeline.noise).")
    components: list[MixtureComponent] = Field(
        default_factory=_default_components,
        min_length=1,
        description="Noise kinds drawn per image, each with probability weight / (sum of weights).",
    )

    def build(self) -> NoiseModel:
        """The :class:`pipeline.noise.MixedNoise` of the components' models and weights."""
        from pipeline.noise import MixedNoise

        return MixedNoise(
            tuple(c.noise.build() for c in self.components),
            tuple(c.weight for c in self.components),
        )

    def describe(self) -> str:
        """The components with their weights in words, for reports."""
        return "mixed: " + "; ".join(
            f"weight {c.weight:g} {c.noise.kind} ({c.noise.describe()})" for c in self.components
        )

    def fit_start(self) -> XrayNoiseConfig:
        """The first xray component's quanta and mu at the generic starting dose and kernel."""
        kinds = [c.noise for c in self.components]
        xray = next((n for n in kinds if isinstance(n, XrayNoiseConfig)), None)
        if xray is not None:
            return XrayNoiseConfig(**{**FIT_START, "photons": xray.photons, "mu": xray.mu})
        other = next((n for n in kinds if isinstance(n, PoissonGaussianNoiseConfig)), None)
        return other.fit_start() if other is not None else super().fit_start()


#: The noise section of a config: one of the kinds, chosen by its ``kind`` field.
NoiseConfig = Annotated[
    GaussianNoiseConfig
    | PoissonGaussianNoiseConfig
    | XrayNoiseConfig
    | SaltPepperNoiseConfig
    | SpeckleNoiseConfig
    | MixedNoiseConfig,
    Field(discriminator="kind"),
]
NOISE_KINDS: dict[str, type[NoiseSection]] = {
    "gaussian": GaussianNoiseConfig,
    "poisson_gaussian": PoissonGaussianNoiseConfig,
    "xray": XrayNoiseConfig,
    "salt_pepper": SaltPepperNoiseConfig,
    "speckle": SpeckleNoiseConfig,
    "mixed": MixedNoiseConfig,
}
_NOISE_ADAPTER: TypeAdapter[Any] = TypeAdapter(NoiseConfig)


def noise_config(data: dict[str, Any] | NoiseSection) -> NoiseSection:
    """A validated noise section from a mapping of either shape (a section is returned as it is).

    Raises ``ValueError`` (pydantic's ValidationError) naming the bad field.
    """
    if isinstance(data, NoiseSection):
        return data
    return _NOISE_ADAPTER.validate_python(upgrade_noise(data))
