"""MONAI transforms that denoise radiographs with a trained model, for research pipelines.

``Denoise`` (arrays) and ``Denoised`` (dictionaries) fit in a ``Compose`` after
``LoadImage``/``LoadImaged``::

    from monai.data import PILReader, PydicomReader
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged
    from pipeline.monai import Denoised

    chain = Compose([
        LoadImaged("image", reader=PydicomReader(prune_metadata=False, force=True)),
        EnsureChannelFirstd("image"),
        Denoised("image"),  # the shipped model; model="runs/.../best.pt" for another
    ])

Contract: the input is channel-first (C, spatial...) with two spatial axes; each channel is
denoised alone. The output has the input's type (MetaTensor, tensor or numpy array), dtype,
device, shape, value range and meta data. To reach the model's [0, 1], high = bright, the
values are mapped over the range the pipeline's own readers use (:class:`UnitRange`):
DICOM tags kept by MONAI's ``PydicomReader(prune_metadata=False)`` (BitsStored through the
rescale; MONOCHROME1 inverted), else the PIL mode of a PNG (8 or 16 bits), else an integer
dtype's full range, else values already in [0, 1]; ``value_range=(low, high)`` overrides it.
MONAI's readers put columns first (W, H); the model was trained on rows first, so with
``columns_first=True`` (the default) the image is transposed to (H, W) for the network and
back, which makes the result equal to ``denoise apply``'s on the same file.

The model is loaded once per transform; images larger than ``tile_size`` go through MONAI's
sliding window (:class:`~pipeline.inference.ModelDenoiser`), so memory follows the image.
:class:`TileInferer` is the same rule as a MONAI inferer, for bundles (:mod:`pipeline.bundle`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import ImageReader, MetaTensor
from monai.inferers import SlidingWindowInferer
from monai.transforms import MapTransform, Transform
from torch import nn

from pipeline.checkpoint import load_model
from pipeline.config import InferenceConfig
from pipeline.errors import PipelineError
from pipeline.exported import is_exported, load_exported_model
from pipeline.inference import DEFAULT_INFERENCE, ModelDenoiser, resolve_device

#: Meta data key under which :class:`ToUnitRange` records the mapping it applied.
UNIT_RANGE_KEY = "denoise_unit_range"
_PIL_MODE_RANGE = {
    "1": 1.0,
    "L": 255.0,
    "P": 255.0,
    "I;16": 65535.0,
    "I;16B": 65535.0,
    "I;16L": 65535.0,
    "I": 65535.0,
}


# --------------------------------------------------------------------------- value range


class _DicomTags:
    """pydicom-style ``get(keyword)`` over the DICOM tags in a MONAI meta dict.

    The tags are keyed as in ``"00280101": {...}``.
    """

    def __init__(self, meta: Mapping[str, Any]) -> None:
        self.meta = meta

    def get(self, keyword: str, default: Any = None) -> Any:
        from pydicom.datadict import tag_for_keyword

        tag = tag_for_keyword(keyword)
        entry = self.meta.get(f"{tag:08X}") if tag is not None else None
        if not isinstance(entry, Mapping) or entry.get("vr") == "SQ" or not entry.get("Value"):
            return default
        value = entry["Value"]
        return value[0] if len(value) == 1 else value

    def __getattr__(self, keyword: str) -> Any:
        value = self.get(keyword)
        if value is None:
            raise AttributeError(keyword)
        return value


@dataclass(frozen=True)
class UnitRange:
    """The map between an image's values and the model's [0, 1], high = bright.

    ``unit = (value - low) / (high - low)``, then ``1 - unit`` when ``invert`` (MONOCHROME1).
    """

    low: float
    high: float
    invert: bool = False

    @classmethod
    def from_record(cls, record: Sequence[Any]) -> UnitRange:
        """The range stored under :data:`UNIT_RANGE_KEY` (numbers, or tensors after collation)."""
        low, high, invert = (float(v) for v in record)
        return cls(low, high, bool(invert))

    @classmethod
    def of(cls, img: Any, value_range: Sequence[float] | None = None) -> UnitRange:
        """The range for `img` (see the module doc for the order of the rules)."""
        meta = img.meta if isinstance(img, MetaTensor) else {}
        if UNIT_RANGE_KEY in meta:  # ToUnitRange has mapped it already
            return cls(0.0, 1.0)
        invert = _DicomTags(meta).get("PhotometricInterpretation") == "MONOCHROME1"
        if value_range is not None:
            low, high = (float(v) for v in value_range)
            if not high > low:
                raise PipelineError(
                    f"value_range must be (low, high) with high > low; got {tuple(value_range)}"
                )
            return cls(low, high, invert)
        if _DicomTags(meta).get("BitsStored") is not None:
            from pipeline.io.dicom import unit_range

            return cls(*unit_range(_DicomTags(meta)))
        if meta.get("mode") in _PIL_MODE_RANGE:
            return cls(0.0, _PIL_MODE_RANGE[meta["mode"]])
        dtype = np.dtype(str(img.dtype).replace("torch.", ""))
        if dtype.kind in "ui":
            info = np.iinfo(dtype)
            return cls(float(info.min), float(info.max))
        low, high = float(img.min()), float(img.max())
        if low < 0.0 or high > 1.0:
            raise PipelineError(
                f"cannot tell the value range of a {dtype} image with values in [{low:g}, "
                f"{high:g}] (no DICOM tags or PNG mode in its meta data): pass value_range=(low, "
                "high), e.g. (0, 4095) for 12-bit data, or load DICOM with "
                "PydicomReader(prune_metadata=False)"
            )
        return cls(0.0, 1.0)

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        """float32 values in [0, 1], high = bright (computed in float64, as the readers do)."""
        unit = ((x.double() - self.low) / (self.high - self.low)).clamp(0.0, 1.0)
        return (1.0 - unit if self.invert else unit).float()

    def from_unit(self, unit: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """Values on this range in `dtype` (rounded and clipped for integer dtypes)."""
        unit = unit.double().clamp(0.0, 1.0)
        values = (1.0 - unit if self.invert else unit) * (self.high - self.low) + self.low
        if not dtype.is_floating_point:
            info = torch.iinfo(dtype)
            values = values.round().clamp(max(info.min, self.low), min(info.max, self.high))
        return values.to(dtype)


# --------------------------------------------------------------------------- helpers


def _as_tensor(img: Any) -> torch.Tensor:
    return torch.as_tensor(img) if not isinstance(img, torch.Tensor) else img


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


# --------------------------------------------------------------------------- reader


class ScanReader(ImageReader):
    """A MONAI image reader over the pipeline's own readers (:func:`pipeline.io.read_image`).

    Reads what ``denoise apply`` reads, the same way: DICOM (also ACR-NEMA files without
    file meta, compressed syntaxes, the modality LUT, MONOCHROME1), PNG, JPEG, TIFF, NIfTI.
    The array is float32 in [0, 1], high = bright, columns first (W, H) like MONAI's PIL
    and pydicom readers; a multi-frame file gives one channel per frame. The meta data
    records the file's range (:data:`UNIT_RANGE_KEY`), so :class:`FromUnitRange` maps results
    back to the file's values and :class:`Denoise` takes the array as it is.
    """

    def verify_suffix(self, filename: Sequence[str | Path] | str | Path) -> bool:
        """Whether every file in `filename` exists and has a format this reader reads."""
        from pipeline.io import detect_format

        names = [filename] if isinstance(filename, (str, Path)) else list(filename)
        return all(Path(name).is_file() and detect_format(name) is not None for name in names)

    def read(self, data: Sequence[str | Path] | str | Path, **kwargs: Any) -> list[Any]:
        """The images of the files in `data` (one list of frames per file)."""
        from pipeline.io import read_image

        names = [data] if isinstance(data, (str, Path)) else list(data)
        return [read_image(name) for name in names]

    def get_data(self, img: list[Any]) -> tuple[np.ndarray, dict]:
        """The frames of `img` stacked as (frames, W, H) float32 in [0, 1], and their meta data."""
        images = [frame for file in img for frame in file]
        first = images[0].meta
        pixels = np.stack([np.ascontiguousarray(i.pixels.T) for i in images])
        invert = (
            first.photometric == "MONOCHROME1"
            or first.extra.get("tiff_photometric") == "miniswhite"
        )
        col, row = (first.spacing or (1.0, 1.0))[::-1]
        meta = {
            UNIT_RANGE_KEY: [float(first.value_min), float(first.value_max), bool(invert)],
            "format": first.format,
            "spatial_shape": np.array(pixels.shape[1:]),
            "original_channel_dim": 0 if len(images) > 1 else float("nan"),
            "affine": np.diag([col, row, 1.0]),
            "original_affine": np.diag([col, row, 1.0]),
        }
        return (pixels if len(images) > 1 else pixels[0]), meta


# --------------------------------------------------------------------------- transforms


class ToUnitRange(Transform):
    """Map a channel-first image to float32 [0, 1], high = bright, and record how in its meta data.

    Parameters
    ----------
    value_range : sequence of float, optional
        (low, high) of the input values; None: from meta data or dtype (:class:`UnitRange`).
    """

    def __init__(self, value_range: Sequence[float] | None = None) -> None:
        self.value_range = value_range

    def __call__(self, img: Any) -> Any:
        """`img` mapped to [0, 1] as a MetaTensor that records the mapping."""
        if isinstance(img, MetaTensor) and UNIT_RANGE_KEY in img.meta:
            return img  # mapped already (ScanReader, or an earlier ToUnitRange)
        x = _as_tensor(img)
        mapping = UnitRange.of(img, self.value_range)
        out = MetaTensor(mapping.to_unit(x.as_tensor() if isinstance(x, MetaTensor) else x))
        if isinstance(img, MetaTensor):
            out.meta = dict(img.meta)
            out.applied_operations = list(img.applied_operations)
        out.meta[UNIT_RANGE_KEY] = [mapping.low, mapping.high, mapping.invert]
        return out


class FromUnitRange(Transform):
    """Map [0, 1] values back to the range :class:`ToUnitRange` recorded (float32 or `dtype`)."""

    def __init__(self, dtype: torch.dtype = torch.float32) -> None:
        self.dtype = dtype

    def __call__(self, img: Any, ref: Any = None) -> Any:
        """`img` mapped back to the values recorded in its (or `ref`'s) meta data."""
        source = img if ref is None else ref
        meta = source.meta if isinstance(source, MetaTensor) else {}
        if UNIT_RANGE_KEY not in meta:
            raise PipelineError(
                f"no {UNIT_RANGE_KEY} in the meta data: run ToUnitRange(d) on this image first"
            )
        x = _as_tensor(img)
        values = UnitRange.from_record(meta[UNIT_RANGE_KEY]).from_unit(
            x.as_tensor() if isinstance(x, MetaTensor) else x, self.dtype
        )
        return MetaTensor(values, meta={k: v for k, v in meta.items() if k != UNIT_RANGE_KEY})


class _EachKey(MapTransform):
    """Dictionary form of an array transform.

    ``data[key] = self.transform(data[key])`` for each key.
    """

    transform: Transform

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


class ToUnitRanged(_EachKey):
    """Dictionary form of :class:`ToUnitRange`."""

    def __init__(
        self,
        keys: KeysCollection,
        value_range: Sequence[float] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = ToUnitRange(value_range)


class FromUnitRanged(MapTransform):
    """Dictionary form of :class:`FromUnitRange`.

    `ref_key` names the item whose meta data holds the range.
    """

    def __init__(
        self,
        keys: KeysCollection,
        ref_key: str | None = None,
        dtype: torch.dtype = torch.float32,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key
        self.transform = FromUnitRange(dtype)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """A copy of `data` with each key's item mapped back by :class:`FromUnitRange`."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key], d[self.ref_key] if self.ref_key else None)
        return d


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
        """Denoised `img`, of the same type, dtype, range and meta data."""
        x = _as_tensor(img)
        _check_channel_first(x)
        mapping = UnitRange.of(img, self.to_unit.value_range)
        unit = mapping.to_unit(x.as_tensor() if isinstance(x, MetaTensor) else x)
        batch = unit.transpose(-1, -2) if self.columns_first else unit
        out = self.denoiser.denoise_tensor(batch.unsqueeze(1).contiguous())[:, 0].cpu()
        if self.columns_first:
            out = out.transpose(-1, -2)
        return _like(mapping.from_unit(out, x.dtype), img)


class Denoised(_EachKey):
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

    As ``denoise apply`` does.

    MONAI's sliding window pads an image smaller than the window up to the window; the
    pipeline instead gives such an image to the network as it is (the network pads it to its
    size multiple). With the same window, overlap, batch and blending as
    :class:`~pipeline.inference.ModelDenoiser`, results agree with ``denoise apply``'s.
    Outputs are clipped to [0, 1].
    """

    def __call__(
        self, inputs: torch.Tensor, network: Any, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        """Run `network` on `inputs`, whole when they fit one tile, else by sliding window."""
        if max(inputs.shape[2:]) <= max(self.roi_size):
            return network(inputs, *args, **kwargs).clamp(0.0, 1.0)
        return super().__call__(inputs, network, *args, **kwargs).clamp(0.0, 1.0)
