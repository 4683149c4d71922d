"""``denoise listen``: a DICOM node that denoises what it receives and forwards the result.

A C-STORE SCP (and Verification SCP, C-ECHO) writes every received instance to
``SPOOL/incoming/<sop>.dcm`` (complete, flushed and renamed into place) before it
acknowledges it. A worker denoises the spooled instances with
:func:`pipeline.apply.apply_folder` (``SPOOL/derived/`` holds its outputs and records) and
C-STOREs each derived instance to the destination (:mod:`~pipeline.pacs.forward`). A
delivered instance is recorded in ``SPOOL/forwarded.csv`` before its files are deleted, so
after a kill and restart every received instance is delivered exactly once: the spool is
processed again, a recorded one is not sent again, and one that was sent but not recorded
is sent again as the same derived instance (same SOPInstanceUID). Instances that cannot be
denoised or delivered go to ``SPOOL/failed/`` (reasons in ``SPOOL/failed.csv``); they are
tried again at the next start. SIGTERM (or SIGINT) stops the node after the instance at hand.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pipeline.apply import ApplyOptions, apply_folder
from pipeline.apply.records import FAILURES, manifest_rows
from pipeline.checkpoint import LoadedModel
from pipeline.config import InferenceConfig
from pipeline.errors import PipelineError
from pipeline.inference import DEFAULT_INFERENCE
from pipeline.logs import each_warning_once
from pipeline.pacs.dicomweb import FOLDER_RUN_LOG
from pipeline.pacs.forward import Destination, ForwardError, forward
from pipeline.pacs.store import derived_files
from pipeline.records import append_csv_row, read_csv
from pipeline.text import short_text

log = logging.getLogger(__name__)

INCOMING, PARTIAL, DERIVED, FAILED = "incoming", "partial", "derived", "failed"
FORWARDED_CSV, FAILED_CSV = "forwarded.csv", "failed.csv"
FORWARDED_COLUMNS = ("source", "derived", "destination", "forwarded")
FAILED_COLUMNS = ("source", "reason", "failed")
#: C-STORE status "out of resources": the instance could not be written to the spool.
OUT_OF_RESOURCES = 0xA700


@dataclass(frozen=True)
class ListenSettings:
    """Where the node listens and spools, and what it does with an instance."""

    spool: Path
    destination: Destination
    ae_title: str = "DENOISE"
    host: str = "127.0.0.1"
    port: int = 11112
    max_associations: int = 4
    retries: int = 3
    retry_wait: float = 1.0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def spool_instance(spool: Path, sop_uid: str, data: bytes) -> Path:
    """Write a received instance to ``incoming/`` durably (flushed, renamed, folder synced)."""
    name = (
        sop_uid if re.fullmatch(r"[0-9.]{1,64}", sop_uid or "") else f"unnamed-{uuid.uuid4().hex}"
    )
    tmp = spool / PARTIAL / f"{name}.{uuid.uuid4().hex}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    final = spool / INCOMING / f"{name}.dcm"
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    return final


class Node:
    """The spool and the work on it: denoise, forward, record (one worker at a time)."""

    def __init__(
        self, settings: ListenSettings, model: LoadedModel, inference: InferenceConfig
    ) -> None:
        self.settings, self.model, self.inference = settings, model, inference
        self.wake, self.stop = threading.Event(), threading.Event()
        spool = settings.spool
        for name in (INCOMING, PARTIAL, DERIVED, FAILED):
            (spool / name).mkdir(parents=True, exist_ok=True)
        for leftover in (spool / PARTIAL).iterdir():  # receptions a killed node never acknowledged
            leftover.unlink()
        for queued in sorted((spool / FAILED).iterdir()):  # the failure queue is tried again
            os.replace(queued, spool / INCOMING / queued.name)

    def handle_store(self, event) -> int:
        """EVT_C_STORE: spool the instance, then acknowledge (0x0000) or report out of resources."""
        try:
            data = event.encoded_dataset(include_meta=True)
            path = spool_instance(
                self.settings.spool, str(event.request.AffectedSOPInstanceUID), data
            )
        except OSError as err:
            log.error("could not spool a received instance: %s", err.strerror or err)
            return OUT_OF_RESOURCES
        log.info("received %s from %s", path.name, event.assoc.requestor.ae_title)
        self.wake.set()
        return 0x0000

    def _forwarded(self) -> set[str]:
        return {row["source"] for row in read_csv(self.settings.spool / FORWARDED_CSV)}

    def _fail(self, source: Path, reason: str) -> None:
        """Move `source` to the failure queue with its reason."""
        log.error("%s", reason)
        row = {"source": source.name, "reason": short_text(reason), "failed": _now()}
        append_csv_row(row, self.settings.spool / FAILED_CSV, FAILED_COLUMNS, durable=True)
        os.replace(source, self.settings.spool / FAILED / source.name)

    def _deliver(self, source: Path, outputs: list[Path]) -> None:
        """Forward the derived files of `source`, record them, then delete them and `source`."""
        dest = self.settings.destination
        for path in outputs:
            forward(dest, path, self.settings.retries, self.settings.retry_wait)
        row = {
            "source": source.name,
            "derived": " ".join(p.name for p in outputs),
            "destination": str(dest),
            "forwarded": _now(),
        }
        append_csv_row(row, self.settings.spool / FORWARDED_CSV, FORWARDED_COLUMNS, durable=True)
        log.info("forwarded the denoised %s to %s", source.name, dest)
        self._clean(source, outputs)

    def _clean(self, source: Path, outputs: list[Path]) -> None:
        for path in outputs:
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        source.unlink(missing_ok=True)

    def process(self) -> None:
        """Denoise and forward every instance in ``incoming/`` now."""
        spool = self.settings.spool
        pending = sorted(p for p in (spool / INCOMING).iterdir() if p.is_file())
        done = self._forwarded()
        for source in [p for p in pending if p.name in done]:  # delivered before a kill
            self._clean(source, [])
        pending = [p for p in pending if p.name not in done]
        if not pending:
            return
        derived = spool / DERIVED
        apply_folder(
            spool / INCOMING,
            derived,
            self.model,
            ApplyOptions(fmt="dicom", progress=False, report=False),
            self.inference,
        )
        outputs = {Path(row["input"]).name: row["output"] for row in manifest_rows(derived)}
        reasons = {Path(row["path"]).name: row["reason"] for row in read_csv(derived / FAILURES)}
        for source in pending:
            if self.stop.is_set():
                return
            if source.name not in outputs:
                self._fail(source, reasons.get(source.name, f"{source.name}: not denoised"))
                continue
            files = derived_files(derived, [outputs[source.name]])
            try:
                self._deliver(source, files)
            except ForwardError as err:
                self._fail(source, f"{source.name}: not delivered: {err}")

    def run(self) -> None:
        """Work until :attr:`stop` is set: whenever instances arrive, and once at the start."""
        self.wake.set()
        with each_warning_once(FOLDER_RUN_LOG):  # e.g. about the model: once, not once per arrival
            while not self.stop.is_set():
                if self.wake.wait(timeout=1.0):
                    self.wake.clear()
                    self.process()


def _application_entity(settings: ListenSettings):
    from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, StoragePresentationContexts
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=settings.ae_title)
    for context in StoragePresentationContexts:
        ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    ae.maximum_associations = settings.max_associations
    ae.require_called_aet = True
    return ae


def start_node(
    settings: ListenSettings,
    model: LoadedModel,
    inference: InferenceConfig = DEFAULT_INFERENCE,
) -> tuple[Node, object]:
    """The node and its running SCP server (pynetdicom's ThreadedAssociationServer).

    Nothing is denoised until :meth:`Node.run` runs; stop with ``node.stop.set()``,
    ``node.wake.set()`` and then ``server.shutdown()``.
    """
    try:
        from pynetdicom import evt
    except ImportError:
        raise PipelineError(
            "denoise listen needs the pynetdicom package: pip install pynetdicom "
            "(or pip install denoise-pipeline[pacs])"
        ) from None
    node = Node(settings, model, inference)
    ae = _application_entity(settings)
    try:
        server = ae.start_server(
            (settings.host, settings.port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, node.handle_store)],
        )
    except OSError as err:
        raise PipelineError(
            f"cannot listen on {settings.host}:{settings.port}: {err.strerror or err} "
            "(choose another --port, or stop what uses it)"
        ) from None
    return node, server


def listen(
    settings: ListenSettings, model: LoadedModel, inference: InferenceConfig = DEFAULT_INFERENCE
) -> None:
    """Run the node until SIGTERM or SIGINT; `inference` goes to apply_folder (tiles, device)."""
    node, server = start_node(settings, model, inference)

    def stop(signum: int, _frame: object) -> None:
        log.info("%s: stopping after the instance at hand", signal.Signals(signum).name)
        node.stop.set()
        node.wake.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    print(
        f"listening as {settings.ae_title} on {settings.host}:{settings.port}; denoised "
        f"instances go to {settings.destination}; spool {settings.spool}",
        flush=True,
    )
    try:
        node.run()
    finally:
        server.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
