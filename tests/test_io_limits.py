"""One pixel limit for every reader, and third-party messages through the project's logger (issue
28)."""

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
    monkeypatch.setattr(
        Image, "MAX_IMAGE_PIXELS", 1000
    )  # Pillow's own limit far below the file: not used
    monkeypatch.setenv("DENOISE_MAX_PIXELS", "3000")
    [image] = read_image(path)
    assert image.pixels.shape == (60, 50)
    assert Image.MAX_IMAGE_PIXELS == 1000  # Pillow's setting is left as it was
    monkeypatch.setenv("DENOISE_MAX_PIXELS", "2999")
    with pytest.raises(ImageReadError, match="DENOISE_MAX_PIXELS"):
        read_image(path)


def _tiff_with_a_bad_tag(path) -> None:
    """A TIFF whose private tag has an invalid data type: tifffile logs it and reads on."""
    import struct

    import tifffile

    tifffile.imwrite(
        path,
        np.arange(64, dtype=np.uint16).reshape(8, 8),
        extratags=[(65000, "s", 0, "hello", True)],
    )
    data = bytearray(path.read_bytes())
    where = data.find(struct.pack("<H", 65000))
    data[where + 2 : where + 4] = struct.pack("<H", 99)
    path.write_bytes(data)


def test_third_party_log_records_are_warnings_naming_the_file(tmp_path, capsys):
    from pipeline.cli import main

    (tmp_path / "in").mkdir()
    _tiff_with_a_bad_tag(tmp_path / "in" / "odd.tif")
    code = main(
        [
            "apply",
            "-i",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
            "--no-progress",
            "--no-report",
            "--device",
            "cpu",
            "--tile-size",
            "64",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0
    [line] = [line for line in err.splitlines() if "invalid data type" in line]
    assert line.startswith("warning: odd.tif: ") and line.endswith("(tifffile)")
    assert not [line for line in err.splitlines() if line.startswith("error:")]


def test_third_party_warnings_name_the_file_being_read(capsys):
    import warnings

    from pipeline.cli import _WarningPrinter
    from pipeline.logs import about_file

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _WarningPrinter()
        with about_file("scans/knee.nii.gz"):
            warnings.warn(
                "Possible precision loss converting image\nsecond line", UserWarning, stacklevel=1
            )
        warnings.warn("outside any file", UserWarning, stacklevel=1)
    assert capsys.readouterr().err.splitlines() == [
        "warning: knee.nii.gz: Possible precision loss converting image",
        "warning: outside any file",
    ]
