"""PNG encoding of gray images, compressed in parallel bands.

Pillow encodes a PNG on one thread and tries every row filter on every row. Here
the rows get the Sub filter (each byte minus the same byte of the pixel to its left, PNG
filter type 1), computed with numpy, and bands of rows are deflated on several threads
(zlib releases the GIL). Each band is its own raw deflate stream ended by a sync flush,
so the concatenation is one valid deflate stream (the scheme of pigz); the zlib header
and the Adler-32 of all rows wrap it. Any PNG decoder reads the result; the stored
values are exactly the input's.

Only what the writers need: gray uint8 or uint16 (big-endian in the file) and 8-bit RGB
(the report's colour views), no interlacing, an optional sBIT chunk (significant bits of
16-bit data).
"""

from __future__ import annotations

import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Rows deflated as one band (a few MiB of a 16-bit 4096-wide scan).
BAND_ROWS = 256
#: Threads deflating bands at once.
THREADS = 2


def _chunk(handle: BinaryIO, kind: bytes, body: bytes) -> None:
    """Write one PNG chunk: length, type, body, CRC-32 of type and body."""
    handle.write(struct.pack(">I", len(body)) + kind)
    handle.write(body)
    handle.write(struct.pack(">I", zlib.crc32(body, zlib.crc32(kind))))


def _filtered_rows(values: np.ndarray) -> np.ndarray:
    """The rows of `values` as PNG scanlines: a filter-type byte (1, Sub) and the filtered bytes."""
    raw = (
        values.astype(values.dtype.newbyteorder(">"), copy=False)
        .view(np.uint8)
        .reshape(values.shape[0], -1)
    )
    step = values.dtype.itemsize * (values.shape[2] if values.ndim == 3 else 1)  # bytes a pixel
    lines = np.empty((raw.shape[0], raw.shape[1] + 1), np.uint8)
    lines[:, 0] = 1
    lines[:, 1 : 1 + step] = raw[:, :step]
    np.subtract(
        raw[:, step:], raw[:, :-step], out=lines[:, 1 + step :]
    )  # wraps modulo 256, as PNG says
    return lines


def _deflate_band(values: np.ndarray, level: int, last: bool) -> tuple[bytes, bytes]:
    """(scanline bytes, their raw deflate stream).

    The stream ends in a sync flush, or in the final block if `last`.
    """
    lines = _filtered_rows(values).tobytes()
    compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return lines, compressor.compress(lines) + compressor.flush(
        zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH
    )


def write_png(values: np.ndarray, path: Path, bits: int | None = None, level: int = 1) -> None:
    """Save a gray (2-D uint8 or uint16) or RGB ((H, W, 3) uint8) array as a PNG.

    Compressed at zlib `level`; sBIT = `bits` when below 16.
    """
    rgb = values.ndim == 3 and values.shape[2] == 3 and values.dtype == np.uint8
    if not (rgb or values.ndim == 2 and values.dtype in (np.uint8, np.uint16)) or 0 in values.shape:
        raise ValueError(
            f"PNG stores a non-empty 2-D uint8 or uint16 gray array (or an 8-bit RGB one), "
            f"not {values.dtype} {values.shape}"
        )
    height, width = values.shape[:2]
    depth = 8 * values.dtype.itemsize
    starts = range(0, height, BAND_ROWS)
    with open(path, "wb") as handle, ThreadPoolExecutor(THREADS, thread_name_prefix="png") as pool:
        handle.write(SIGNATURE)
        _chunk(
            handle, b"IHDR", struct.pack(">IIBBBBB", width, height, depth, 2 if rgb else 0, 0, 0, 0)
        )
        if depth == 16 and bits and bits < 16:
            _chunk(handle, b"sBIT", bytes([bits]))
        pending: deque[Future] = deque()
        checksum = 1
        header = bytes([0x78, 0x01])  # zlib: deflate, 32 KiB window, fastest-level flag
        for top in [*starts, None]:
            if top is not None:  # at most THREADS + 1 bands in flight: memory stays a few bands
                pending.append(
                    pool.submit(
                        _deflate_band,
                        values[top : top + BAND_ROWS],
                        level,
                        top + BAND_ROWS >= height,
                    )
                )
            while pending and (top is None or len(pending) > THREADS):
                lines, deflated = pending.popleft().result()
                checksum = zlib.adler32(lines, checksum)
                _chunk(handle, b"IDAT", header + deflated)
                header = b""
        _chunk(handle, b"IDAT", struct.pack(">I", checksum))
        _chunk(handle, b"IEND", b"")
