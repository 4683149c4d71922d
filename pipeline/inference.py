"""Inference: a trained model on arrays, in batched tiles for large images, on a chosen device.

A :class:`ModelDenoiser` maps one float32 (H, W) image in [0, 1] to its denoised version,
the same interface as the classical baselines (:mod:`pipeline.baselines`). Images larger
than ``tile_size`` go through MONAI's ``SlidingWindowInferer``, so memory grows with the
image alone, not with the network's activations over it. Whole folders are
:mod:`pipeline.apply`; checkpoints are :mod:`pipeline.checkpoint`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import SlidingWindowInferer
from torch import nn

from pipeline.checkpoint import LoadedModel, load_model
from pipeline.config import InferenceConfig
from pipeline.distributed import local_device
from pipeline.errors import PipelineError

#: Tile settings used when none are given: those of :class:`pipeline.config.InferenceConfig`.
DEFAULT_TILE_SIZE: int | None = InferenceConfig().tile_size
DEFAULT_OVERLAP: float = InferenceConfig().overlap
DEFAULT_BATCH_SIZE: int = InferenceConfig().batch_size


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' → cuda when available, else cpu; 'cuda' without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PipelineError("device 'cuda' was asked for but torch sees no GPU here; use --device cpu")
    return torch.device(name)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """`x` padded at the bottom and right to sides that are multiples of `multiple`, and its (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


class ModelDenoiser:
    """A trained network as a function from a float32 (H, W) image to its denoised version.

    Parameters
    ----------
    model: the network (see :mod:`pipeline.models`).
    device: where to run it.
    tile_size: images with a side above this go through a sliding window of this size
        (rounded up to the model's size multiple); None denoises whole images.
    overlap: overlap of neighbouring tiles (MONAI's convention, 0.25 = 25%).
    batch_size: tiles (or images) per forward pass.
    """

    def __init__(
        self, model: nn.Module, device: str | torch.device = "cpu", tile_size: int | None = None,
        overlap: float = 0.25, batch_size: int = 8, name: str = "model",
    ) -> None:
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.multiple = int(getattr(model, "size_multiple", 1))
        self.fixed_size = getattr(model, "fixed_size", None)
        self.tile_size = None if tile_size is None else int(np.ceil(tile_size / self.multiple) * self.multiple)
        self.overlap = overlap
        self.batch_size = batch_size
        self.name = name
        self._inferer = None
        if self.tile_size is not None and self.fixed_size is None:
            self._inferer = SlidingWindowInferer(
                roi_size=(self.tile_size, self.tile_size), sw_batch_size=batch_size, overlap=overlap,
                mode="gaussian", padding_mode="replicate",
            )

    @torch.inference_mode()
    def denoise_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise a batch (N, 1, H, W) of one size on this denoiser's device."""
        x = x.to(self.device, torch.float32)
        h, w = x.shape[-2:]
        if self._inferer is not None and max(h, w) > self.tile_size:
            return self._inferer(x, self._forward_padded).clamp(0, 1)
        return self._forward_padded(x)

    def _forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        padded, (h, w) = pad_to_multiple(x, self.multiple)
        return self.model(padded)[..., :h, :w]

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(pixels, np.float32))[None, None]
        return self.denoise_tensor(x)[0, 0].cpu().numpy()

    def denoise_many(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Denoise a list of images, batching consecutive images of the same shape."""
        out: list[np.ndarray] = []
        i = 0
        while i < len(images):
            shape = images[i].shape
            j = i
            while j < len(images) and j - i < self.batch_size and images[j].shape == shape:
                j += 1
            batch = torch.from_numpy(np.stack(images[i:j]).astype(np.float32))[:, None]
            out.extend(self.denoise_tensor(batch)[:, 0].cpu().numpy())
            i = j
        return out


def denoiser_from_checkpoint(
    model: str | Path | LoadedModel | None = None, device: str = "auto", tile_size: int | None = None,
    overlap: float = DEFAULT_OVERLAP, batch_size: int = DEFAULT_BATCH_SIZE,
) -> tuple[ModelDenoiser, LoadedModel]:
    """A checkpoint (file, run folder, None for the shipped model, or a loaded one) as a :class:`ModelDenoiser`.

    Under torchrun with CUDA each worker takes its own GPU.
    """
    dev = local_device(resolve_device(device))
    loaded = model if isinstance(model, LoadedModel) else load_model(model, dev)
    return ModelDenoiser(loaded.model, dev, tile_size, overlap, batch_size, name=loaded.method_name), loaded
