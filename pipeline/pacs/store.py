"""STOW-RS of the derived instances of a run, each stored once.

``OUT/stored.csv`` records every derived instance the destination holds (stored by this
run or found there by a QIDO-RS check just before storing); a recorded instance is never
sent again, and an instance the server already has is recorded instead of sent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pipeline.ingest.failures import Failure
from pipeline.pacs.errors import ServerError, server_error
from pipeline.pacs.retrieve import PARALLEL_REQUESTS
from pipeline.records import append_csv_row, read_csv
from pipeline.text import library_detail

STORED = "stored.csv"
STORED_COLUMNS = ("derived_sop", "derived_series", "study", "file", "destination", "how", "stored")
_RECORDS_LOCK = threading.Lock()  # rows are appended by several threads


@dataclass(frozen=True)
class StoreCounts:
    """What a :class:`Storer` did: instances sent, found on the server, recorded earlier."""

    sent: int
    found: int
    recorded: int


def stored_sops(records: Path, destination: str) -> set[str]:
    """Derived SOPInstanceUIDs recorded as held by `destination`."""
    return {
        row["derived_sop"] for row in read_csv(records) if row.get("destination") == destination
    }


def derived_files(output_dir: Path, outputs: Iterable[str]) -> list[Path]:
    """The DICOM files of manifest outputs (a file, or each file of a ``.frames`` folder)."""
    files: list[Path] = []
    for rel in outputs:
        path = output_dir / rel
        files += sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    return files


def _on_server(client, ds) -> bool:
    """Whether the server already holds `ds` (a QIDO-RS search for its SOPInstanceUID)."""
    found = client.search_for_instances(
        study_instance_uid=ds.StudyInstanceUID,
        series_instance_uid=ds.SeriesInstanceUID,
        search_filters={"SOPInstanceUID": ds.SOPInstanceUID},
    )
    return bool(found)


def _send(client, ds) -> None:
    """STOW-RS `ds`; ServerError when the server refuses it."""
    answer = client.store_instances([ds])
    failed = answer.get("FailedSOPSequence") if answer is not None else None
    if failed:
        reason = failed[0].get("FailureReason", "")
        raise ServerError(
            f"instance {ds.SOPInstanceUID}: the server refused to store it "
            f"(STOW-RS failure reason {reason})",
            409,
        )


def _store_one(client, path: Path, records: Path, destination: str, known: set[str]) -> str:
    """Store one derived file unless the destination holds it.

    Returns how: "sent", "found" or "recorded".
    """
    import pydicom

    ds = pydicom.dcmread(path)
    if ds.SOPInstanceUID in known:
        return "recorded"
    what = f"store {path.name}"
    try:
        how = "found" if _on_server(client, ds) else "sent"
        if how == "sent":
            _send(client, ds)
            if not _on_server(client, ds):  # some servers answer success for what a filter dropped
                raise ServerError(
                    f"instance {ds.SOPInstanceUID}: the server refused to store it "
                    "(STOW-RS answered success, but a search does not find it)",
                    409,
                )
    except ServerError as err:
        raise ServerError(f"{what}: {err}", err.status) from None
    except Exception as err:  # noqa: BLE001 - every failure becomes one line
        raise server_error(err, what, destination) from None
    row = {
        "derived_sop": ds.SOPInstanceUID,
        "derived_series": ds.SeriesInstanceUID,
        "study": ds.StudyInstanceUID,
        "file": path.name,
        "destination": destination,
        "how": how,
        "stored": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with _RECORDS_LOCK:
        append_csv_row(row, records, STORED_COLUMNS, durable=True)
    return how


class Storer:
    """Stores derived files on background threads while the caller goes on (STOW-RS).

    :meth:`submit` queues a file, waiting while `depth` files are queued or being stored;
    :meth:`close` waits for all of them. Each file is stored unless `destination` holds it
    already (:data:`STORED` records, a QIDO-RS check); a row is appended to the records only
    once the server has accepted the instance. After an error that every further request
    would repeat (no answer, credentials refused) the remaining files are recorded with it
    without asking the server again.
    """

    def __init__(
        self, client, records: Path, destination: str, depth: int = 2 * PARALLEL_REQUESTS
    ) -> None:
        self.client, self.records, self.destination = client, records, destination
        self.known = stored_sops(records, destination)
        self._pool = ThreadPoolExecutor(PARALLEL_REQUESTS, thread_name_prefix="stow-rs")
        self._slots = threading.Semaphore(depth)
        self._results: list[str | Failure] = []
        self._fatal: list[ServerError] = []

    def _one(self, path: Path) -> None:
        try:
            result = self._store(path)
        finally:
            self._slots.release()
        self._results.append(result)

    def _store(self, path: Path) -> str | Failure:
        if self._fatal:
            return Failure(
                path, f"{path.name}: not stored after an earlier error ({self._fatal[0]})"
            )
        try:
            return _store_one(self.client, path, self.records, self.destination, self.known)
        except ServerError as err:
            if err.fatal and not self._fatal:
                self._fatal.append(err)
            return Failure(path, str(err))
        except Exception as err:  # noqa: BLE001 - one file must not stop the others
            return Failure(path, f"{path.name}: not stored ({library_detail(err)})")

    def submit(self, path: Path) -> None:
        """Store `path` in the background (waits while `depth` files are pending)."""
        self._slots.acquire()
        self._pool.submit(self._one, path)

    def close(self) -> tuple[StoreCounts, list[Failure]]:
        """Wait for every submitted file; (counts, failures)."""
        self._pool.shutdown(wait=True)
        failures = [r for r in self._results if isinstance(r, Failure)]
        counts = StoreCounts(
            *(sum(r == how for r in self._results) for how in ("sent", "found", "recorded"))
        )
        return counts, failures
