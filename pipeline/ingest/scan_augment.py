"""Changes real scans differ by, drawn per training patch before the noise is added.

Display gamma and window (how a detector's values were mapped to grey levels), pixel size
(resampling) and a small rotation (positioning). Each is off unless configured; with all off a
patch is drawn exactly as :class:`~pipeline.ingest.patches.PatchSampler` draws it, consuming no
extra random numbers.
"""

from __future__ import annotations

import math

import numpy as np

from pipeline.config import ScanAugmentConfig
from pipeline.ingest.patches import PatchSampler


def log_uniform(low_high: tuple[float, float], rng: np.random.Generator) -> float:
    """A factor drawn log-uniformly from ``[low, high]``."""
    low, high = low_high
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def source_side(patch_size: int, scale: float, degrees: float) -> int:
    """Side of a region that covers a ``patch_size`` patch once rotated and resampled."""
    turn = abs(math.cos(math.radians(degrees))) + abs(math.sin(math.radians(degrees)))
    return math.ceil(patch_size / scale * turn) + 2


def centre_crop(image: np.ndarray, side: int) -> np.ndarray:
    """The central ``side`` x ``side`` square of a 2-D array at least that large."""
    top = (image.shape[0] - side) // 2
    left = (image.shape[1] - side) // 2
    return image[top : top + side, left : left + side]


class ScanAugment(ScanAugmentConfig):
    """The ``data.scan_augment`` settings (see the config reference) and how they change a patch.

    Built from the config section, ``ScanAugment(**cfg.data.scan_augment.model_dump())``, or
    directly with the same fields (gamma, window, scale, rotate), validated alike.
    """

    @property
    def active(self) -> bool:
        """Whether any change is configured."""
        return self.gamma is not None or self.window > 0 or self.geometric

    @property
    def geometric(self) -> bool:
        """Whether patches are resampled or rotated."""
        return self.scale is not None or self.rotate > 0

    def patch(
        self, image: np.ndarray, sampler: PatchSampler, rng: np.random.Generator
    ) -> np.ndarray:
        """One clean training patch of `image`, changed as configured."""
        if self.geometric:
            return self.display(self.geometry(image, sampler, rng), rng)
        return self.display(sampler.sample_one(image, rng), rng)

    def geometry(
        self, image: np.ndarray, sampler: PatchSampler, rng: np.random.Generator
    ) -> np.ndarray:
        """A patch cut from a rotated, resampled region of `image` (bilinear interpolation)."""
        from skimage.transform import resize, rotate  # only when training resamples patches

        p = sampler.patch_size
        scale = log_uniform(self.scale, rng) if self.scale is not None else 1.0
        degrees = float(rng.uniform(-self.rotate, self.rotate)) if self.rotate > 0 else 0.0
        region = sampler.sample_one(image, rng, size=source_side(p, scale, degrees))
        if degrees:
            region = rotate(region, degrees, order=1, mode="reflect", preserve_range=True)
        region = centre_crop(region, max(1, round(p / scale)))
        if region.shape != (p, p):
            region = resize(region, (p, p), order=1, anti_aliasing=scale < 1, preserve_range=True)
        return np.clip(region, 0.0, 1.0).astype(np.float32)

    def display(self, patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """`patch` through a changed display window and gamma, kept in [0, 1]."""
        out = patch
        if self.window > 0:
            low = float(rng.uniform(-self.window, self.window))
            high = 1.0 + float(rng.uniform(-self.window, self.window))
            out = np.clip((out - low) / (high - low), 0.0, 1.0)
        if self.gamma is not None:
            out = np.power(np.clip(out, 0.0, 1.0), log_uniform(self.gamma, rng))
        return np.ascontiguousarray(out, dtype=np.float32)
