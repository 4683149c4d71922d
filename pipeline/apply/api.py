"""``apply_folder``: every supported image under a folder, denoised into another folder.

Each file is read a few ahead of the network (:mod:`~pipeline.apply.stream`), denoised in
tiles (:mod:`pipeline.inference`), written atomically (:mod:`~pipeline.apply.writer`) and
recorded in the manifest (:mod:`~pipeline.apply.records`); outputs are named and the file
list split by :mod:`~pipeline.apply.plan`. See :mod:`pipeline.apply` for the behaviour.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline import __version__
from pipeline.apply.examples import write_report
from pipeline.apply.plan import (
    Job,
    check_folders,
    is_within,
    plan_jobs,
    resolve_part,
    split_finished,
    stale_temporaries,
)
from pipeline.apply.records import (
    append_manifest_row,
    check_unchanged_model,
    manifest_rows,
    merge_parts,
    prepare_manifest,
    record_paths,
)
from pipeline.apply.stream import prefetch
from pipeline.apply.writer import check_target, output_writer, remove_path, write_atomic
from pipeline.checkpoint import LoadedModel
from pipeline.distributed import wait_for_all_ranks
from pipeline.errors import ImageReadError, PipelineError
from pipeline.image import ScanImage, center_crop
from pipeline.inference import DEFAULT_BATCH_SIZE, DEFAULT_OVERLAP, DEFAULT_TILE_SIZE, ModelDenoiser, denoiser_from_checkpoint
from pipeline.ingest.failures import Failure, write_failures_csv
from pipeline.io import read_image
from pipeline.io.dicom import DerivedSeries
from pipeline.metrics import estimate_noise_sigma
from pipeline.records import PARTIAL_TAG

log = logging.getLogger(__name__)

#: Noise is estimated on the central crop of at most this many pixels a side.
NOISE_CROP = 1024
OUTPUT_FORMATS = ("dicom", "png", "tiff", "nifti")
RUN_FILE = ".denoise-apply.json"

Row = dict[str, Any]


@dataclass(frozen=True)
class ApplyResult:
    """What :func:`apply_folder` did.

    Attributes
    ----------
    output_dir: the output folder.
    done, skipped, failed: files denoised, found finished, failed (this process's part).
    manifest, failures: the CSV files this process wrote (``*.part-K.csv`` for a part).
    report: report.html, or None when no report was written.
    part_id, num_parts: which part of the file list this process handled.
    seconds: wall time.
    """

    output_dir: Path
    done: int
    skipped: int
    failed: int
    manifest: Path
    failures: Path
    report: Path | None = None
    part_id: int = 0
    num_parts: int = 1
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """1 when any file failed, else 0."""
        return 1 if self.failed else 0

    def summary(self) -> str:
        """One line: counts, time, part."""
        part = f" (part {self.part_id} of {self.num_parts})" if self.num_parts > 1 else ""
        return (
            f"denoised {self.done} files, skipped {self.skipped} already finished, "
            f"{self.failed} failed in {self.seconds:.1f} s{part} -> {self.output_dir}"
        )


@dataclass(frozen=True)
class _Context:
    """Everything the per-file work needs."""

    output_dir: Path
    denoiser: ModelDenoiser
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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _file_sha256(path: Path) -> str:
    """First 16 hex digits of the SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _reason(path: Path, err: BaseException) -> str:
    """A one-line failure reason that names the file."""
    text = " ".join(str(err).split())
    if not isinstance(err, PipelineError):
        text = f"unexpected {type(err).__name__}: {text}"
    return text if str(path) in text or path.name in text else f"{path}: {text}"


def _noise(images: Sequence[ScanImage]) -> float:
    """Mean estimated noise std of the images' central crops, in [0, 1] units."""
    return float(np.mean([estimate_noise_sigma(center_crop(i.pixels, NOISE_CROP)) for i in images]))


def _folder_id(output_dir: Path) -> str:
    """The output folder's random id, created once (atomically, also by concurrent parts)."""
    path = output_dir / RUN_FILE
    if not path.is_file():
        tmp = output_dir / f"{RUN_FILE}{PARTIAL_TAG}{os.getpid()}"
        tmp.write_text(json.dumps({"folder_id": uuid.uuid4().hex, "created": _now(), "version": __version__}))
        try:
            os.link(tmp, path)  # fails when another process made it first: theirs wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    try:
        return str(json.loads(path.read_text())["folder_id"])
    except (ValueError, KeyError, TypeError):
        raise PipelineError(f"{path} is damaged: delete it (DICOM outputs then start a new series)") from None


def _derived_series(output_dir: Path, model_sha: str) -> DerivedSeries:
    """One derived series per source series for this output folder and model."""
    run_id = hashlib.sha256(f"{_folder_id(output_dir)}:{model_sha}".encode()).hexdigest()
    return DerivedSeries(run_id=run_id)


def _read_job(job: Job, output_dir: Path) -> list[ScanImage]:
    """The images of `job`'s source; ImageReadError/PipelineError when it cannot be used."""
    if job.problem is not None:
        raise ImageReadError(job.problem)
    if is_within(job.source.resolve(), output_dir):
        raise PipelineError(f"{job.source}: resolves into the output folder (a link?); not read")
    return read_image(job.source)


def _process(job: Job, images: list[ScanImage], read_seconds: float, ctx: _Context) -> Row:
    """Denoise, write and record one file; returns its manifest row."""
    start = time.perf_counter()
    check_target(job, ctx.output_dir)
    if not images:
        raise PipelineError(f"{job.source}: holds no image")
    outputs = [image.with_pixels(ctx.denoiser(image.pixels)) for image in images]
    h, w = images[0].pixels.shape
    row: Row = {
        "input": str(job.source), "frames": len(images), "height": h, "width": w,
        "megapixels": round(sum(i.pixels.size for i in images) / 1e6, 4),
        "noise_before": round(_noise(images), 6), "noise_after": round(_noise(outputs), 6),
        "model": ctx.model_label, "model_sha256": ctx.model_sha,
    }
    final, write = output_writer(job, outputs, ctx.write_options)
    row["output"] = final.relative_to(ctx.output_dir).as_posix()
    final.parent.mkdir(parents=True, exist_ok=True)

    def record() -> None:
        row["seconds"] = round(read_seconds + time.perf_counter() - start, 3)
        row["finished"] = _now()
        append_manifest_row(row, ctx.manifest)

    write_atomic(final, write, record)
    for other in job.finals:
        if other != final:
            remove_path(other)  # an output of another shape left by an earlier run
    return row


def _run_jobs(jobs: Sequence[Job], ctx: _Context, progress: bool, desc: str) -> tuple[int, list[Failure]]:
    """Denoise `jobs` with a bounded read-ahead; returns (done, failures)."""
    done, megapixels, start = 0, 0.0, time.perf_counter()
    failures: list[Failure] = []
    with tqdm(total=len(jobs), unit="file", desc=desc, disable=not progress, dynamic_ncols=True) as bar:
        for job, images, seconds in prefetch(jobs, lambda j: _read_job(j, ctx.output_dir)):
            try:
                if isinstance(images, Exception):
                    raise images
                megapixels += _process(job, images, seconds, ctx)["megapixels"]
                done += 1
            except Exception as err:  # noqa: BLE001 - one bad file must not stop the folder
                failures.append(Failure(job.source, _reason(job.source, err)))
            bar.set_postfix_str(f"{megapixels / max(time.perf_counter() - start, 1e-9):.2f} MP/s, {len(failures)} failed")
            bar.update(1)
    return done, failures


def _check_options(fmt: str | None, tile_size: int | None, overlap: float, batch_size: int) -> str | None:
    """The normalised format; PipelineError for impossible settings."""
    if fmt is not None and fmt.lower() not in OUTPUT_FORMATS:
        raise PipelineError(f"output format {fmt!r} is not one of {', '.join(OUTPUT_FORMATS)}")
    if tile_size is not None and tile_size < 8:
        raise PipelineError(f"tile size must be at least 8 pixels; got {tile_size}")
    if not 0 <= overlap < 1:
        raise PipelineError(f"tile overlap must be in [0, 1); got {overlap}")
    if batch_size < 1:
        raise PipelineError(f"batch size must be at least 1; got {batch_size}")
    return None if fmt is None else fmt.lower()


def _finish(output_dir: Path, num_parts: int, part_id: int, torchrun: bool, report: bool) -> tuple[bool, Path | None]:
    """Merge part files and write the report where this process is the one to do it.

    That is a single-process run, or torchrun's rank 0 once every rank is done. Returns
    (part files were merged, report.html or None).
    """
    finishes = num_parts == 1
    if torchrun:
        if wait_for_all_ranks():
            finishes = part_id == 0
        else:
            log.warning("part files are not merged: merge them with one run without --num-parts")
    merged = finishes and num_parts > 1
    if merged:
        merge_parts(output_dir)
    report_path = write_report(manifest_rows(output_dir), output_dir) if report and finishes else None
    return merged, report_path


def apply_folder(
    input_dir: str | Path,
    output_dir: str | Path,
    model: str | Path | LoadedModel | None = None,
    *,
    fmt: str | None = None,
    tile_size: int | None = DEFAULT_TILE_SIZE,
    overlap: float = DEFAULT_OVERLAP,
    device: str = "auto",
    batch_size: int = DEFAULT_BATCH_SIZE,
    overwrite: bool = False,
    num_parts: int | None = None,
    part_id: int | None = None,
    progress: bool = True,
    report: bool = True,
) -> ApplyResult:
    """Denoise every supported image under `input_dir` into `output_dir` (see :mod:`pipeline.apply`).

    Parameters
    ----------
    input_dir, output_dir : folders; they must not contain one another.
    model : checkpoint file, run folder, a loaded model, or None for the shipped model.
    fmt : output format (``dicom``, ``png``, ``tiff``, ``nifti``); None: as each input.
    tile_size, overlap, batch_size : tiled inference (None: whole images); tiles per pass.
    device : ``auto``, ``cpu`` or ``cuda``.
    overwrite : redo finished outputs instead of skipping them.
    num_parts, part_id : handle files ``i`` with ``i % num_parts == part_id``; None: from
        torchrun's WORLD_SIZE/RANK, else the whole folder.
    progress, report : show a progress bar; write the report.

    Raises
    ------
    PipelineError : missing or overlapping folders, bad settings, missing model.
    """
    start = time.perf_counter()
    fmt = _check_options(fmt, tile_size, overlap, batch_size)
    source, dest = check_folders(input_dir, output_dir)
    num_parts, part_id, torchrun = resolve_part(num_parts, part_id)
    denoiser, loaded = denoiser_from_checkpoint(model, device, tile_size, overlap, batch_size)
    model_sha = _file_sha256(loaded.path)
    dest.mkdir(parents=True, exist_ok=True)
    series = _derived_series(dest, model_sha)

    jobs = plan_jobs(source, dest, fmt)[part_id::num_parts]
    for path in stale_temporaries(jobs):
        remove_path(path)
    todo, finished = split_finished(jobs, overwrite)
    check_unchanged_model(dest, {str(job.source) for job in finished}, model_sha)
    manifest, failures_csv = record_paths(dest, num_parts, part_id)
    if num_parts == 1:
        merge_parts(dest)
    prepare_manifest(manifest, dest, {str(job.source) for job in todo})

    description = f"Denoised ({loaded.config.model.name} {model_sha[:8]}) denoise-pipeline {__version__}"
    ctx = _Context(dest, denoiser, series, loaded.identity, model_sha, manifest, description)
    failures: list[Failure] = []
    try:
        desc = "denoise" if num_parts == 1 else f"denoise part {part_id}/{num_parts}"
        done, failures = _run_jobs(todo, ctx, progress, desc)
    finally:
        write_failures_csv(failures, failures_csv)

    merged, report_path = _finish(dest, num_parts, part_id, torchrun, report)
    if merged:
        manifest, failures_csv = record_paths(dest, 1, 0)
    return ApplyResult(
        dest, done, len(finished), len(failures), manifest, failures_csv, report_path,
        part_id, num_parts, time.perf_counter() - start,
    )
