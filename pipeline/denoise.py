"""Inference: trained models on arrays, in tiles for large images, and on whole folders.

A :class:`ModelDenoiser` maps one float32 (H, W) image in [0, 1] to its denoised version,
the same interface as the classical baselines (:mod:`pipeline.baselines`). Images larger
than ``tile_size`` go through MONAI's ``SlidingWindowInferer``, so memory grows with the
image alone, not with the network's activations over it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.config import Config, config_from_dict
from pipeline.errors import PipelineError
from pipeline.models import build_model

#: The radiograph model shipped inside the package (used when no --model is given).
SHIPPED_MODEL = Path(__file__).resolve().parent / "weights" / "cxr_default.pt"


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' → cuda when available, else cpu; 'cuda' without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PipelineError("device 'cuda' was asked for but torch sees no GPU here; use --device cpu")
    return torch.device(name)


@dataclass
class LoadedModel:
    """A network with its weights, the config it was trained with, and its checkpoint path."""

    model: nn.Module
    config: Config
    path: Path
    meta: dict[str, Any]

    @property
    def method_name(self) -> str:
        """Name in result tables: ``<model>:<run name>``."""
        return f"{self.config.model.name}:{self.config.run.name}"

    @property
    def identity(self) -> str:
        """Short description for reports and DICOM DerivationDescription."""
        return f"{self.config.model.name} model from {self.path.name} (run {self.config.run.name}, seed {self.config.run.seed})"


def checkpoint_path(path: str | Path | None) -> Path:
    """A checkpoint file from a file path, a run folder (its best.pt) or None (the shipped model)."""
    if path is None:
        if not SHIPPED_MODEL.is_file():
            raise PipelineError(f"no --model given and the shipped model {SHIPPED_MODEL} is missing; pass --model CHECKPOINT")
        return SHIPPED_MODEL
    path = Path(path)
    if path.is_dir():
        for candidate in (path / "checkpoints" / "best.pt", path / "best.pt", path / "checkpoints" / "last.pt"):
            if candidate.is_file():
                return candidate
        raise PipelineError(f"no checkpoint in run folder {path} (expected checkpoints/best.pt)")
    if not path.is_file():
        raise PipelineError(f"model checkpoint not found: {path}")
    return path


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a checkpoint written by :mod:`pipeline.train` (safely: ``weights_only=True``)."""
    ckpt_file = checkpoint_path(path)
    try:
        ckpt = torch.load(ckpt_file, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise PipelineError(f"{ckpt_file} is not a readable checkpoint of this tool ({err})") from None
    if not isinstance(ckpt, dict) or "model_state" not in ckpt or "config" not in ckpt:
        raise PipelineError(f"{ckpt_file} is not a checkpoint of this tool (no model_state/config)")
    config = config_from_dict(ckpt["config"], origin=f"config inside {ckpt_file}")
    model = build_model(config.model)
    model.load_state_dict(ckpt["model_state"])
    model.eval().to(device)
    meta = {k: v for k, v in ckpt.items() if k not in ("model_state", "optimizer_state", "scheduler_state")}
    return LoadedModel(model, config, ckpt_file, meta)


def _pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
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
            from monai.inferers import SlidingWindowInferer

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
        padded, (h, w) = _pad_to_multiple(x, self.multiple)
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
    path: str | Path | None = None, device: str = "auto", tile_size: int | None = None,
    overlap: float = 0.25, batch_size: int = 8,
) -> tuple[ModelDenoiser, LoadedModel]:
    """Load a checkpoint (or the shipped model) and wrap it as a :class:`ModelDenoiser`."""
    dev = resolve_device(device)
    loaded = load_model(path, dev)
    return ModelDenoiser(loaded.model, dev, tile_size, overlap, batch_size, name=loaded.method_name), loaded


def apply_folder(*args, **kwargs):
    """Denoise every supported image under a folder into another; see :func:`pipeline.batch.apply_folder`."""
    from pipeline.batch import apply_folder as _apply_folder  # batch imports this module

    return _apply_folder(*args, **kwargs)
