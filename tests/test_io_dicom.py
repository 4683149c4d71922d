"""DICOM reader and derived-series writer: real edge-case files and synthesized datasets."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_validation import dciodvfy_errors
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    JPEG2000,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
    RTPlanStorage,
    generate_uid,
)

import pipeline
from pipeline.errors import ImageReadError
from pipeline.image import ScanImage
from pipeline.io import detect_format, read_image, write_image
from pipeline.io.dicom import DerivedSeries, read_dicom

CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
SC_STORAGE = "1.2.840.10008.5.1.4.1.1.7"

REAL_FILES = {
    "jpeg_mono2": "siim_pneumothorax_1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm",
    "jpeg_fake_mono1": "siim_Fake_MONOHR1_torchxrayvision.dcm",
    "j2k_15bit_mono1": "pydicom_RG1_J2KI_cr_chest.dcm",
    "implicit_8bit": (
        "nih_cxr14_gcp_1.3.6.1.4.1.11129.5.5.110503645592756492463169821050252582267888.dcm"
    ),
    "acr_nema_10bit": "fodicom_CR-MONO1-10-chest.acrnema.dcm",
}


# --------------------------------------------------------------------------- helpers


def stored_pixels(path: Path) -> np.ndarray:
    """Decoded stored values of `path` via pydicom (assuming Implicit VR for ACR-NEMA)."""
    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", Dataset()):
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds.pixel_array


def read_one(path: Path) -> ScanImage:
    """The single image of `path`."""
    images = read_image(path)
    assert len(images) == 1
    return images[0]


def make_dataset(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    sop_class: str = CR_STORAGE,
    rescale: tuple[float, float] | None = None,
) -> Dataset:
    """A small CR-like dataset with patient, study, series and pixel modules."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName, ds.PatientID = "Test^Patient", "PID-42"
    ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.StudyDate, ds.StudyTime, ds.StudyID = "20240101", "120000", "1"
    ds.AccessionNumber, ds.ReferringPhysicianName = "ACC1", ""
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CR", 3, 1
    ds.PatientOrientation = ["A", "F"]
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PixelSpacing = [0.2, 0.25]
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
        ds.RescaleType = "US"
    pydicom.pixels.set_pixel_data(ds, pixels, photometric, bits_stored, generate_instance_uid=False)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def ramp12(rng) -> np.ndarray:
    """12-bit values covering both ends of the stored range."""
    values = rng.integers(0, 4096, size=(24, 20)).astype(np.uint16)
    values[0, 0], values[0, 1] = 0, 4095
    return values


# --------------------------------------------------------------------------- real files


@pytest.fixture(scope="module")
def dicom_dir(cxr_dir: Path) -> Path:
    return cxr_dir / "dicom"


@pytest.mark.parametrize("key", sorted(REAL_FILES))
def test_real_file_decodes_to_normalised_modality_values(dicom_dir, key):
    path = dicom_dir / REAL_FILES[key]
    image = read_one(path)
    ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    stored = stored_pixels(path).astype(np.float64)
    top = 2 ** int(ds.BitsStored) - 1
    expected = stored / top
    if ds.PhotometricInterpretation == "MONOCHROME1":
        expected = 1.0 - expected
    assert image.pixels.dtype == np.float32 and image.pixels.shape == stored.shape
    np.testing.assert_allclose(image.pixels, expected, atol=1e-6)
    assert (image.meta.value_min, image.meta.value_max) == (0.0, float(top))
    assert image.meta.bits_stored == int(ds.BitsStored)
    assert image.meta.photometric == ds.PhotometricInterpretation
    assert image.meta.format == "dicom" and image.meta.frame is None
    assert "PixelData" not in image.meta.dataset  # header kept, pixels dropped


def test_j2k_15_bit_is_normalised_by_32767_and_zero_spacing_ignored(dicom_dir):
    image = read_one(dicom_dir / REAL_FILES["j2k_15bit_mono1"])
    assert image.meta.value_max == 32767.0 and image.meta.bits_stored == 15
    assert image.meta.dtype == "uint16"
    assert image.meta.spacing is None  # PixelSpacing is stored as 0\0
    assert 0.1 < float(image.pixels.min()) and float(image.pixels.max()) < 1.0


def test_fake_mono1_reads_as_the_inverse_of_its_mono2_sibling(dicom_dir):
    """Same stored bytes, different photometric: displayed images are negatives."""
    mono2 = read_one(dicom_dir / REAL_FILES["jpeg_mono2"])
    fake = read_one(dicom_dir / REAL_FILES["jpeg_fake_mono1"])
    np.testing.assert_allclose(fake.pixels, 1.0 - mono2.pixels, atol=1e-6)
    assert (mono2.meta.photometric, fake.meta.photometric) == ("MONOCHROME2", "MONOCHROME1")


def test_acr_nema_file_reads_with_a_warning_naming_it(dicom_dir, caplog):
    path = dicom_dir / REAL_FILES["acr_nema_10bit"]
    assert detect_format(path) == "dicom"
    with caplog.at_level(logging.WARNING, logger="pipeline.io.dicom"):
        (image,) = read_dicom(path)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        re.search(r"ACR-NEMA.*Implicit VR Little Endian", m) and path.name in m for m in warned
    ), warned
    assert image.pixels.shape == (440, 440)
    assert image.meta.value_max == 1023.0 and image.meta.photometric == "MONOCHROME1"


@pytest.mark.parametrize("key", sorted(REAL_FILES))
def test_real_file_round_trip_is_exact_and_derived(dicom_dir, tmp_path, key):
    path = dicom_dir / REAL_FILES[key]
    image = read_one(path)
    series = DerivedSeries(run_id="test-run")
    out = write_image(image, tmp_path / "out.dcm.tmp", series=series, derivation="unit-test model")
    assert out == tmp_path / "out.dcm.tmp" and detect_format(out) == "dicom"

    source = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    written = pydicom.dcmread(out)
    np.testing.assert_array_equal(written.pixel_array, stored_pixels(path))
    assert written.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert written.PhotometricInterpretation == source.PhotometricInterpretation
    for keyword in ("BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation"):
        assert written[keyword].value == source[keyword].value, keyword
    # new identity, same patient and study
    assert written.SeriesInstanceUID != source.SeriesInstanceUID
    assert written.SeriesInstanceUID == series.series_uid(str(source.SeriesInstanceUID))
    assert written.SOPInstanceUID != source.SOPInstanceUID
    assert written.SOPInstanceUID == written.file_meta.MediaStorageSOPInstanceUID
    assert written.StudyInstanceUID == source.StudyInstanceUID
    assert written.get("PatientID") == source.get("PatientID")
    assert written.get("PatientName") == source.get("PatientName")
    assert int(written.SeriesNumber) == int(source.get("SeriesNumber") or 0) + 1000
    # marked as derived, with provenance
    assert list(written.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert pipeline.__version__ in written.DerivationDescription
    assert "unit-test model" in written.DerivationDescription
    assert "Denoised" in written.SeriesDescription
    (reference,) = written.SourceImageSequence
    assert reference.ReferencedSOPClassUID == source.SOPClassUID
    assert reference.ReferencedSOPInstanceUID == source.SOPInstanceUID
    if source.get("WindowCenter") is not None:
        assert written.WindowCenter == source.WindowCenter


@pytest.mark.parametrize("key", sorted(REAL_FILES))
def test_real_file_output_adds_no_dciodvfy_error(dicom_dir, tmp_path, key):
    path = dicom_dir / REAL_FILES[key]
    out = write_image(read_one(path), tmp_path / "out.dcm")
    new_errors = dciodvfy_errors(out) - dciodvfy_errors(path)
    assert not new_errors, "\n".join(sorted(new_errors))


def test_lossy_source_stays_flagged_lossy(dicom_dir, tmp_path):
    out = write_image(read_one(dicom_dir / REAL_FILES["jpeg_mono2"]), tmp_path / "o.dcm")
    written = pydicom.dcmread(out)
    assert written.LossyImageCompression == "01"
    assert not written.file_meta.TransferSyntaxUID.is_compressed


def test_truncated_jpeg_file_is_reported(dicom_dir, tmp_path):
    data = (dicom_dir / REAL_FILES["jpeg_mono2"]).read_bytes()
    bad = tmp_path / "cut.dcm"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.dcm.*truncated"):
        read_image(bad)


# --------------------------------------------------------------------------- synthesized


def test_mono1_with_rescale_reads_modality_range_and_writes_back(tmp_path, ramp12):
    path = save(
        make_dataset(ramp12, photometric="MONOCHROME1", rescale=(0.5, -100.0)),
        tmp_path / "mono1.dcm",
    )
    (image,) = read_image(path)
    assert image.meta.value_min == -100.0 and image.meta.value_max == 0.5 * 4095 - 100.0
    np.testing.assert_allclose(image.pixels, 1.0 - ramp12 / 4095.0, atol=1e-6)
    assert image.pixels[0, 0] == 1.0 and image.pixels[0, 1] == 0.0  # stored 0 is white

    written = pydicom.dcmread(write_image(image, tmp_path / "out.dcm"))
    np.testing.assert_array_equal(written.pixel_array, ramp12)
    assert written.PhotometricInterpretation == "MONOCHROME1"
    assert (float(written.RescaleSlope), float(written.RescaleIntercept)) == (0.5, -100.0)
    assert written.BitsStored == 12 and written.HighBit == 11


def test_negative_rescale_slope_keeps_high_modality_values_bright(tmp_path, ramp12):
    path = save(make_dataset(ramp12, rescale=(-1.0, 0.0)), tmp_path / "neg.dcm")
    (image,) = read_image(path)
    assert (image.meta.value_min, image.meta.value_max) == (-4095.0, 0.0)
    np.testing.assert_allclose(image.pixels, 1.0 - ramp12 / 4095.0, atol=1e-6)
    written = pydicom.dcmread(write_image(image, tmp_path / "out.dcm"))
    np.testing.assert_array_equal(written.pixel_array, ramp12)


def test_modality_lut_sequence_is_applied_and_inverted(tmp_path, rng):
    stored = rng.integers(0, 256, size=(8, 8)).astype(np.uint16)
    ds = make_dataset(stored, bits_stored=8)
    item = Dataset()
    item.LUTDescriptor = [256, 0, 16]
    item.ModalityLUTType = "US"
    item.add_new("LUTData", "US", [int(v) for v in np.arange(256) * 10 + 5])
    ds.ModalityLUTSequence = [item]
    (image,) = read_image(save(ds, tmp_path / "lut.dcm"))
    assert (image.meta.value_min, image.meta.value_max) == (5.0, 2555.0)
    np.testing.assert_allclose(image.pixels, stored / 255.0, atol=1e-6)
    written = pydicom.dcmread(write_image(image, tmp_path / "out.dcm"))
    np.testing.assert_array_equal(written.pixel_array, stored)


def test_signed_pixels_use_the_signed_stored_range(tmp_path, rng):
    values = rng.integers(-2048, 2048, size=(16, 16)).astype(np.int16)
    values[0, 0], values[0, 1] = -2048, 2047
    path = save(make_dataset(values, sop_class=CTImageStorage), tmp_path / "signed.dcm")
    (image,) = read_image(path)
    assert (image.meta.value_min, image.meta.value_max) == (-2048.0, 2047.0)
    assert image.meta.dtype == "int16"
    assert image.pixels[0, 0] == 0.0 and image.pixels[0, 1] == 1.0
    np.testing.assert_allclose(image.pixels, (values + 2048.0) / 4095.0, atol=1e-6)
    written = pydicom.dcmread(write_image(image, tmp_path / "out.dcm"))
    assert written.PixelRepresentation == 1
    np.testing.assert_array_equal(written.pixel_array, values)


def test_rle_compressed_source_is_decoded_and_written_uncompressed(tmp_path, ramp12):
    ds = make_dataset(ramp12)
    ds.compress(RLELossless, ramp12, generate_instance_uid=False)
    path = save(ds, tmp_path / "rle.dcm")
    (image,) = read_image(path)
    np.testing.assert_allclose(image.pixels, ramp12 / 4095.0, atol=1e-6)
    written = pydicom.dcmread(write_image(image, tmp_path / "out.dcm"))
    assert written.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    np.testing.assert_array_equal(written.pixel_array, ramp12)


def test_multi_frame_gives_one_image_per_frame(tmp_path, rng):
    frames = rng.integers(0, 4096, size=(3, 10, 12)).astype(np.uint16)
    path = save(make_dataset(frames), tmp_path / "multi.dcm")
    images = read_image(path)
    assert [im.meta.frame for im in images] == [0, 1, 2]
    for image, frame in zip(images, frames):
        np.testing.assert_allclose(image.pixels, frame / 4095.0, atol=1e-6)
    written = pydicom.dcmread(write_image(images[1], tmp_path / "frame1.dcm"))
    np.testing.assert_array_equal(written.pixel_array, frames[1])
    assert int(written.NumberOfFrames) == 1
    assert written.SourceImageSequence[0].ReferencedFrameNumber == 2


def test_modified_pixels_are_clipped_to_the_stored_range(tmp_path, ramp12):
    for photometric, expected in (("MONOCHROME2", 4095), ("MONOCHROME1", 0)):
        path = save(make_dataset(ramp12, photometric=photometric), tmp_path / f"{photometric}.dcm")
        (image,) = read_image(path)
        bright = image.with_pixels(np.full(image.pixels.shape, 1.5))
        written = pydicom.dcmread(write_image(bright, tmp_path / f"out_{photometric}.dcm"))
        assert int(written.pixel_array.min()) == int(written.pixel_array.max()) == expected


def test_one_derived_series_per_source_series_and_run(tmp_path, ramp12):
    first = make_dataset(ramp12)
    second = make_dataset(ramp12[::-1])
    second.SeriesInstanceUID = first.SeriesInstanceUID
    images = [
        read_image(save(ds, tmp_path / f"in{i}.dcm"))[0] for i, ds in enumerate((first, second))
    ]
    run = DerivedSeries(run_id="run-1")
    outs = [
        pydicom.dcmread(write_image(im, tmp_path / f"o{i}.dcm", series=run))
        for i, im in enumerate(images)
    ]
    assert outs[0].SeriesInstanceUID == outs[1].SeriesInstanceUID != first.SeriesInstanceUID
    assert outs[0].SOPInstanceUID != outs[1].SOPInstanceUID
    assert run.uids == {str(first.SeriesInstanceUID): str(outs[0].SeriesInstanceUID)}
    # another process of the same run agrees; another run does not
    assert DerivedSeries(run_id="run-1").series_uid(str(first.SeriesInstanceUID)) == (
        outs[0].SeriesInstanceUID
    )
    other = pydicom.dcmread(write_image(images[0], tmp_path / "x.dcm", series=DerivedSeries()))
    assert other.SeriesInstanceUID != outs[0].SeriesInstanceUID


def test_description_option_sets_series_description(tmp_path, ramp12):
    (image,) = read_image(save(make_dataset(ramp12), tmp_path / "in.dcm"))
    written = pydicom.dcmread(
        write_image(image, tmp_path / "o.dcm", description="Denoised by DnCNN-S " + "x" * 80)
    )
    assert written.SeriesDescription.startswith("Denoised by DnCNN-S")
    assert len(written.SeriesDescription) == 64


def test_synthesized_cr_output_has_no_new_dciodvfy_error(tmp_path, ramp12):
    source = save(
        make_dataset(ramp12, photometric="MONOCHROME1", rescale=(1.0, 0.0)), tmp_path / "cr.dcm"
    )
    out = write_image(read_image(source)[0], tmp_path / "out.dcm")
    assert not dciodvfy_errors(out) - dciodvfy_errors(source)


def test_dx_output_is_derived_secondary_and_adds_no_dciodvfy_error(tmp_path, ramp12):
    ds = make_dataset(ramp12, sop_class=DX_PRESENTATION, rescale=(1.0, 0.0))
    ds.Modality, ds.PresentationIntentType = "DX", "FOR PRESENTATION"
    ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
    ds.Manufacturer, ds.BodyPartExamined, ds.ImageLaterality = "", "CHEST", "U"
    ds.AnatomicRegionSequence, ds.AcquisitionContextSequence = [], []
    ds.PixelIntensityRelationship, ds.PixelIntensityRelationshipSign = "LOG", 1
    ds.PresentationLUTShape, ds.LossyImageCompression = "IDENTITY", "00"
    ds.BurnedInAnnotation, ds.DetectorType = "NO", "SCINTILLATOR"
    ds.ImagerPixelSpacing = [0.2, 0.25]
    source = save(ds, tmp_path / "dx.dcm")
    out = write_image(read_image(source)[0], tmp_path / "out.dcm")
    assert list(pydicom.dcmread(out).ImageType) == ["DERIVED", "SECONDARY", ""]
    assert not dciodvfy_errors(out) - dciodvfy_errors(source)


def test_acr_nema_without_sop_class_becomes_secondary_capture(tmp_path, ramp12, caplog):
    ds = make_dataset(ramp12)
    for keyword in ("SOPClassUID", "SOPInstanceUID"):
        delattr(ds, keyword)
    del ds.file_meta
    path = tmp_path / "legacy"  # no suffix, no preamble, no file meta
    ds.save_as(path, implicit_vr=True, little_endian=True)
    assert path.read_bytes()[:2] == b"\x08\x00" and detect_format(path) == "dicom"
    with caplog.at_level(logging.WARNING, logger="pipeline.io.dicom"):
        (image,) = read_image(path)
    assert "ACR-NEMA" in caplog.text
    out = write_image(image, tmp_path / "out.dcm")
    written = pydicom.dcmread(out)
    assert written.SOPClassUID == SC_STORAGE and written.ConversionType == "WSD"
    assert written.file_meta.MediaStorageSOPInstanceUID == written.SOPInstanceUID
    np.testing.assert_array_equal(written.pixel_array, ramp12)
    assert not dciodvfy_errors(out)


def test_non_dicom_image_is_written_as_secondary_capture(tmp_path, smooth_image):
    from pipeline.image import ImageMeta

    image = ScanImage(
        smooth_image,
        ImageMeta(
            format="png",
            source=tmp_path / "a.png",
            dtype="uint8",
            value_max=255.0,
            spacing=(0.5, 0.5),
        ),
    )
    out = write_image(image, tmp_path / "sc.dcm", fmt="dicom")
    written = pydicom.dcmread(out)
    assert written.SOPClassUID == SC_STORAGE and written.BitsStored == 8
    expected = np.rint(smooth_image.astype(np.float64) * 255).astype(np.uint8)
    np.testing.assert_array_equal(written.pixel_array, expected)
    assert list(written.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert not dciodvfy_errors(out)


# --------------------------------------------------------------------------- errors


def test_missing_pixel_data_is_reported(tmp_path, ramp12):
    ds = make_dataset(ramp12)
    del ds.PixelData
    path = save(ds, tmp_path / "nopix.dcm")
    with pytest.raises(ImageReadError, match=r"nopix\.dcm: no pixel data"):
        read_image(path)


def test_truncated_native_pixel_data_is_reported(tmp_path, ramp12):
    path = save(make_dataset(ramp12), tmp_path / "short.dcm")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ImageReadError, match=r"short\.dcm: truncated pixel data"):
        read_image(path)


def test_rt_plan_is_not_an_image(tmp_path):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = RTPlanStorage, generate_uid()
    ds.Modality, ds.RTPlanLabel, ds.PatientID = "RTPLAN", "PLAN1", "P1"
    path = save(ds, tmp_path / "plan.dcm")
    with pytest.raises(ImageReadError, match=r"plan\.dcm: not an image \(RT Plan Storage dataset"):
        read_image(path)


@pytest.mark.parametrize("name", ["notes.dcm", "notes"])
def test_text_file_is_not_dicom(tmp_path, name):
    path = tmp_path / name
    path.write_text("patient list\nnothing to see here\n" * 20)
    if name == "notes":
        assert detect_format(path) is None
        with pytest.raises(ImageReadError, match="unsupported file type"):
            read_image(path)
    else:
        with pytest.raises(ImageReadError, match=r"notes\.dcm: not a DICOM file"):
            read_image(path)


def test_empty_file_is_reported(tmp_path):
    path = tmp_path / "empty.dcm"
    path.touch()
    with pytest.raises(ImageReadError, match=r"empty\.dcm: empty file"):
        read_image(path)


@pytest.mark.parametrize(
    "syntax, package",
    [(JPEGBaseline8Bit, "pylibjpeg-libjpeg"), (JPEG2000, "pylibjpeg-openjpeg")],
)
def test_missing_decoder_names_the_package_and_file(tmp_path, monkeypatch, syntax, package):
    from pydicom.encaps import encapsulate
    from pydicom.pixels import get_decoder

    ds = make_dataset(np.zeros((8, 8), np.uint8), bits_stored=8)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xd9"])
    ds["PixelData"].VR = "OB"
    path = save(ds, tmp_path / "coded.dcm")
    monkeypatch.setattr(get_decoder(syntax), "_available", {})
    with pytest.raises(ImageReadError, match=rf"coded\.dcm: .*pip install pylibjpeg {package}"):
        read_image(path)


def test_colour_dicom_is_rejected(tmp_path):
    ds = make_dataset(np.zeros((8, 8), np.uint16))
    pydicom.pixels.set_pixel_data(ds, np.zeros((8, 8, 3), np.uint8), "RGB", 8)
    path = save(ds, tmp_path / "rgb.dcm")
    with pytest.raises(ImageReadError, match=r"rgb\.dcm: not a grayscale image"):
        read_image(path)


def test_source_file_is_never_modified(tmp_path, ramp12):
    path = save(make_dataset(ramp12), tmp_path / "src.dcm")
    before = path.read_bytes()
    (image,) = read_image(path)
    write_image(image.with_pixels(image.pixels * 0.5), tmp_path / "out.dcm")
    assert path.read_bytes() == before
    assert "PixelData" not in image.meta.dataset
