"""The map between an image's values and the model's [0, 1], and the transforms that apply it.

See :mod:`pipeline.monai` for the order of the rules that find an image's range.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform

from pipeline.errors import PipelineError

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

    The meta dict holds them as ``"00280101": {...}``.
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
                f"cannot tell the value range of a {dtype} image with values in "
                f"[{low:g}, {high:g}] "
                "(no DICOM tags or PNG mode in its meta data): pass value_range=(low, high), e.g. "
                "(0, 4095) for 12-bit data, or load DICOM with PydicomReader(prune_metadata=False)"
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


def as_tensor(img: Any) -> torch.Tensor:
    """`img` as a tensor (itself when it is one)."""
    return torch.as_tensor(img) if not isinstance(img, torch.Tensor) else img


class ToUnitRange(Transform):
    """Map a channel-first image to float32 [0, 1], high = bright, and record how in its meta data.

    Parameters
    ----------
    value_range : (low, high) of the input values; None: from meta data or dtype
        (:class:`UnitRange`).
    """

    def __init__(self, value_range: Sequence[float] | None = None) -> None:
        self.value_range = value_range

    def __call__(self, img: Any) -> Any:
        """`img` as float32 [0, 1] with the mapping in its meta data."""
        if isinstance(img, MetaTensor) and UNIT_RANGE_KEY in img.meta:
            return img  # mapped already (ScanReader, or an earlier ToUnitRange)
        x = as_tensor(img)
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
        """`img` on the range recorded in its meta data (or in `ref`'s)."""
        source = img if ref is None else ref
        meta = source.meta if isinstance(source, MetaTensor) else {}
        if UNIT_RANGE_KEY not in meta:
            raise PipelineError(
                f"no {UNIT_RANGE_KEY} in the meta data: run ToUnitRange(d) on this image first"
            )
        x = as_tensor(img)
        values = UnitRange.from_record(meta[UNIT_RANGE_KEY]).from_unit(
            x.as_tensor() if isinstance(x, MetaTensor) else x, self.dtype
        )
        return MetaTensor(values, meta={k: v for k, v in meta.items() if k != UNIT_RANGE_KEY})


class EachKey(MapTransform):
    """Dictionary form of an array transform.

    ``data[key] = self.transform(data[key])`` for each key.
    """

    transform: Transform

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        """A copy of `data` with each key transformed."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key])
        return d


class ToUnitRanged(EachKey):
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
        """A copy of `data` with each key mapped back to its range."""
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key], d[self.ref_key] if self.ref_key else None)
        return d
