"""WADO-RS retrieval of the selected instances into a local spool, a bounded number ahead.

The spool (``OUT/retrieved``) has two parts:

- ``fetched/<study>/<series>/<sop>.dcm``: instances written (atomically) by the retrieval
  threads and not yet handed to the denoiser;
- ``batch-NNNN/<study>/<series>/<sop>.dcm``: the input folder of one folder run; an instance
  is moved (renamed) there when the denoiser takes it, and stays there.

An instance anywhere in the spool is not fetched again, so a killed run resumes. Instances
of a SOP class that holds no image are refused before they are fetched.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pipeline.apply.writer import write_atomic
from pipeline.ingest.failures import Failure
from pipeline.pacs.errors import ServerError, server_error
from pipeline.pacs.select import InstanceRef
from pipeline.records import PARTIAL_TAG
from pipeline.text import library_detail

#: Instances fetched at once (requests overlap on the network).
PARALLEL_REQUESTS = 4
#: Instances fetched ahead of the denoiser at most (on disk, waiting to be denoised).
FETCH_AHEAD = 8
#: Instances handed to the denoiser at once at most (one folder run, then stored while the
#: next is denoised).
BATCH_MOST = 4
FETCHED, BATCH = "fetched", "batch-"


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
        error = server_error(err, f"retrieve instance {ref.sop}", client.base_url)
        if error.status == 404:  # the search found it: deleted on the server since
            error = ServerError(
                f"retrieve instance {ref.sop}: no longer on the server (404 Not Found); "
                "deleted since the search found it",
                404,
            )
        raise error from None
    if "PixelData" not in ds:
        raise ServerError(
            f"instance {ref.sop}: holds no pixel data (not an image); not denoised", 0
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda tmp: ds.save_as(tmp, enforce_file_format=True), lambda: None)


class Spool:
    """The local copies of a run's instances.

    They are the fetched ones and the batches handed to the denoiser.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / FETCHED).mkdir(parents=True, exist_ok=True)
        for partial in (root / FETCHED).rglob(f".*{PARTIAL_TAG}*"):  # left by a killed run
            partial.unlink()
        self.batches = sorted(p for p in root.iterdir() if re.fullmatch(rf"{BATCH}\d+", p.name))
        self.held = {p.stem for p in root.glob("*/*/*/*.dcm")}

    def fetched_path(self, ref: InstanceRef) -> Path:
        """Where the retrieval writes `ref`."""
        return self.root / FETCHED / ref.study / ref.series / f"{ref.sop}.dcm"

    def waiting(self) -> list[InstanceRef]:
        """Instances fetched by an earlier (killed) run but never handed to the denoiser."""
        return [
            InstanceRef(p.parts[-3], p.parts[-2], p.stem, "")
            for p in sorted((self.root / FETCHED).glob("*/*/*.dcm"))
        ]

    def new_batch(self, refs: Sequence[InstanceRef]) -> Path:
        """Move the fetched `refs` into a new batch folder; its path.

        The folder is the input of one folder run.
        """
        number = int(self.batches[-1].name[len(BATCH) :]) + 1 if self.batches else 1
        folder = self.root / f"{BATCH}{number:04d}"
        for ref in refs:
            target = folder / ref.study / ref.series / f"{ref.sop}.dcm"
            target.parent.mkdir(parents=True, exist_ok=True)
            self.fetched_path(ref).replace(target)
        self.batches.append(folder)
        return folder


def _fetch_one(
    client: Any, ref: InstanceRef, spool: Spool, fatal: list[ServerError]
) -> Failure | None:
    """Fetch one instance into the spool; its failure, or None.

    The first fatal error is appended to `fatal`; once there is one, nothing more is asked.
    """
    try:
        if fatal:
            return Failure(
                ref.name,
                f"instance {ref.sop}: not retrieved after an earlier error ({fatal[0]})",
            )
        _fetch(client, ref, spool.fetched_path(ref))
    except ServerError as err:
        if err.fatal and not fatal:
            fatal.append(err)
        return Failure(ref.name, str(err))
    except Exception as err:  # noqa: BLE001 - e.g. the spool cannot be written; the others go on
        return Failure(ref.name, f"instance {ref.sop}: not retrieved ({library_detail(err)})")
    return None


def _take(results: queue.Queue, end: object, most: int) -> tuple[list[Any], bool]:
    """What has finished (waiting for one item, at most `most`); whether `end` came."""
    batch, item = [], results.get()
    while item is not end:
        batch.append(item)
        if len(batch) >= most or results.empty():
            break
        item = results.get()
    return batch, item is end


def fetch_ahead(
    client,
    refs: Iterable[InstanceRef],
    spool: Spool,
    depth: int = FETCH_AHEAD,
    most: int = BATCH_MOST,
) -> Iterator[list[tuple[InstanceRef, Failure | None]]]:
    """Fetch `refs` into the spool on worker threads; yield what finished (at most `most` at once).

    Each item is ``(ref, None)`` when the instance is in ``fetched/`` or ``(ref, failure)``.
    At most `depth` instances are fetched and not yet taken by the consumer (plus
    :data:`PARALLEL_REQUESTS` in flight). After an error that every further request would
    repeat (no answer, credentials refused) the remaining instances are recorded with that
    error without asking the server again.
    """
    results: queue.Queue = queue.Queue()
    slots = threading.Semaphore(depth)
    stop = threading.Event()
    fatal: list[ServerError] = []
    end = object()

    def feed() -> None:
        with ThreadPoolExecutor(PARALLEL_REQUESTS, thread_name_prefix="wado-rs") as pool:
            for ref in refs:
                while not slots.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                pool.submit(lambda r=ref: results.put((r, _fetch_one(client, r, spool, fatal))))
        results.put(end)

    thread = threading.Thread(target=feed, name="wado-rs-feed", daemon=True)
    thread.start()
    try:
        finished = False
        while not finished:
            batch, finished = _take(results, end, most)
            for _ in batch:
                slots.release()
            if batch:
                yield batch
    finally:
        stop.set()
        thread.join(timeout=30)
