"""A MONAI image reader over the pipeline's own readers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from monai.data import ImageReader

from pipeline.monai.value_range import UNIT_RANGE_KEY


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
        """Whether every named file exists and is in a format the pipeline reads."""
        from pipeline.io import detect_format

        names = [filename] if isinstance(filename, (str, Path)) else list(filename)
        return all(Path(name).is_file() and detect_format(name) is not None for name in names)

    def read(self, data: Sequence[str | Path] | str | Path, **kwargs: Any) -> list[Any]:
        """The images of the named files, read by :func:`pipeline.io.read_image`."""
        from pipeline.io import read_image

        names = [data] if isinstance(data, (str, Path)) else list(data)
        return [read_image(name) for name in names]

    def get_data(self, img: list[Any]) -> tuple[np.ndarray, dict]:
        """The pixels (W, H), one channel per frame when there are several, and the meta data."""
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
