r"""Printable text of file names and messages: names with undecodable bytes, one-line reasons.

File names are bytes on POSIX; a name that is not UTF-8 is shown with ``\xNN`` escapes
and read back from them; a reason recorded or printed is one line of bounded length.
"""

from __future__ import annotations

#: Longest failure reason recorded (characters); longer texts are cut with an ellipsis.
MAX_REASON_CHARS = 300


def path_text(path: object) -> str:
    r"""`path` as printable text: bytes that are not UTF-8 become ``\xNN`` escapes.

    File names are bytes on POSIX; Python keeps undecodable ones as lone surrogates,
    which cannot be written to a UTF-8 file or terminal. A backslash of the name itself
    becomes ``\x5c``, so every name has its own text (``a\xff`` typed in a name and the
    byte 0xff differ) and :func:`path_from_text` gives the name back.
    """
    import os

    raw = os.fsencode(path) if not isinstance(path, bytes) else path
    return raw.replace(b"\\", b"\\x5c").decode("utf-8", "backslashreplace")


def path_from_text(text: str) -> str:
    r"""Inverse of :func:`path_text`: ``\xNN`` escapes back to the bytes of the name."""
    import os
    import re

    raw = re.sub(
        rb"\\x([0-9a-f]{2})",
        lambda m: bytes([int(m[1], 16)]),
        text.encode("utf-8", "surrogateescape"),
    )
    return os.fsdecode(raw)


def short_text(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """One printable line of at most `limit` characters (control bytes escaped, cut with '...')."""
    line = " ".join(
        text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace").split()
    )
    line = "".join(c if c.isprintable() else f"\\x{ord(c) & 0xFF:02x}" for c in line)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def library_detail(exc: BaseException, limit: int = 120) -> str:
    """A short description of a third-party library's exception, for an error message.

    Only the exception's type and the first line of its message, cut to `limit`
    characters: libraries may quote whole header fields or raw bytes.
    """
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return short_text(f"{type(exc).__name__}: {first}" if first else type(exc).__name__, limit)
