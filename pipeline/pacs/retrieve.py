"""WADO-RS retrieval of the selected instances into a local spool folder (the run's input).

Each instance is written atomically to ``<spool>/<study>/<series>/<sop>.dcm``; one already
there is not fetched again, so a killed run resumes. Instances of a SOP class that holds no
image are refused before they are fetched.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pipeline.apply.writer import write_atomic
from pipeline.ingest.failures import Failure
from pipeline.pacs.errors import ServerError, server_error
from pipeline.pacs.select import InstanceRef

#: Instances fetched at once (requests overlap on the network).
PARALLEL_REQUESTS = 4


def spool_path(spool: Path, ref: InstanceRef) -> Path:
    """Where `ref` is kept locally."""
    return spool / ref.study / ref.series / f"{ref.sop}.dcm"


def not_an_image(sop_class: str) -> str | None:
    """The name of `sop_class` when it is a known class that holds no image, else None."""
    from pydicom.uid import UID

    uid = UID(sop_class)
    name = uid.name if uid.is_valid else ""
    if name and name != sop_class and "Image" not in name:
        return name
    return None


def _fetch(client, ref: InstanceRef, path: Path) -> None:
    """Retrieve `ref` and write it to `path`; ServerError with one line when that fails."""
    kind = not_an_image(ref.sop_class)
    if kind:
        raise ServerError(f"instance {ref.sop}: a {kind} holds no image; not denoised", 0)
    try:
        ds = client.retrieve_instance(ref.study, ref.series, ref.sop)
    except Exception as err:  # noqa: BLE001 - every failure becomes one line
        raise server_error(err, f"retrieve instance {ref.sop}", client.base_url) from None
    if "PixelData" not in ds:
        raise ServerError(f"instance {ref.sop}: holds no pixel data (not an image); not denoised", 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: ds.save_as(tmp, enforce_file_format=True), lambda: None)


def retrieve_all(client, refs: Sequence[InstanceRef], spool: Path) -> tuple[list[InstanceRef], list[Failure]]:
    """Fetch every instance of `refs` not yet in `spool`; returns (those in the spool, failures).

    After an error that every further request would repeat (no answer, credentials refused)
    the remaining instances are recorded with that error without asking the server again.
    """
    stop: list[ServerError] = []
    lock = threading.Lock()

    def one(ref: InstanceRef) -> Failure | None:
        path = spool_path(spool, ref)
        if path.is_file():
            return None
        try:
            if stop:
                return Failure(ref.name, f"instance {ref.sop}: not retrieved after an earlier error ({stop[0]})")
            _fetch(client, ref, path)
        except ServerError as err:
            with lock:
                if err.fatal and not stop:
                    stop.append(err)
            return Failure(ref.name, str(err))
        return None

    with ThreadPoolExecutor(PARALLEL_REQUESTS) as pool:
        results = list(pool.map(one, refs))
    failures = [f for f in results if f is not None]
    return [ref for ref, f in zip(refs, results) if f is None], failures
