"""PNG / JPEG / TIFF readers and writers, plus format detection and output naming."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, PngImagePlugin

from pipeline.errors import ImageReadError
from pipeline.image import ImageMeta, ScanImage
from pipeline.io import (
    SUPPORTED_SUFFIXES,
    default_output_format,
    detect_format,
    output_suffix,
    read_image,
    write_image,
)


@pytest.fixture
def gray8(rng) -> np.ndarray:
    values = rng.integers(0, 256, size=(30, 40)).astype(np.uint8)
    values[0, 0], values[0, 1] = 0, 255
    return values


@pytest.fixture
def gray16(rng) -> np.ndarray:
    values = rng.integers(0, 65536, size=(30, 40)).astype(np.uint16)
    values[0, 0], values[0, 1] = 0, 65535
    return values


def png(values: np.ndarray, path: Path, mode: str | None = None, sbit: int | None = None) -> Path:
    image = Image.fromarray(values) if mode is None else Image.fromarray(values).convert(mode)
    info = None
    if sbit is not None:
        info = PngImagePlugin.PngInfo()
        info.add(b"sBIT", bytes([sbit]))
    image.save(path, format="PNG", pnginfo=info)
    return path


# --------------------------------------------------------------------------- PNG


def test_png_8_bit_round_trip_is_exact(tmp_path, gray8):
    (image,) = read_image(png(gray8, tmp_path / "a.png"))
    assert image.meta.format == "png" and image.meta.dtype == "uint8"
    assert (image.meta.value_min, image.meta.value_max, image.meta.bits_stored) == (0, 255, 8)
    np.testing.assert_allclose(image.pixels, gray8 / 255.0, atol=1e-7)
    out = write_image(image, tmp_path / "out.tmp")  # suffix does not decide the format
    assert detect_format(out) == "png"
    with Image.open(out) as written:
        assert written.mode == "L"
        np.testing.assert_array_equal(np.asarray(written), gray8)


def test_png_16_bit_is_kept_16_bit(tmp_path, gray16):
    (image,) = read_image(png(gray16, tmp_path / "a.png"))
    assert image.meta.dtype == "uint16" and image.meta.value_max == 65535.0
    np.testing.assert_allclose(image.pixels, gray16 / 65535.0, atol=1e-7)
    with Image.open(write_image(image, tmp_path / "out.png")) as written:
        assert written.mode.startswith("I;16")
        np.testing.assert_array_equal(np.asarray(written), gray16)


def test_png_sbit_gives_the_real_bit_depth(tmp_path, rng):
    values = rng.integers(0, 4096, size=(16, 16)).astype(np.uint16)
    values[0, 0] = 4095
    (image,) = read_image(png(values, tmp_path / "a.png", sbit=12))
    assert image.meta.bits_stored == 12 and image.meta.value_max == 4095.0
    assert image.pixels.max() == 1.0
    out = write_image(image, tmp_path / "out.png")
    with Image.open(out) as written:
        np.testing.assert_array_equal(np.asarray(written), values)
    assert read_image(out)[0].meta.bits_stored == 12  # sBIT written back


def test_png_sbit_ignored_when_values_are_scaled_to_16_bits(tmp_path, gray16):
    (image,) = read_image(png(gray16, tmp_path / "a.png", sbit=12))
    assert image.meta.value_max == 65535.0 and image.meta.bits_stored == 16


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "P"])
def test_gray_stored_in_other_modes_becomes_one_channel(tmp_path, gray8, mode):
    (image,) = read_image(png(gray8, tmp_path / f"{mode}.png", mode=mode))
    assert image.pixels.shape == gray8.shape and image.meta.dtype == "uint8"
    np.testing.assert_allclose(image.pixels, gray8 / 255.0, atol=1e-7)
    assert image.meta.extra["mode"] == mode


def test_colour_png_is_rejected(tmp_path, gray8):
    rgb = np.stack([gray8, gray8, 255 - gray8], axis=-1)
    path = tmp_path / "colour.png"
    Image.fromarray(rgb).save(path)
    with pytest.raises(ImageReadError, match=r"colour\.png: a colour image"):
        read_image(path)


def test_16_bit_rgb_png_is_rejected_not_squashed(tmp_path):
    path = tmp_path / "rgb16.png"
    width = height = 2
    raw = b"".join(b"\x00" + b"\x12\x34" * 3 * width for _ in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    with pytest.raises(ImageReadError, match=r"rgb16\.png: 16-bit PNG with colour"):
        read_image(path)


def test_text_file_named_png_is_rejected(tmp_path):
    path = tmp_path / "fake.png"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageReadError, match=r"fake\.png: not a valid PNG image"):
        read_image(path)


def test_empty_png_is_rejected(tmp_path):
    path = tmp_path / "empty.png"
    path.touch()
    with pytest.raises(ImageReadError, match=r"empty\.png: empty file"):
        read_image(path)


def test_truncated_png_is_rejected(tmp_path, gray8):
    path = png(gray8, tmp_path / "cut.png")
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(ImageReadError, match=r"cut\.png: truncated or corrupt PNG"):
        read_image(path)


def test_16_bit_gray_png_decoded_by_libpng_matches_pillow(tmp_path, gray16, monkeypatch):
    path = png(gray16, tmp_path / "a.png", sbit=16)
    (image,) = read_image(path)
    assert image.meta.extra["mode"] == "I;16" and image.meta.bits_stored == 16
    with Image.open(path) as pillow:
        np.testing.assert_array_equal(np.asarray(pillow).astype(np.uint16), gray16)
    np.testing.assert_array_equal(np.rint(image.pixels * 65535.0).astype(np.uint16), gray16)
    monkeypatch.setenv("DENOISE_MAX_PIXELS", str(gray16.size - 1))
    with pytest.raises(ImageReadError, match=r"a\.png: declares 1,200 pixels"):
        read_image(path)


def test_truncated_16_bit_png_is_rejected(tmp_path, gray16):
    path = png(gray16, tmp_path / "cut16.png")
    path.write_bytes(path.read_bytes()[:-400])
    with pytest.raises(ImageReadError, match=r"cut16\.png: truncated or corrupt PNG"):
        read_image(path)


def test_16_bit_animated_png_gives_every_frame(tmp_path, gray16):
    frames = [Image.fromarray(gray16), Image.fromarray(gray16[::-1].copy())]
    path = tmp_path / "anim.png"
    frames[0].save(path, format="PNG", save_all=True, append_images=frames[1:])
    images = read_image(path)
    assert len(images) == 2, "an APNG is read by Pillow, frame by frame"
    np.testing.assert_allclose(images[0].pixels, gray16 / 65535.0, atol=1e-7)


# --------------------------------------------------------------------------- JPEG


def test_jpeg_source_is_written_as_png_with_decoded_values(tmp_path, gray8):
    path = tmp_path / "a.jpg"
    Image.fromarray(gray8).save(path, format="JPEG", quality=90)
    (image,) = read_image(path)
    assert image.meta.format == "jpeg" and image.meta.dtype == "uint8"
    assert default_output_format("jpeg") == "png" and output_suffix("jpeg") == ".png"
    out = write_image(image, tmp_path / "a.out")
    assert detect_format(out) == "png"
    with Image.open(path) as decoded, Image.open(out) as written:
        np.testing.assert_array_equal(np.asarray(written), np.asarray(decoded))
    with pytest.raises(ValueError, match="lossy"):
        write_image(image, tmp_path / "b.jpg", fmt="jpeg")


def test_jpeg_gray_saved_as_rgb_becomes_gray(tmp_path, smooth_image):
    gray = np.rint(smooth_image * 255).astype(np.uint8)
    path = tmp_path / "rgb.jpg"
    Image.fromarray(gray).convert("RGB").save(path, format="JPEG", quality=95)
    (image,) = read_image(path)
    assert image.pixels.shape == gray.shape
    assert np.abs(image.pixels * 255 - gray).max() <= 6  # lossy, but gray and aligned


# --------------------------------------------------------------------------- TIFF


def test_tiff_16_bit_round_trip_is_exact(tmp_path, gray16):
    path = tmp_path / "a.tiff"
    tifffile.imwrite(path, gray16)
    (image,) = read_image(path)
    assert image.meta.format == "tiff" and image.meta.dtype == "uint16"
    out = write_image(image, tmp_path / "out.tmp")
    assert detect_format(out) == "tiff"
    written = tifffile.imread(out)
    assert written.dtype == np.uint16
    np.testing.assert_array_equal(written, gray16)


def test_tiff_float_round_trip_keeps_float(tmp_path, rng):
    values = rng.normal(100.0, 30.0, size=(12, 10)).astype(np.float32)
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, values)
    (image,) = read_image(path)
    assert (image.meta.value_min, image.meta.value_max) == (values.min(), values.max())
    written = tifffile.imread(write_image(image, tmp_path / "o.tif"))
    assert written.dtype == np.float32
    np.testing.assert_allclose(written, values, rtol=1e-5)


def test_tiff_miniswhite_is_inverted_and_written_back(tmp_path, gray8):
    path = tmp_path / "w.tif"
    tifffile.imwrite(path, gray8, photometric="miniswhite")
    (image,) = read_image(path)
    np.testing.assert_allclose(image.pixels, 1.0 - gray8 / 255.0, atol=1e-7)
    out = write_image(image, tmp_path / "o.tif")
    with tifffile.TiffFile(out) as tif:
        assert tif.pages[0].photometric.name == "MINISWHITE"
        np.testing.assert_array_equal(tif.asarray(), gray8)


def test_planar_rgb_tiff_with_gray_content_becomes_gray(tmp_path, gray8):
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, np.stack([gray8] * 3), photometric="rgb", planarconfig="separate")
    (image,) = read_image(path)
    np.testing.assert_allclose(image.pixels, gray8 / 255.0, atol=1e-7)


def test_multi_page_tiff_gives_one_image_per_page(tmp_path, rng):
    pages = rng.integers(0, 65536, size=(3, 8, 9)).astype(np.uint16)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, pages, photometric="minisblack")
    images = read_image(path)
    assert [im.meta.frame for im in images] == [0, 1, 2]
    np.testing.assert_allclose(images[2].pixels, pages[2] / 65535.0, atol=1e-7)


def test_png_written_as_tiff_keeps_16_bits(tmp_path, gray16):
    (image,) = read_image(png(gray16, tmp_path / "a.png"))
    written = tifffile.imread(write_image(image, tmp_path / "a.tif", fmt="tiff"))
    np.testing.assert_array_equal(written, gray16)


def test_12_bit_image_written_as_png_uses_the_full_16_bit_range(tmp_path):
    pixels = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    meta = ImageMeta(format="dicom", dtype="uint16", bits_stored=12, value_max=4095.0)
    with Image.open(write_image(ScanImage(pixels, meta), tmp_path / "x.png", "png")) as written:
        values = np.asarray(written)
    assert values.dtype == np.uint16 and values.max() == 65535 and values.min() == 0


# --------------------------------------------------------------------------- real files


def test_real_8_bit_png_round_trip(cxr_dir, tmp_path):
    path = cxr_dir / "png" / "nih_chestxray14" / "00000001_000_512px_torchxrayvision.png"
    (image,) = read_image(path)
    assert image.pixels.shape == (512, 512) and image.meta.dtype == "uint8"
    with Image.open(path) as source, Image.open(write_image(image, tmp_path / "o.png")) as out:
        np.testing.assert_array_equal(np.asarray(out), np.asarray(source))


def test_real_rgb_lowres_png_reads_as_gray(cxr_dir):
    path = min((cxr_dir / "lowres" / "nih1000_64px" / "train").rglob("*.png"))
    (image,) = read_image(path)
    assert image.pixels.shape == (64, 64)
    with Image.open(path) as source:
        np.testing.assert_allclose(image.pixels, np.asarray(source)[..., 0] / 255.0, atol=1e-7)


def test_real_jpeg_reads_as_8_bit_gray(cxr_dir):
    path = min((cxr_dir / "png" / "hannover_mhh_covid").glob("*.jpg"))
    (image,) = read_image(path)
    assert image.pixels.shape == (2000, 2000) and image.meta.format == "jpeg"
    assert image.meta.value_max == 255.0


# --------------------------------------------------------------------------- detection


def test_detect_format_prefers_the_signature_over_the_suffix(tmp_path, gray8):
    path = png(gray8, tmp_path / "really_png.dcm")
    assert detect_format(path) == "png"
    assert detect_format(tmp_path / "missing.TIFF") == "tiff"
    assert detect_format(tmp_path / "vol.nii.gz") == "nifti"
    assert detect_format(tmp_path / "notes.txt") is None


def test_suffix_tables():
    assert {
        ".dcm",
        ".dicom",
        ".png",
        ".jpg",
        ".jpeg",
        ".tif",
        ".tiff",
        ".nii",
        ".nii.gz",
    } <= SUPPORTED_SUFFIXES
    assert output_suffix("dicom") == ".dcm" and output_suffix("nifti") == ".nii.gz"
    assert output_suffix("tiff", source="a/b.TIFF") == ".tiff"
    assert output_suffix("nifti", source="a/b.nii") == ".nii"
    assert output_suffix("dicom", source="a/b") == ".dcm"
    assert output_suffix("array") == ".png" and output_suffix("tif") == ".tif"


def test_unsupported_file_and_folder_are_reported(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ImageReadError, match=r"table\.csv: unsupported file type"):
        read_image(path)
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nothing.png")
