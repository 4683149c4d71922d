"""Every image under ../shared/data/cxr loads: PNG, JPEG, the five DICOMs, the 64-px set."""

from __future__ import annotations

import numpy as np

from pipeline.ingest.folder import load_folder


def test_every_shared_radiograph_loads(cxr_dir) -> None:
    images, failures = load_folder(cxr_dir)  # the ACR-NEMA file logs a warning (no file meta), by design
    assert failures == [], failures
    by_format: dict[str, int] = {}
    for img in images:
        by_format[img.meta.format] = by_format.get(img.meta.format, 0) + 1
        assert img.pixels.dtype == np.float32 and img.pixels.ndim == 2
        assert 0.0 <= float(img.pixels.min()) and float(img.pixels.max()) <= 1.0
        assert float(img.pixels.std()) > 0.01, f"{img.meta.source} looks empty"
    assert by_format == {"dicom": 5, "png": 7 + 1000, "jpeg": 10}
