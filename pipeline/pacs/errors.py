"""One line per failed DICOMweb request: what was asked, what went wrong, what to do."""

from __future__ import annotations

from pipeline.errors import PipelineError
from pipeline.text import library_detail, short_text

#: Errors after which no further request to the server can succeed: the run stops.
FATAL_STATUSES = frozenset({401, 403})


class ServerError(PipelineError):
    """A DICOMweb request failed; ``status`` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def fatal(self) -> bool:
        """Whether every further request would fail the same way.

        No answer, or refused credentials.
        """
        return self.status is None or self.status in FATAL_STATUSES


def _http_message(status: int, reason: str) -> str:
    if status == 401:
        return (
            "the server refused the credentials (401 Unauthorized): set DENOISE_DICOMWEB_USER "
            "and DENOISE_DICOMWEB_PASSWORD, DENOISE_DICOMWEB_TOKEN, or --auth-file"
        )
    if status == 403:
        return "access forbidden (403 Forbidden): the account lacks the right for this request"
    if status == 404:
        return "not found on the server (404): check the UID"
    return f"the server answered {status} {reason}".rstrip()


def server_error(err: BaseException, what: str, url: str) -> ServerError:
    """A ServerError with one line for `err`, raised while doing `what` (e.g. "retrieve <uid>")."""
    import requests

    if isinstance(err, ServerError):
        return err
    if isinstance(err, requests.exceptions.SSLError):
        return ServerError(
            f"{what}: TLS verification of {url} failed (give the server's CA "
            "certificate with --ca-bundle)"
        )
    if isinstance(err, requests.exceptions.Timeout):
        return ServerError(f"{what}: {url} did not answer in time; check that the server runs")
    if isinstance(err, requests.exceptions.ConnectionError):
        return ServerError(
            f"{what}: cannot connect to {url}; check the address and that the server runs"
        )
    if isinstance(err, requests.exceptions.HTTPError) and err.response is not None:
        status = err.response.status_code
        return ServerError(f"{what}: {_http_message(status, err.response.reason or '')}", status)
    return ServerError(
        short_text(f"{what}: malformed answer from the server ({library_detail(err)})"), 0
    )
