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
from dataclasses import dataclass, replace
from pathlib import Path

from pipeline import __version__
from pipeline.apply.files import FileContext, run_files, utc_now
from pipeline.apply.options import ApplyOptions, ApplyResult
from pipeline.apply.plan import (
    check_folders,
    finished_output,
    plan_jobs,
    resolve_part,
    split_finished,
    stale_temporaries,
)
from pipeline.apply.records import (
    FAILURES,
    check_unchanged_model,
    manifest_rows,
    merge_parts,
    prepare_manifest,
    record_paths,
)
from pipeline.apply.writer import (
    output_lock,
    remove_path,
)
from pipeline.checkpoint import LoadedModel
from pipeline.config import InferenceConfig
from pipeline.distributed import wait_for_all_ranks
from pipeline.errors import PipelineError
from pipeline.exported import is_exported, load_exported_model
from pipeline.inference import DEFAULT_INFERENCE, ModelDenoiser, denoiser_from_checkpoint
from pipeline.ingest.failures import Failure, write_failures_csv
from pipeline.io import SUPPORTED_SUFFIXES
from pipeline.io.dicom import DerivedSeries
from pipeline.provenance import file_sha256
from pipeline.records import PARTIAL_TAG, read_csv
from pipeline.text import path_text

log = logging.getLogger(__name__)

RUN_FILE = ".denoise-apply.json"

#: Options of :func:`apply_folder` when none are given.
DEFAULT_OPTIONS = ApplyOptions()


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
            json.dumps(
                {"folder_id": uuid.uuid4().hex, "created": utc_now(), "version": __version__}
            )
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
    ctx = FileContext(
        dest, run.denoiser, series, run.loaded.identity, run.model_sha, manifest, description
    )
    failures: list[Failure] = []
    try:
        desc = "denoise" if num_parts == 1 else f"denoise part {part_id}/{num_parts}"
        done, failures = run_files(todo, ctx, options.progress, desc)
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
