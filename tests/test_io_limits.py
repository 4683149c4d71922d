"""One pixel limit for every reader, and third-party messages through the project's logger (issue 28)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import ImageReadError
from pipeline.io import read_image


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_denoise_max_pixels_alone_governs_pillow_files(tmp_path, monkeypatch, suffix):
    path = tmp_path / f"scan{suffix}"
    Image.fromarray(np.full((60, 50), 128, np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow's own limit far below the file: not used
    monkeypatch.setenv("DENOISE_MAX_PIXELS", "3000")
    [image] = read_image(path)
    assert image.pixels.shape == (60, 50)
    assert Image.MAX_IMAGE_PIXELS == 1000  # Pillow's setting is left as it was
    monkeypatch.setenv("DENOISE_MAX_PIXELS", "2999")
    with pytest.raises(ImageReadError, match="DENOISE_MAX_PIXELS"):
        read_image(path)
