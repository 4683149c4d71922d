"""Download the public data sets (MNIST, the Indiana/OpenI collection) into a folder.

- HTTP with the standard library only (``urllib``); downloads go to ``<name>.part`` and
  resume with a ``Range`` request when that file exists; the finished file is renamed
  (:mod:`pipeline.ingest.download`).
- A file with a known checksum (md5 or sha256, per file in the manifest) is verified; on
  a mismatch the bad file is deleted and a :class:`PipelineError` names the address.
  Files without a known checksum get their size checked against ``Content-Length``.
- The sha256 of every downloaded file is printed and appended to ``<dest>/SHA256SUMS``.
- Archives are extracted into the layout the loaders read (OpenI: ``NLMCXR_png/``,
  ``ecgen-radiology/``, ``NLMCXR_dcm/`` under ``dest``); members with absolute paths,
  ``..`` parts or links that leave the folder are refused. A hidden marker file
  (``.<archive>.extracted``) makes a second call skip finished archives.

The base address is, in order: the ``base_url`` argument, the ``DENOISE_DATA_URL``
environment variable, the data set's public default.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline.errors import PipelineError
from pipeline.ingest.download import CHUNK, ENV_BASE_URL, download

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set.

    Attributes
    ----------
    name: file name on the server and in ``dest``.
    md5, sha256: known checksum (hex), or None when none is known.
    extract_to: for archives, the folder under ``dest`` to extract into; None: keep as is.
    """

    name: str
    md5: str | None = None
    sha256: str | None = None
    extract_to: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """Where a data set lives and what it is made of."""

    base_url: str
    files: tuple[RemoteFile, ...]


#: The public data sets. MNIST md5s are the published ones; no checksums are published for
#: the OpenI archives, so their size and extractability are checked and their sha256 recorded.
DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        (
            RemoteFile("train-images-idx3-ubyte.gz", md5="f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            RemoteFile("train-labels-idx1-ubyte.gz", md5="d53e105ee54ea40749a09fcbcd1e9432"),
            RemoteFile("t10k-images-idx3-ubyte.gz", md5="9fb629c4189551a2d022fa330f9573f3"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", md5="ec29112dd5afa0611ce80d1b7f02629c"),
        ),
    ),
    "openi": DatasetSpec(
        "https://openi.nlm.nih.gov/imgs/collections/",
        (
            RemoteFile("NLMCXR_png.tgz", extract_to="NLMCXR_png"),
            RemoteFile("NLMCXR_reports.tgz", extract_to="ecgen-radiology"),
            RemoteFile("NLMCXR_dcm.tgz", extract_to="NLMCXR_dcm"),
        ),
    ),
}


def _say(progress: bool, message: str) -> None:
    """A progress step (logged at INFO level when progress is shown)."""
    if progress:
        log.info(message)


def file_digests(path: Path) -> dict[str, str]:
    """md5 and sha256 (hex) of a file, in one pass."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            md5.update(chunk)
            sha.update(chunk)
    return {"md5": md5.hexdigest(), "sha256": sha.hexdigest()}


def _checksum_problem(remote: RemoteFile, digests: dict[str, str]) -> str | None:
    for kind in ("sha256", "md5"):
        expected = getattr(remote, kind)
        if expected and expected.lower() != digests[kind]:
            return f"{kind} is {digests[kind]}, expected {expected.lower()}"
    return None


def _verify(remote: RemoteFile, path: Path, url: str, progress: bool) -> str:
    """Check a finished file's checksum (deleting it on a mismatch); return its sha256."""
    digests = file_digests(path)
    problem = _checksum_problem(remote, digests)
    if problem:
        path.unlink(missing_ok=True)
        raise PipelineError(
            f"checksum mismatch for {url}: {problem}. The file was deleted; run the command again, "
            f"and if it fails again the server (base_url / ${ENV_BASE_URL}) serves a different file"
        )
    if remote.md5 is None and remote.sha256 is None:
        _say(progress, f"  {remote.name}: no published checksum; sha256 {digests['sha256']}")
    return digests["sha256"]


def _member_problem(member: tarfile.TarInfo, dest: Path) -> str | None:
    """Why an archive member must not be extracted into `dest`, or None when it is safe."""
    name = PurePosixPath(member.name.replace("\\", "/"))
    if (
        name.is_absolute()
        or member.name.startswith(("/", "\\"))
        or (name.parts and ":" in name.parts[0])
    ):
        return "absolute path"
    if ".." in name.parts:
        return "'..' in path"
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        return "special file (device or fifo)"
    if member.issym() or member.islnk():
        link = PurePosixPath(member.linkname.replace("\\", "/"))
        base = name.parent if member.issym() else PurePosixPath()
        resolved = (dest / base / link).resolve() if not link.is_absolute() else Path(link)
        if not resolved.is_relative_to(dest.resolve()):
            return f"link to {member.linkname} outside the folder"
    return None


def _strip_top(member: tarfile.TarInfo, top: str) -> tarfile.TarInfo | None:
    """Drop a leading folder named `top` (so ``X/a.png`` extracts into ``X/``, not ``X/X/``).

    Hard-link targets (archive member names) are stripped the same way.
    """

    def strip(name: str) -> str:
        parts = PurePosixPath(name).parts
        return str(PurePosixPath(*parts[1:])) if len(parts) > 1 and parts[0] == top else name

    if PurePosixPath(member.name).parts == (top,):
        return None  # the top folder itself
    changes = {"name": strip(member.name)}
    if member.islnk():
        changes["linkname"] = strip(member.linkname)
    return member.replace(**changes, deep=False)


def extract_archive(archive: Path, dest: Path, strip_top: str | None = None) -> int:
    """Extract a tar archive (any compression) into `dest`; return the number of members.

    Every member is checked before it is written: absolute paths, ``..`` parts, device
    files and links leaving `dest` raise :class:`PipelineError` (members already written
    stay inside `dest`). A leading folder named `strip_top` is removed from member paths.
    """
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    try:
        with tarfile.open(archive, "r:*") as tar:
            for original in tar:
                member = _strip_top(original, strip_top) if strip_top else original
                if member is None:
                    continue
                problem = _member_problem(member, dest)
                if problem:
                    raise PipelineError(
                        f"refusing to extract {archive.name}: member {original.name!r} "
                        f"has {problem} "
                        "(path traversal); the archive is not trustworthy, "
                        "delete it and download it again"
                    )
                tar.extract(member, dest, filter="data")
                count += 1
    except (tarfile.TarError, EOFError, OSError) as err:
        raise PipelineError(
            f"{archive} is not a readable archive ({err}); delete it and run the command again"
        ) from None
    return count


def _base_url(spec: DatasetSpec, base_url: str | None) -> str:
    base = base_url or os.environ.get(ENV_BASE_URL) or spec.base_url
    return base if base.endswith("/") else base + "/"


def _record_sha256(dest: Path, name: str, sha256: str) -> None:
    """Set `name`'s line in ``dest/SHA256SUMS`` (the ``sha256sum -c`` format)."""
    sums = dest / "SHA256SUMS"
    lines = sums.read_text(encoding="utf-8").splitlines() if sums.exists() else []
    lines = [line for line in lines if line.split("  ", 1)[-1] != name] + [f"{sha256}  {name}"]
    sums.write_text("\n".join(lines) + "\n", encoding="utf-8")


def fetch_dataset(
    name: str,
    dest: str | Path,
    base_url: str | None = None,
    progress: bool = True,
    *,
    manifest: Sequence[RemoteFile] | None = None,
    files: Iterable[str] | None = None,
    keep_archives: bool = True,
) -> Path:
    """Download (and extract) a public data set into `dest`; return `dest`.

    Parameters
    ----------
    name: ``"mnist"`` (the four IDX ``.gz`` files, left compressed in `dest`) or ``"openi"``
        (the three Indiana archives, extracted to ``NLMCXR_png/``, ``ecgen-radiology/``
        and ``NLMCXR_dcm/``; the DICOM archive is by far the largest).
    dest: the folder to fill; files already there and complete are not fetched again.
    base_url: a mirror to use instead of the public address (also ``$DENOISE_DATA_URL``).
    progress: show each step, the bytes downloaded so far and the sha256 of files without a
        published checksum (steps are logged at INFO level, the byte count goes to stderr).
    manifest: files (with their checksums) to use instead of the built-in list.
    files: names of the files to fetch (default: all of the manifest), e.g. to skip the
        OpenI DICOM archive.
    keep_archives: keep downloaded archives after extraction (False: delete them).
    """
    if name not in DATASETS:
        raise PipelineError(
            f"unknown data set {name!r}: choose one of {', '.join(sorted(DATASETS))}"
        )
    spec = DATASETS[name]
    entries = tuple(manifest) if manifest is not None else spec.files
    if files is not None:
        wanted = set(files)
        unknown = wanted - {f.name for f in entries}
        if unknown:
            raise PipelineError(
                f"{name} has no file(s) {', '.join(sorted(unknown))}; "
                f"its files are {', '.join(f.name for f in entries)}"
            )
        entries = tuple(f for f in entries if f.name in wanted)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    base = _base_url(spec, base_url)
    for remote in entries:
        _fetch_one(remote, base + remote.name, dest, progress, keep_archives)
    _say(progress, f"{name}: ready in {dest}")
    return dest


def _fetch_one(
    remote: RemoteFile, url: str, dest: Path, progress: bool, keep_archive: bool
) -> None:
    """Download, verify and (for archives) extract one file, skipping finished work."""
    target = dest / remote.name
    marker = dest / f".{remote.name}.extracted"
    if remote.extract_to is not None and marker.exists():
        _say(progress, f"  {remote.name}: already extracted")
        return
    known = remote.md5 is not None or remote.sha256 is not None
    if target.exists() and (not known or _checksum_problem(remote, file_digests(target)) is None):
        _say(progress, f"  {remote.name}: already present")
    else:
        target.unlink(missing_ok=True)
        _say(progress, f"  {remote.name}: downloading {url}")
        download(url, target, progress)
        _record_sha256(dest, remote.name, _verify(remote, target, url, progress))
    if remote.extract_to is not None:
        _say(progress, f"  {remote.name}: extracting into {dest / remote.extract_to}")
        n = extract_archive(target, dest / remote.extract_to, strip_top=remote.extract_to)
        if n == 0:
            raise PipelineError(f"{target} holds no files; delete it and run the command again")
        marker.write_text(f"{n} members\n")
        if not keep_archive:
            target.unlink()
