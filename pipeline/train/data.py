"""The training set: noisy/clean pairs drawn per epoch from clean images."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.errors import PipelineError
from pipeline.ingest.patches import PatchSampler
from pipeline.ingest.patches import augment as augment_patch
from pipeline.ingest.scan_augment import ScanAugment
from pipeline.noise import NoiseModel, noise_rng


class NoisyPairs(Dataset):
    """(noisy, clean) training pairs; whole images or random patches, fresh noise per epoch.

    Sample ``i`` of epoch ``e`` is fully determined by (seed, e, i): with ``patch_size``
    set, image ``k`` gives ``patch_counts[k]`` consecutive samples (``patches_per_image``
    each when not given), else every image is one sample. ``scan_augment`` changes each clean
    sample as real scans differ (display, pixel size, rotation) before the noise.
    """

    def __init__(
        self,
        images: list[np.ndarray],
        noise: NoiseModel,
        seed: int,
        patch_size: int | None = None,
        patches_per_image: int = 1,
        min_patch_std: float = 0.0,
        augment: bool = False,
        fresh_each_epoch: bool = True,
        patch_counts: Sequence[int] | None = None,
        scan_augment: ScanAugment | None = None,
    ) -> None:
        if not images:
            raise PipelineError("no training images: check data.root and the split fractions")
        if patch_size is None and len({img.shape for img in images}) > 1:
            raise PipelineError(
                "training images differ in size: set data.patch_size (train on random patches) "
                "or data.resize"
            )
        self.images = images
        self.noise = noise
        self.seed = seed
        self.sampler = PatchSampler(patch_size, min_patch_std) if patch_size else None
        self.scan = scan_augment if scan_augment is not None and scan_augment.active else None
        if self.scan is not None and self.scan.geometric and not patch_size:
            raise PipelineError(
                "data.scan_augment scale/rotate need data.patch_size (they resample patches)"
            )
        if not patch_size:
            counts: Sequence[int] = [1] * len(images)
        elif patch_counts is None:
            counts = [patches_per_image] * len(images)
        elif len(patch_counts) != len(images):
            raise ValueError(f"{len(patch_counts)} patch counts for {len(images)} images")
        else:
            counts = patch_counts
        self.owner = np.repeat(np.arange(len(images)), counts)  # sample -> image
        self.augment = augment
        self.fresh = fresh_each_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's noise from now on (with fresh noise each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.owner)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = noise_rng(self.seed, "train", self.epoch if self.fresh else 0, index)
        clean = self.images[self.owner[index]]
        if self.sampler is not None and self.scan is not None:
            clean = self.scan.patch(clean, self.sampler, rng)
        elif self.sampler is not None:
            clean = self.sampler.sample_one(clean, rng)
        elif self.scan is not None:
            clean = self.scan.display(clean, rng)
        if self.augment:
            clean = augment_patch(clean, rng)
        noisy = self.noise(clean, rng)
        return torch.from_numpy(np.ascontiguousarray(noisy))[None], torch.from_numpy(
            np.ascontiguousarray(clean)
        )[None]


def patch_counts(
    shapes: Sequence[tuple[int, ...]],
    per_image: int,
    sampling: str = "per_image",
    sources: Sequence[str] | None = None,
) -> list[int]:
    """Patches per image and epoch: ``per_image * len(shapes)`` in all, shared by `sampling`.

    ``per_image``: `per_image` each. ``by_area``: in proportion to each image's pixels.
    ``by_source``: equally among the `sources` (one label per image), then equally among a
    source's images. Shares are rounded by largest remainder, so the total is kept exactly;
    an image may get none.
    """
    total = per_image * len(shapes)
    if sampling == "per_image" or not shapes:
        return [per_image] * len(shapes)
    if sampling == "by_area":
        weights = np.array([float(np.prod(shape)) for shape in shapes])
    elif sampling == "by_source":
        if not sources or len(sources) != len(shapes) or not all(sources):
            raise PipelineError(
                "data.patch_sampling by_source needs the source of every training image: give "
                "data.split_csv with a source column, or use per_image or by_area"
            )
        size = Counter(sources)
        weights = np.array([1.0 / (len(size) * size[s]) for s in sources])
    else:
        raise ValueError(f"unknown patch sampling {sampling!r}")
    share = total * weights / weights.sum()
    counts = np.floor(share).astype(int)
    order = np.argsort(-(share - counts), kind="stable")  # largest remainders first
    counts[order[: total - int(counts.sum())]] += 1
    return counts.tolist()
