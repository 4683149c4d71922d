"""Random square patches from large images, for training on crops of full radiographs.

Rules
-----
- A patch's top-left corner is drawn uniformly from every position where it fits.
- Background rejection: a patch whose standard deviation is below ``min_std`` (flat
  collimator border, empty air) is redrawn, up to ``max_tries`` draws in all; when every
  draw is that flat, the draw with the highest standard deviation is kept, so sampling
  always ends and an image that is flat everywhere still gives patches.
- An image smaller than the patch along an axis is first padded by reflection about its
  edge pixels (numpy ``mode="reflect"``: ``a b c`` → ``c b a b c b a``), split as evenly
  as possible between the two sides; a 1-pixel axis is repeated instead.
- Augmentation draws one of the 8 symmetries of the square (a 90° rotation by k·90°,
  k in 0..3, optionally followed by a left-right flip), so it only moves pixels.

All randomness comes from the ``numpy.random.Generator`` passed in: same seed, same patches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pad_to_size(image: np.ndarray, size: int) -> np.ndarray:
    """Pad a 2-D image by reflection so that both sides are at least `size`.

    Parameters
    ----------
    image: (H, W) array.
    size: the smallest side wanted.

    Returns
    -------
    The image itself when it is large enough, else a padded copy of shape
    (max(H, size), max(W, size)).
    """
    h, w = image.shape
    pad_h, pad_w = max(0, size - h), max(0, size - w)
    if pad_h == 0 and pad_w == 0:
        return image
    widths = ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2))
    if min(h, w) < 2:  # reflection needs two pixels on the axis
        return np.pad(image, widths, mode="edge")
    return np.pad(image, widths, mode="reflect")


def at_scales(images: Sequence[np.ndarray], scales: Sequence[float]) -> list[np.ndarray]:
    """Each image at each scale (1.0: the image itself; below 1: anti-aliased downscaling).

    For training on several pixel spacings: a 2000² radiograph at scale 0.5 shows the
    anatomy of a 1000² one. Downscaling also concentrates spatially correlated grain into
    the finest scale, so references should be clean at every scale used. Returns float32
    images in [0, 1], image-major order.
    """
    from skimage.transform import rescale

    out: list[np.ndarray] = []
    for image in images:
        for scale in scales:
            if scale == 1.0:
                out.append(np.asarray(image, dtype=np.float32))
            else:
                small = rescale(
                    np.asarray(image, dtype=np.float32),
                    scale,
                    anti_aliasing=True,
                    order=1,
                    preserve_range=True,
                )
                out.append(np.clip(small, 0.0, 1.0).astype(np.float32))
    return out


def augment(patch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply a random one of the 8 flips/90° rotations of the square to a 2-D patch."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    out = np.rot90(patch, k)
    if flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


class PatchSampler:
    """Draws random `patch_size` crops that are not near-empty background.

    Parameters
    ----------
    patch_size: side of the square patches.
    min_std: patches with a standard deviation below this are redrawn (0: keep all).
    max_tries: draws per patch before keeping the least flat one seen.
    augment: apply a random flip/90° rotation to each patch.
    """

    def __init__(
        self, patch_size: int, min_std: float = 0.01, max_tries: int = 10, augment: bool = False
    ) -> None:
        if patch_size < 1:
            raise ValueError(f"patch_size must be positive, got {patch_size}")
        if max_tries < 1:
            raise ValueError(f"max_tries must be at least 1, got {max_tries}")
        self.patch_size = int(patch_size)
        self.min_std = float(min_std)
        self.max_tries = int(max_tries)
        self.augment = bool(augment)

    def sample_one(
        self, image: np.ndarray, rng: np.random.Generator, size: int | None = None
    ) -> np.ndarray:
        """One (P, P) float32 patch of a 2-D image (padded first when it is smaller).

        P is `size` when given, else the sampler's patch size.
        """
        p = self.patch_size if size is None else int(size)
        image = pad_to_size(np.asarray(image, dtype=np.float32), p)
        best, best_std = None, -1.0
        for _ in range(self.max_tries):
            top = int(rng.integers(image.shape[0] - p + 1))
            left = int(rng.integers(image.shape[1] - p + 1))
            patch = image[top : top + p, left : left + p]
            std = float(patch.std())
            if std > best_std:
                best, best_std = patch, std
            if std >= self.min_std:
                break
        out = best.copy()
        return augment(out, rng) if self.augment else out

    def __call__(self, image: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """`n` patches of one 2-D image, as an (n, P, P) float32 array."""
        out = np.empty((n, self.patch_size, self.patch_size), dtype=np.float32)
        for i in range(n):
            out[i] = self.sample_one(image, rng)
        return out


def sample_patches(
    images: Sequence[np.ndarray],
    patch_size: int,
    per_image: int,
    rng: np.random.Generator,
    min_std: float = 0.01,
    augment: bool = False,
    max_tries: int = 10,
) -> np.ndarray:
    """`per_image` random patches from each 2-D image, in image order.

    Returns
    -------
    (len(images) * per_image, patch_size, patch_size) float32 array.
    """
    sampler = PatchSampler(patch_size, min_std=min_std, max_tries=max_tries, augment=augment)
    if len(images) == 0:
        return np.empty((0, patch_size, patch_size), dtype=np.float32)
    return np.concatenate([sampler(np.asarray(img), per_image, rng) for img in images])
