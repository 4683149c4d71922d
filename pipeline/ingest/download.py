"""Resumable HTTP(S) downloads with the standard library (``urllib``).

A download goes to ``<name>.part`` and resumes with a ``Range`` request when that file
exists; its size is checked against what the server announces; the finished file is renamed.
"""

from __future__ import annotations

import http.client
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

#: The environment variable with a base address for the data sets (see :mod:`.fetch`).
ENV_BASE_URL = "DENOISE_DATA_URL"
CHUNK = 1 << 20
TIMEOUT_S = 60.0


def _open(url: str, start: int) -> Any:
    if not url.lower().startswith(("http://", "https://", "file:")):
        raise PipelineError(f"unsupported address {url}: use an http(s):// or file: base address")
    request = urllib.request.Request(url, headers={"User-Agent": "denoise-pipeline"})
    if start > 0:
        request.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(request, timeout=TIMEOUT_S)


def _total_from_content_range(value: str | None) -> int | None:
    """The total size from a ``Content-Range: bytes a-b/total`` (or ``*/total``) header."""
    if not value or "/" not in value:
        return None
    total = value.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def _write_body(
    response: Any, part: Path, mode: str, start: int, total: int | None, shown_as: str | None
) -> int:
    """Write the response body to `part` (opened with `mode`); returns the file's size after.

    With `shown_as`, the percentage of `total` is printed on stderr as it grows.
    """
    done, shown = start, -1
    try:
        with part.open(mode) as fh:
            while chunk := response.read(CHUNK):
                fh.write(chunk)
                done += len(chunk)
                if shown_as and total and (percent := 100 * done // total) != shown:
                    shown = percent
                    print(
                        f"\r  {shown_as}: {done / 2**20:.1f} / {total / 2**20:.1f} MiB "
                        f"({percent}%)",
                        end="",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        if shown_as and total:
            print(file=sys.stderr, flush=True)
    return done


def download(url: str, target: Path, progress: bool = True) -> Path:
    """Download `url` to `target`, resuming from ``target.part`` when it exists.

    The size is checked against the server's ``Content-Length``/``Content-Range`` when it
    gives one. Network and HTTP errors raise :class:`PipelineError`; the ``.part`` file is
    kept so that the next call resumes.
    """
    part = target.with_name(target.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    hint = (
        f"check the address (the base_url argument or ${ENV_BASE_URL}) and the network, then run "
        f"the same command again: it resumes from {part.name}"
    )
    try:
        response = _open(url, start)
    except urllib.error.HTTPError as err:
        if (
            err.code == 416
            and start > 0
            and _total_from_content_range(err.headers.get("Content-Range")) == start
        ):
            part.replace(target)  # the part file was already complete
            return target
        if err.code == 416 and start > 0:  # the part file does not fit the server's file
            part.unlink()
            return download(url, target, progress)
        raise PipelineError(
            f"download of {url} failed: HTTP {err.code} {err.reason}; {hint}"
        ) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise PipelineError(f"could not reach {url} ({reason}); {hint}") from None

    with response:
        start, total, mode = _resume_of(response, url, start, part)
        try:
            done = _write_body(
                response, part, mode, start, total, target.name if progress else None
            )
        except (OSError, http.client.HTTPException) as err:
            raise PipelineError(f"download of {url} was interrupted ({err}); {hint}") from None
    _check_size(url, part, done, total, hint)
    part.replace(target)
    return target


def _resume_of(response: Any, url: str, start: int, part: Path) -> tuple[int, int | None, str]:
    """(first byte, total size or None, file mode) of a response to a request from `start`."""
    status = getattr(response, "status", None) or 200
    if start > 0 and status == 206:
        content_range = response.headers.get("Content-Range", "")
        if not content_range.startswith(f"bytes {start}-"):
            raise PipelineError(
                f"download of {url}: the server answered a resume at byte {start} "
                f"with Content-Range {content_range!r}; delete {part} and run again"
            )
        return start, _total_from_content_range(content_range), "ab"
    # no resume asked, or the server ignored the Range header: start over
    length = response.headers.get("Content-Length")
    return 0, int(length) if length and length.isdigit() else None, "wb"


def _check_size(url: str, part: Path, done: int, total: int | None, hint: str) -> None:
    """Refuse a download shorter or longer than announced (a longer one is deleted)."""
    if total is not None and done < total:
        raise PipelineError(f"download of {url} is incomplete ({done} of {total} bytes); {hint}")
    if total is not None and done > total:
        part.unlink()
        raise PipelineError(
            f"download of {url} gave {done} bytes, more than the {total} announced; "
            f"the partial file was deleted, run the command again"
        )
