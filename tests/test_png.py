"""The banded, parallel PNG encoder: any decoder reads back exactly the values written."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from pipeline.io import png
from pipeline.io.png import write_png


def chunks(path) -> list[tuple[bytes, bytes]]:
    """(type, body) of every chunk, each CRC checked."""
    data = path.read_bytes()
    assert data[:8] == png.SIGNATURE
    found, at = [], 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        body = data[at + 8 : at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length : at + 12 + length])[0] == zlib.crc32(
            kind + body
        )
        found.append((kind, body))
        at += 12 + length
    return found


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize(
    "shape", [(1, 1), (3, 700), (png.BAND_ROWS * 2 + 7, 5), (png.BAND_ROWS, 33)]
)
def test_values_round_trip_through_pillow(tmp_path, shape, dtype):
    values = np.random.default_rng(0).integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
    write_png(values, tmp_path / "a.png")
    read = np.asarray(Image.open(tmp_path / "a.png"))
    assert read.shape == shape and np.array_equal(read.astype(np.int64), values.astype(np.int64))


def test_one_zlib_stream_with_a_valid_checksum_and_sub_filtered_rows(tmp_path):
    values = np.arange(600 * 9, dtype=np.uint16).reshape(600, 9) * 7
    write_png(values, tmp_path / "a.png", bits=12)
    found = chunks(tmp_path / "a.png")
    kinds = [kind for kind, _ in found]
    assert (
        kinds[:2] == [b"IHDR", b"sBIT"] and kinds[-1] == b"IEND" and set(kinds[2:-1]) == {b"IDAT"}
    )
    assert found[1][1] == bytes([12])
    width, height, depth, colour = struct.unpack(">IIBB", found[0][1][:10])
    assert (width, height, depth, colour) == (9, 600, 16, 0)
    lines = zlib.decompress(
        b"".join(body for kind, body in found if kind == b"IDAT")
    )  # checks Adler-32
    rows = np.frombuffer(lines, np.uint8).reshape(600, 1 + 18)
    assert (rows[:, 0] == 1).all()  # Sub filter on every row
    raw = (
        np.cumsum(rows[:, 1:].reshape(600, 9, 2).astype(np.int64), axis=1) % 256
    )  # undo Sub per byte lane
    assert np.array_equal(raw[..., 0] * 256 + raw[..., 1], values)


def test_no_sbit_for_full_16_bits_or_8_bits(tmp_path):
    write_png(np.zeros((2, 2), np.uint16), tmp_path / "a.png", bits=16)
    write_png(np.zeros((2, 2), np.uint8), tmp_path / "b.png", bits=6)
    assert all(
        kind != b"sBIT" for path in ("a.png", "b.png") for kind, _ in chunks(tmp_path / path)
    )


@pytest.mark.parametrize("shape", [(1, 1, 3), (png.BAND_ROWS + 3, 70, 3)])
def test_rgb_values_round_trip_through_pillow(tmp_path, shape):
    values = np.random.default_rng(1).integers(0, 256, shape).astype(np.uint8)
    write_png(values, tmp_path / "a.png", level=6)
    with Image.open(tmp_path / "a.png") as image:
        assert image.mode == "RGB" and np.array_equal(np.asarray(image), values)


@pytest.mark.parametrize(
    "values",
    [
        np.zeros((2, 2), np.float32),
        np.zeros((2, 2, 3), np.uint16),
        np.zeros((2, 2, 4), np.uint8),
        np.zeros((0, 4), np.uint8),
    ],
)
def test_other_arrays_are_refused(tmp_path, values):
    with pytest.raises(ValueError, match="PNG stores"):
        write_png(values, tmp_path / "a.png")
