"""`denoise apply --input dicomweb:URL` against a real Orthanc with its DICOMweb plugin."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import SHARED_DATA
from dicom_validation import dciodvfy_errors
from dicomweb_runs import FAST, apply, derived_instances, failures, stored_rows, upload_study
from orthanc_server import USER, VISITOR, Orthanc, free_port, start_orthanc, wait_for
from pydicom.uid import generate_uid
from tls_proxy import TlsProxy

from pipeline.cli import main
from pipeline.errors import PipelineError
from pipeline.pacs.auth import PASSWORD_VAR, TOKEN_VAR, USER_VAR, BearerAuth, check_url, credentials
from pipeline.pacs.dicomweb import Server
from pipeline.pacs.retrieve import Spool, fetch_ahead
from pipeline.pacs.select import Selection, find_instances
from pipeline.provenance import file_sha256

pytest.importorskip(
    "dicomweb_client", reason="dicomweb-client is not installed (pip install dicomweb-client)"
)

#: Many small tiles: slow enough to kill a run while it works.
SLOW = [
    "--tile-size",
    "16",
    "--overlap",
    "0.75",
    "--batch-size",
    "1",
    "--no-progress",
    "--no-report",
    "--device",
    "cpu",
]
PROJECT_ROOT = Path(__file__).resolve().parents[1]
PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
#: Two of the shared radiographs (../shared/data/cxr/dicom), each of its own study: an
#: uncompressed 8-bit one and a JPEG baseline one.
SHARED_DICOM = SHARED_DATA / "cxr" / "dicom"
SHARED_FILES = ("nih_cxr14_gcp_*.dcm", "siim_pneumothorax_*.dcm")


def saved(datasets: list[pydicom.Dataset], folder: Path) -> list[Path]:
    """`datasets` written as files in `folder` (for dciodvfy)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{i}.dcm" for i in range(len(datasets))]
    for ds, path in zip(datasets, paths):
        ds.save_as(path)
    return paths


def test_study_is_denoised_and_stored_back_once_as_a_derived_series(
    tmp_path: Path,
    orthanc: Orthanc,
    tiny_unet: Path,
    login: None,
    capsys: pytest.CaptureFixture[str],
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
        assert (ds.StudyInstanceUID, ds.PatientID, ds.PatientName) == (
            study,
            source.PatientID,
            source.PatientName,
        )
        assert (
            list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"] and sha in ds.DerivationDescription
        )
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
    source_file = next(
        f
        for f in files
        if str(pydicom.dcmread(f).SOPInstanceUID)
        == pydicom.dcmread(local).SourceImageSequence[0].ReferencedSOPInstanceUID
    )
    assert dciodvfy_errors(local) <= dciodvfy_errors(source_file), "no new dciodvfy errors"


def test_shared_radiographs_are_stored_back_once_as_valid_derived_series(
    tmp_path: Path,
    orthanc: Orthanc,
    tiny_unet: Path,
    login: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    found = [sorted(SHARED_DICOM.glob(pattern)) for pattern in SHARED_FILES]
    if not all(found):
        pytest.skip(
            f"the shared DICOM radiographs {', '.join(SHARED_FILES)} are absent from "
            f"{SHARED_DICOM} "
            "(synthetic DICOMs are tested by the other tests)"
        )
    sources = {}
    for path in (files[0] for files in found):
        orthanc.upload(path)
        sources[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = path
    studies = sorted(
        {
            str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID)
            for p in sources.values()
        }
    )
    command = ["--study", studies[0], "--study", studies[1], "--store", "--tile-size", "256"]
    assert apply(orthanc, tmp_path / "out", tiny_unet, *command) == 0
    derived = [ds for study in studies for ds in derived_instances(orthanc, study)]
    assert len(derived) == 2 and {
        d.SourceImageSequence[0].ReferencedSOPInstanceUID for d in derived
    } == set(sources)
    for ds, path in zip(derived, saved(derived, tmp_path / "from_orthanc")):
        source = pydicom.dcmread(sources[ds.SourceImageSequence[0].ReferencedSOPInstanceUID])
        assert (
            ds.SOPInstanceUID != source.SOPInstanceUID
            and ds.SeriesInstanceUID != source.SeriesInstanceUID
        )
        assert (ds.StudyInstanceUID, ds.PatientID) == (source.StudyInstanceUID, source.PatientID)
        assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
        assert list(ds.ImageType[:2]) == ["DERIVED", "SECONDARY"]
        assert ds.pixel_array.shape == (source.Rows, source.Columns) and np.ptp(ds.pixel_array) > 0
        new = dciodvfy_errors(path) - dciodvfy_errors(
            sources[ds.SourceImageSequence[0].ReferencedSOPInstanceUID]
        )
        assert not new, f"dciodvfy finds new errors in the derived instance: {new}"
    capsys.readouterr()
    assert apply(orthanc, tmp_path / "out", tiny_unet, *command) == 0
    assert "stored 0" in capsys.readouterr().out
    assert len([ds for study in studies for ds in derived_instances(orthanc, study)]) == 2, (
        "a rerun stores nothing"
    )


def test_wrong_password_is_one_line_without_the_secret(
    tmp_path: Path,
    orthanc: Orthanc,
    tiny_unet: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    study, _ = upload_study(orthanc, tmp_path / "src", 1)
    monkeypatch.setenv(USER_VAR, USER)
    monkeypatch.setenv(PASSWORD_VAR, "not-the-password-42")
    assert apply(orthanc, tmp_path / "out", tiny_unet, "--study", study) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "401" in err and "not-the-password-42" not in err


def test_forbidden_account_is_one_line(
    tmp_path: Path,
    orthanc: Orthanc,
    tiny_unet: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    study, _ = upload_study(orthanc, tmp_path / "src", 1)
    monkeypatch.delenv(TOKEN_VAR, raising=False)
    monkeypatch.setenv(USER_VAR, VISITOR)  # the server forbids this account every request
    monkeypatch.setenv(PASSWORD_VAR, orthanc.password)
    assert apply(orthanc, tmp_path / "out", tiny_unet, "--study", study) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "403 Forbidden" in err and orthanc.password not in err


def test_netrc_file_and_query_selection(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (TOKEN_VAR, USER_VAR, PASSWORD_VAR):
        monkeypatch.delenv(name, raising=False)
    patient = f"Q{generate_uid()[-8:]}"
    upload_study(orthanc, tmp_path / "src", 2, patient)
    netrc = tmp_path / "auth"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {orthanc.password}\n")
    netrc.chmod(0o600)
    assert (
        apply(
            orthanc,
            tmp_path / "out",
            tiny_unet,
            "--query",
            f"PatientID={patient}",
            "--auth-file",
            str(netrc),
        )
        == 0
    )
    assert len(list((tmp_path / "out" / "denoised").rglob("*.dcm"))) == 2


def test_series_selection_takes_that_series_only(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path, login: None
) -> None:
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
    pdf.EncapsulatedDocument, pdf.MIMETypeOfEncapsulatedDocument = (
        b"%PDF-1.4\n%%EOF\n",
        "application/pdf",
    )
    pdf.save_as(tmp_path / "doc.dcm", enforce_file_format=True)
    orthanc.upload(tmp_path / "doc.dcm")
    unknown = generate_uid()
    assert apply(orthanc, tmp_path / "out", tiny_unet, "--study", study, "--study", unknown) == 1
    reasons = " | ".join(row["reason"] for row in failures(tmp_path / "out"))
    assert f"study {unknown}: not found on the server" in reasons
    assert "Encapsulated PDF Storage holds no image" in reasons
    assert len(failures(tmp_path / "out")) == 2
    assert len(list((tmp_path / "out" / "denoised").rglob("*.dcm"))) == 2


def test_undecodable_instance_is_recorded_and_the_others_stored(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path, login: None
) -> None:
    study, files = upload_study(orthanc, tmp_path / "src", 2)
    bad = pydicom.dcmread(files[0])
    bad.SOPInstanceUID = bad.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    bad.PixelData = bad.PixelData[
        : len(bad.PixelData) // 4
    ]  # a quarter of the pixels the header promises
    bad.save_as(tmp_path / "bad.dcm", enforce_file_format=True)
    orthanc.upload(tmp_path / "bad.dcm")
    assert apply(orthanc, tmp_path / "out", tiny_unet, "--study", study, "--store") == 1
    rows = failures(tmp_path / "out")
    assert len(rows) == 1 and bad.SOPInstanceUID in rows[0]["path"], rows
    assert "\n" not in rows[0]["reason"] and "pixel" in rows[0]["reason"].lower(), rows[0]["reason"]
    assert len(derived_instances(orthanc, study)) == 2, (
        "the other instances are denoised and stored"
    )


def test_refused_stow_is_recorded_and_local_outputs_are_kept(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path, login: None
) -> None:
    study, _ = upload_study(
        orthanc, tmp_path / "src", 2, patient="NOSTOW"
    )  # the server's filter refuses STOW of it
    assert apply(orthanc, tmp_path / "out", tiny_unet, "--study", study, "--store") == 1
    rows = failures(tmp_path / "out")
    assert len(rows) == 2 and all("the server refused to store it" in row["reason"] for row in rows)
    assert (
        len(list((tmp_path / "out" / "denoised").rglob("*.dcm"))) == 2
        and derived_instances(orthanc, study) == []
    )
    assert stored_rows(tmp_path / "out") == [], "nothing the server refused is recorded as stored"


def test_destination_down_then_back_stores_on_the_rerun(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path, login: None
) -> None:
    study, _ = upload_study(orthanc, tmp_path / "src", 2)
    destination = start_orthanc(
        tmp_path / "dest", password=orthanc.password
    )  # the environment's credentials
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


def test_unreachable_server_is_one_line(
    tmp_path: Path, tiny_unet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}/dicom-web"
    assert (
        main(
            [
                "apply",
                "-i",
                f"dicomweb:{url}",
                "-o",
                str(tmp_path / "out"),
                "--study",
                "1.2.3",
                *FAST,
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot connect" in err


def test_credentials_come_from_the_environment_never_the_url() -> None:
    assert isinstance(credentials("https://pacs/dicom-web", env={TOKEN_VAR: "t0k"}), BearerAuth)
    assert "t0k" not in repr(credentials("https://pacs/dicom-web", env={TOKEN_VAR: "t0k"}))
    assert credentials("https://pacs/dicom-web", env={USER_VAR: "u", PASSWORD_VAR: "p"}) == (
        "u",
        "p",
    )
    with pytest.raises(PipelineError, match="holds credentials"):
        check_url("https://u:p@pacs/dicom-web")


def test_dicomweb_options_need_a_dicomweb_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    assert (
        main(
            [
                "apply",
                "-i",
                str(tmp_path / "in"),
                "-o",
                str(tmp_path / "out"),
                "--study",
                "1.2.3",
                *FAST,
            ]
        )
        == 2
    )
    assert "--study needs a DICOMweb input" in capsys.readouterr().err


def test_missing_library_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "dicomweb_client", None)  # as if it were not installed
    url = f"dicomweb:http://127.0.0.1:{free_port()}/dicom-web"
    assert main(["apply", "-i", url, "-o", str(tmp_path / "out"), "--study", "1.2.3", *FAST]) == 2
    assert "pip install dicomweb-client" in capsys.readouterr().err


def test_tls_is_verified_and_a_ca_bundle_makes_it_trusted(
    tmp_path: Path,
    orthanc: Orthanc,
    tiny_unet: Path,
    login: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    study, _ = upload_study(orthanc, tmp_path / "src", 1)
    proxy = TlsProxy(tmp_path / "tls", orthanc.http_port)
    try:
        url = f"dicomweb:https://127.0.0.1:{proxy.port}/dicom-web"
        command = ["apply", "-i", url, "--study", study, "--model", str(tiny_unet), *FAST]
        assert main([*command, "-o", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "TLS verification" in err and "--ca-bundle" in err
        assert (
            main([*command, "-o", str(tmp_path / "out"), "--ca-bundle", str(proxy.certificate)])
            == 0
        )
        assert len(list((tmp_path / "out" / "denoised").rglob("*.dcm"))) == 1
    finally:
        proxy.stop()


def test_instances_are_fetched_ahead_of_the_denoiser_up_to_a_bound(
    tmp_path: Path, orthanc: Orthanc, login: None
) -> None:
    study, files = upload_study(orthanc, tmp_path / "src", 7)
    client = Server(orthanc.dicomweb).client()
    refs, _ = find_instances(client, Selection(studies=(study,)))
    fetched = tmp_path / "spool" / "fetched"
    batches = fetch_ahead(client, refs, Spool(tmp_path / "spool"), depth=2, most=3)
    first = next(batches)
    assert 1 <= len(first) <= 3
    # while the consumer works on its first batch, the next instances arrive, but only 2
    wait_for(
        lambda: len(list(fetched.rglob("*.dcm"))) >= len(first) + 2, 30, "instances fetched ahead"
    )
    time.sleep(0.5)
    assert len(list(fetched.rglob("*.dcm"))) == len(first) + 2, "no more than 2 fetched ahead"
    rest = [item for batch in batches for item in batch]
    assert sorted(ref.sop for ref, failure in first + rest if failure is None) == sorted(
        ref.sop for ref in refs
    )
    assert len(refs) == len(files)


@pytest.mark.slow
def test_kill_9_mid_run_and_rerun_stores_every_instance_exactly_once(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path, login: None
) -> None:
    study, files = upload_study(orthanc, tmp_path / "src", 6)
    out = tmp_path / "out"
    command = [
        "apply",
        "-i",
        f"dicomweb:{orthanc.dicomweb}",
        "-o",
        str(out),
        "--model",
        str(tiny_unet),
        "--study",
        study,
        "--store",
    ]
    with open(tmp_path / "run.log", "wb") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "pipeline", *command, *SLOW],
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=log,
            env=dict(os.environ),
        )
    try:
        wait_for(
            lambda: bool(stored_rows(out)) or run.poll() is not None, 240, "a first stored instance"
        )
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    assert run.returncode == -signal.SIGKILL, (tmp_path / "run.log").read_text()
    denoised_before = len(list((out / "denoised").rglob("*.dcm")))
    assert denoised_before < 6, (
        "a derived instance was stored while others were still to be denoised"
    )
    assert main([*command, *FAST]) == 0
    derived = derived_instances(orthanc, study)
    assert sorted(d.SourceImageSequence[0].ReferencedSOPInstanceUID for d in derived) == sorted(
        str(pydicom.dcmread(f).SOPInstanceUID) for f in files
    ), "every instance stored exactly once"
    assert sorted(row["derived_sop"] for row in stored_rows(out)) == sorted(
        str(d.SOPInstanceUID) for d in derived
    )


def test_server_stopped_mid_retrieval_records_the_rest_without_asking_again(
    tmp_path: Path, orthanc: Orthanc, login: None
) -> None:
    server = start_orthanc(
        tmp_path / "source", password=orthanc.password
    )  # the environment's credentials
    try:
        study, _ = upload_study(server, tmp_path / "src", 6)
        client = Server(server.dicomweb).client()
        refs, _ = find_instances(client, Selection(studies=(study,)))
        batches = fetch_ahead(client, refs, Spool(tmp_path / "spool"), depth=1, most=1)
        first = next(batches)
        server.stop(kill=True)
        rest = [item for batch in batches for item in batch]
    finally:
        server.stop(kill=True)
    reasons = [failure.reason for _ref, failure in first + rest if failure is not None]
    assert first[0][1] is None and len(first + rest) == 6 and len(reasons) >= 3
    assert all("\n" not in reason for reason in reasons)
    down = next(i for i, reason in enumerate(reasons) if "cannot connect" in reason)
    assert all("not retrieved after an earlier error" in reason for reason in reasons[down + 1 :])
