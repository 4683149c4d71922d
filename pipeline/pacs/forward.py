"""C-STORE of derived instances to a destination AE, with retries.

The SCU side of ``denoise listen``.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)

#: C-STORE statuses that mean stored: success and the warnings (coercion, elements discarded).
STORED_STATUSES = frozenset({0x0000, 0xB000, 0xB006, 0xB007})


class ForwardError(PipelineError):
    """A derived instance could not be delivered to the destination AE."""


@dataclass(frozen=True)
class Destination:
    """The AE the derived instances go to, and this node's calling AE title."""

    ae_title: str
    host: str
    port: int
    calling_ae_title: str = "DENOISE"

    @classmethod
    def parse(cls, text: str, calling_ae_title: str = "DENOISE") -> Destination:
        """``AET@HOST:PORT`` as a Destination; PipelineError when it is not of that form."""
        match = re.fullmatch(r"([^@]{1,16})@([^:]+):(\d{1,5})", text.strip())
        if match is None:
            raise PipelineError(
                f"destination {text!r}: give AE_TITLE@HOST:PORT, e.g. ORTHANC@pacs.local:4242"
            )
        return cls(match[1], match[2], int(match[3]), calling_ae_title)

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def _store_once(destination: Destination, path: Path) -> None:
    """One association, one C-STORE of the file at `path`; ForwardError when it is not stored."""
    import pydicom
    from pynetdicom import AE

    ds = pydicom.dcmread(path)
    ae = AE(ae_title=destination.calling_ae_title)
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title)
    if not assoc.is_established:
        raise ForwardError(
            f"{destination} did not accept an association (is it running, and does it "
            "know this AE title?)"
        )
    try:
        status = assoc.send_c_store(ds)
    finally:
        assoc.release()
    code = getattr(status, "Status", None)
    if code is None:
        raise ForwardError(f"{destination} gave no answer to the C-STORE of {path.name}")
    if code not in STORED_STATUSES:
        raise ForwardError(f"{destination} refused {path.name} (C-STORE status 0x{code:04X})")


def forward(destination: Destination, path: Path, retries: int = 3, wait: float = 1.0) -> None:
    """C-STORE `path` to `destination`, trying again `retries` times (waits double from `wait` s).

    Raises the last ForwardError when every try failed.
    """
    for attempt in range(retries + 1):
        try:
            _store_once(destination, path)
            return
        except ForwardError as err:
            if attempt == retries:
                raise
            log.warning("%s; trying again in %.1f s", err, wait * 2**attempt)
            time.sleep(wait * 2**attempt)
