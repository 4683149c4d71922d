"""The training set: noisy/clean pairs drawn per epoch from clean images."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.errors import PipelineError
from pipeline.ingest.patches import PatchSampler
from pipeline.ingest.patches import augment as augment_patch
from pipeline.noise import NoiseModel, noise_rng


class NoisyPairs(Dataset):
    """(noisy, clean) training pairs; whole images or random patches, fresh noise per epoch.

    Sample ``i`` of epoch ``e`` is fully determined by (seed, e, i): with ``patch_size``
    set, sample i is a patch of image ``i // patches_per_image``.
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
        self.per_image = patches_per_image if patch_size else 1
        self.augment = augment
        self.fresh = fresh_each_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's noise from now on (with fresh noise each epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images) * self.per_image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = noise_rng(self.seed, "train", self.epoch if self.fresh else 0, index)
        clean = self.images[index // self.per_image]
        if self.sampler is not None:
            clean = self.sampler.sample_one(clean, rng)
        if self.augment:
            clean = augment_patch(clean, rng)
        noisy = self.noise(clean, rng)
        return torch.from_numpy(np.ascontiguousarray(noisy))[None], torch.from_numpy(
            np.ascontiguousarray(clean)
        )[None]
