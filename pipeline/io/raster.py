"""PNG and JPEG (Pillow) and TIFF (tifffile): 8-bit and 16-bit gray images.

Reading keeps 8-bit and 16-bit apart: uint8 is normalised by 255, wider unsigned samples by 2**n - 1
for the n bits actually stored (a PNG ``sBIT`` chunk when the values fit in it, else the observed
maximum rounded up to a whole bit depth, at least 8). Float and signed TIFFs are normalised by their
data range. Gray stored as RGB/RGBA or through a palette (R = G = B) becomes one channel; real
colour is refused. Alpha is dropped. A TIFF ``MINISWHITE`` image is inverted to high = bright (and
back on writing). Every TIFF page (also pages of different sizes) and every APNG frame becomes one
image; compressed TIFFs (LZW, Deflate, PackBits, ...) are decoded by tifffile through imagecodecs. A
JPEG's EXIF Orientation is applied on reading (the pixels are turned upright) and recorded as
``meta.extra["exif_orientation_applied"]``. Float values that are NaN or infinite are refused, and
so is a file whose header declares more pixels than :func:`pipeline.io._values.max_pixels` allows
(checked before decoding).

Writing (PNG and TIFF only; JPEG is lossy and never written): in the source format the
source dtype and value mapping are kept (uint8 stays uint8, uint16 stays uint16), so an
unmodified image is written back with the same stored values.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np

from pipeline.errors import ImageReadError
from pipeline.image import ImageMeta, ScanImage
from pipeline.io._values import (
    check_file,
    check_finite,
    check_pixel_count,
    data_range,
    file_values,
    integer_range,
    normalise,
    observed_bits,
)
from pipeline.io.formats import detect_format
from pipeline.io.png import write_png
from pipeline.text import library_detail

_PIL_FORMAT = {"png": "PNG", "jpeg": "JPEG"}
#: TIFF PhotometricInterpretation codes (tag 262) handled here.
_TIFF_PHOTOMETRIC = {0: "miniswhite", 1: "minisblack", 2: "rgb", 3: "palette"}
#: Largest |R - G| or |G - B| accepted as gray: exact for lossless files; JPEG chroma
#: subsampling and rounding move gray pixels by a level or two.
_GRAY_TOLERANCE = {"png": 0, "tiff": 0, "jpeg": 3}
#: zlib compression level of written PNGs (1: fast; Pillow's default is 6). The encoder is
#: :func:`pipeline.io.png.write_png`: on a 16-bit 4096² scan as many bytes as Pillow at this
#: level in a third of the time, the same stored values.
PNG_COMPRESS_LEVEL = 1


def read_raster(path: str | Path, fmt: str | None = None) -> list[ScanImage]:
    """Read a PNG, JPEG or TIFF file (a multi-page TIFF gives one image per page).

    Parameters
    ----------
    path : the file.
    fmt : ``"png"``, ``"jpeg"`` or ``"tiff"``; default: detected from the file.
    """
    path = check_file(path, (fmt or "image").upper())
    if fmt is None:
        fmt = detect_format(path)
    if fmt == "tiff":
        pages, extra = _read_tiff(path)
    elif fmt in _PIL_FORMAT:
        pages, extra = _read_pillow(path, fmt)
    else:
        raise ImageReadError(f"{path}: not a PNG, JPEG or TIFF file")

    for page in pages:
        check_finite(path, page)
    same_shape = len({page.shape for page in pages}) == 1
    if len(pages) == 1:  # the range of one page: no copy of a large scan
        values = pages[0]
    else:
        values = np.stack(pages) if same_shape else np.concatenate([p.ravel() for p in pages])
    vmin, vmax, bits = _value_range(values, extra.pop("sbit", None))
    invert = extra.get("tiff_photometric") == "miniswhite"
    images = []
    for index, page in enumerate(pages):
        unit = normalise(page, vmin, vmax)
        meta = ImageMeta(
            format=fmt,
            source=path,
            dtype=page.dtype.name,
            bits_stored=bits,
            value_min=vmin,
            value_max=vmax,
            frame=index if len(pages) > 1 else None,
            extra=dict(extra),
        )
        images.append(ScanImage(1.0 - unit if invert else unit, meta))
    return images


def write_raster(image: ScanImage, path: str | Path, fmt: str) -> Path:
    """Write `image` to exactly `path` as ``"png"`` or ``"tiff"`` (whatever its suffix).

    PNG holds uint8 or uint16 only: a float or signed image written in another format is
    converted as :func:`pipeline.io._values.file_values` describes.
    """
    if fmt not in ("png", "tiff"):
        raise ValueError(f"write_raster writes 'png' or 'tiff', not {fmt!r} (JPEG is lossy)")
    path = Path(path)
    same = image.meta.format == fmt
    invert = same and image.meta.extra.get("tiff_photometric") == "miniswhite"
    source = replace(image, pixels=1.0 - image.pixels) if invert else image
    values, written = file_values(source, fmt)
    if fmt == "png":
        write_png(values, path, written.bits_stored, PNG_COMPRESS_LEVEL)
    else:
        import tifffile

        photometric = "miniswhite" if invert else "minisblack"
        tifffile.imwrite(path, values, photometric=photometric)
    return path


# --------------------------------------------------------------------------- Pillow


def _read_pillow(path: Path, fmt: str) -> tuple[list[np.ndarray], dict]:
    """Decode a PNG/JPEG into one gray array; returns ([array], extra)."""
    from PIL import UnidentifiedImageError

    name = _PIL_FORMAT[fmt]
    header = _png_header(path) if fmt == "png" else {}
    if header.get("bit_depth") == 16 and header.get("colour_type") in (2, 4, 6):
        raise ImageReadError(
            f"{path}: 16-bit PNG with colour or alpha channels is not supported (Pillow "
            "would reduce it to 8 bits); save it as 16-bit grayscale without alpha"
        )
    if (
        header.get("bit_depth") == 16
        and header.get("colour_type") == 0
        and not header.get("animated")
    ):
        return [_read_gray16_png(path, header)], {"mode": "I;16", **_sbit(header)}
    try:
        with _open_without_pillows_limit(path, name) as image:
            frames = int(getattr(image, "n_frames", 1) or 1)
            width, height = image.size
            check_pixel_count(
                path, (frames, height, width), f"{frames} frame(s) of {width}x{height}"
            )
            mode = image.mode
            orientation = _exif_orientation(image) if fmt == "jpeg" else 1
            arrays = []
            for index in range(frames):  # APNG: every frame, not just the first
                image.seek(index)
                image.load()
                arrays.append(_pillow_gray(_oriented(image, orientation), path, fmt))
    except ImageReadError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageReadError(f"{path}: not a valid {name} image (unrecognised content)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(
            f"{path}: truncated or corrupt {name} image ({library_detail(exc)})"
        ) from exc
    if len({a.dtype for a in arrays}) > 1:
        raise ImageReadError(
            f"{path}: animation frames of different sample types are not supported"
        )
    extra: dict = {"mode": mode, **_sbit(header)}
    if orientation != 1:
        extra["exif_orientation_applied"] = orientation
    return arrays, extra


def _sbit(header: dict) -> dict:
    """``{"sbit": n}`` when the PNG header gave one."""
    return {"sbit": header["sbit"]} if header.get("sbit") else {}


def _read_gray16_png(path: Path, header: dict) -> np.ndarray:
    """A 16-bit grayscale PNG decoded by libpng (imagecodecs) straight into a uint16 array.

    Pillow's route holds the decoded image twice more on the way to numpy (its own buffer and
    the bytes numpy copies from): a peak of 97 against 63 MiB for a 4096² scan (array included).
    """
    import imagecodecs

    width, height = header["width"], header["height"]
    check_pixel_count(path, (1, height, width), f"1 frame(s) of {width}x{height}")
    data = path.read_bytes()
    try:
        values = imagecodecs.png_decode(data)
    except Exception as exc:  # noqa: BLE001 - libpng's errors have no common base but this
        raise ImageReadError(
            f"{path}: truncated or corrupt PNG image ({library_detail(exc)})"
        ) from exc
    del data
    if values.ndim != 2 or values.dtype != np.uint16:
        raise ImageReadError(
            f"{path}: expected 16-bit grayscale values, decoded {values.dtype} {values.shape}"
        )
    return values


_PILLOW_LIMIT_LOCK = threading.Lock()


def _open_without_pillows_limit(path: Path, name: str):
    """``Image.open(path)`` with Pillow's own decompression-bomb limit (about 179 MP) off.

    :data:`~pipeline.io._values.MAX_PIXELS_VARIABLE` alone decides, checked by the caller
    from the header before decoding. Pillow checks its limit only while opening, so it is
    lifted (under a lock: the setting is global) for that call alone.
    """
    from PIL import Image

    with _PILLOW_LIMIT_LOCK:
        limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            return Image.open(path, formats=[name])
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def _exif_orientation(image) -> int:
    """The EXIF Orientation (1-8) of a Pillow image; 1 (as stored) when absent or invalid."""
    try:
        value = int(image.getexif().get(0x0112, 1))
    except (TypeError, ValueError, OSError, SyntaxError):
        return 1
    return value if 1 <= value <= 8 else 1


def _oriented(image, orientation: int):
    """`image` turned upright as its EXIF Orientation says (JPEG from cameras and phones)."""
    from PIL import Image

    steps = {
        2: [Image.Transpose.FLIP_LEFT_RIGHT],
        3: [Image.Transpose.ROTATE_180],
        4: [Image.Transpose.FLIP_TOP_BOTTOM],
        5: [Image.Transpose.TRANSPOSE],
        6: [Image.Transpose.ROTATE_270],
        7: [Image.Transpose.TRANSVERSE],
        8: [Image.Transpose.ROTATE_90],
    }.get(orientation, [])
    for step in steps:
        image = image.transpose(step)
    return image


def _pillow_gray(image, path: Path, fmt: str) -> np.ndarray:
    """The gray values of a Pillow image (uint8, uint16 or float32)."""
    mode = image.mode
    if mode in ("1", "L", "LA", "La"):
        return np.asarray(image.convert("L") if mode == "1" else image.getchannel(0))
    if mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16, copy=False)
    if mode == "I":
        array = np.asarray(image)
        if array.min() < 0 or array.max() > 65535:
            raise ImageReadError(f"{path}: 32-bit integer values outside 0..65535")
        return array.astype(np.uint16)
    if mode == "F":
        return np.asarray(image, dtype=np.float32)
    if mode in ("P", "PA"):
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGB", "RGBA", "RGBX"):
        return _gray_from_rgb(np.asarray(image)[..., :3], path, _GRAY_TOLERANCE[fmt])
    raise ImageReadError(f"{path}: colour mode {mode!r} is not supported: a gray image is needed")


def _gray_from_rgb(rgb: np.ndarray, path: Path, tolerance: int) -> np.ndarray:
    """One channel of gray content stored as RGB; ImageReadError for real colour."""
    wide = rgb.astype(np.int64)
    spread = max(
        int(np.abs(wide[..., 0] - wide[..., 1]).max(initial=0)),
        int(np.abs(wide[..., 1] - wide[..., 2]).max(initial=0)),
    )
    if spread > tolerance:
        raise ImageReadError(
            f"{path}: a colour image (channels differ by up to {spread}); this tool denoises "
            "gray images: convert it to grayscale first"
        )
    if spread == 0:
        return np.ascontiguousarray(rgb[..., 0])
    return np.rint(wide.mean(axis=-1)).astype(rgb.dtype)


def _png_header(path: Path) -> dict:
    """Size, bit depth, colour type, sBIT (channel 0's significant bits) and APNG flag of a PNG."""
    found: dict = {}
    with open(path, "rb") as handle:
        if handle.read(8) != b"\x89PNG\r\n\x1a\n":
            return found
        while True:
            head = handle.read(8)
            if len(head) < 8:
                return found
            length, kind = struct.unpack(">I4s", head)
            body = handle.read(length)
            handle.seek(4, 1)  # CRC
            if kind == b"IHDR" and len(body) >= 10:
                found["width"], found["height"] = struct.unpack(">II", body[:8])
                found["bit_depth"], found["colour_type"] = body[8], body[9]
            elif kind == b"acTL":
                found["animated"] = True
            elif kind == b"sBIT" and body:
                found["sbit"] = body[0]
            elif kind in (b"IDAT", b"IEND"):
                return found


# --------------------------------------------------------------------------- TIFF


def _read_tiff(path: Path) -> tuple[list[np.ndarray], dict]:
    """Decode every page of a TIFF into gray arrays; returns (pages, extra).

    Each page is read on its own, so pages of different sizes are all kept; the pixel
    count of all pages is checked against the limit from their headers first.
    """
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            pages = list(tif.pages)
            shapes = [tuple(int(n) for n in page.shape) for page in pages]
            check_pixel_count(
                path,
                [sum(int(np.prod(s)) for s in shapes)],
                f"{len(pages)} page(s), first {'x'.join(map(str, shapes[0]))}",
            )
            first = pages[0]
            code = int(first.photometric)
            photometric = _TIFF_PHOTOMETRIC.get(code, str(code))
            arrays = [_tiff_gray(page, path) for page in pages]
    except ImageReadError:
        raise
    except Exception as exc:  # tifffile raises TiffFileError, ValueError, ...
        raise ImageReadError(f"{path}: not a readable TIFF image ({library_detail(exc)})") from exc
    gray = [page for array in arrays for page in ([array] if array.ndim == 2 else list(array))]
    if len({page.dtype for page in gray}) > 1:
        raise ImageReadError(f"{path}: TIFF pages of different sample types are not supported")
    return gray, {"tiff_photometric": "rgb" if photometric == "palette" else photometric}


def _tiff_gray(page, path: Path) -> np.ndarray:
    """The gray values of one TIFF page: (H, W), or (D, H, W) for a volumetric page."""
    code, planar = int(page.photometric), int(page.planarconfig)
    samples = int(page.samplesperpixel)
    photometric = _TIFF_PHOTOMETRIC.get(code, str(code))
    colormap = page.colormap
    array = page.asarray()
    separate = planar == 2 and samples > 1  # samples first: (..., S, H, W)
    if photometric == "palette" and colormap is not None:
        array = np.moveaxis(colormap[:, array], 0, -1)
        photometric = "rgb"
    if photometric == "rgb":
        if separate:
            array = np.moveaxis(array, -3, -1)
        array = _gray_from_rgb(array[..., :3], path, _GRAY_TOLERANCE["tiff"])
    elif photometric not in ("minisblack", "miniswhite"):
        raise ImageReadError(f"{path}: TIFF photometric {photometric!r} is not a gray image")
    elif samples > 1:  # gray plus extra samples (alpha): keep the gray one
        array = array[..., 0, :, :] if separate else array[..., 0]
    if array.ndim not in (2, 3) or 0 in array.shape:
        raise ImageReadError(f"{path}: TIFF page of shape {array.shape} is not a 2-D gray image")
    if array.dtype.kind not in "uif" or array.dtype.itemsize > 4:
        raise ImageReadError(f"{path}: TIFF sample type {array.dtype} is not supported")
    return array


def _value_range(values: np.ndarray, sbit: int | None) -> tuple[float, float, int | None]:
    """(value_min, value_max, bits_stored) for the values of one file.

    Unsigned values use the bits actually stored: a PNG's sBIT when the values fit in it,
    else (wider than 8 bits) the observed maximum rounded up to a whole bit depth, so 12-bit
    data in 16-bit samples or 20-bit data in 32-bit samples keep their contrast. Other
    values are mapped by their observed range.
    """
    if values.dtype.kind == "u":
        bits = values.dtype.itemsize * 8
        if sbit and sbit < bits and int(values.max()) <= 2**sbit - 1:
            bits = sbit
        elif bits > 8:
            bits = observed_bits(int(values.max()))
        low, high = integer_range(values.dtype, bits)
        return float(low), float(high), bits
    low, high = data_range(values)
    return low, high, None
