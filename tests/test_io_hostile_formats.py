"""Hostile inputs, second round: no header value in any message, every valid variant read
right (LZW/Deflate/PackBits TIFF, big-endian DICOM), every invalid one refused (a cut JPEG
frame, an infinite NIfTI slope). One test per problem, on the smallest file that shows it.
"""

from __future__ import annotations

import io
import logging
import struct
import warnings

import nibabel as nib
import numpy as np
import pydicom
import pytest
import tifffile
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

from pipeline.errors import ImageReadError
from pipeline.io import read_image, write_image

SECRET = "SECRET^PATIENT"


def dataset(syntax: str = ExplicitVRLittleEndian, rows: int = 4, columns: int = 6) -> Dataset:
    """A 16-bit MONOCHROME2 Secondary Capture header with a patient name (no pixel data)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = SECRET, "PID-SECRET-1", "OT"
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    return ds


def encoded(ds: Dataset, **options) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True, **options)
    return buffer.getvalue()


def with_length(raw: bytes, head: bytes, length: int) -> bytes:
    """`raw` with the 16-bit length of the explicit-VR element starting `head` set to `length`."""
    at = raw.index(head)
    return raw[: at + 6] + struct.pack("<H", length) + raw[at + 8 :]


def with_syntax(raw: bytes, syntax: str) -> bytes:
    """`raw` with its (0002,0010) Transfer Syntax UID replaced, the data left as encoded."""
    at = raw.index(b"\x02\x00\x10\x00UI")
    length = struct.unpack("<H", raw[at + 6 : at + 8])[0]
    value = syntax.encode() + b"\0" * (len(syntax) % 2)
    return raw[: at + 6] + struct.pack("<H", len(value)) + value + raw[at + 8 + length :]


def read_everything_said(path, caplog, capfd) -> tuple[list, str]:
    """(images or the refusal, all text the read produced: reason, log, warnings, stdout,
    stderr)."""
    with caplog.at_level(logging.DEBUG), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result, reason = read_image(path), ""
        except ImageReadError as err:
            result, reason = [], str(err)
    out, err = capfd.readouterr()
    said = "\n".join([reason, caplog.text, out, err, *(str(w.message) for w in caught)])
    return result, said


# --------------------------------------------------------------------------- patient data


def test_uid_running_into_the_patient_module_is_never_quoted(tmp_path, caplog, capfd):
    """A SOP Class UID length that swallows the next elements: pydicom used to warn with
    the whole value (patient name, pixel bytes) on stderr and in its log."""
    ds = dataset()
    ds.PixelData = np.zeros((4, 6), np.uint16).tobytes()
    raw = with_length(encoded(ds), b"\x08\x00\x16\x00UI", 0x0100)
    (tmp_path / "uid.dcm").write_bytes(raw)
    images, said = read_everything_said(tmp_path / "uid.dcm", caplog, capfd)
    assert "SECRET" not in said and "\\x00" not in said
    assert not images and "uid.dcm" in said


def test_tolerated_header_problems_are_one_line_without_values(tmp_path, caplog, capfd):
    """An implicit-VR body under an explicit-VR file meta reads; pydicom's warning becomes
    one line naming the file."""
    ds = dataset(ImplicitVRLittleEndian)
    ds.PixelData = np.arange(24, dtype=np.uint16).tobytes()
    (tmp_path / "vr.dcm").write_bytes(with_syntax(encoded(ds), ExplicitVRLittleEndian))
    images, said = read_everything_said(tmp_path / "vr.dcm", caplog, capfd)
    assert len(images) == 1 and images[0].pixels.shape == (4, 6)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("pipeline")]
    assert len(lines) == 1 and "vr.dcm" in lines[0] and "not shown" in lines[0]
    assert "SECRET" not in said


# --------------------------------------------------------------------------- valid inputs read


@pytest.mark.parametrize("compression", ["lzw", "deflate", "packbits"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_compressed_tiff_is_read_exactly(tmp_path, compression, dtype):
    values = (np.add.outer(np.arange(20), np.arange(30)) * 97 % np.iinfo(dtype).max).astype(dtype)
    tifffile.imwrite(tmp_path / "c.tif", values, compression=compression, photometric="minisblack")
    with tifffile.TiffFile(tmp_path / "c.tif") as tif:
        assert tif.pages[0].compression.name.lower().startswith(compression[:4])
    (image,) = read_image(tmp_path / "c.tif")
    np.testing.assert_array_equal(
        np.rint(image.pixels * image.meta.value_max).astype(dtype), values
    )


def test_big_endian_dicom_is_written_as_explicit_little_endian(tmp_path):
    ds = dataset(ExplicitVRBigEndian)
    stored = (np.arange(24, dtype=np.uint16) * 150).reshape(4, 6)
    ds.PixelData = stored.astype(">u2").tobytes()
    for element, vr, value in [
        (0x0010, "US", 4),
        (0x0011, "US", 6),
        (0x0040, "CS", "G"),
        (0x0050, "SS", [1, 1]),
        (0x0100, "US", 1),
        (0x0102, "US", 0),
    ]:  # an overlay plane: rows, columns, ...
        ds.add_new(0x60000000 + element, vr, value)
    ds.add_new(
        0x60003000, "OW", struct.pack(">HH", 0x0102, 0x0304)
    )  # Overlay Data, big-endian words
    (tmp_path / "be.dcm").write_bytes(encoded(ds, implicit_vr=False, little_endian=False))
    (image,) = read_image(tmp_path / "be.dcm")
    write_image(image, tmp_path / "out.dcm")
    out = pydicom.dcmread(tmp_path / "out.dcm")
    assert out.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    np.testing.assert_array_equal(out.pixel_array, stored)
    assert struct.unpack("<HH", out[0x60003000].value) == (0x0102, 0x0304)
    assert "DERIVED" in out.ImageType and out.SeriesInstanceUID != ds.SeriesInstanceUID


# --------------------------------------------------------------------------- invalid inputs refused


def jpeg_dicom(path, cut: bool) -> None:
    """An 8-bit JPEG Baseline DICOM of one 64x64 frame, the frame cut in half when `cut`."""
    buffer = io.BytesIO()
    Image.fromarray((np.add.outer(np.arange(64), np.arange(64)) * 2 % 256).astype(np.uint8)).save(
        buffer, format="JPEG", quality=90
    )
    frame = buffer.getvalue()
    if cut:
        frame = frame[: len(frame) // 2]
    ds = dataset(JPEGBaseline8Bit, 64, 64)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = encapsulate([frame + b"\0" * (len(frame) % 2)])
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


def test_jpeg_frame_cut_in_half_is_refused(tmp_path):
    jpeg_dicom(tmp_path / "whole.dcm", cut=False)
    jpeg_dicom(tmp_path / "cut.dcm", cut=True)
    assert read_image(tmp_path / "whole.dcm")[0].pixels.shape == (64, 64)
    with pytest.raises(ImageReadError, match=r"frame 1 of 1 is truncated"):
        read_image(tmp_path / "cut.dcm")


def nifti_with_scaling(path, slope: float, inter: float = 5.0):
    raw = bytearray(
        nib.Nifti1Image(np.arange(12, dtype=np.int16).reshape(3, 4), np.eye(4)).to_bytes()
    )
    raw[112:120] = struct.pack(
        "<ff", slope, inter
    )  # scl_slope, scl_inter (nibabel refuses to write these)
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("slope", [np.inf, -np.inf])
def test_infinite_nifti_slope_is_refused(tmp_path, slope):
    with pytest.raises(ImageReadError, match="scl_slope is -?inf"):
        read_image(nifti_with_scaling(tmp_path / "s.nii", slope))


@pytest.mark.parametrize(
    ("slope", "low", "high"), [(np.nan, 0.0, 11.0), (0.0, 0.0, 11.0), (2.0, 5.0, 27.0)]
)
def test_nifti_slope_zero_or_nan_means_no_scaling(tmp_path, slope, low, high):
    (image,) = read_image(nifti_with_scaling(tmp_path / "s.nii", slope))
    assert (image.meta.value_min, image.meta.value_max) == (low, high)
    write_image(image, tmp_path / "o.nii")
    assert nib.load(tmp_path / "o.nii").header.get_slope_inter() == (
        None,
        None,
    )  # never scaled on output
