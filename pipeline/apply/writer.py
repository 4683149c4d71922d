"""Atomic outputs: a denoised file (or frames folder) gets its final name only when complete.

Each output is written to ``.<name>.partial-<pid>`` beside its final name, flushed to disk
and renamed; a crash leaves at most a temporary file, which the next run deletes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.apply.plan import Job, is_within, strip_suffix
from pipeline.errors import PipelineError
from pipeline.image import ScanImage
from pipeline.io import write_image
from pipeline.io.nifti import write_volume
from pipeline.records import partial_path

LOCK_FILE = ".denoise-apply.lock"


@contextmanager
def output_lock(output_dir: Path, num_parts: int = 1, part_id: int = 0) -> Iterator[Path]:
    """Hold the output folder (or, for a split run, this part of it) for one run.

    A second run of the same part on the same folder, while the first is alive, gets a
    PipelineError at once (two writers would duplicate manifest rows). The lock is an
    advisory ``flock`` on ``OUT/.denoise-apply.lock`` (``...part-K-of-P.lock`` for a
    part): the system releases it when the process ends, even when it is killed.
    """
    name = (
        LOCK_FILE
        if num_parts == 1
        else LOCK_FILE.replace(".lock", f".part-{part_id}-of-{num_parts}.lock")
    )
    path = output_dir / name
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield path
        return
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PipelineError(
                f"{output_dir} is in use by another denoise apply run ({name} is locked); wait "
                "for it to finish or choose another output folder"
            ) from None
        try:
            yield path
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_path(path: Path) -> None:
    """Delete a file, link or folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink()


def _fsync(path: Path) -> None:
    """Flush a file (or every file of a folder) to disk."""
    for file in sorted(path.iterdir()) if path.is_dir() else [path]:
        with open(file, "rb") as fh:
            os.fsync(fh.fileno())


def check_target(job: Job, output_dir: Path) -> None:
    """PipelineError unless `job`'s outputs stay inside `output_dir` (no links out)."""
    if not is_within(job.target.parent.resolve(), output_dir):
        raise PipelineError(
            f"{job.source}: its output folder {job.target.parent} leads outside {output_dir}; "
            "not written"
        )
    for final in job.finals:
        if final.is_symlink():
            raise PipelineError(f"{job.source}: output {final} is a symbolic link; not written")


def write_atomic(
    final: Path, write: Callable[[Path], object], before_commit: Callable[[], None]
) -> None:
    """Write through a temporary name beside `final`, then rename it to `final`.

    `before_commit` runs when the temporary output is complete and flushed. Any error (or
    interruption) removes the temporary output and leaves `final` as it was.
    """
    tmp = partial_path(final)
    try:
        write(tmp)
        _fsync(tmp)
        before_commit()
        if tmp.is_dir():
            remove_path(final)
            os.rename(tmp, final)
        else:
            os.replace(tmp, final)
    except BaseException:
        remove_path(tmp)
        raise


def output_writer(
    job: Job, outputs: Sequence[ScanImage], options: dict[str, Any]
) -> tuple[Path, Callable[[Path], object]]:
    """The final path for `outputs` and a function writing them to a given path.

    One image is one file; several (frames, slices) are one NIfTI volume, or else a
    ``<name>.frames/`` folder of ``frame_0000<suffix>``... files. `options` go to
    :func:`pipeline.io.write_image` (DICOM series, description, derivation).
    """
    compress = job.target.name.lower().endswith(".gz")
    options = {**options, "compress": compress}
    if len(outputs) == 1:
        return job.target, lambda path: write_image(outputs[0], path, job.fmt, **options)
    if job.fmt == "nifti":
        return job.target, lambda path: write_volume(list(outputs), path, compress=compress)
    suffix = job.target.name[len(strip_suffix(job.target.name)) :]

    def write_frames(folder: Path) -> None:
        folder.mkdir()
        for index, image in enumerate(outputs):
            write_image(image, folder / f"frame_{index:04d}{suffix}", job.fmt, **options)

    return job.frames_dir, write_frames
