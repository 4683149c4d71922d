"""``Denoise``/``Denoised``: MONAI transforms that denoise with a trained model; ``TileInferer``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.inferers import SlidingWindowInferer
from monai.transforms import Transform
from torch import nn

from pipeline.checkpoint import load_model
from pipeline.config import InferenceConfig
from pipeline.errors import PipelineError
from pipeline.exported import is_exported, load_exported_model
from pipeline.inference import DEFAULT_INFERENCE, ModelDenoiser, resolve_device
from pipeline.monai.value_range import EachKey, ToUnitRange, UnitRange, as_tensor


def _like(values: torch.Tensor, img: Any) -> Any:
    """`values` in the container type of `img` (numpy, tensor or MetaTensor with its meta)."""
    if isinstance(img, np.ndarray):
        return values.cpu().numpy()
    values = values.to(img.device)
    if isinstance(img, MetaTensor):
        return MetaTensor(
            values.as_tensor() if isinstance(values, MetaTensor) else values,
            meta=dict(img.meta),
            applied_operations=list(img.applied_operations),
        )
    return values


def _check_channel_first(x: torch.Tensor) -> None:
    if x.ndim != 3:
        raise PipelineError(
            f"the denoiser takes a channel-first 2-D image (C, H, W); got shape {tuple(x.shape)}: "
            "add EnsureChannelFirst(d) after LoadImage(d)"
        )


class Denoise(Transform):
    """Denoise a channel-first 2-D image with a trained model; same type, dtype, range and meta out.

    Parameters
    ----------
    model : checkpoint file, run folder, TorchScript/ONNX file from ``denoise export``, an
        ``nn.Module``, or None for the shipped model.
    inference : tiles, overlap, batch and device (``auto``: the GPU when there is one), as
        ``denoise apply``; images larger than ``tile_size`` go through a sliding window.
    value_range : (low, high) of the input values; None: from meta data or dtype.
    columns_first : the spatial axes are (W, H), as MONAI's PIL and pydicom readers give
        them; False for arrays in (H, W) order.
    """

    def __init__(
        self,
        model: str | Path | nn.Module | None = None,
        inference: InferenceConfig = DEFAULT_INFERENCE,
        value_range: Sequence[float] | None = None,
        columns_first: bool = True,
    ) -> None:
        dev = resolve_device(inference.device)
        if isinstance(model, nn.Module):
            network = model
        else:
            network = (
                load_exported_model(model).model
                if is_exported(model)
                else load_model(model, dev).model
            )
        self.denoiser = ModelDenoiser(network, inference, dev)
        self.to_unit = ToUnitRange(value_range)
        self.columns_first = columns_first

    def __call__(self, img: Any) -> Any:
        """`img` denoised, in its own type, dtype, range and meta data."""
        x = as_tensor(img)
        _check_channel_first(x)
        mapping = UnitRange.of(img, self.to_unit.value_range)
        unit = mapping.to_unit(x.as_tensor() if isinstance(x, MetaTensor) else x)
        batch = unit.transpose(-1, -2) if self.columns_first else unit
        out = self.denoiser.denoise_tensor(batch.unsqueeze(1).contiguous())[:, 0].cpu()
        if self.columns_first:
            out = out.transpose(-1, -2)
        return _like(mapping.from_unit(out, x.dtype), img)


class Denoised(EachKey):
    """Dictionary form of :class:`Denoise`: denoise ``data[key]`` for each key with one model."""

    def __init__(
        self,
        keys: KeysCollection,
        model: str | Path | nn.Module | None = None,
        inference: InferenceConfig = DEFAULT_INFERENCE,
        value_range: Sequence[float] | None = None,
        columns_first: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = Denoise(model, inference, value_range, columns_first)


class TileInferer(SlidingWindowInferer):
    """A SlidingWindowInferer that runs an image fitting in one tile whole.

    This is what ``denoise apply`` does.

    MONAI's sliding window pads an image smaller than the window up to the window; the
    pipeline instead gives such an image to the network as it is (the network pads it to its
    size multiple). With the same window, overlap, batch and blending as
    :class:`~pipeline.inference.ModelDenoiser`, results agree with ``denoise apply``'s.
    Outputs are clipped to [0, 1].
    """

    def __call__(
        self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """The network's output on `inputs`, clipped to [0, 1]."""
        if max(inputs.shape[2:]) <= max(self.roi_size):
            return network(inputs, *args, **kwargs).clamp(0.0, 1.0)
        return super().__call__(inputs, network, *args, **kwargs).clamp(0.0, 1.0)
