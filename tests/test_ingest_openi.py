"""The Indiana/OpenI layout on fixtures built here: names, both releases, report splits, views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import PipelineError
from pipeline.ingest.openi import (
    FRONTAL,
    LATERAL,
    OpenIRecord,
    classify_views,
    find_openi_images,
    load_openi,
    parse_openi_name,
    parse_report_xml,
    split_by_report,
    view_from_caption,
    view_from_header,
)

SIZE = 16


def _image_id(report: int, k: int) -> str:
    return f"CXR{report}_IM-{report:04d}-{k}001"


def _pixels(image_id: str, maximum: int, dtype) -> np.ndarray:
    seed = int("".join(c for c in image_id if c.isdigit()))
    return np.random.default_rng(seed).integers(0, maximum + 1, (SIZE, SIZE)).astype(dtype)


def _write_png(folder: Path, image_id: str) -> None:
    Image.fromarray(_pixels(image_id, 255, np.uint8)).save(folder / f"{image_id}.png")


def _write_dicom(
    folder: Path, image_id: str, view: str | None = None, orientation: list[str] | None = None
) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID = "CR", image_id.split("_")[0][3:]
    ds.Rows = ds.Columns = SIZE
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = _pixels(image_id, 4095, np.uint16).tobytes()
    if view is not None:
        ds.ViewPosition = view
    if orientation is not None:
        ds.PatientOrientation = orientation
    ds.save_as(folder / f"{image_id.removeprefix('CXR')}.dcm", enforce_file_format=True)


def _write_xml(folder: Path, report: int, images: list[tuple[str, str]]) -> None:
    parents = "".join(
        f'<parentImage id="{i}"><figureId>F{n}</figureId><caption>{c}</caption></parentImage>'
        for n, (i, c) in enumerate(images, 1)
    )
    (folder / f"{report}.xml").write_text(
        f'<?xml version="1.0"?><eCitation><uId id="CXR{report}"/>{parents}</eCitation>'
    )


#: The frontal image ids of the fixture, and the rule that decides each report.
FRONTAL_IDS = {
    _image_id(1, 1),  # DICOM ViewPosition PA / LL
    _image_id(2, 1),  # DICOM only: AP / LATERAL
    _image_id(3, 2),  # no ViewPosition; PatientOrientation A\F (lateral) first, L\F second
    _image_id(4, 2),  # bare headers; XML captions "Lateral" / "PA" decide
    _image_id(5, 2),  # PNG only; XML lists image 2 first, captions undecided
    *(_image_id(r, 1) for r in range(6, 21)),  # PNG only, no XML: the first image
    _image_id(22, 1),  # single PNG, nothing known: frontal
    _image_id(23, 1),  # DICOM PA; image 2 is a PNG without DICOM: lateral (report has a frontal)
}  # report 21: a single lateral DICOM (LL): no frontal image


@pytest.fixture(scope="module")
def nlmcxr(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("NLMCXR")
    png, dcm, xml = root / "NLMCXR_png", root / "NLMCXR_dcm", root / "ecgen-radiology"
    for folder in (png, dcm, xml):
        folder.mkdir()
    _write_dicom(dcm, _image_id(1, 1), "PA")
    _write_dicom(dcm, _image_id(1, 2), "LL")
    _write_dicom(dcm, _image_id(2, 1), "AP")
    _write_dicom(dcm, _image_id(2, 2), "LATERAL")
    _write_dicom(dcm, _image_id(3, 1), orientation=["A", "F"])
    _write_dicom(dcm, _image_id(3, 2), orientation=["L", "F"])
    _write_dicom(dcm, _image_id(4, 1))
    _write_dicom(dcm, _image_id(4, 2))
    _write_dicom(dcm, _image_id(21, 1), "LL")
    _write_dicom(dcm, _image_id(23, 1), "PA")
    for report in (1, 3, 4, *range(5, 21)):
        for k in (1, 2):
            _write_png(png, _image_id(report, k))
    _write_png(png, _image_id(22, 1))
    _write_png(png, _image_id(23, 2))
    _write_xml(xml, 4, [(_image_id(4, 1), "Lateral view"), (_image_id(4, 2), "PA view")])
    both = "Xray Chest PA and Lateral"
    _write_xml(xml, 5, [(_image_id(5, 2), both), (_image_id(5, 1), both)])
    _write_xml(xml, 999, [])  # a report without images is harmless
    (xml / "broken.xml").write_text("<eCitation><uId")
    (png / "README.png").write_bytes(b"not an OpenI name: ignored")
    (root / "notes.txt").write_text("ignored")
    return root


def _ids(images) -> list[str]:
    return [im.meta.extra["image_id"] for im in images]


def test_parse_openi_name():
    assert parse_openi_name("CXR1000_IM-0003-2001.png") == (1000, "CXR1000_IM-0003-2001")
    assert parse_openi_name("1000_IM-0003-2001.dcm") == (1000, "CXR1000_IM-0003-2001")
    assert parse_openi_name("CXR1000_IM-0003-2001") == (1000, "CXR1000_IM-0003-2001")
    assert parse_openi_name("/x/NLMCXR_dcm/1021_IM-0017-1001-0002.dcm") == (
        1021,
        "CXR1021_IM-0017-1001-0002",
    )
    assert parse_openi_name("CXR1_1_IM-0001-3001.png") == (1, "CXR1_IM-0001-3001")
    assert parse_openi_name("1_IM-0001-3001.dcm.png") == (1, "CXR1_IM-0001-3001")
    for bad in ("README.png", "CXR12.png", "CXRx_IM-0001-1001.png", "12_IM-0001.png"):
        with pytest.raises(ValueError, match="not an OpenI image name"):
            parse_openi_name(bad)


def test_find_both_releases_prefers_dicom(nlmcxr):
    records = find_openi_images(nlmcxr)
    assert len(records) == 2 * 20 + 1 + 1 + 2  # reports 1-20 two images; 21, 22 one; 23 two
    assert records == sorted(records, key=lambda r: (r.report_id, r.image_id))
    by_id = {r.image_id: r for r in records}
    assert by_id[_image_id(1, 1)].path.suffix == ".dcm"
    assert (
        by_id[_image_id(6, 1)].path.suffix == ".png" and by_id[_image_id(6, 1)].dicom_path is None
    )
    png_first = {r.image_id: r for r in find_openi_images(nlmcxr, prefer="png")}
    assert png_first[_image_id(1, 1)].path.suffix == ".png"
    assert png_first[_image_id(1, 1)].dicom_path == by_id[_image_id(1, 1)].path
    assert png_first[_image_id(2, 1)].path.suffix == ".dcm"  # DICOM only


def test_split_by_report_is_disjoint_and_deterministic():
    records = [
        OpenIRecord(r, _image_id(r, k), Path(f"{r}-{k}")) for r in range(1, 101) for k in (1, 2, 3)
    ]
    splits = split_by_report(records, 0.2, 0.1, seed=3)
    reports = {name: {r.report_id for r in members} for name, members in splits.items()}
    assert not (
        reports["train"] & reports["val"]
        or reports["train"] & reports["test"]
        or reports["val"] & reports["test"]
    )
    assert sum(len(m) for m in splits.values()) == len(records)
    assert (len(reports["train"]), len(reports["val"]), len(reports["test"])) == (70, 20, 10)
    assert split_by_report(records, 0.2, 0.1, seed=3) == splits
    assert split_by_report(list(reversed(records)), 0.2, 0.1, seed=3)["test"] == list(
        reversed(splits["test"])
    )
    assert split_by_report(records, 0.2, 0.1, seed=4) != splits


def test_load_all_views_no_report_crosses_splits(nlmcxr):
    splits, failures = load_openi(nlmcxr, val_fraction=0.2, test_fraction=0.2, seed=0)
    assert set(splits) == {"train", "val", "test"}
    seen = {name: {im.meta.extra["report_id"] for im in images} for name, images in splits.items()}
    assert all(seen.values())
    assert not (
        seen["train"] & seen["val"] or seen["train"] & seen["test"] or seen["val"] & seen["test"]
    )
    loaded = [i for images in splits.values() for i in _ids(images)]
    assert sorted(loaded) == sorted(r.image_id for r in find_openi_images(nlmcxr))
    assert failures == []
    for images in splits.values():
        for im in images:
            assert im.pixels.shape == (SIZE, SIZE) and im.pixels.dtype == np.float32
            assert im.meta.format == ("dicom" if im.meta.source.suffix == ".dcm" else "png")
            assert parse_openi_name(im.meta.source.name)[1] == im.meta.extra["image_id"]


def test_same_seed_same_split(nlmcxr):
    a, _ = load_openi(nlmcxr, 0.2, 0.2, seed=5, resize=8)
    b, _ = load_openi(nlmcxr, 0.2, 0.2, seed=5, resize=8)
    c, _ = load_openi(nlmcxr, 0.2, 0.2, seed=6, resize=8)
    assert {k: _ids(v) for k, v in a.items()} == {k: _ids(v) for k, v in b.items()}
    assert {k: _ids(v) for k, v in a.items()} != {k: _ids(v) for k, v in c.items()}
    assert all(im.pixels.shape == (8, 8) for images in a.values() for im in images)


def test_frontal_only(nlmcxr):
    splits, failures = load_openi(nlmcxr, 0.2, 0.2, seed=0, frontal_only=True)
    loaded = {i for images in splits.values() for i in _ids(images)}
    assert loaded == FRONTAL_IDS
    assert [f.path.name for f in failures] == ["broken.xml"]
    # The filter does not move reports between splits.
    everything, _ = load_openi(nlmcxr, 0.2, 0.2, seed=0)
    for name, images in splits.items():
        assert set(_ids(images)) == set(_ids(everything[name])) & FRONTAL_IDS


def test_frontal_only_from_png_copies_reads_dicom_headers(nlmcxr):
    splits, _ = load_openi(nlmcxr, 0.2, 0.2, seed=0, frontal_only=True, prefer="png")
    assert {i for images in splits.values() for i in _ids(images)} == FRONTAL_IDS
    assert any(
        im.meta.format == "png" and im.meta.extra["image_id"] == _image_id(3, 2)
        for images in splits.values()
        for im in images
    )


def test_max_per_split(nlmcxr):
    splits, _ = load_openi(nlmcxr, 0.2, 0.2, seed=0, max_train=3, max_val=1, max_test=2)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [3, 1, 2]


def test_view_rules():
    assert view_from_header("PA", None) == FRONTAL and view_from_header("ap", "") == FRONTAL
    assert (
        view_from_header("LL", None) == LATERAL
        and view_from_header("LARGE  LATERAL", None) == LATERAL
    )
    assert view_from_header("", ["A", "F"]) == LATERAL and view_from_header(None, "R\\F") == FRONTAL
    assert view_from_header("", "") is None and view_from_header(None, None) is None
    assert view_from_caption("PA view of the chest") == FRONTAL
    assert view_from_caption("Lateral") == LATERAL
    assert (
        view_from_caption("Xray Chest PA and Lateral") is None and view_from_caption(None) is None
    )
    records = [OpenIRecord(7, _image_id(7, k), Path("x.png")) for k in (1, 2, 3)]
    assert classify_views(records) == {
        _image_id(7, 1): FRONTAL,
        _image_id(7, 2): LATERAL,
        _image_id(7, 3): LATERAL,
    }


def test_parse_report_xml(nlmcxr):
    report = parse_report_xml(nlmcxr / "ecgen-radiology" / "4.xml")
    assert report.report_id == 4 and report.image_ids == [_image_id(4, 1), _image_id(4, 2)]
    assert report.captions[_image_id(4, 2)] == "PA view"
    with pytest.raises(PipelineError, match="broken.xml"):
        parse_report_xml(nlmcxr / "ecgen-radiology" / "broken.xml")


def test_unreadable_image_is_a_failure(tmp_path):
    folder = tmp_path / "NLMCXR_png"
    folder.mkdir()
    for k in (1, 2):
        _write_png(folder, _image_id(30, k))
    (folder / f"{_image_id(31, 1)}.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    splits, failures = load_openi(tmp_path, 0.0, 0.0, seed=0)
    assert _ids(splits["train"]) == [_image_id(30, 1), _image_id(30, 2)]
    assert [f.path.name for f in failures] == [f"{_image_id(31, 1)}.png"]
    with pytest.raises(PipelineError, match=_image_id(31, 1)):
        load_openi(tmp_path, 0.0, 0.0, seed=0, strict=True)


def test_missing_root_says_to_set_it(tmp_path):
    with pytest.raises(
        PipelineError, match=r"OpenI data root not found: .*nowhere.*--set data\.root="
    ):
        load_openi(tmp_path / "nowhere")
    with pytest.raises(PipelineError, match=r"OpenI data root is not set.*--set data\.root="):
        load_openi(None)
    (tmp_path / "other.png").write_bytes(b"x")
    with pytest.raises(PipelineError, match="no OpenI images under"):
        load_openi(tmp_path)
