"""Guards of the DICOM reader: no header value in any message, no cut frame taken as whole.

pydicom's warnings quote raw element values, and a damaged element length can make one
value run into the next elements (the patient module, the pixel data). So pydicom's
per-value validation is off while this package reads (:func:`quiet_validation`; it
bypasses only checks such as "too long for its VR", the values are read the same), and
whatever pydicom still warns while a file is read is summarised in one line that names
the file and the number of problems, never their text (:func:`tolerated_line`).

A compressed frame cut short may still decode (libjpeg fills the missing rows), so every
frame of a JPEG-family transfer syntax must end with its end-of-image marker
(:func:`check_frames_complete`) and decode to the declared size (:func:`check_decoded`);
a decoder warning about missing data refuses the file too (:func:`is_truncation`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.errors import ImageReadError

#: Transfer syntaxes whose frames are JPEG, JPEG-LS, JPEG 2000 or HTJ2K codestreams: all
#: end with the marker FF D9 (EOI, or EOC for JPEG 2000).
_CODESTREAM_PREFIX = "1.2.840.10008.1.2.4."
_END_MARKER = b"\xff\xd9"
#: Bytes after the end marker that are still accepted (item padding to an even length).
_END_SLACK = 8
_TRUNCATION = re.compile(
    r"truncat|premature|end of (the )?(file|data|stream)|incomplete|corrupt|insufficient",
    re.IGNORECASE,
)


def quiet_validation() -> None:
    """Turn off pydicom's per-value validation of what it reads (its warnings quote values)."""
    from pydicom import config

    config.settings.reading_validation_mode = config.IGNORE


def is_truncation(message: object) -> bool:
    """Whether a library warning says that data is missing (a cut file or frame)."""
    return bool(_TRUNCATION.search(str(message)))


def tolerated_line(path: Path, count: int) -> str:
    """The one log line for `count` problems pydicom warned about while reading `path`."""
    problems = "1 problem" if count == 1 else f"{count} problems"
    return (
        f"{path}: read despite {problems} in its DICOM header that pydicom warned about "
        "(not shown: they may quote patient data)"
    )


def check_frames_complete(pixel_data: bytes, syntax: str, frames: int, path: Path) -> None:
    """ImageReadError when a JPEG-family frame does not end with its end-of-image marker."""
    if not syntax.startswith(_CODESTREAM_PREFIX):
        return
    from pydicom.encaps import generate_frames

    try:
        found = list(generate_frames(pixel_data, number_of_frames=frames))
    except Exception:  # noqa: BLE001 - an unsplittable buffer fails in the decoder, with its reason
        return
    for index, frame in enumerate(found):
        if _END_MARKER not in bytes(frame).rstrip(b"\0")[-_END_SLACK:]:
            raise ImageReadError(
                f"{path}: compressed frame {index + 1} of {len(found)} is truncated (it lacks the "
                "end-of-image marker); the file was cut short or damaged"
            )


def check_decoded(decoded: Sequence[np.ndarray], rows: int, columns: int, path: Path) -> None:
    """ImageReadError when a decoded frame is not Rows x Columns."""
    for index, frame in enumerate(decoded):
        if frame.shape[:2] != (rows, columns):
            raise ImageReadError(
                f"{path}: frame {index + 1} decodes to {frame.shape[1]}x{frame.shape[0]} pixels, "
                f"not the {columns}x{rows} the header declares"
            )
