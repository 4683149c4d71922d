"""The per-file work of :func:`pipeline.apply.apply_folder`: read, denoise and write each file.

:func:`run_files` overlaps the three stages (a reader thread, the network on the calling
thread, a writer thread) and records each file's failure as it happens.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.apply.plan import Job, is_within
from pipeline.apply.records import NOISE_AFTER, NOISE_BEFORE, append_manifest_row
from pipeline.apply.stream import WriteBehind, prefetch
from pipeline.apply.writer import check_target, output_writer, remove_path, write_atomic
from pipeline.errors import ImageReadError, PipelineError
from pipeline.image import ScanImage, center_crop
from pipeline.inference import ModelDenoiser
from pipeline.ingest.failures import Failure
from pipeline.io import read_image
from pipeline.io.dicom import DerivedSeries
from pipeline.logs import about_file
from pipeline.metrics import estimate_noise_sigma
from pipeline.process import return_freed_heap
from pipeline.provenance import file_sha256
from pipeline.text import library_detail, path_text, short_text

#: Noise is estimated on the central crop of at most this many pixels a side.
NOISE_CROP = 1024
Row = dict[str, Any]
#: Write errors that stop the run (exit 2): the output folder itself is unusable.
_FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


@dataclass(frozen=True)
class FileContext:
    """Everything the per-file work needs."""

    output_dir: Path
    denoiser: ModelDenoiser  # called with out= (denoises in place)
    series: DerivedSeries
    model_label: str
    model_sha: str
    manifest: Path
    description: str = ""

    @property
    def write_options(self) -> dict[str, Any]:
        """Options of :func:`pipeline.io.write_image`: the DICOM series and its descriptions."""
        derivation = f"{self.model_label}; checkpoint sha256 {self.model_sha}"
        return {"series": self.series, "description": self.description, "derivation": derivation}


def utc_now() -> str:
    """The time now (UTC), as the manifest records it."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _reason(path: Path, err: BaseException) -> str:
    """A short one-line failure reason that names the file (by name: the path has its own column).

    PipelineError messages are the tool's own; OSError gives the system's words; anything
    else is marked unexpected and cut to its type and first line.
    """
    if isinstance(err, PipelineError):
        text = str(err)
    elif isinstance(err, OSError) and err.strerror:
        text = f"{err.strerror} ({errno.errorcode.get(err.errno or 0, 'OSError')})"
    else:
        text = f"unexpected {library_detail(err, 200)}"
    text = text.replace(str(path), path_text(path.name))
    return short_text(
        text if text.startswith(path_text(path.name)) else f"{path_text(path.name)}: {text}"
    )


def _noise(images: Sequence[ScanImage]) -> float:
    """Mean estimated noise std of the images' central crops, in [0, 1] units."""
    return float(np.mean([estimate_noise_sigma(center_crop(i.pixels, NOISE_CROP)) for i in images]))


def _read_job(job: Job, output_dir: Path) -> tuple[list[ScanImage], str]:
    """The images of `job`'s source and the source's SHA-256.

    ImageReadError or PipelineError when the source cannot be used.
    """
    if job.problem is not None:
        raise ImageReadError(job.problem)
    if is_within(job.source.resolve(), output_dir):
        raise PipelineError(f"{job.source}: resolves into the output folder (a link?); not read")
    images = read_image(job.source)
    return_freed_heap()  # the decoder's temporaries: the reader thread's arena keeps them
    return images, file_sha256(job.source)


def _denoise(
    job: Job, images: list[ScanImage], input_sha: str, ctx: FileContext
) -> tuple[list[ScanImage], Row]:
    """Denoise one file's images in place; returns the outputs and the start of its manifest row.

    The input noise is estimated first: the denoised pixels overwrite the input arrays (the
    reader made them for this file alone), so no second whole-image buffer is needed.
    """
    check_target(job, ctx.output_dir)
    if not images:
        raise PipelineError(f"{job.source}: holds no image")
    h, w = images[0].pixels.shape
    row: Row = {
        "input": path_text(job.source),
        "input_sha256": input_sha,
        "bits_stored": images[0].meta.bits_stored or "",
        "frames": len(images),
        "height": h,
        "width": w,
        "megapixels": round(sum(i.pixels.size for i in images) / 1e6, 4),
        NOISE_BEFORE: round(_noise(images), 6),
    }
    outputs = [
        replace(image, pixels=ctx.denoiser(image.pixels, out=image.pixels)) for image in images
    ]
    return_freed_heap()  # the network's activations, before the writer's temporaries come
    return outputs, row


def _write(job: Job, outputs: list[ScanImage], row: Row, started: float, ctx: FileContext) -> None:
    """Estimate the output noise, write `outputs` atomically and append the manifest row.

    `started` is the :func:`time.perf_counter` value from which the file's time is counted
    (its reading time is already in ``row["seconds"]``).
    """
    if not all(np.isfinite(out.pixels).all() for out in outputs):
        raise PipelineError(
            f"{job.source}: the model gave NaN or infinite values for this image; not written"
        )
    row.update(
        {
            NOISE_AFTER: round(_noise(outputs), 6),
            "model": ctx.model_label,
            "model_sha256": ctx.model_sha,
        }
    )
    final, write = output_writer(job, outputs, ctx.write_options)
    row["output"] = path_text(final.relative_to(ctx.output_dir).as_posix())
    final.parent.mkdir(parents=True, exist_ok=True)

    def record() -> None:
        row["seconds"] = round(row["seconds"] + time.perf_counter() - started, 3)
        row["finished"] = utc_now()
        append_manifest_row(row, ctx.manifest)

    write_atomic(final, write, record)
    for other in job.finals:
        if other != final:
            remove_path(other)  # an output of another shape left by an earlier run


class _Tally:
    """Files written and failures of one :func:`run_files` call, shared by its threads."""

    def __init__(self, ctx: FileContext) -> None:
        self.ctx = ctx
        self.done, self.megapixels = 0, 0.0
        self.failures: list[Failure] = []
        self.lock = threading.Lock()

    def fail(self, job: Job, err: BaseException) -> None:
        """Record `job`'s failure."""
        with self.lock:
            self.failures.append(Failure(job.source, _reason(job.source, err)))

    def write(self, job: Job, outputs: list[ScanImage], row: Row, started: float) -> None:
        """Write one file's outputs (writer thread); a full or read-only disk stops the run."""
        try:
            with about_file(job.source):
                _write(job, outputs, row, started, self.ctx)
            return_freed_heap()  # the encoder's temporaries
        except OSError as err:
            if err.errno in _FATAL_ERRNOS:  # every further output would fail the same way
                raise PipelineError(
                    f"{self.ctx.output_dir}: {err.strerror} while writing the output of "
                    f"{path_text(job.source.name)}; make room (or make it writable) and rerun: "
                    "finished outputs are kept"
                ) from err
            self.fail(job, err)
            return
        except Exception as err:  # noqa: BLE001 - one bad file must not stop the folder
            self.fail(job, err)
            return
        with self.lock:
            self.done += 1
            self.megapixels += row["megapixels"]

    def postfix(self, start: float) -> str:
        """The progress bar's rate and failure count."""
        with self.lock:
            rate = self.megapixels / max(time.perf_counter() - start, 1e-9)
            return f"{rate:.2f} MP/s, {len(self.failures)} failed"


def run_files(
    jobs: Sequence[Job], ctx: FileContext, progress: bool, desc: str
) -> tuple[int, list[Failure]]:
    """Denoise `jobs`, reading ahead and writing behind; returns (done, failures).

    Three stages overlap: the reader thread decodes the next files, this thread runs the
    network, and the writer thread estimates the output noise, encodes and writes the
    previous file. Failures of any stage are recorded per file, as they happen (a write
    failure of one file may come after a read failure of the next).
    """
    start, tally, writer = time.perf_counter(), _Tally(ctx), WriteBehind()
    try:
        with tqdm(
            total=len(jobs), unit="file", desc=desc, disable=not progress, dynamic_ncols=True
        ) as bar:
            for job, images, seconds in prefetch(jobs, lambda j: _read_job(j, ctx.output_dir)):
                started = time.perf_counter()
                try:
                    if isinstance(images, Exception):
                        raise images
                    with about_file(job.source):
                        outputs, row = _denoise(job, *images, ctx)
                    row["seconds"] = seconds
                except Exception as err:  # noqa: BLE001 - one bad file must not stop the folder
                    tally.fail(job, err)
                else:  # raises the error that stopped the writer, if any
                    writer.submit(
                        lambda j=job, o=outputs, r=row, t=started: tally.write(j, o, r, t)
                    )
                bar.set_postfix_str(tally.postfix(start))
                bar.update(1)
    finally:
        writer.close()
    return tally.done, tally.failures
