"""NIfTI reader and writers: 2-D images, 3-D volumes, affine, dtype and scaling."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from pipeline.errors import ImageReadError
from pipeline.image import ImageMeta, ScanImage
from pipeline.io import detect_format, read_image, write_image
from pipeline.io.nifti import write_volume

AFFINE = np.array(
    [
        [0.5, 0.0, 0.0, 10.0],
        [0.0, 0.7, 0.0, -3.0],
        [0.0, 0.0, 2.0, 5.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def load(path) -> nib.Nifti1Image:
    """A NIfTI image from `path` whatever its suffix (gzip or not)."""
    raw = path.read_bytes()
    return nib.Nifti1Image.from_bytes(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)


@pytest.fixture
def volume(rng) -> np.ndarray:
    values = rng.integers(-1000, 3000, size=(12, 10, 4)).astype(np.int16)
    values[0, 0, 0], values[0, 1, 0] = -1000, 2999
    return values


def test_2d_uint16_round_trip_keeps_values_dtype_and_affine(tmp_path, rng):
    values = rng.integers(10, 4001, size=(16, 12)).astype(np.uint16)
    values[0, 0], values[0, 1] = 10, 4000
    nib.save(nib.Nifti1Image(values, AFFINE), tmp_path / "a.nii")
    (image,) = read_image(tmp_path / "a.nii")
    assert image.meta.format == "nifti" and image.meta.frame is None
    assert image.meta.dtype == "uint16"
    assert (image.meta.value_min, image.meta.value_max) == (10.0, 4000.0)  # data range
    assert image.meta.spacing == pytest.approx((0.5, 0.7))
    np.testing.assert_allclose(image.pixels, (values - 10.0) / 3990.0, atol=1e-6)

    out = write_image(image, tmp_path / "out.nii.tmp")
    assert detect_format(out) == "nifti"  # found by its header, whatever the suffix
    written = load(out)
    assert out.read_bytes()[:2] != b"\x1f\x8b"  # no .gz suffix: not compressed
    assert written.get_data_dtype() == np.uint16
    np.testing.assert_array_equal(np.asarray(written.dataobj), values)
    np.testing.assert_allclose(written.affine, AFFINE)
    assert np.isnan(written.header["scl_slope"]) and np.isnan(written.header["scl_inter"])


def test_3d_volume_gives_one_image_per_slice(tmp_path, volume):
    nib.save(nib.Nifti1Image(volume, AFFINE), tmp_path / "v.nii.gz")
    images = read_image(tmp_path / "v.nii.gz")
    assert [im.meta.frame for im in images] == [0, 1, 2, 3]
    assert all(im.pixels.shape == (12, 10) for im in images)
    assert (images[0].meta.value_min, images[0].meta.value_max) == (-1000.0, 2999.0)
    np.testing.assert_allclose(images[2].pixels, (volume[:, :, 2] + 1000.0) / 3999.0, atol=1e-6)


def test_volume_slice_is_written_as_2d_file_at_its_position(tmp_path, volume):
    nib.save(nib.Nifti1Image(volume, AFFINE), tmp_path / "v.nii.gz")
    images = read_image(tmp_path / "v.nii.gz")
    out = write_image(images[3], tmp_path / "s3.nii.gz.tmp")
    assert out.read_bytes()[:2] == b"\x1f\x8b"  # .gz in the suffixes: compressed
    written = load(out)
    assert written.shape == (12, 10) and written.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asarray(written.dataobj), volume[:, :, 3])
    expected = AFFINE.copy()
    expected[:3, 3] = (AFFINE @ np.array([0.0, 0.0, 3.0, 1.0]))[:3]  # voxel (0, 0, 3)
    np.testing.assert_allclose(written.affine, expected)


def test_write_volume_round_trip(tmp_path, volume):
    nib.save(nib.Nifti1Image(volume, AFFINE), tmp_path / "v.nii")
    images = read_image(tmp_path / "v.nii")
    out = write_volume(list(reversed(images)), tmp_path / "again.nii.gz")
    written = load(out)
    assert written.get_data_dtype() == np.int16
    np.testing.assert_array_equal(np.asarray(written.dataobj), volume)
    np.testing.assert_allclose(written.affine, AFFINE)


def test_float_volume_round_trip_is_close(tmp_path, rng):
    values = rng.normal(0.0, 50.0, size=(8, 9, 2)).astype(np.float32)
    nib.save(nib.Nifti1Image(values, AFFINE), tmp_path / "f.nii.gz")
    written = load(write_volume(read_image(tmp_path / "f.nii.gz"), tmp_path / "o.nii.gz"))
    assert written.get_data_dtype() == np.float32
    np.testing.assert_allclose(np.asarray(written.dataobj), values, rtol=1e-5, atol=1e-4)


def test_scaled_source_is_written_with_scaling_undefined(tmp_path, rng):
    raw = rng.integers(0, 100, size=(6, 5)).astype(np.int16)
    source = nib.Nifti1Image(raw, AFFINE)
    source.header.set_slope_inter(2.0, 10.0)
    nib.save(source, tmp_path / "s.nii")
    (image,) = read_image(tmp_path / "s.nii")
    scaled = raw * 2.0 + 10.0
    assert (image.meta.value_min, image.meta.value_max) == (scaled.min(), scaled.max())
    written = load(write_image(image, tmp_path / "o.nii"))
    assert np.isnan(written.header["scl_slope"])
    np.testing.assert_allclose(np.asarray(written.dataobj), scaled, rtol=1e-6)


def test_single_slice_volume_keeps_its_shape(tmp_path, rng):
    values = rng.integers(0, 255, size=(7, 6, 1)).astype(np.uint8)
    nib.save(nib.Nifti1Image(values, AFFINE), tmp_path / "one.nii")
    (image,) = read_image(tmp_path / "one.nii")
    assert image.meta.frame is None and image.pixels.shape == (7, 6)
    written = load(write_image(image, tmp_path / "o.nii"))
    assert written.shape == (7, 6, 1)
    np.testing.assert_array_equal(np.asarray(written.dataobj), values)


def test_non_nifti_source_puts_spacing_on_the_affine(tmp_path, smooth_image):
    meta = ImageMeta(format="png", dtype="uint8", value_max=255.0, spacing=(0.2, 0.3))
    out = write_image(ScanImage(smooth_image, meta), tmp_path / "x.nii.gz", fmt="nifti")
    written = load(out)
    np.testing.assert_allclose(np.diag(written.affine), [0.2, 0.3, 1.0, 1.0])
    assert written.get_data_dtype() == np.uint8
    expected = np.rint(smooth_image.astype(np.float64) * 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(written.dataobj), expected)


def test_4d_nifti_is_rejected(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.int16), AFFINE), tmp_path / "t.nii")
    with pytest.raises(ImageReadError, match=r"t\.nii: a 4-D NIfTI"):
        read_image(tmp_path / "t.nii")


def test_text_named_nii_is_rejected(tmp_path):
    path = tmp_path / "fake.nii"
    path.write_text("not a volume\n" * 40)
    with pytest.raises(ImageReadError, match=r"fake\.nii: not a NIfTI file"):
        read_image(path)


def test_truncated_nifti_is_rejected(tmp_path, volume):
    nib.save(nib.Nifti1Image(volume, AFFINE), tmp_path / "v.nii")
    path = tmp_path / "v.nii"
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(ImageReadError, match=r"v\.nii: (truncated|invalid)"):
        read_image(path)
