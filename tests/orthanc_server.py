"""Test helper: a real Orthanc (Debian's orthanc + orthanc-dicomweb) on free local ports.

:func:`start_orthanc` writes a temporary configuration (127.0.0.1, random free HTTP and
DICOM ports, storage in a temporary folder, basic auth with a random password, the
DICOMweb plugin), starts the server and waits for ``/system``. Tests skip with a reason
where Orthanc or its DICOMweb plugin is not installed.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests

PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)
USER = "radiologist"
#: A second user, with the same password, whom the server forbids every request (403).
VISITOR = "visitor"
AET = "ORTHANC"
#: Lua filters: instances of patient NOSTOW are accepted by the REST upload only, so a STOW-RS
#: of them is refused by the server; every request of VISITOR is forbidden (403).
REFUSE_STOW_LUA = f"""
function ReceivedInstanceFilter(dicom, origin, info)
  if dicom.PatientID == 'NOSTOW' and origin['RequestOrigin'] ~= 'RestApi' then
    return false
  end
  return true
end

function IncomingHttpRequestFilter(method, uri, ip, username, httpHeaders)
  return username ~= '{VISITOR}'
end
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition, seconds: float, what: str) -> None:
    """Poll `condition` until it is true; AssertionError naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _plugin() -> str:
    if shutil.which("Orthanc") is None:
        pytest.skip("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)")
    for path in PLUGIN_CANDIDATES:
        if Path(path).is_file():
            return path
    pytest.skip("Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)")


@dataclass
class Orthanc:
    """A running Orthanc; ``password`` is the one user's (``USER``) password."""

    http_port: int
    dicom_port: int
    password: str
    process: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def get(self, path: str) -> object:
        """The JSON answer of a REST GET."""
        answer = requests.get(self.url + path, auth=(USER, self.password), timeout=10)
        answer.raise_for_status()
        return answer.json()

    def upload(self, path: Path) -> str:
        """Store a DICOM file through the REST API; returns Orthanc's instance id."""
        answer = requests.post(
            f"{self.url}/instances", data=path.read_bytes(), auth=(USER, self.password), timeout=10
        )
        answer.raise_for_status()
        return str(answer.json()["ID"])

    def series_of_study(self, study_uid: str) -> list[dict]:
        """Orthanc's description of every series of a study (``MainDicomTags``, ``Instances``)."""
        found = requests.post(
            f"{self.url}/tools/find",
            auth=(USER, self.password),
            timeout=10,
            json={"Level": "Study", "Query": {"StudyInstanceUID": study_uid}},
        ).json()
        return [] if not found else list(self.get(f"/studies/{found[0]}/series"))

    def restart(self) -> None:
        """Start the stopped server again with the same configuration, ports and storage."""
        self.stop()
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                ["Orthanc", str(self.log.parent / "orthanc.json")],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.wait()

    def wait(self, seconds: float = 20) -> None:
        """Wait until ``/system`` answers; RuntimeError with the log when it does not."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc stopped: {self.log.read_text()[-2000:]}")
            try:
                self.get("/system")
                return
            except requests.RequestException:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"Orthanc did not answer within {seconds} s: {self.log.read_text()[-2000:]}"
        )

    def stop(self, kill: bool = False) -> None:
        """Stop the server: cleanly, or at once with `kill` (as a crash would)."""
        if self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_orthanc(
    root: Path, modalities: dict[str, list] | None = None, password: str | None = None
) -> Orthanc:
    """Start Orthanc with its configuration and storage under `root` (a random password by
    default)."""
    plugin = _plugin()
    root.mkdir(parents=True, exist_ok=True)
    (root / "refuse.lua").write_text(REFUSE_STOW_LUA)
    password = password or secrets.token_hex(8)
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "denoise-test",
        "StorageDirectory": str(root / "db"),
        "IndexDirectory": str(root / "db"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": AET,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: password, VISITOR: password},
        "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "DicomModalities": modalities or {},
        "DicomCheckCalledAet": False,
        "SaveJobs": False,
        "LuaScripts": [str(root / "refuse.lua")],
        "StableAge": 1,
    }
    (root / "orthanc.json").write_text(json.dumps(config))
    log = root / "orthanc.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["Orthanc", str(root / "orthanc.json")], stdout=out, stderr=subprocess.STDOUT
        )
    server = Orthanc(http_port, dicom_port, password, process, log)
    server.wait()
    return server


def write_radiograph(
    path: Path,
    study: str,
    series: str,
    number: int,
    patient: str = "P001",
    seed: int = 0,
    shape: tuple[int, int] = (48, 64),
) -> Path:
    """A 12-bit CR image (default 64x48; a smooth gradient plus noise) with patient and study
    modules."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"  # CR Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = (
        meta.MediaStorageSOPClassUID,
        meta.MediaStorageSOPInstanceUID,
    )
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = (
        f"Test^{patient}",
        patient,
        "19700101",
        "O",
    )
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240102", "101010", "1", "ACC1"
    ds.ReferringPhysicianName, ds.Manufacturer = "", "test"
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CR", 3, number
    ds.BodyPartExamined, ds.ViewPosition, ds.PatientOrientation = "CHEST", "PA", ["L", "F"]
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]] * (64 / max(shape))
    values = np.clip(1000 + 20 * x + 10 * y + rng.normal(0, 150, x.shape), 0, 4095)
    ds.Rows, ds.Columns = values.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = values.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
