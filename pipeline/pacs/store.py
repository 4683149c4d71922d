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

STORED = "stored.csv"
STORED_COLUMNS = ("derived_sop", "derived_series", "study", "file", "destination", "how", "stored")
_RECORDS_LOCK = threading.Lock()  # rows are appended by several threads


@dataclass(frozen=True)
class StoreCounts:
    """What :func:`store_all` did: instances sent, found on the server, recorded earlier."""

    sent: int
    found: int
    recorded: int


def stored_sops(records: Path, destination: str) -> set[str]:
    """Derived SOPInstanceUIDs recorded as held by `destination`."""
    return {row["derived_sop"] for row in read_csv(records) if row.get("destination") == destination}


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
        study_instance_uid=ds.StudyInstanceUID, series_instance_uid=ds.SeriesInstanceUID,
        search_filters={"SOPInstanceUID": ds.SOPInstanceUID},
    )
    return bool(found)


def _send(client, ds) -> None:
    """STOW-RS `ds`; ServerError when the server refuses it."""
    answer = client.store_instances([ds])
    failed = answer.get("FailedSOPSequence") if answer is not None else None
    if failed:
        reason = failed[0].get("FailureReason", "")
        raise ServerError(f"instance {ds.SOPInstanceUID}: the server refused to store it "
                          f"(STOW-RS failure reason {reason})", 409)


def _store_one(client, path: Path, records: Path, destination: str, known: set[str]) -> str:
    """Store one derived file unless the destination holds it; returns how ("sent", "found", "recorded")."""
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
                raise ServerError(f"instance {ds.SOPInstanceUID}: the server refused to store it "
                                  "(STOW-RS answered success, but a search does not find it)", 409)
    except ServerError as err:
        raise ServerError(f"{what}: {err}", err.status) from None
    except Exception as err:  # noqa: BLE001 - every failure becomes one line
        raise server_error(err, what, destination) from None
    row = {"derived_sop": ds.SOPInstanceUID, "derived_series": ds.SeriesInstanceUID,
           "study": ds.StudyInstanceUID, "file": path.name, "destination": destination, "how": how,
           "stored": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    with _RECORDS_LOCK:
        append_csv_row(row, records, STORED_COLUMNS, durable=True)
    return how


def store_all(client, files: list[Path], records: Path, destination: str) -> tuple[StoreCounts, list[Failure]]:
    """Store every file of `files` that `destination` does not hold; (counts, failures).

    After an error that every further request would repeat (no answer, credentials
    refused) the remaining files are recorded with it without asking the server again.
    """
    known = stored_sops(records, destination)
    stop: list[ServerError] = []

    def one(path: Path) -> str | Failure:
        if stop:
            return Failure(path, f"{path.name}: not stored after an earlier error ({stop[0]})")
        try:
            return _store_one(client, path, records, destination, known)
        except ServerError as err:
            if err.fatal:
                stop.append(err)
            return Failure(path, str(err))

    with ThreadPoolExecutor(PARALLEL_REQUESTS) as pool:
        results = list(pool.map(one, files))
    failures = [r for r in results if isinstance(r, Failure)]
    counts = StoreCounts(*(sum(r == how for r in results) for how in ("sent", "found", "recorded")))
    return counts, failures
