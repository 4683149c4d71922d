"""Hostile or inconsistent image files: each is refused with a short reason or read whole.

One test per problem found by the hardening campaign (issue 15), on the smallest file
that shows it.
"""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

from pipeline.errors import ImageReadError
from pipeline.io import read_image
from pipeline.io._values import DEFAULT_MAX_PIXELS, MAX_PIXELS_VARIABLE
from pipeline.io.dicom import DerivedSeries
from pipeline.text import library_detail, path_text, short_text


def tiny_dicom(path, **tags):
    """A 2x3 16-bit MONOCHROME2 Secondary Capture with `tags` set (after the defaults)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName = "DOE^JANE"
    ds.Rows, ds.Columns = 2, 3
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.arange(6, dtype=np.uint16).tobytes()
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def refused(path) -> str:
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    return str(info.value)


# --------------------------------------------------------------------------- non-finite values


def test_nan_pixel_in_float_tiff_is_refused(tmp_path):
    values = np.ones((2, 2), np.float32)
    values[0, 1] = np.nan
    tifffile.imwrite(tmp_path / "a.tif", values)
    assert "NaN or infinite" in refused(tmp_path / "a.tif")


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_voxel_in_float_nifti_is_refused(tmp_path, bad):
    values = np.ones((2, 2, 2), np.float32)
    values[1, 1, 1] = bad
    nib.save(nib.Nifti1Image(values, np.eye(4)), tmp_path / "v.nii.gz")
    assert "1 pixel value(s) are NaN or infinite" in refused(tmp_path / "v.nii.gz")


@pytest.mark.parametrize("slope", ["NaN", "inf", "-inf"])
def test_non_finite_dicom_rescale_slope_is_refused(tmp_path, slope):
    path = tiny_dicom(tmp_path / "r.dcm", RescaleSlope=slope, RescaleIntercept="0")
    assert "RescaleSlope" in refused(path)


# --------------------------------------------------------------------------- size bombs


def test_tiff_declaring_too_many_pixels_is_refused_before_decoding(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((64, 64), np.uint8), compression="zlib")
    monkeypatch.setenv(MAX_PIXELS_VARIABLE, str(64 * 64 - 1))
    assert "above the limit of 4,095" in refused(tmp_path / "big.tif")
    monkeypatch.setenv(MAX_PIXELS_VARIABLE, str(64 * 64))
    assert read_image(tmp_path / "big.tif")[0].pixels.shape == (64, 64)


def test_nifti_declaring_30000_squared_is_refused_without_decompressing(tmp_path):
    header = nib.Nifti1Header()
    header.set_data_shape((30000, 30000, 2))
    header.set_data_dtype(np.uint8)
    raw = header.binaryblock + b"\0" * 4 + b"\0" * 1000  # a tiny body: the header lies
    (tmp_path / "bomb.nii.gz").write_bytes(gzip.compress(raw))
    message = refused(tmp_path / "bomb.nii.gz")
    assert "1,800,000,000 pixels" in message and f"{DEFAULT_MAX_PIXELS:,}" in message


def test_dicom_declaring_30000_squared_is_refused_before_decoding(tmp_path):
    from pydicom.encaps import encapsulate

    path = tiny_dicom(
        tmp_path / "bomb.dcm",
        Rows=30000,
        Columns=30000,
        PixelData=encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 64]),
    )
    from pydicom import dcmread

    ds = dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path)
    assert "900,000,000 pixels" in refused(path)


def test_png_bomb_is_refused_from_its_header(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(tmp_path / "a.png")
    monkeypatch.setenv(MAX_PIXELS_VARIABLE, "1000")
    assert "2,000 pixels (1 frame(s) of 50x40)" in refused(tmp_path / "a.png")


# --------------------------------------------------------------------------- nothing dropped


def test_tiff_pages_of_different_sizes_are_all_read(tmp_path):
    tifffile.imwrite(tmp_path / "p.tif", np.zeros((4, 4), np.uint16))
    tifffile.imwrite(tmp_path / "p.tif", np.full((2, 3), 7, np.uint16), append=True)
    images = read_image(tmp_path / "p.tif")
    assert [i.pixels.shape for i in images] == [(4, 4), (2, 3)]
    assert [i.meta.frame for i in images] == [0, 1]


def test_apng_frames_are_all_read(tmp_path):
    frames = [Image.fromarray(np.full((3, 4), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "a.png", save_all=True, append_images=frames[1:])
    images = read_image(tmp_path / "a.png")
    assert [round(float(i.pixels.mean()) * 255) for i in images] == [10, 200]


@pytest.mark.parametrize(
    ("orientation", "shape", "corner"), [(1, (2, 3), 0), (3, (2, 3), 250), (6, (3, 2), 150)]
)
def test_jpeg_exif_orientation_is_applied_and_recorded(tmp_path, orientation, shape, corner):
    values = np.array([[0, 50, 100], [150, 200, 250]], np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(values).save(tmp_path / "o.jpg", exif=exif, quality=100, subsampling=0)
    image = read_image(tmp_path / "o.jpg")[0]
    assert image.pixels.shape == shape
    assert abs(round(float(image.pixels[0, 0]) * 255) - corner) <= 3
    assert image.meta.extra.get("exif_orientation_applied", 1) == orientation


# --------------------------------------------------------------------------- DICOM consistency


def test_dicom_pixel_data_longer_than_declared_is_refused(tmp_path):
    path = tiny_dicom(tmp_path / "l.dcm", PixelData=np.arange(12, dtype=np.uint16).tobytes())
    assert "longer than its header declares" in refused(path)


def test_dicom_number_of_frames_larger_than_the_data_is_refused(tmp_path):
    path = tiny_dicom(tmp_path / "f.dcm", NumberOfFrames=100000)
    assert "truncated pixel data" in refused(path)


def test_encapsulated_frames_must_match_number_of_frames(cxr_dir, tmp_path):
    from pydicom import dcmread

    source = next(p for p in sorted((cxr_dir / "dicom").iterdir()) if "J2KI" in p.name)
    ds = dcmread(source)
    ds.NumberOfFrames = 3
    ds.save_as(tmp_path / "j.dcm")
    assert "NumberOfFrames is 3 but the pixel data holds 1 frame(s)" in refused(tmp_path / "j.dcm")


@pytest.mark.parametrize("tags", [{"BitsStored": 20}, {"BitsAllocated": 12}, {"Rows": 0}])
def test_impossible_pixel_module_values_are_refused(tmp_path, tags):
    message = refused(tiny_dicom(tmp_path / "b.dcm", **tags))
    assert "bit depth" in message or "invalid image size" in message


@pytest.mark.parametrize(
    ("source", "expected"),
    [(2**31 - 1, 1000), (5, 1005), (-(2**31), -(2**31) + 1000), (None, 1000)],
)
def test_series_number_stays_a_valid_is_value(source, expected):
    assert DerivedSeries().series_number(source) == expected


# --------------------------------------------------------------------------- reasons


def test_unparsable_dicom_reason_carries_no_header_text(tmp_path):
    path = tiny_dicom(tmp_path / "p.dcm")
    raw = path.read_bytes()
    cut = raw.index(b"DOE^JANE")
    (tmp_path / "p.dcm").write_bytes(raw[: cut - 2] + b"\xff\xff" + raw[cut:])  # PN length 65535
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert "DOE" not in str(info.value) and len(str(info.value)) < 300


def test_reason_helpers_cut_escape_and_never_fail():
    assert len(short_text("x" * 10_000)) == 300
    assert short_text("a\x00b\nc") == "a\\x00b c"
    assert path_text("caf\udce9.png") == "caf\\xe9.png"
    assert library_detail(ValueError(b"\x00" * 5000)).startswith("ValueError: b'")
    assert len(library_detail(ValueError(b"\x00" * 5000))) <= 120


def test_a_decoder_panic_becomes_a_read_error(tmp_path, monkeypatch):
    """A Rust decoder's panic is a BaseException (pyo3's PanicException), not an Exception."""
    import pipeline.io

    class Panic(BaseException):
        pass

    def panicking(path):
        raise Panic("index out of bounds: the len is 3840 but the index is 3840")

    monkeypatch.setattr(pipeline.io, "read_dicom", panicking)
    path = tiny_dicom(tmp_path / "p.dcm")
    assert "damaged or inconsistent DICOM file (Panic)" in refused(path)


def test_unknown_transfer_syntax_is_named(tmp_path):
    path = tiny_dicom(tmp_path / "t.dcm")
    raw = path.read_bytes().replace(b"1.2.840.10008.1.2.1\0", b"1.2.3.4.5.6.7.8.9.0\0")
    path.write_bytes(raw)
    assert "unknown transfer syntax '1.2.3.4.5.6.7.8.9.0'" in refused(path)


def test_damaged_uids_are_not_quoted_in_reasons(tmp_path):
    # a UID whose length runs into the next elements carries their bytes (here a patient name)
    path = tiny_dicom(tmp_path / "s.dcm", SOPClassUID="1.2.840.10008.5.1.4.1.1.7\0DOE^JANE")
    raw = path.read_bytes()
    no_pixels = raw[: raw.index(b"\xe0\x7f\x10\x00")]  # cut before (7FE0,0010)
    (tmp_path / "n.dcm").write_bytes(
        no_pixels.replace(b"\x28\x00\x10\x00US", b"\x28\x00\x10\x10US")
    )
    reason = refused(tmp_path / "n.dcm")
    assert "JANE" not in reason and "not an image" in reason
    syntax = raw.replace(b"1.2.840.10008.1.2.1\0", b"1.2.840\0DOE^JANE\0\0")
    (tmp_path / "t.dcm").write_bytes(syntax)
    reason = refused(tmp_path / "t.dcm")
    assert "JANE" not in reason and "not a valid UID" in reason


def test_header_element_the_writer_cannot_encode_is_a_write_error(tmp_path):
    from pipeline.errors import ImageWriteError
    from pipeline.io import write_image

    path = tiny_dicom(tmp_path / "v.dcm")
    raw = path.read_bytes()
    at = raw.index(b"\x28\x00\x02\x00")  # (0028,0002) SamplesPerPixel: insert (0018,1190) before it
    element = b"\x18\x00\x90\x11" + b"TS" + (4).to_bytes(2, "little") + b"1.5 "
    path.write_bytes(raw[:at] + element + raw[at:])
    image = read_image(path)[0]
    with pytest.raises(ImageWriteError, match="cannot be written as DICOM"):
        write_image(image, tmp_path / "out.dcm")
