"""Credentials and TLS settings for a DICOMweb server: an HTTP session, secrets never logged.

Sources, first match wins: ``DENOISE_DICOMWEB_TOKEN`` (bearer token);
``DENOISE_DICOMWEB_USER`` with ``DENOISE_DICOMWEB_PASSWORD`` (HTTP basic); the
``machine`` entry for the server's host in a netrc-style file (``--auth-file``, else
``DENOISE_DICOMWEB_NETRC``, else requests' own ``~/.netrc`` lookup). Credentials in the URL
itself are refused: URLs end up in records and logs.
"""

from __future__ import annotations

import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.errors import PipelineError

TOKEN_VAR = "DENOISE_DICOMWEB_TOKEN"
USER_VAR, PASSWORD_VAR = "DENOISE_DICOMWEB_USER", "DENOISE_DICOMWEB_PASSWORD"
NETRC_VAR = "DENOISE_DICOMWEB_NETRC"


class BearerAuth:
    """``Authorization: Bearer <token>`` on every request (requests' AuthBase protocol)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request):  # request: a requests.PreparedRequest
        """Add the bearer token to `request` (a ``requests.PreparedRequest``)."""
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:  # never show the token
        return "BearerAuth(<hidden>)"


def check_url(url: str) -> str:
    """`url` without a trailing slash; PipelineError when it is not http(s) or holds credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PipelineError(
            f"DICOMweb URL {url!r} is not an http:// or https:// address "
            "(e.g. dicomweb:http://host:8042/dicom-web)"
        )
    if parts.username or parts.password:
        raise PipelineError(
            f"the DICOMweb URL holds credentials: remove them and set {USER_VAR}/"
            f"{PASSWORD_VAR} (or {TOKEN_VAR}, or --auth-file) instead"
        )
    return url.rstrip("/")


def _from_netrc(path: Path, host: str) -> tuple[str, str] | None:
    """(login, password) of `host` in a netrc-style file; PipelineError when it is unreadable."""
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except FileNotFoundError:
        raise PipelineError(
            f"auth file {path} not found (give a netrc-style file: "
            "machine HOST login USER password PASSWORD)"
        ) from None
    except (netrc.NetrcParseError, OSError) as err:
        raise PipelineError(
            f"auth file {path} cannot be read: {getattr(err, 'msg', err)}"
        ) from None
    if entry is None:
        return None
    login, _account, password = entry
    return login or "", password or ""


def credentials(
    url: str, auth_file: str | Path | None = None, env: Mapping[str, str] | None = None
) -> object | None:
    """The requests ``auth`` for `url`: a BearerAuth, a (user, password) pair, or None."""
    env = os.environ if env is None else env
    if env.get(TOKEN_VAR):
        return BearerAuth(env[TOKEN_VAR])
    if env.get(USER_VAR):
        if PASSWORD_VAR not in env:
            raise PipelineError(f"{USER_VAR} is set but {PASSWORD_VAR} is not: set both")
        return (env[USER_VAR], env[PASSWORD_VAR])
    path = auth_file or env.get(NETRC_VAR)
    if path:
        return _from_netrc(Path(path).expanduser(), urlsplit(url).hostname or "")
    return None


def _session_class():
    import requests

    class Session(requests.Session):
        """A requests.Session whose own CA bundle wins over REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE.

        (requests lets those variables replace ``session.verify`` on every request.)
        """

        def merge_environment_settings(self, url, proxies, stream, verify, cert):
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if verify in (None, True) and self.verify not in (None, True):
                settings["verify"] = self.verify
            return settings

    return Session


def make_session(
    url: str, auth_file: str | Path | None = None, ca_bundle: str | Path | None = None
):
    """A requests.Session for `url`: its credentials, TLS verification on (`ca_bundle` if given)."""
    session = _session_class()()
    session.auth = credentials(url, auth_file)
    if ca_bundle is not None:
        if not Path(ca_bundle).is_file():
            raise PipelineError(
                f"CA bundle {ca_bundle} not found (give a PEM file of trusted certificates)"
            )
        session.verify = str(ca_bundle)
    return session
