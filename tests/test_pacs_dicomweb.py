"""`denoise apply --input dicomweb:URL` against a real Orthanc with its DICOMweb plugin."""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_validation import dciodvfy_errors
from orthanc_server import USER, Orthanc, free_port, start_orthanc, write_radiograph
from pydicom.uid import generate_uid
from tls_proxy import TlsProxy

from pipeline.cli import main
from pipeline.errors import PipelineError
from pipeline.pacs.auth import PASSWORD_VAR, TOKEN_VAR, USER_VAR, BearerAuth, check_url, credentials
from pipeline.provenance import file_sha256

pytest.importorskip("dicomweb_client", reason="dicomweb-client is not installed (pip install dicomweb-client)")

FAST = ["--tile-size", "32", "--no-progress", "--no-report", "--device", "cpu"]
PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"


@pytest.fixture
def login(orthanc: Orthanc, monkeypatch: pytest.MonkeyPatch) -> None:
    """The right credentials in the environment."""
    for name in (TOKEN_VAR, USER_VAR, PASSWORD_VAR):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(USER_VAR, USER)
    monkeypatch.setenv(PASSWORD_VAR, orthanc.password)


def upload_study(orthanc: Orthanc, folder: Path, n: int, patient: str = "P001") -> tuple[str, list[Path]]:
    """A new study of `n` CR instances in one series, uploaded; (StudyInstanceUID, files)."""
    study, series = generate_uid(), generate_uid()
    files = [write_radiograph(folder / f"{i}.dcm", study, series, i + 1, patient, seed=i) for i in range(n)]
    for path in files:
        orthanc.upload(path)
    return study, files


def apply(orthanc: Orthanc, out: Path, model: Path, *args: str) -> int:
    return main(["apply", "-i", f"dicomweb:{orthanc.dicomweb}", "-o", str(out), "--model", str(model), *FAST, *args])


def derived_instances(orthanc: Orthanc, study: str) -> list[pydicom.Dataset]:
    """The instances of the derived series of `study`, as files read from Orthanc."""
    import io

    import requests

    found = []
    for series in orthanc.series_of_study(study):
        if str(series["MainDicomTags"].get("SeriesDescription", "")).startswith("Denoised"):
            for instance in series["Instances"]:
                data = requests.get(f"{orthanc.url}/instances/{instance}/file", auth=(USER, orthanc.password),
                                    timeout=10).content
                found.append(pydicom.dcmread(io.BytesIO(data)))
    return found


def failures(out: Path) -> list[dict[str, str]]:
    with open(out / "failures.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_study_is_denoised_and_stored_back_once_as_a_derived_series(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path, login: None, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    study, files = upload_study(orthanc, tmp_path / "src", 3)
    sources = {str(ds.SOPInstanceUID): ds for ds in map(pydicom.dcmread, files)}
    assert apply(orthanc, tmp_path / "out", tiny_unet, "--study", study, "--store") == 0
    derived = derived_instances(orthanc, study)
    assert len(derived) == 3 and len({d.SeriesInstanceUID for d in derived}) == 1
    sha = file_sha256(tiny_unet)[:16]
    for ds in derived:
        source = sources[ds.SourceImageSequence[0].ReferencedSOPInstanceUID]
        assert ds.SOPInstanceUID not in sources and ds.SeriesInstanceUID != source.SeriesInstanceUID
        assert (ds.StudyInstanceUID, ds.PatientID, ds.PatientName) == (study, source.PatientID, source.PatientName)
        assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"] and sha in ds.DerivationDescription
        assert ds.SeriesDescription.startswith("Denoised")
        assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
        assert ds.pixel_array.shape == source.pixel_array.shape
        assert not np.array_equal(ds.pixel_array, source.pixel_array), "the pixels were denoised"
    first = capsys.readouterr()
    assert apply(orthanc, tmp_path / "out", tiny_unet, "--study", study, "--store") == 0
    second = capsys.readouterr()
    assert "stored 0" in second.out
    assert apply(orthanc, tmp_path / "new_out", tiny_unet, "--study", study, "--store") == 0
    third = capsys.readouterr()
    assert "3 already derived on the server" in third.out
    printed = " ".join(o.out + o.err for o in (first, second, third)) + caplog.text
    assert orthanc.password not in printed, "the password is printed or logged"
    assert len(derived_instances(orthanc, study)) == 3, "reruns store nothing twice"
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert orthanc.password.encode() not in path.read_bytes(), f"the password is in {path}"
    local = next((tmp_path / "out" / "denoised").rglob("*.dcm"))
    source_file = next(f for f in files if str(pydicom.dcmread(f).SOPInstanceUID) ==
                       pydicom.dcmread(local).SourceImageSequence[0].ReferencedSOPInstanceUID)
    assert dciodvfy_errors(local) <= dciodvfy_errors(source_file), "no new dciodvfy errors"


def test_wrong_password_is_one_line_without_the_secret(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    study, _ = upload_study(orthanc, tmp_path / "src", 1)
    monkeypatch.setenv(USER_VAR, USER)
    monkeypatch.setenv(PASSWORD_VAR, "not-the-password-42")
    assert apply(orthanc, tmp_path / "out", tiny_unet, "--study", study) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "401" in err and "not-the-password-42" not in err


def test_netrc_file_and_query_selection(tmp_path: Path, orthanc: Orthanc, tiny_unet: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (TOKEN_VAR, USER_VAR, PASSWORD_VAR):
        monkeypatch.delenv(name, raising=False)
    patient = f"Q{generate_uid()[-8:]}"
    upload_study(orthanc, tmp_path / "src", 2, patient)
    netrc = tmp_path / "auth"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {orthanc.password}\n")
    netrc.chmod(0o600)
    assert apply(orthanc, tmp_path / "out", tiny_unet, "--query", f"PatientID={patient}", "--auth-file", str(netrc)) == 0
    assert len(list((tmp_path / "out" / "denoised").rglob("*.dcm"))) == 2


def test_series_selection_takes_that_series_only(tmp_path: Path, orthanc: Orthanc, tiny_unet: Path, login: None) -> None:
    _, files = upload_study(orthanc, tmp_path / "a", 2)
    upload_study(orthanc, tmp_path / "b", 1)
    series = str(pydicom.dcmread(files[0]).SeriesInstanceUID)
    assert apply(orthanc, tmp_path / "out", tiny_unet, "--series", series) == 0
    outputs = list((tmp_path / "out" / "denoised").rglob("*.dcm"))
    assert len(outputs) == 2 and all(f"/{series}/" in path.as_posix() for path in outputs)


def test_unknown_study_and_non_image_instance_are_recorded_and_the_rest_done(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path, login: None
) -> None:
    study, files = upload_study(orthanc, tmp_path / "src", 2)
    pdf = pydicom.dcmread(files[0])
    pdf.SOPClassUID = pdf.file_meta.MediaStorageSOPClassUID = PDF_STORAGE
    pdf.SOPInstanceUID = pdf.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    pdf.SeriesInstanceUID = generate_uid()
    del pdf.PixelData
    pdf.EncapsulatedDocument, pdf.MIMETypeOfEncapsulatedDocument = b"%PDF-1.4\n%%EOF\n", "application/pdf"
    pdf.save_as(tmp_path / "doc.dcm", enforce_file_format=True)
    orthanc.upload(tmp_path / "doc.dcm")
    unknown = generate_uid()
    assert apply(orthanc, tmp_path / "out", tiny_unet, "--study", study, "--study", unknown) == 1
    reasons = " | ".join(row["reason"] for row in failures(tmp_path / "out"))
    assert f"study {unknown}: not found on the server" in reasons
    assert "Encapsulated PDF Storage holds no image" in reasons
    assert len(failures(tmp_path / "out")) == 2
    assert len(list((tmp_path / "out" / "denoised").rglob("*.dcm"))) == 2


def test_refused_stow_is_recorded_and_local_outputs_are_kept(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path, login: None
) -> None:
    study, _ = upload_study(orthanc, tmp_path / "src", 2, patient="NOSTOW")  # the server's filter refuses STOW of it
    assert apply(orthanc, tmp_path / "out", tiny_unet, "--study", study, "--store") == 1
    rows = failures(tmp_path / "out")
    assert len(rows) == 2 and all("the server refused to store it" in row["reason"] for row in rows)
    assert len(list((tmp_path / "out" / "denoised").rglob("*.dcm"))) == 2 and derived_instances(orthanc, study) == []


def test_destination_down_then_back_stores_on_the_rerun(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path, login: None
) -> None:
    study, _ = upload_study(orthanc, tmp_path / "src", 2)
    destination = start_orthanc(tmp_path / "dest", password=orthanc.password)  # the environment's credentials
    destination.stop(kill=True)
    try:
        store_to = ["--store-to", f"dicomweb:{destination.dicomweb}"]
        assert apply(orthanc, tmp_path / "out", tiny_unet, "--study", study, *store_to) == 1
        assert all("cannot connect" in row["reason"] for row in failures(tmp_path / "out"))
        assert len(failures(tmp_path / "out")) == 2
        destination.restart()
        assert apply(orthanc, tmp_path / "out", tiny_unet, "--study", study, *store_to) == 0
        assert len(derived_instances(destination, study)) == 2
    finally:
        destination.stop(kill=True)


def test_unreachable_server_is_one_line(tmp_path: Path, tiny_unet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    assert main(["apply", "-i", f"dicomweb:{url}", "-o", str(tmp_path / "out"), "--study", "1.2.3", *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot connect" in err


def test_credentials_come_from_the_environment_never_the_url() -> None:
    assert isinstance(credentials("https://pacs/dicom-web", env={TOKEN_VAR: "t0k"}), BearerAuth)
    assert "t0k" not in repr(credentials("https://pacs/dicom-web", env={TOKEN_VAR: "t0k"}))
    assert credentials("https://pacs/dicom-web", env={USER_VAR: "u", PASSWORD_VAR: "p"}) == ("u", "p")
    with pytest.raises(PipelineError, match="holds credentials"):
        check_url("https://u:p@pacs/dicom-web")


def test_dicomweb_options_need_a_dicomweb_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    assert main(["apply", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--study", "1.2.3", *FAST]) == 2
    assert "--study needs a DICOMweb input" in capsys.readouterr().err


def test_missing_library_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "dicomweb_client", None)  # as if it were not installed
    url = f"dicomweb:http://127.0.0.1:{free_port()}/dicom-web"
    assert main(["apply", "-i", url, "-o", str(tmp_path / "out"), "--study", "1.2.3", *FAST]) == 2
    assert "pip install dicomweb-client" in capsys.readouterr().err


def test_tls_is_verified_and_a_ca_bundle_makes_it_trusted(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path, login: None, capsys: pytest.CaptureFixture[str]
) -> None:
    study, _ = upload_study(orthanc, tmp_path / "src", 1)
    proxy = TlsProxy(tmp_path / "tls", orthanc.http_port)
    try:
        url = f"dicomweb:https://127.0.0.1:{proxy.port}/dicom-web"
        command = ["apply", "-i", url, "--study", study, "--model", str(tiny_unet), *FAST]
        assert main([*command, "-o", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "TLS verification" in err and "--ca-bundle" in err
        assert main([*command, "-o", str(tmp_path / "out"), "--ca-bundle", str(proxy.certificate)]) == 0
        assert len(list((tmp_path / "out" / "denoised").rglob("*.dcm"))) == 1
    finally:
        proxy.stop()
