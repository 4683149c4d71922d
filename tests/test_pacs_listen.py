"""`denoise listen` against a real Orthanc: C-ECHO, C-STORE in -> derived instance out, kill -9."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom
import pytest
from orthanc_server import AET, Orthanc, free_port, start_orthanc, wait_for, write_radiograph
from pydicom.uid import generate_uid

from pipeline.checkpoint import load_model
from pipeline.config import InferenceConfig
from pipeline.pacs.forward import Destination, forward
from pipeline.pacs.listen import ListenSettings, start_node

pynetdicom = pytest.importorskip(
    "pynetdicom", reason="pynetdicom is not installed (pip install pynetdicom)"
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
LISTEN_AET = "DENOISE"
VERIFICATION = "1.2.840.10008.1.1"
FAST = ["--tile-size", "32", "--device", "cpu"]
#: Many small tiles: slow enough to kill the node while it works.
SLOW = ["--tile-size", "16", "--overlap", "0.75", "--batch-size", "1", "--device", "cpu"]


class Listener:
    """`denoise listen` in a process of its own on a free port, forwarding to Orthanc.

    Started anew (``python -m pipeline listen``), not forked: a fork of the test process, whose
    torch has started its thread pools in earlier tests, can hang in its first convolution.
    It is killed with SIGKILL or stopped with SIGTERM.
    """

    def __init__(
        self,
        spool: Path,
        orthanc: Orthanc,
        model: Path,
        options: list[str],
        port: int | None = None,
    ):
        self.port = port or free_port()
        self.log = spool.parent / f"listen-{self.port}.log"
        self.args = [
            "listen",
            "--spool",
            str(spool),
            "--port",
            str(self.port),
            "--ae-title",
            LISTEN_AET,
            "--destination",
            f"{AET}@127.0.0.1:{orthanc.dicom_port}",
            "--model",
            str(model),
            "--retries",
            "1",
            *options,
        ]
        self.proc: subprocess.Popen | None = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> Listener:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline", *self.args],
                stdout=log,
                stderr=log,
                cwd=Path(__file__).resolve().parents[1],
            )
        deadline = (
            time.monotonic() + 180
        )  # generous: a loaded machine is slow, a working one is not
        while time.monotonic() < deadline:
            assert self.alive(), self.log.read_text()
            if echo(self.port) == 0x0000:
                return self
            time.sleep(0.1)
        raise AssertionError(f"the listener did not answer C-ECHO: {self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send `sig` and wait; the exit status (-9 for SIGKILL)."""
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"the listener did not stop: {self.log.read_text()}") from None


def _association(port: int, contexts: list[str], called: str = LISTEN_AET):
    from pynetdicom import AE

    ae = AE(ae_title="MODALITY")
    for context in contexts:
        ae.add_requested_context(context)
    ae.acse_timeout = ae.network_timeout = 5
    return ae.associate("127.0.0.1", port, ae_title=called)


def echo(port: int, called: str = LISTEN_AET) -> int | None:
    """The status of a C-ECHO to the listener, None when there is no association."""
    assoc = _association(port, [VERIFICATION], called)
    if not assoc.is_established:
        return None
    try:
        return int(assoc.send_c_echo().Status)
    finally:
        assoc.release()


def send(port: int, files: list[Path]) -> list[int]:
    """C-STORE every file in one association; their statuses."""
    import pydicom

    assoc = _association(port, ["1.2.840.10008.5.1.4.1.1.1"])
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(pydicom.dcmread(f)).Status) for f in files]
    finally:
        assoc.release()


def derived_sources(orthanc: Orthanc, study: str) -> list[str]:
    """The source SOPInstanceUID of every derived instance Orthanc holds in `study` (repeats
    kept)."""
    sources = []
    for series in orthanc.series_of_study(study):
        if not str(series["MainDicomTags"].get("SeriesDescription", "")).startswith("Denoised"):
            continue
        for instance in series["Instances"]:
            tags = orthanc.get(f"/instances/{instance}/simplified-tags")
            sources.append(tags["SourceImageSequence"][0]["ReferencedSOPInstanceUID"])
    return sources


def _radiographs(folder: Path, n: int, study: str) -> list[Path]:
    series = generate_uid()
    return [write_radiograph(folder / f"{i}.dcm", study, series, i + 1, seed=i) for i in range(n)]


def _sop(path: Path) -> str:
    import pydicom

    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


@contextmanager
def running_node(
    spool: Path,
    orthanc: Orthanc,
    model: Path,
    destination_port: int | None = None,
    max_associations: int = 4,
) -> Iterator[int]:
    """A node in this process (its worker in a thread), forwarding to Orthanc; yields its port."""
    port = destination_port or orthanc.dicom_port
    settings = ListenSettings(
        spool,
        Destination(AET, "127.0.0.1", port, LISTEN_AET),
        LISTEN_AET,
        port=free_port(),
        max_associations=max_associations,
        retries=0,
    )
    node, server = start_node(
        settings, load_model(model), InferenceConfig(tile_size=32, device="cpu")
    )
    worker = threading.Thread(target=node.run)
    worker.start()
    try:
        yield settings.port
    finally:
        node.stop.set()
        node.wake.set()
        worker.join(60)
        server.shutdown()


def test_echo_and_store_in_gives_a_derived_instance_in_orthanc(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path
) -> None:
    study = generate_uid()
    files = _radiographs(tmp_path / "in", 2, study)
    with running_node(tmp_path / "spool", orthanc, tiny_unet) as port:
        assert echo(port) == 0x0000
        assert send(port, files) == [0, 0]
        wait_for(
            lambda: len(derived_sources(orthanc, study)) == 2,
            60,
            "two derived instances in Orthanc",
        )
        assert sorted(derived_sources(orthanc, study)) == sorted(_sop(f) for f in files)
        assert echo(port, called="SOMEONE_ELSE") is None, "another called AE title is refused"
        if shutil.which("echoscu"):  # dcmtk's client too
            run = subprocess.run(
                ["echoscu", "-aec", LISTEN_AET, "127.0.0.1", str(port)],
                check=False,
                capture_output=True,
                timeout=30,
            )
            assert run.returncode == 0, run.stderr
    spool = tmp_path / "spool"
    assert not list((spool / "incoming").iterdir()) and not list((spool / "failed").iterdir())
    assert len((spool / "forwarded.csv").read_text().splitlines()) == 3


def test_instances_sent_by_dcmtk_storescu_arrive_in_orthanc_once_each_as_derived(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path
) -> None:
    if shutil.which("storescu") is None:
        pytest.skip("dcmtk's storescu is not installed (apt-get install dcmtk)")
    study = generate_uid()
    files = _radiographs(tmp_path / "in", 3, study)
    with running_node(tmp_path / "spool", orthanc, tiny_unet) as port:
        run = subprocess.run(
            [
                "storescu",
                "-aet",
                "MODALITY",
                "-aec",
                LISTEN_AET,
                "127.0.0.1",
                str(port),
                *map(str, files),
            ],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        wait_for(
            lambda: len(derived_sources(orthanc, study)) >= 3,
            60,
            "three derived instances in Orthanc",
        )
    sources = {_sop(f) for f in files}
    assert sorted(derived_sources(orthanc, study)) == sorted(sources), "each instance arrives once"
    [derived] = [
        s
        for s in orthanc.series_of_study(study)
        if s["MainDicomTags"]["SeriesInstanceUID"]
        != str(pydicom.dcmread(files[0]).SeriesInstanceUID)
    ]
    uids = {
        orthanc.get(f"/instances/{i}/simplified-tags")["SOPInstanceUID"]
        for i in derived["Instances"]
    }
    assert len(uids) == 3 and not uids & sources, "new SOP Instance UIDs in a new series"


def test_mnist_model_warning_is_logged_once_per_node_not_per_arrival(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path, caplog: pytest.LogCaptureFixture
) -> None:
    study = generate_uid()
    files = _radiographs(tmp_path / "in", 2, study)
    with running_node(
        tmp_path / "spool", orthanc, tiny_unet
    ) as port:  # tiny_unet's data.kind is mnist
        for n, path in enumerate(files, 1):  # the second arrives after the first is delivered
            assert send(port, [path]) == [0]
            wait_for(
                lambda n=n: len(derived_sources(orthanc, study)) == n, 60, f"{n} derived instances"
            )
    assert sum("trained on MNIST" in record.getMessage() for record in caplog.records) == 1


def test_associations_beyond_the_limit_are_refused(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path
) -> None:
    with running_node(tmp_path / "spool", orthanc, tiny_unet, max_associations=1) as port:
        first = _association(port, [VERIFICATION])
        try:
            assert first.is_established
            second = _association(port, [VERIFICATION])
            assert not second.is_established and second.is_rejected, (
                "a second association at once is refused"
            )
        finally:
            first.release()
        wait_for(lambda: echo(port) == 0x0000, 20, "an association once the first is released")


def test_delivery_is_retried_until_the_destination_is_back(
    tmp_path: Path, orthanc: Orthanc
) -> None:
    destination = start_orthanc(tmp_path / "dest", password=orthanc.password)
    destination.stop(kill=True)
    study = generate_uid()
    [path] = _radiographs(tmp_path / "in", 1, study)
    back = threading.Timer(0.5, destination.restart)
    back.start()
    try:
        forward(
            Destination(AET, "127.0.0.1", destination.dicom_port, LISTEN_AET),
            path,
            retries=5,
            wait=0.5,
        )
        assert [
            s["MainDicomTags"]["SeriesInstanceUID"] for s in destination.series_of_study(study)
        ] == [str(pydicom.dcmread(path).SeriesInstanceUID)], (
            "delivered once the destination answered again"
        )
    finally:
        back.join()
        destination.stop(kill=True)


def test_undeliverable_instance_is_queued_and_delivered_after_a_restart(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path
) -> None:
    study = generate_uid()
    files = _radiographs(tmp_path / "in", 1, study)
    spool = tmp_path / "spool"
    with running_node(spool, orthanc, tiny_unet, destination_port=free_port()) as port:
        assert send(port, files) == [0]
        wait_for(
            lambda: (spool / "failed" / f"{_sop(files[0])}.dcm").is_file(), 60, "the failure queue"
        )
    reason = (spool / "failed.csv").read_text()
    assert "did not accept an association" in reason and derived_sources(orthanc, study) == []
    with running_node(spool, orthanc, tiny_unet):
        wait_for(
            lambda: len(derived_sources(orthanc, study)) == 1, 60, "the queued instance delivered"
        )
    assert derived_sources(orthanc, study) == [_sop(files[0])]
    assert not list((spool / "failed").iterdir())


@pytest.mark.slow
def test_kill_9_and_restart_delivers_every_instance_exactly_once(
    tmp_path: Path, orthanc: Orthanc, tiny_unet: Path
) -> None:
    study = generate_uid()
    files = _radiographs(tmp_path / "in", 6, study)
    listener = Listener(tmp_path / "spool", orthanc, tiny_unet, SLOW).start()
    assert send(listener.port, files[:4]) == [0] * 4
    wait_for(
        lambda: (tmp_path / "spool" / "derived" / "manifest.csv").is_file(),
        180,
        "a first denoised instance",
    )
    assert listener.stop(signal.SIGKILL) == -signal.SIGKILL
    delivered_before = len(derived_sources(orthanc, study))
    assert delivered_before < 4, "killed before every instance was delivered"
    listener.args[listener.args.index("--tile-size") :] = FAST  # the rest need not be slow
    listener.start()
    try:
        assert send(listener.port, files[4:]) == [0, 0]
        wait_for(lambda: len(derived_sources(orthanc, study)) >= 6, 300, "six derived instances")
        time.sleep(1.0)  # a duplicate would arrive now
        assert sorted(derived_sources(orthanc, study)) == sorted(_sop(f) for f in files)
    finally:
        assert listener.stop() == 0, listener.log.read_text()
