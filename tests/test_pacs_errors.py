"""DICOMweb runs against a real Orthanc whose content changes under the run, and their warnings."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_runs import apply, derived_instances, failures, upload_study
from orthanc_server import USER, Orthanc

import pipeline.pacs.dicomweb

pytest.importorskip(
    "dicomweb_client", reason="dicomweb-client is not installed (pip install dicomweb-client)"
)


def delete_instance(orthanc: Orthanc, sop: str) -> None:
    """Delete the instance `sop` from Orthanc through its REST API."""
    [found] = requests.post(
        f"{orthanc.url}/tools/find",
        auth=(USER, orthanc.password),
        timeout=10,
        json={"Level": "Instance", "Query": {"SOPInstanceUID": sop}},
    ).json()
    requests.delete(
        f"{orthanc.url}/instances/{found}", auth=(USER, orthanc.password), timeout=10
    ).raise_for_status()


def test_instance_deleted_between_search_and_retrieval_is_one_failure_and_the_rest_stored(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path, login: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    study, files = upload_study(orthanc, tmp_path / "src", 3)
    gone = str(pydicom.dcmread(files[1]).SOPInstanceUID)
    search = pipeline.pacs.dicomweb.find_instances

    def search_then_delete(client, selection):
        """The real search; then the instance is deleted on the server, before it is retrieved."""
        found = search(client, selection)
        delete_instance(orthanc, gone)
        return found

    monkeypatch.setattr(pipeline.pacs.dicomweb, "find_instances", search_then_delete)
    assert apply(orthanc, tmp_path / "out", tiny_unet, "--study", study, "--store") == 1
    [row] = failures(tmp_path / "out")
    assert (
        gone in row["path"]
        and gone in row["reason"]
        and "deleted since the search" in row["reason"]
    ), row
    assert "\n" not in row["reason"]
    stored = sorted(
        ds.SourceImageSequence[0].ReferencedSOPInstanceUID
        for ds in derived_instances(orthanc, study)
    )
    assert stored == sorted(str(pydicom.dcmread(f).SOPInstanceUID) for f in files if f != files[1])


def test_mnist_model_warning_is_logged_once_per_run(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path, login: None, caplog: pytest.LogCaptureFixture
) -> None:
    study, _ = upload_study(
        orthanc, tmp_path / "src", 6
    )  # more than one folder run (at most 4 each)
    assert (
        apply(orthanc, tmp_path / "out", tiny_unet, "--study", study) == 0
    )  # tiny_unet's data.kind is mnist
    assert len(list((tmp_path / "out" / "retrieved").glob("batch-*"))) > 1, (
        "the run took several batches"
    )
    # records, not the command's stderr (which prints each distinct warning once anyway)
    assert sum("trained on MNIST" in record.getMessage() for record in caplog.records) == 1
