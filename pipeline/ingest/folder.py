"""A folder of scans: find the image files under it and read them, recording what fails.

Rules
-----
- The search is recursive and deterministic: files are taken in the order of their
  sorted paths relative to the root.
- Hidden files and folders (name starting with ``.``) are ignored.
- A file whose name ends with a supported suffix (:data:`pipeline.io.SUPPORTED_SUFFIXES`)
  is a candidate; a file with any other name is a candidate only when
  :func:`pipeline.io.detect_format` finds it is DICOM (DICOM files are often named
  without a suffix), and is otherwise ignored silently.
- Symbolic links (to files or folders) are followed when they resolve inside the root;
  a link leaving it, or one to a folder that holds it (a loop), is a Failure
  (``skipped: symbolic link leaving the input folder``).
- A folder that cannot be listed (no permission, a path longer than the system allows) is
  a Failure too, and so is a file without a supported suffix that cannot be opened to
  tell whether it is DICOM, so that no file is skipped without a record.
- A candidate that cannot be used (empty, unreadable, corrupt, colour, missing decoder)
  is a :class:`~pipeline.ingest.failures.Failure` with its reason, or, with
  ``strict=True``, stops the load with a :class:`PipelineError` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from pipeline.errors import ImageReadError, MissingDependencyError, PipelineError
from pipeline.image import ScanImage
from pipeline.ingest.failures import Failure
from pipeline.io import SUPPORTED_SUFFIXES, detect_format, read_image

STRICT_HINT = "stopped because data.strict is on (turn it off to skip unreadable files)"


@dataclass
class FolderScan:
    """The image files found under a folder.

    Attributes
    ----------
    root: the folder scanned.
    files: candidate image files (absolute paths), in sorted relative-path order.
    failures: candidates already known to be unusable (empty or unreadable files).
    """

    root: Path
    files: list[Path] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def list_files(
    root: Path, unlisted: list[OSError] | None = None, refused: list[Failure] | None = None
) -> list[Path]:
    """Every non-hidden file under `root` (recursive), sorted by relative path.

    Symbolic links, to files or folders, are followed when they resolve inside `root` (the
    files keep the link's path); a link leaving `root`, or one to a folder that holds it (a
    loop), is left out and appended to `refused` with the reason, when given. Folders that
    cannot be listed (no permission, a path over PATH_MAX) are skipped; their errors are
    appended to `unlisted` when given (``err.filename`` names the folder).
    """
    root = Path(root)
    real_root = root.resolve()
    found: list[Path] = []

    def walk(folder: Path, chain: tuple[Path, ...]) -> None:
        try:
            with os.scandir(folder) as listing:
                entries = [entry for entry in listing if not entry.name.startswith(".")]
        except OSError as err:
            if unlisted is not None:
                unlisted.append(err)
            return
        for entry in entries:
            path = folder / entry.name
            problem = _link_problem(path, real_root, chain) if entry.is_symlink() else None
            if problem is not None:
                if refused is not None:
                    refused.append(Failure(path, problem))
            elif _is_folder(entry):
                walk(path, (*chain, path.resolve()))
            else:
                found.append(path)

    walk(root, (real_root,))
    return sorted(found, key=lambda p: p.relative_to(root).parts)


def _is_folder(entry: os.DirEntry) -> bool:
    """Whether a listed entry is a folder (through a link too); False when it cannot be told."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _link_problem(link: Path, real_root: Path, chain: tuple[Path, ...]) -> str | None:
    """Why the symbolic link `link` is not followed, or None (it stays inside the input).

    `chain` holds the resolved folders from the root down to the link's folder: a link to
    one of them would be walked forever.
    """
    try:
        target = link.resolve()
    except (OSError, RuntimeError):  # a loop of links (RuntimeError before Python 3.13)
        return "skipped: symbolic link that cannot be resolved (a loop of links)"
    if target != real_root and real_root not in target.parents:
        return (
            "skipped: symbolic link leaving the input folder (copy the files in, or give "
            "the folder it points to as the input)"
        )
    if target in chain:
        return "skipped: symbolic link to a folder that holds it (a loop)"
    return None


def has_supported_suffix(path: Path) -> bool:
    """Whether the file name ends with one of :data:`pipeline.io.SUPPORTED_SUFFIXES`."""
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in SUPPORTED_SUFFIXES)


def _is_unnamed_dicom(path: Path) -> bool:
    """Whether a file without a supported suffix is DICOM (e.g. ``IM0001``, ``1.2.840….5``).

    True also when the file cannot be opened to tell (a path over the system's limit, no
    permission): it is then recorded with the reason, not dropped unseen.
    """
    try:
        return detect_format(path) == "dicom"
    except OSError:
        return True
    except PipelineError:
        return False


def _unusable_reason(path: Path) -> str | None:
    """Why a candidate cannot be read at all (before decoding), or None."""
    try:
        if path.stat().st_size == 0:
            return f"{path}: empty file (0 bytes)"
    except OSError as err:
        return f"{path}: cannot access the file ({err.strerror or err})"
    if not os.access(path, os.R_OK):
        return f"{path}: permission denied"
    return None


def _check_root(root: str | Path) -> Path:
    root = Path(root)
    if not root.exists():
        raise PipelineError(
            f"data folder not found: {root} (set data.root to a folder of scans, "
            f"e.g. --set data.root=/path/to/scans)"
        )
    if not root.is_dir():
        raise PipelineError(
            f"data folder {root} is a file, not a folder: give the folder that holds the scans"
        )
    return root


def scan_folder(root: str | Path, strict: bool = False) -> FolderScan:
    """Find the image files under `root` (see the module rules).

    Raises
    ------
    PipelineError: `root` is missing, or (with `strict`) a candidate is empty or unreadable.
    """
    root = _check_root(root)
    scan = FolderScan(root)
    unlisted: list[OSError] = []
    refused: list[Failure] = []
    for path in list_files(root, unlisted, refused):
        if not (has_supported_suffix(path) or _is_unnamed_dicom(path)):
            continue
        reason = _unusable_reason(path)
        if reason is None:
            scan.files.append(path)
        elif strict:
            raise ImageReadError(f"{reason}; {STRICT_HINT}")
        else:
            scan.failures.append(Failure(path, reason))
    for err in unlisted:  # a folder whose files cannot even be named is recorded, not dropped
        folder = Path(err.filename) if err.filename else root
        reason = f"cannot list this folder ({err.strerror or err}); the files in it are not read"
        if strict:
            raise PipelineError(f"{folder}: {reason}; {STRICT_HINT}")
        scan.failures.append(Failure(folder, reason))
    for failure in refused:  # links not followed are recorded too
        if strict:
            raise PipelineError(f"{failure.path}: {failure.reason}; {STRICT_HINT}")
        scan.failures.append(failure)
    return scan


def resize_image(image: ScanImage, size: int) -> ScanImage:
    """Resize to `size` x `size` (antialiased bilinear); pixel spacing follows the scale.

    The original shape is kept in ``meta.extra["resized_from"]``.
    """
    h, w = image.pixels.shape
    if (h, w) == (size, size):
        return image
    from PIL import Image

    resized = Image.fromarray(image.pixels.astype(np.float32)).resize(
        (size, size), Image.Resampling.BILINEAR
    )
    meta = image.meta
    spacing = (
        None if meta.spacing is None else (meta.spacing[0] * h / size, meta.spacing[1] * w / size)
    )
    meta = replace(meta, spacing=spacing, extra={**meta.extra, "resized_from": (h, w)})
    return ScanImage(np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0), meta)


def _naming(path: Path, message: str) -> str:
    """`message`, prefixed with the path unless it already names the file."""
    return message if str(path) in message or path.name in message else f"{path}: {message}"


def read_files(
    paths: Iterable[Path],
    strict: bool = False,
    resize: int | None = None,
    limit: int | None = None,
) -> tuple[list[ScanImage], list[Failure]]:
    """Read image files in order with :func:`pipeline.io.read_image`.

    Parameters
    ----------
    paths: files to read (an iterator is consumed lazily, and only as far as needed).
    strict: raise on the first unreadable file instead of recording it.
    resize: resize every image to this square size (None: keep the size).
    limit: stop once this many images are read (None: all).

    Returns
    -------
    The images (a multi-frame file gives several) and the files that failed, with reasons.
    """
    images: list[ScanImage] = []
    failures: list[Failure] = []
    for path in paths:
        if limit is not None and len(images) >= limit:
            break
        try:
            new = read_image(path)
        except (ImageReadError, MissingDependencyError) as err:
            if strict:
                cls = (
                    MissingDependencyError
                    if isinstance(err, MissingDependencyError)
                    else ImageReadError
                )
                raise cls(f"{_naming(path, str(err))}; {STRICT_HINT}") from None
            failures.append(Failure(path, _naming(path, str(err))))
            continue
        except Exception as err:  # a reader bug must not lose the rest of a large folder
            reason = _naming(path, f"unexpected {type(err).__name__} while reading: {err}")
            if strict:
                raise ImageReadError(f"{reason}; {STRICT_HINT}") from err
            failures.append(Failure(path, reason))
            continue
        images.extend(new if resize is None else [resize_image(img, resize) for img in new])
    return (images if limit is None else images[:limit]), failures


def load_folder(
    root: str | Path,
    strict: bool = False,
    resize: int | None = None,
    limit: int | None = None,
) -> tuple[list[ScanImage], list[Failure]]:
    """Read every image under `root`: the images, in sorted path order, and the failures.

    Raises
    ------
    PipelineError: `root` is missing, or (with `strict`) a file cannot be read.
    """
    scan = scan_folder(root, strict=strict)
    images, failures = read_files(scan.files, strict=strict, resize=resize, limit=limit)
    return images, sorted(
        scan.failures + failures, key=lambda f: f.path.relative_to(scan.root).parts
    )
