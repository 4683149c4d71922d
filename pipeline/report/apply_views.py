"""The apply report's pictures of a sampled scan: full-resolution views, crops, thumbnails.

Full-resolution views (input, output and the removed component, input minus output) are
PNG files in ``report_views/`` beside the report; crops and thumbnails are ``data:`` URIs.
"""

from __future__ import annotations

import base64
import io
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pipeline.apply.plan import REPORT_VIEWS
from pipeline.io import read_image
from pipeline.io.png import write_png
from pipeline.process import return_freed_heap
from pipeline.report.apply_sample import Row, noise_of, relative_input
from pipeline.report.example_figure import detail_crop
from pipeline.text import path_from_text

#: Largest side of the inline thumbnails.
THUMBNAIL_SIDE = 192
#: The zoomed crop's side: a quarter of the short side, within these bounds.
CROP_MIN, CROP_MAX = 64, 256
#: Pixels of a full-resolution view converted at a time (2 MiB of RGBA float64).
BLOCK_PIXELS = 1 << 16
#: zlib level of the full-resolution views.
VIEW_COMPRESS_LEVEL = 6
VIEWS = REPORT_VIEWS


def _first_image(path: Path) -> np.ndarray:
    """Pixels of the first image of a file, or of the first file of a frames folder.

    The decoder's freed temporaries are handed back to the system at once: the C heap would
    otherwise keep them (tens of MiB for a large scan) through the rest of the report.
    """
    if path.is_dir():
        path = min(p for p in path.iterdir() if not p.name.startswith("."))
    pixels = read_image(path)[0].pixels
    return_freed_heap()
    return pixels


def _png(array: np.ndarray) -> bytes:
    """PNG bytes of an 8-bit gray (H, W) or RGB (H, W, 3) array."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def _gray8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def _diverging8(diff: np.ndarray, limit: float) -> np.ndarray:
    """RGB of a signed image on a blue-white-red scale, ±limit at the ends."""
    from matplotlib import colormaps

    rgba = colormaps["RdBu_r"](np.clip(diff / limit, -1, 1) * 0.5 + 0.5)
    return np.round(rgba[..., :3] * 255).astype(np.uint8)


def _by_rows(
    image: np.ndarray | BinaryIO,
    convert: Callable[[np.ndarray], np.ndarray],
    channels: int = 0,
    shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """``convert(image)`` as uint8, computed :data:`BLOCK_PIXELS` pixels at a time.

    `image` is an array, or a file holding a float32 image of `shape` (read a block of rows at
    a time). Its float temporaries (RGBA float64 for a colour map) stay small on a scan of any
    size.
    """
    if shape is None:
        shape = image.shape
    else:
        image.seek(0)
    picture = np.empty(shape + ((channels,) if channels else ()), np.uint8)
    step = max(1, BLOCK_PIXELS // max(shape[1], 1))
    for top in range(0, shape[0], step):
        rows = min(step, shape[0] - top)
        block = (
            image[top : top + rows]
            if isinstance(image, np.ndarray)
            else np.fromfile(image, np.float32, rows * shape[1]).reshape(rows, shape[1])
        )
        picture[top : top + rows] = convert(block)
    return picture


def _thumbnail(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """Block-mean reduction so that no side exceeds `side`."""
    step = max(1, -(-max(image.shape[:2]) // side))
    h, w = (image.shape[0] // step) * step, (image.shape[1] // step) * step
    return image[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3))


def _uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


@dataclass
class ScanView:
    """One sampled scan as the viewer shows it."""

    index: int
    rel_input: str
    rel_output: str
    shape: tuple[int, int]
    noise_before: float
    noise_after: float
    limit: float
    crop: tuple[int, int, int]
    files: dict[str, str]  # input/output/removed -> path relative to the report
    crops: dict[str, str]  # input/output/removed -> data URI
    thumbnail: str


def _subtract_spilled(minuend: np.ndarray, spill: BinaryIO) -> None:
    """``minuend -= image`` for the float32 image of its shape written to `spill`.

    A block of rows at a time: only one block of the image is in memory.
    """
    spill.seek(0)
    step = max(1, BLOCK_PIXELS // max(minuend.shape[1], 1))
    for top in range(0, minuend.shape[0], step):
        rows = minuend[top : top + step]
        rows -= np.fromfile(spill, np.float32, rows.size).reshape(rows.shape)


def _spill_magnitude_percentile(image: np.ndarray, q: float, spill: BinaryIO) -> float:
    """``np.percentile(np.abs(image), q)``; `image` is written to `spill` first.

    Its magnitudes then replace it in place: the caller reads the signed values back from
    `spill` (see :func:`_by_rows`) and drops `image`.
    """
    spill.seek(0)
    image.tofile(spill)
    spill.flush()
    return float(np.percentile(np.abs(image, out=image), q, overwrite_input=True))


def make_view(index: int, row: Row, output_dir: Path, input_dir: Path | None) -> ScanView:
    """Read a sampled scan and its output; write its full-resolution views beside the report.

    Memory: one float32 image and one picture at a time. The output is read and drawn
    first, then set aside in an anonymous temporary file while the input is read; the
    removed component replaces the input in place and is set aside in the same file, and its
    picture is made from the file a block of rows at a time.
    """
    after_img = _first_image(output_dir / path_from_text(str(row["output"])))
    shape = h, w = after_img.shape
    crop = detail_crop(after_img, int(np.clip(min(h, w) // 4, min(CROP_MIN, h, w), CROP_MAX)))
    folder = output_dir / VIEWS
    folder.mkdir(parents=True, exist_ok=True)
    files, crops = {}, {}

    def save(name: str, picture: np.ndarray) -> None:
        top, left, side = crop
        target = folder / f"{index:03d}_{name}.png"
        write_png(picture, target, level=VIEW_COMPRESS_LEVEL)  # in bands: no whole-file copy
        files[name] = f"{VIEWS}/{target.name}"
        crops[name] = _uri(
            _png(np.ascontiguousarray(picture[top : top + side, left : left + side]))
        )

    save("output", _by_rows(after_img, _gray8))
    thumbnail = _uri(_png(_gray8(_thumbnail(after_img))))
    with tempfile.TemporaryFile(dir=folder) as spill:  # removed by the system, even after a crash
        after_img.astype(np.float32, copy=False).tofile(spill)
        del after_img
        removed = _first_image(Path(path_from_text(str(row["input"]))))
        if removed.shape != shape:
            raise ValueError(f"input {removed.shape} and output {shape} differ in size")
        save("input", _by_rows(removed, _gray8))
        _subtract_spilled(removed, spill)  # input - output, in place of the input
        limit = max(_spill_magnitude_percentile(removed, 99.5, spill), 1e-4)
        del removed  # the signed values are in `spill`
        picture = _by_rows(spill, lambda rows: _diverging8(rows, limit), 3, shape)
    save("removed", picture)
    before, after = noise_of(row)
    return ScanView(
        index,
        relative_input(row, input_dir),
        str(row["output"]),
        (h, w),
        before,
        after,
        limit,
        crop,
        {name: files[name] for name in ("input", "output", "removed")},
        crops,
        thumbnail,
    )


def clear_old_views(folder: Path) -> None:
    """Remove the views an earlier report wrote (only files named as this module names them)."""
    if folder.is_dir():
        for path in folder.glob("[0-9][0-9][0-9]_*.png"):
            if path.stem.split("_", 1)[1] in ("input", "output", "removed"):
                path.unlink()
