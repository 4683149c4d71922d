"""The one interface of every denoising method: trained networks and classical baselines alike.

A :class:`Denoiser` maps one float32 (H, W) image in [0, 1] to its denoised version (same
shape, float32, [0, 1]). It is called as ``denoiser(image, sigma=..., psd=...)``: what the
caller knows about the noise is offered by keyword, and the denoiser uses what it
``takes`` (deepinv's denoisers have the same shape, ``denoiser(x, sigma)`` for learned and
classical ones). How a network runs on large images (tiles, batching, device) belongs to
the denoiser that wraps it, :class:`pipeline.inference.ModelDenoiser`, as MONAI keeps it in
an inferer apart from the network.

Implementations: :class:`pipeline.inference.ModelDenoiser` (blind: takes nothing),
:class:`pipeline.baselines.Baseline`, :class:`NoisyInput` (the noisy image itself, the
reference row of every table) and :class:`Renamed` (another name in tables). Used by
:func:`pipeline.evaluate.evaluate` and :func:`pipeline.apply.apply_folder`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np

#: What a denoiser is: the noisy input itself, a trained network, or a classical method.
Kind = Literal["input", "model", "baseline"]
#: Facts about the noise a denoiser can be given: its std in [0, 1] units (``sigma``) or, for
#: correlated noise, its (H, W) power spectrum (``psd``).
NoiseFact = Literal["sigma", "psd"]


@runtime_checkable
class Denoiser(Protocol):
    """A named denoising method (see the module doc).

    Attributes
    ----------
    name : its name in tables.
    kind : ``"input"``, ``"model"`` or ``"baseline"``.
    takes : the noise facts it uses when offered, preferred first (empty: blind).
    """

    name: str
    kind: Kind
    takes: tuple[NoiseFact, ...]

    def __call__(
        self, image: np.ndarray, *, sigma: float | None = None, psd: np.ndarray | None = None
    ) -> np.ndarray:
        """The denoised image; `sigma`/`psd` are used only when listed in ``takes``."""
        ...


def noise_given(denoiser: Denoiser, has_psd: bool) -> str:
    """The noise fact `denoiser` is given: ``"psd"`` (when known), else ``"sigma"``, or ``""``."""
    if has_psd and "psd" in denoiser.takes:
        return "psd"
    return "sigma" if "sigma" in denoiser.takes else ""


@dataclass(frozen=True)
class NoisyInput:
    """The noisy image itself, as the reference every method is compared with."""

    name: str = "noisy"
    kind: Kind = "input"
    takes: tuple[NoiseFact, ...] = ()

    def __call__(
        self, image: np.ndarray, *, sigma: float | None = None, psd: np.ndarray | None = None
    ) -> np.ndarray:
        """Return `image` unchanged."""
        return image


@dataclass(frozen=True)
class Renamed:
    """`inner` under another name in tables (e.g. two checkpoints of one architecture)."""

    inner: Denoiser
    name: str

    @property
    def kind(self) -> Kind:
        """The inner denoiser's kind."""
        return self.inner.kind

    @property
    def takes(self) -> tuple[NoiseFact, ...]:
        """The noise facts the inner denoiser takes."""
        return self.inner.takes

    @property
    def denoise_many(self) -> Callable[[list[np.ndarray]], list[np.ndarray]] | None:
        """The inner denoiser's batched call (a model's), or None when it has none."""
        return getattr(self.inner, "denoise_many", None)

    def __call__(
        self, image: np.ndarray, *, sigma: float | None = None, psd: np.ndarray | None = None
    ) -> np.ndarray:
        """Denoise with the inner denoiser."""
        return self.inner(image, sigma=sigma, psd=psd)
