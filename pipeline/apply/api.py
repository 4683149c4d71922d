"""``apply_folder``: every supported image under a folder, denoised into another folder.

Each file is read a few ahead of the network (:mod:`~pipeline.apply.stream`), denoised in
tiles (:mod:`pipeline.inference`), written atomically (:mod:`~pipeline.apply.writer`) and
recorded in the manifest (:mod:`~pipeline.apply.records`); outputs are named and the file
list split by :mod:`~pipeline.apply.plan`. See :mod:`pipeline.apply` for the behaviour.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline import __version__
from pipeline.apply.options import ApplyOptions, ApplyResult
from pipeline.apply.plan import (
    Job,
    check_folders,
    finished_output,
    is_within,
    plan_jobs,
    resolve_part,
    split_finished,
    stale_temporaries,
)
from pipeline.apply.records import (
    FAILURES,
    NOISE_AFTER,
    NOISE_BEFORE,
    append_manifest_row,
    check_unchanged_model,
    manifest_rows,
    merge_parts,
    prepare_manifest,
    record_paths,
)
from pipeline.apply.stream import WriteBehind, prefetch
from pipeline.apply.writer import (
    check_target,
    output_lock,
    output_writer,
    remove_path,
    write_atomic,
)
from pipeline.checkpoint import LoadedModel
from pipeline.config import InferenceConfig
from pipeline.distributed import wait_for_all_ranks
from pipeline.errors import ImageReadError, PipelineError
from pipeline.export import is_exported, load_exported_model
from pipeline.image import ScanImage, center_crop
from pipeline.inference import DEFAULT_INFERENCE, ModelDenoiser, denoiser_from_checkpoint
from pipeline.ingest.failures import Failure, write_failures_csv
from pipeline.io import SUPPORTED_SUFFIXES, read_image
from pipeline.io.dicom import DerivedSeries
from pipeline.logs import about_file
from pipeline.metrics import estimate_noise_sigma
from pipeline.process import return_freed_heap
from pipeline.provenance import file_sha256
from pipeline.records import PARTIAL_TAG, read_csv
from pipeline.text import library_detail, path_text, short_text

log = logging.getLogger(__name__)

#: Noise is estimated on the central crop of at most this many pixels a side.
NOISE_CROP = 1024
RUN_FILE = ".denoise-apply.json"

#: Options of :func:`apply_folder` when none are given.
DEFAULT_OPTIONS = ApplyOptions()

Row = dict[str, Any]
#: Write errors that stop the run (exit 2): the output folder itself is unusable.
_FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


@dataclass(frozen=True)
class _Context:
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


def _now() -> str:
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


def _warn_about_training_data(loaded: LoadedModel) -> None:
    """Warn when the model was trained on MNIST digits: `apply` is for scans."""
    if loaded.config.data.kind == "mnist":
        log.warning(
            "%s was trained on MNIST (28x28 handwritten digits), not on scans: its outputs on "
            "these images may be poor; the shipped radiograph model is used without --model",
            path_text(loaded.path.name),
        )


def _folder_id(output_dir: Path) -> str:
    """The output folder's random id, created once (atomically, also by concurrent parts)."""
    path = output_dir / RUN_FILE
    if not path.is_file():
        tmp = output_dir / f"{RUN_FILE}{PARTIAL_TAG}{os.getpid()}"
        tmp.write_text(
            json.dumps({"folder_id": uuid.uuid4().hex, "created": _now(), "version": __version__})
        )
        try:
            os.link(tmp, path)  # fails when another process made it first: theirs wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    try:
        return str(json.loads(path.read_text())["folder_id"])
    except (ValueError, KeyError, TypeError):
        raise PipelineError(
            f"{path} is damaged: delete it (DICOM outputs then start a new series)"
        ) from None


def _derived_series(output_dir: Path, model_sha: str) -> DerivedSeries:
    """One derived series per source series for this output folder and model."""
    run_id = hashlib.sha256(f"{_folder_id(output_dir)}:{model_sha}".encode()).hexdigest()
    return DerivedSeries(run_id=run_id)


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
    job: Job, images: list[ScanImage], input_sha: str, ctx: _Context
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


def _write(job: Job, outputs: list[ScanImage], row: Row, started: float, ctx: _Context) -> None:
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
        row["finished"] = _now()
        append_manifest_row(row, ctx.manifest)

    write_atomic(final, write, record)
    for other in job.finals:
        if other != final:
            remove_path(other)  # an output of another shape left by an earlier run


def _run_jobs(
    jobs: Sequence[Job], ctx: _Context, progress: bool, desc: str
) -> tuple[int, list[Failure]]:
    """Denoise `jobs`, reading ahead and writing behind; returns (done, failures).

    Three stages overlap: the reader thread decodes the next files, this thread runs the
    network, and the writer thread estimates the output noise, encodes and writes the
    previous file. Failures of any stage are recorded per file, as they happen (a write
    failure of one file may come after a read failure of the next).
    """
    done, megapixels, start = 0, 0.0, time.perf_counter()
    failures: list[Failure] = []
    lock = threading.Lock()

    def fail(job: Job, err: BaseException) -> None:
        with lock:
            failures.append(Failure(job.source, _reason(job.source, err)))

    def write(job: Job, outputs: list[ScanImage], row: Row, started: float) -> None:
        nonlocal done, megapixels
        try:
            with about_file(job.source):
                _write(job, outputs, row, started, ctx)
            return_freed_heap()  # the encoder's temporaries
        except OSError as err:
            if err.errno in _FATAL_ERRNOS:  # every further output would fail the same way
                raise PipelineError(
                    f"{ctx.output_dir}: {err.strerror} while writing the output of "
                    f"{path_text(job.source.name)}; make room (or make it writable) and rerun: "
                    "finished outputs are kept"
                ) from err
            fail(job, err)
            return
        except Exception as err:  # noqa: BLE001 - one bad file must not stop the folder
            fail(job, err)
            return
        with lock:
            done += 1
            megapixels += row["megapixels"]

    writer = WriteBehind()
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
                    fail(job, err)
                else:  # raises the error that stopped the writer, if any
                    writer.submit(lambda j=job, o=outputs, r=row, t=started: write(j, o, r, t))
                with lock:
                    rate = megapixels / max(time.perf_counter() - start, 1e-9)
                    bar.set_postfix_str(f"{rate:.2f} MP/s, {len(failures)} failed")
                bar.update(1)
    finally:
        writer.close()
    return done, failures


def _finish(
    input_dir: Path, output_dir: Path, num_parts: int, part_id: int, torchrun: bool, report: bool
) -> tuple[bool, Path | None]:
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
    report_path = None
    if report and finishes:
        failures = read_csv(output_dir / FAILURES) if (output_dir / FAILURES).is_file() else []
        # imported here: the report imports pipeline.apply (its records), so not at the top
        from pipeline.report.apply_page import write_report

        report_path = write_report(manifest_rows(output_dir), output_dir, input_dir, failures)
    return merged, report_path


def apply_folder(
    input_dir: str | Path,
    output_dir: str | Path,
    model: str | Path | LoadedModel | None = None,
    options: ApplyOptions = DEFAULT_OPTIONS,
    inference: InferenceConfig = DEFAULT_INFERENCE,
) -> ApplyResult:
    """Denoise every supported image under `input_dir` into `output_dir`.

    See :mod:`pipeline.apply` for the behaviour.

    Parameters
    ----------
    input_dir, output_dir : folders; they must not contain one another.
    model : checkpoint file, run folder, TorchScript/ONNX file from ``denoise export``, a
        loaded model, or None for the shipped model.
    options : format, overwrite, parts, progress bar and report (:class:`ApplyOptions`).
    inference : tiled inference and device (:class:`~pipeline.config.InferenceConfig`).

    Raises
    ------
    PipelineError : missing or overlapping folders, bad settings, missing model.
    """
    start = time.perf_counter()
    source, dest = check_folders(input_dir, output_dir)
    num_parts, part_id, torchrun = resolve_part(options.num_parts, options.part_id)
    options = replace(options, num_parts=num_parts, part_id=part_id)
    if is_exported(model):  # a TorchScript or ONNX file from `denoise export`
        model = load_exported_model(model)
    denoiser, loaded = denoiser_from_checkpoint(model, inference)
    model_sha = file_sha256(loaded.path)[:16]
    _warn_about_training_data(loaded)
    dest.mkdir(parents=True, exist_ok=True)
    with output_lock(dest, num_parts, part_id):
        return _apply_locked(
            _Run(source, dest, loaded, denoiser, model_sha, options, torchrun, start)
        )


@dataclass(frozen=True)
class _Run:
    """One call of :func:`apply_folder` with its folders, model and options resolved.

    ``options.num_parts`` and ``part_id`` are set.
    """

    source: Path
    dest: Path
    loaded: LoadedModel
    denoiser: ModelDenoiser
    model_sha: str
    options: ApplyOptions
    torchrun: bool
    start: float


def _apply_locked(run: _Run) -> ApplyResult:
    """The body of :func:`apply_folder`, run while this process holds the output folder's lock."""
    source, dest, options = run.source, run.dest, run.options
    num_parts, part_id = (
        int(options.num_parts or 1),
        int(options.part_id or 0),
    )  # set by apply_folder
    series = _derived_series(dest, run.model_sha)
    every_job = plan_jobs(source, dest, options.fmt)
    if not every_job:
        log.warning(
            "%s holds no image (%s, or DICOM content without a suffix; hidden files are ignored): "
            "nothing was denoised",
            path_text(source),
            ", ".join(sorted(SUPPORTED_SUFFIXES)),
        )
    jobs = every_job[part_id::num_parts]
    for path in stale_temporaries(jobs):
        remove_path(path)
    recorded = {str(row["input"]): row for row in manifest_rows(dest)}
    if not options.overwrite:
        check_unchanged_model(
            dest, {path_text(job.source) for job in jobs if finished_output(job)}, run.model_sha
        )
    todo, finished = split_finished(
        jobs, options.overwrite, dest, recorded, run.model_sha, file_sha256
    )
    manifest, failures_csv = record_paths(dest, num_parts, part_id)
    if num_parts == 1:
        merge_parts(dest)
    prepare_manifest(manifest, dest, {path_text(job.source) for job in todo})

    model_name = run.loaded.config.model.name
    description = f"Denoised ({model_name} {run.model_sha[:8]}) denoise-pipeline {__version__}"
    ctx = _Context(
        dest, run.denoiser, series, run.loaded.identity, run.model_sha, manifest, description
    )
    failures: list[Failure] = []
    try:
        desc = "denoise" if num_parts == 1 else f"denoise part {part_id}/{num_parts}"
        done, failures = _run_jobs(todo, ctx, options.progress, desc)
    finally:
        write_failures_csv(failures, failures_csv)

    merged, report_path = _finish(source, dest, num_parts, part_id, run.torchrun, options.report)
    if merged:
        manifest, failures_csv = record_paths(dest, 1, 0)
    return ApplyResult(
        dest,
        done,
        len(finished),
        len(failures),
        manifest,
        failures_csv,
        report_path,
        part_id,
        num_parts,
        time.perf_counter() - run.start,
        not every_job,
    )
