"""The records of a folder run: ``manifest.csv`` (finished files), ``failures.csv`` and their parts.

``manifest.csv`` has one row per finished input (:data:`MANIFEST_COLUMNS`; ``input`` is the
absolute source path, ``output`` is relative to the output folder). Rows of earlier runs are
kept; a redone input's row is replaced. Part ``K`` of a split run writes
``manifest.part-K.csv`` and ``failures.part-K.csv``; :func:`merge_parts` joins them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError
from pipeline.ingest.failures import FAILURE_COLUMNS, Failure, write_failures_csv
from pipeline.records import append_csv_row, read_csv, write_csv
from pipeline.text import path_from_text

MANIFEST = "manifest.csv"
FAILURES = "failures.csv"
#: Estimated noise std before and after denoising, as a fraction of each image's full range.
NOISE_BEFORE, NOISE_AFTER = "noise_before_fraction_of_range", "noise_after_fraction_of_range"
#: ``input_sha256``: the input file's SHA-256 when it was denoised (a rerun skips the input
#: only while it is unchanged); ``bits_stored``: the significant bits its values were read
#: with (empty for float or signed data, normalised by their range).
MANIFEST_COLUMNS = (
    "input",
    "output",
    "frames",
    "height",
    "width",
    "megapixels",
    "seconds",
    NOISE_BEFORE,
    NOISE_AFTER,
    "model",
    "model_sha256",
    "finished",
    "input_sha256",
    "bits_stored",
)
#: Columns of manifests written by earlier versions, with their names now.
RENAMED_COLUMNS = {"noise_before": NOISE_BEFORE, "noise_after": NOISE_AFTER}

Row = dict[str, Any]


def record_paths(output_dir: Path, num_parts: int, part_id: int) -> tuple[Path, Path]:
    """The manifest and failures files of this process (part `part_id` of `num_parts`)."""
    if num_parts == 1:
        return output_dir / MANIFEST, output_dir / FAILURES
    return output_dir / f"manifest.part-{part_id}.csv", output_dir / f"failures.part-{part_id}.csv"


def append_manifest_row(row: Mapping[str, Any], path: Path) -> None:
    """Append one manifest row, flushed before the output it describes is renamed into place."""
    append_csv_row(row, path, MANIFEST_COLUMNS, durable=True)


def _latest_rows(rows: Iterable[Mapping[str, Any]], output_dir: Path) -> list[Row]:
    """The newest row per input whose output still exists, sorted by input."""
    latest: dict[str, Row] = {}
    for row in rows:
        key = str(row.get("input", ""))
        if key and (
            key not in latest
            or str(row.get("finished", "")) >= str(latest[key].get("finished", ""))
        ):
            latest[key] = dict(row)
    return [
        row
        for key, row in sorted(latest.items())
        if row.get("output") and os.path.lexists(output_dir / path_from_text(str(row["output"])))
    ]


def _record_names(output_dir: Path, stem: str) -> list[Path]:
    """``<stem>.csv`` and every ``<stem>.part-K.csv`` in `output_dir`."""
    return [output_dir / f"{stem}.csv", *sorted(output_dir.glob(f"{stem}.part-*.csv"))]


def _read_manifest(path: Path) -> list[Row]:
    """Rows of a manifest file; columns named by an earlier version get their names now."""
    return [{RENAMED_COLUMNS.get(k, k): v for k, v in row.items()} for row in read_csv(path)]


def manifest_rows(output_dir: Path) -> list[Row]:
    """The newest row per finished input, from ``manifest.csv`` and every part file."""
    return _latest_rows(
        (row for path in _record_names(output_dir, "manifest") for row in _read_manifest(path)),
        output_dir,
    )


def merge_parts(output_dir: str | Path) -> tuple[list[Row], list[Failure]]:
    """Merge the part files of a split run into ``manifest.csv`` and ``failures.csv``.

    Manifest rows: the newest per input whose output exists. Failures: those of every
    part (and of ``failures.csv``) whose input has no manifest row. The part files are
    deleted. Call it only when no part is running.

    Returns
    -------
    The merged manifest rows and failures.
    """
    output_dir = Path(output_dir)
    rows = manifest_rows(output_dir)
    write_csv(rows, output_dir / MANIFEST, MANIFEST_COLUMNS)
    finished = {row["input"] for row in rows}
    failures: dict[str, Failure] = {}
    for path in _record_names(output_dir, "failures"):
        for item in read_csv(path):
            source = item.get(FAILURE_COLUMNS[0], "")
            if source and source not in finished:
                failures[source] = Failure(Path(source), item.get(FAILURE_COLUMNS[1], ""))
    merged = [failures[key] for key in sorted(failures)]
    write_failures_csv(merged, output_dir / FAILURES)
    for path in (
        _record_names(output_dir, "manifest")[1:] + _record_names(output_dir, "failures")[1:]
    ):
        path.unlink(missing_ok=True)
    return rows, merged


def check_unchanged_model(output_dir: Path, kept_inputs: set[str], model_sha: str) -> None:
    """PipelineError when finished outputs that would be kept were made by another model."""
    other = sorted(
        {
            row.get("model") or row["model_sha256"]
            for row in manifest_rows(output_dir)
            if row["input"] in kept_inputs and row.get("model_sha256") not in ("", None, model_sha)
        }
    )
    if other:
        raise PipelineError(
            f"{output_dir} already holds outputs made by another model ({other[0]}): rerun with "
            "--overwrite to redo them with this model, or choose another output folder"
        )


def prepare_manifest(path: Path, output_dir: Path, redo: set[str]) -> None:
    """Rewrite this process's manifest without rows of missing or to-be-redone outputs."""
    if path.is_file():
        rows = [r for r in _latest_rows(_read_manifest(path), output_dir) if r["input"] not in redo]
        write_csv(rows, path, MANIFEST_COLUMNS)
