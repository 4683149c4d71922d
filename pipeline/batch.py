"""Batch denoising of scan folders: ``denoise apply -i IN -o OUT`` and :func:`apply_folder`.

Every supported image under ``IN`` is denoised into ``OUT``, mirroring ``IN``'s tree.

Outputs
-------
- Same format and bit depth as the input by default (what :mod:`pipeline.io` writes:
  DICOM -> a derived DICOM series, 16-bit PNG -> 16-bit PNG, JPEG -> PNG), or the format
  chosen with ``fmt``. ``x.jpg`` -> ``x.png``; a DICOM without a suffix gets ``.dcm``; when
  two inputs would get one output name (``x.jpg`` beside ``x.png``), the one whose suffix
  changes is named ``x_jpg.png``.
- A file with several frames (multi-frame DICOM, multi-page TIFF, 3-D NIfTI) becomes a
  folder ``<name>.frames/`` of ``frame_0000<suffix>``... files, except a NIfTI output,
  which is written back as one volume.
- DICOM outputs form one new derived series per source series: the SeriesInstanceUID is
  derived from the output folder's id (kept in ``OUT/.denoise-apply.json``) and the
  model's checksum, so resumed runs and every part of a split run share it, and a
  different model gives a different series.

Streaming and crash safety
--------------------------
A reader thread loads at most :data:`PREFETCH_FILES` files ahead of the denoiser, and
images go through :class:`~pipeline.denoise.ModelDenoiser` in tiles, so memory grows with
neither the number of files nor the network's activations over a large image. Each output
is written to ``.<name>.partial-<pid>`` beside its final name and renamed (``os.replace``)
when complete: the final name only ever holds a complete file. A rerun skips finished
outputs (``overwrite`` redoes them) and deletes the temporary files a killed run left.

Records
-------
``OUT/manifest.csv``: one row per finished input (:data:`MANIFEST_COLUMNS`; ``input`` is
the absolute source path, ``output`` is relative to ``OUT``; ``seconds`` covers reading,
denoising, noise estimates and writing; noise is :func:`~pipeline.metrics.estimate_noise_sigma`
on the central crop of at most :data:`NOISE_CROP` pixels a side, in [0, 1] units). Rows of
earlier runs are kept; a redone input's row is replaced. ``OUT/failures.csv`` lists this
run's failed files with the reason; the exit status is 1 when it is not empty. A report
(``report.html``, ``report.md``, ``figures/``) is written unless ``report=False``.

Scale-out
---------
The sorted file list is split disjointly: file ``i`` goes to part ``i % num_parts``.
Parts come from ``num_parts``/``part_id`` (independent jobs) or from the ``RANK`` and
``WORLD_SIZE`` variables that ``torchrun`` sets. Part ``K`` of a split run records its
files in ``manifest.part-K.csv`` and ``failures.part-K.csv``; they are merged into
``manifest.csv`` and ``failures.csv`` (:func:`merge_parts`)

- under torchrun by rank 0, once every rank is done (a gloo barrier), which then writes
  the report;
- for independent jobs, by the next single-process run on the same folders (it finds
  every output finished, so it only merges and writes the report).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import queue
import shutil
import sys
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from pipeline import __version__
from pipeline.errors import PipelineError
from pipeline.image import ScanImage
from pipeline.ingest.failures import FAILURE_COLUMNS, Failure, write_failures_csv

if TYPE_CHECKING:
    from pipeline.denoise import LoadedModel, ModelDenoiser
    from pipeline.io.dicom import DerivedSeries

#: Tile side used by default. Measured with ModelDenoiser on a 2048x2048 image, 2 shared
#: CPU cores, overlap 0.25, 4 tiles per pass, untrained default-size models (seconds per
#: image): conv 128: 26.0, 256: 15.5, 512: 8.2, 1024: 11.9; unet 128: 20.6, 256: 15.8,
#: 512: 6.0, 1024: 7.7; peak memory 0.6-0.8 GiB at 512, 1.0-1.8 GiB at 1024. Whole
#: ``denoise apply`` of a 4096x4096 16-bit PNG (scripts/bench_apply.py, conv): 0.29 MP/s
#: at 512 against 0.22 MP/s at 256, the same peak memory (0.96 GiB).
DEFAULT_TILE_SIZE = 512
DEFAULT_OVERLAP = 0.25
DEFAULT_BATCH_SIZE = 4
#: Files read ahead of the denoiser (bounded queue of the reader thread).
PREFETCH_FILES = 2
#: Noise is estimated on the central crop of at most this many pixels a side.
NOISE_CROP = 1024
#: Examples shown in the report, and the largest side they are reduced to.
EXAMPLE_COUNT = 3
EXAMPLE_MAX_SIDE = 512
OUTPUT_FORMATS = ("dicom", "png", "tiff", "nifti")
MANIFEST = "manifest.csv"
FAILURES = "failures.csv"
RUN_FILE = ".denoise-apply.json"
PARTIAL_TAG = ".partial-"
FRAMES_SUFFIX = ".frames"
MANIFEST_COLUMNS = (
    "input", "output", "frames", "height", "width", "megapixels", "seconds",
    "noise_before", "noise_after", "model", "model_sha256", "finished",
)

T = TypeVar("T")
R = TypeVar("R")
Row = dict[str, Any]


# --------------------------------------------------------------------------- result


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
class _Job:
    """One input file and where its output goes."""

    source: Path
    target: Path
    frames_dir: Path
    fmt: str
    problem: str | None = None

    @property
    def finals(self) -> tuple[Path, Path]:
        return self.target, self.frames_dir


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
    def derivation(self) -> str:
        """DICOM DerivationDescription detail (the writer adds the package version)."""
        return f"{self.model_label}; checkpoint sha256 {self.model_sha}"


# --------------------------------------------------------------------------- small helpers


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _file_sha256(path: Path) -> str:
    """First 16 hex digits of the SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _remove(path: Path) -> None:
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


def _reason(path: Path, err: BaseException) -> str:
    """A one-line failure reason that names the file."""
    text = " ".join(str(err).split())
    if not isinstance(err, PipelineError):
        text = f"unexpected {type(err).__name__}: {text}"
    return text if str(path) in text or path.name in text else f"{path}: {text}"


def _central_crop(pixels: np.ndarray, side: int) -> np.ndarray:
    h, w = pixels.shape
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return pixels[top : top + side, left : left + side]


def _noise(images: Sequence[ScanImage]) -> float:
    """Mean estimated noise std of the images' central crops, in [0, 1] units."""
    from pipeline.metrics import estimate_noise_sigma

    return float(np.mean([estimate_noise_sigma(_central_crop(i.pixels, NOISE_CROP)) for i in images]))


def _thumbnail(pixels: np.ndarray, max_side: int = EXAMPLE_MAX_SIDE) -> np.ndarray:
    """Every n-th pixel so that no side exceeds `max_side` (keeps the noise texture)."""
    step = max(1, -(-max(pixels.shape) // max_side))
    return np.ascontiguousarray(pixels[::step, ::step], dtype=np.float32)


# --------------------------------------------------------------------------- CSV records


def _read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file (none when missing); a last line cut by a crash is ignored."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _write_rows(rows: Iterable[Mapping[str, Any]], path: Path) -> Path:
    """Write manifest rows, replacing `path` atomically."""
    tmp = path.with_name(f".{path.name}{PARTIAL_TAG}{os.getpid()}")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
    return path


def _append_row(row: Mapping[str, Any], path: Path) -> None:
    """Append one manifest row and flush it to disk (header first in a new file)."""
    new = not path.is_file() or path.stat().st_size == 0
    with open(path, "a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)
        fh.flush()
        os.fsync(fh.fileno())


def _latest_rows(rows: Iterable[Mapping[str, Any]], output_dir: Path) -> list[Row]:
    """The newest row per input whose output still exists, sorted by input."""
    latest: dict[str, Row] = {}
    for row in rows:
        key = str(row.get("input", ""))
        if key and (key not in latest or str(row.get("finished", "")) >= str(latest[key].get("finished", ""))):
            latest[key] = dict(row)
    return [
        row for key, row in sorted(latest.items())
        if row.get("output") and os.path.lexists(output_dir / str(row["output"]))
    ]


def _record_names(output_dir: Path, stem: str) -> list[Path]:
    """``<stem>.csv`` and every ``<stem>.part-K.csv`` in `output_dir`."""
    return [output_dir / f"{stem}.csv", *sorted(output_dir.glob(f"{stem}.part-*.csv"))]


def _all_manifest_rows(output_dir: Path) -> list[Row]:
    return _latest_rows(
        (row for path in _record_names(output_dir, "manifest") for row in _read_csv(path)), output_dir
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
    rows = _all_manifest_rows(output_dir)
    _write_rows(rows, output_dir / MANIFEST)
    finished = {row["input"] for row in rows}
    failures: dict[str, Failure] = {}
    for path in _record_names(output_dir, "failures"):
        for item in _read_csv(path):
            source = item.get(FAILURE_COLUMNS[0], "")
            if source and source not in finished:
                failures[source] = Failure(Path(source), item.get(FAILURE_COLUMNS[1], ""))
    merged = [failures[key] for key in sorted(failures)]
    write_failures_csv(merged, output_dir / FAILURES)
    for path in _record_names(output_dir, "manifest")[1:] + _record_names(output_dir, "failures")[1:]:
        path.unlink(missing_ok=True)
    return rows, merged


# --------------------------------------------------------------------------- folders and parts


def _check_folders(input_dir: str | Path, output_dir: str | Path) -> tuple[Path, Path]:
    """Resolved (input, output) folders; PipelineError when they overlap or IN is missing."""
    source, dest = Path(input_dir).resolve(), Path(output_dir).resolve()
    if not source.is_dir():
        raise PipelineError(f"input folder not found: {input_dir} (give the folder that holds the scans)")
    if _is_within(dest, source):
        raise PipelineError(
            f"output folder {output_dir} is {'the input folder' if dest == source else 'inside the input folder'} "
            f"{input_dir}: choose an output folder outside it (inputs are never modified)"
        )
    if _is_within(source, dest):
        raise PipelineError(f"input folder {input_dir} is inside the output folder {output_dir}: choose another output folder")
    if dest.exists() and not dest.is_dir():
        raise PipelineError(f"output {output_dir} is a file, not a folder")
    return source, dest


def _resolve_part(
    num_parts: int | None = None, part_id: int | None = None, env: Mapping[str, str] | None = None
) -> tuple[int, int, bool]:
    """(num_parts, part_id, from_torchrun): explicit values, else torchrun's WORLD_SIZE/RANK, else (1, 0)."""
    env = os.environ if env is None else env
    from_env = num_parts is None and part_id is None and int(env.get("WORLD_SIZE", "1")) > 1
    if from_env:
        num_parts, part_id = int(env["WORLD_SIZE"]), int(env.get("RANK", "0"))
    num_parts = 1 if num_parts is None else int(num_parts)
    part_id = 0 if part_id is None else int(part_id)
    if num_parts < 1 or not 0 <= part_id < num_parts:
        raise PipelineError(f"part {part_id} of {num_parts} does not exist: use --num-parts P >= 1 and 0 <= --part-id < P")
    return num_parts, part_id, from_env


def _record_paths(output_dir: Path, num_parts: int, part_id: int) -> tuple[Path, Path]:
    """This process's manifest and failures files."""
    if num_parts == 1:
        return output_dir / MANIFEST, output_dir / FAILURES
    return output_dir / f"manifest.part-{part_id}.csv", output_dir / f"failures.part-{part_id}.csv"


def _wait_for_other_ranks() -> bool:
    """Barrier over torchrun's ranks (gloo); False when no process group can be made."""
    try:
        import torch.distributed as dist

        dist.init_process_group("gloo", timeout=timedelta(days=7))
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()
        return True
    except Exception as err:  # noqa: BLE001 - merging is optional; the outputs are complete
        warnings.warn(f"could not wait for the other torchrun ranks ({err}); part files are not merged", stacklevel=2)
        return False


# --------------------------------------------------------------------------- planning


def _strip_suffix(name: str) -> str:
    """`name` without a supported image suffix (names of suffix-less DICOMs are kept whole)."""
    from pipeline.io import SUPPORTED_SUFFIXES

    lower = name.lower()
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _output_format(source: Path, fmt: str | None) -> str:
    from pipeline.io import default_output_format, detect_format

    if fmt is not None:
        return fmt
    try:
        return default_output_format(detect_format(source) or "png")
    except OSError:
        return "png"  # unreadable: the read fails and names the reason


def _make_job(source: Path, input_dir: Path, output_dir: Path, fmt: str | None, problem: str | None, tag: str = "") -> _Job:
    from pipeline.io import output_suffix

    rel = source.relative_to(input_dir)
    out_fmt = _output_format(source, fmt)
    base = _strip_suffix(rel.name) + tag
    parent = output_dir.joinpath(*rel.parts[:-1])
    return _Job(source, parent / (base + output_suffix(out_fmt, source)), parent / (base + FRAMES_SUFFIX), out_fmt, problem)


def _suffix_tag(source: Path) -> str:
    """``_jpg`` for ``x.jpg``: tells apart inputs that would share an output name."""
    suffix = source.name[len(_strip_suffix(source.name)):]
    return "_" + (suffix.lstrip(".").replace(".", "_").lower() or "noext")


def _keeps_suffix(job: _Job) -> bool:
    """Whether the output name ends like the source name (``x.png`` -> ``x.png``)."""
    suffix = job.target.name[len(_strip_suffix(job.target.name)):]
    return job.source.name.lower().endswith(suffix.lower())


def _disambiguate(jobs: list[_Job], input_dir: Path, output_dir: Path, fmt: str | None) -> list[_Job]:
    """Rename outputs claimed by several inputs; a clash that remains is a failure."""
    counts = Counter(job.target for job in jobs)
    renamed = [
        _make_job(job.source, input_dir, output_dir, fmt, job.problem, _suffix_tag(job.source))
        if counts[job.target] > 1 and not _keeps_suffix(job)
        else job
        for job in jobs
    ]
    first: dict[Path, Path] = {}
    result = []
    for job in renamed:
        owner = first.setdefault(job.target, job.source)
        if owner != job.source and job.problem is None:
            job = replace(job, problem=f"{job.source}: its output name {job.target.name} is also that of {owner}; rename one of them")
        result.append(job)
    return result


def _plan_jobs(input_dir: Path, output_dir: Path, fmt: str | None = None) -> list[_Job]:
    """Every candidate file under `input_dir` (sorted) with its output paths."""
    from pipeline.ingest.folder import scan_folder

    scan = scan_folder(input_dir)
    problems = {f.path: f.reason for f in scan.failures}
    sources = sorted([*scan.files, *problems], key=lambda p: p.relative_to(input_dir).parts)
    jobs = [_make_job(p, input_dir, output_dir, fmt, problems.get(p)) for p in sources]
    return _disambiguate(jobs, input_dir, output_dir, fmt)


def _finished_output(job: _Job) -> Path | None:
    """The complete output of `job` under its final name, if there is one."""
    if job.target.is_file() and not job.target.is_symlink():
        return job.target
    if job.frames_dir.is_dir() and not job.frames_dir.is_symlink():
        return job.frames_dir
    return None


def _remove_stale_temps(jobs: Sequence[_Job]) -> None:
    """Delete temporary outputs of `jobs` left by killed runs (one listing per folder)."""
    names: dict[Path, set[str]] = {}
    for job in jobs:
        for final in job.finals:
            names.setdefault(final.parent, set()).add(final.name)
    for folder, owned in names.items():
        if not folder.is_dir() or folder.is_symlink():
            continue
        for entry in os.scandir(folder):
            stale = entry.name.startswith(".") and PARTIAL_TAG in entry.name
            if stale and entry.name[1 : entry.name.rindex(PARTIAL_TAG)] in owned:
                _remove(Path(entry.path))


def _check_unchanged_model(output_dir: Path, kept: Sequence[_Job], model_sha: str) -> None:
    """PipelineError when finished outputs that would be kept were made by another model."""
    kept_inputs = {str(job.source) for job in kept}
    other = sorted({
        row.get("model") or row["model_sha256"] for row in _all_manifest_rows(output_dir)
        if row["input"] in kept_inputs and row.get("model_sha256") not in ("", None, model_sha)
    })
    if other:
        raise PipelineError(
            f"{output_dir} already holds outputs made by another model ({other[0]}): rerun with "
            "--overwrite to redo them with this model, or choose another output folder"
        )


def _prepare_manifest(path: Path, output_dir: Path, redo: set[str]) -> None:
    """Rewrite this process's manifest without rows of missing or to-be-redone outputs."""
    if path.is_file():
        _write_rows([r for r in _latest_rows(_read_csv(path), output_dir) if r["input"] not in redo], path)


# --------------------------------------------------------------------------- model and series


def _load_denoiser(
    model: str | Path | LoadedModel | None, device: str, tile_size: int | None, overlap: float, batch_size: int
) -> tuple[ModelDenoiser, LoadedModel]:
    """The network as a tiled denoiser; under torchrun each rank takes its local GPU."""
    import torch

    from pipeline.denoise import LoadedModel, ModelDenoiser, load_model, resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda" and "LOCAL_RANK" in os.environ:
        dev = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    loaded = model if isinstance(model, LoadedModel) else load_model(model, dev)
    return ModelDenoiser(loaded.model, dev, tile_size, overlap, batch_size, name=loaded.method_name), loaded


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
    from pipeline.io.dicom import DerivedSeries

    run_id = hashlib.sha256(f"{_folder_id(output_dir)}:{model_sha}".encode()).hexdigest()
    return DerivedSeries(run_id=run_id)


# --------------------------------------------------------------------------- streaming


def _prefetch(items: Iterable[T], load: Callable[[T], R], depth: int = PREFETCH_FILES) -> Iterator[tuple[T, R | Exception, float]]:
    """Yield ``(item, load(item) or the exception it raised, seconds)`` in order.

    A daemon thread runs `load` at most `depth` items ahead of the consumer, so memory is
    bounded by ``depth + 2`` loaded items whatever the number of items.
    """
    channel: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(entry: object) -> None:
        while not stop.is_set():
            try:
                channel.put(entry, timeout=0.1)
                return
            except queue.Full:
                continue

    def work() -> None:
        for item in items:
            if stop.is_set():
                return
            start = time.perf_counter()
            try:
                result: R | Exception = load(item)
            except Exception as err:  # noqa: BLE001 - handed to the consumer as the result
                result = err
            put((item, result, time.perf_counter() - start))
        put(end)

    thread = threading.Thread(target=work, name="denoise-reader", daemon=True)
    thread.start()
    try:
        while (entry := channel.get()) is not end:
            yield entry  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=5)


def _read_job(job: _Job, output_dir: Path) -> list[ScanImage]:
    """The images of `job`'s source; ImageReadError/PipelineError when it cannot be used."""
    from pipeline.errors import ImageReadError
    from pipeline.io import read_image

    if job.problem is not None:
        raise ImageReadError(job.problem)
    if _is_within(job.source.resolve(), output_dir):
        raise PipelineError(f"{job.source}: resolves into the output folder (a link?); not read")
    return read_image(job.source)


def _check_target(job: _Job, output_dir: Path) -> None:
    """PipelineError unless `job`'s outputs stay inside `output_dir` (no links out)."""
    if not _is_within(job.target.parent.resolve(), output_dir):
        raise PipelineError(f"{job.source}: its output folder {job.target.parent} leads outside {output_dir}; not written")
    for final in job.finals:
        if final.is_symlink():
            raise PipelineError(f"{job.source}: output {final} is a symbolic link; not written")


def _write_atomic(final: Path, write: Callable[[Path], object], before_commit: Callable[[], None]) -> None:
    """Write through a temporary name beside `final`, then rename it to `final`.

    `before_commit` runs when the temporary output is complete and flushed. Any error (or
    interruption) removes the temporary output and leaves `final` as it was.
    """
    tmp = final.with_name(f".{final.name}{PARTIAL_TAG}{os.getpid()}")
    try:
        write(tmp)
        _fsync(tmp)
        before_commit()
        if tmp.is_dir():
            _remove(final)
            os.rename(tmp, final)
        else:
            os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def _writer(job: _Job, outputs: Sequence[ScanImage], ctx: _Context) -> tuple[Path, Callable[[Path], object]]:
    """The final path for `outputs` and a function writing them to a given path."""
    from pipeline.io import write_image
    from pipeline.io.nifti import write_volume

    compress = job.target.name.lower().endswith(".gz")
    options = {"series": ctx.series, "description": ctx.description, "derivation": ctx.derivation, "compress": compress}
    if len(outputs) == 1:
        return job.target, lambda path: write_image(outputs[0], path, job.fmt, **options)
    if job.fmt == "nifti":
        return job.target, lambda path: write_volume(list(outputs), path, compress=compress)
    suffix = job.target.name[len(_strip_suffix(job.target.name)):]

    def write_frames(folder: Path) -> None:
        folder.mkdir()
        for index, image in enumerate(outputs):
            write_image(image, folder / f"frame_{index:04d}{suffix}", job.fmt, **options)

    return job.frames_dir, write_frames


def _process(job: _Job, images: list[ScanImage], read_seconds: float, ctx: _Context) -> Row:
    """Denoise, write and record one file; returns its manifest row."""
    start = time.perf_counter()
    _check_target(job, ctx.output_dir)
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
    final, write = _writer(job, outputs, ctx)
    row["output"] = final.relative_to(ctx.output_dir).as_posix()
    final.parent.mkdir(parents=True, exist_ok=True)

    def record() -> None:
        row["seconds"] = round(read_seconds + time.perf_counter() - start, 3)
        row["finished"] = _now()
        _append_row(row, ctx.manifest)

    _write_atomic(final, write, record)
    for other in job.finals:
        if other != final:
            _remove(other)  # an output of another shape left by an earlier run
    return row


def _run_jobs(jobs: Sequence[_Job], ctx: _Context, progress: bool, desc: str) -> tuple[int, list[Failure]]:
    """Denoise `jobs` with a bounded read-ahead; returns (done, failures)."""
    from tqdm import tqdm

    done, megapixels, start = 0, 0.0, time.perf_counter()
    failures: list[Failure] = []
    with tqdm(total=len(jobs), unit="file", desc=desc, disable=not progress, dynamic_ncols=True) as bar:
        for job, images, seconds in _prefetch(jobs, lambda j: _read_job(j, ctx.output_dir)):
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


# --------------------------------------------------------------------------- report


def _first_image(path: Path) -> np.ndarray:
    """Pixels of the first image of a file, or of the first file of a frames folder."""
    from pipeline.io import read_image

    if path.is_dir():
        path = min(p for p in path.iterdir() if not p.name.startswith("."))
    return read_image(path)[0].pixels


def _examples(rows: Sequence[Mapping[str, Any]], output_dir: Path, count: int = EXAMPLE_COUNT) -> list[dict[str, Any]]:
    """Report examples (input and output, reduced to EXAMPLE_MAX_SIDE) of the first rows."""
    examples = []
    for row in rows:
        if len(examples) == count:
            break
        try:
            noisy = _thumbnail(_first_image(Path(row["input"])))
            denoised = _thumbnail(_first_image(output_dir / row["output"]))
        except Exception as err:  # noqa: BLE001 - an example that cannot be shown is left out
            print(f"warning: no report example of {row['input']} ({err})", file=sys.stderr)
            continue
        if noisy.shape == denoised.shape:
            examples.append({
                "image": Path(row["input"]).name, "clean": None, "noisy": noisy,
                "outputs": {"denoised": denoised},
            })
    return examples


def _write_report(rows: Sequence[Mapping[str, Any]], output_dir: Path) -> Path | None:
    """report.html (and report.md, figures/) for the manifest rows; None when there are none."""
    from pipeline.report import write_apply_report

    if not rows:
        return None
    try:
        return write_apply_report(rows, _examples(rows, output_dir), output_dir)["html"]
    except Exception as err:  # noqa: BLE001 - the denoised files are complete either way
        print(f"warning: the report could not be written ({type(err).__name__}: {err})", file=sys.stderr)
        return None


# --------------------------------------------------------------------------- API


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


def _split_finished(jobs: Sequence[_Job], overwrite: bool) -> tuple[list[_Job], list[_Job]]:
    """(to do, already finished) — everything is to do with `overwrite`."""
    if overwrite:
        return list(jobs), []
    finished = [job for job in jobs if job.problem is None and _finished_output(job) is not None]
    kept = {job.source for job in finished}
    return [job for job in jobs if job.source not in kept], finished


def _finish(output_dir: Path, num_parts: int, part_id: int, torchrun: bool, report: bool) -> tuple[bool, Path | None]:
    """Merge part files and write the report where this process is the one to do it.

    That is a single-process run, or torchrun's rank 0 once every rank is done. Returns
    (part files were merged, report.html or None).
    """
    finishes = num_parts == 1 or (torchrun and _wait_for_other_ranks() and part_id == 0)
    merged = finishes and num_parts > 1
    if merged:
        merge_parts(output_dir)
    report_path = _write_report(_all_manifest_rows(output_dir), output_dir) if report and finishes else None
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
    """Denoise every supported image under `input_dir` into `output_dir` (see the module doc).

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
    source, dest = _check_folders(input_dir, output_dir)
    num_parts, part_id, torchrun = _resolve_part(num_parts, part_id)
    denoiser, loaded = _load_denoiser(model, device, tile_size, overlap, batch_size)
    model_sha = _file_sha256(loaded.path)
    dest.mkdir(parents=True, exist_ok=True)
    series = _derived_series(dest, model_sha)

    jobs = _plan_jobs(source, dest, fmt)[part_id::num_parts]
    _remove_stale_temps(jobs)
    todo, finished = _split_finished(jobs, overwrite)
    _check_unchanged_model(dest, finished, model_sha)
    manifest, failures_csv = _record_paths(dest, num_parts, part_id)
    if num_parts == 1:
        merge_parts(dest)
    _prepare_manifest(manifest, dest, {str(job.source) for job in todo})

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
        manifest, failures_csv = _record_paths(dest, 1, 0)
    return ApplyResult(
        dest, done, len(finished), len(failures), manifest, failures_csv, report_path,
        part_id, num_parts, time.perf_counter() - start,
    )


# --------------------------------------------------------------------------- command line


def add_apply_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``denoise apply``."""
    parser.add_argument("-i", "--input", required=True, type=Path, help="folder of scans to denoise (read only)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder (mirrors the input tree; not inside the input)")
    parser.add_argument("--model", type=Path, help="checkpoint or run folder (default: the shipped radiograph model)")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, help="output format (default: the input's; JPEG becomes PNG)")
    parser.add_argument("--tile-size", type=int, default=DEFAULT_TILE_SIZE, help=f"tile side for large images (default {DEFAULT_TILE_SIZE})")
    parser.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP, help=f"overlap of neighbouring tiles (default {DEFAULT_OVERLAP})")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to run the model (default auto)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help=f"tiles per forward pass (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--overwrite", action="store_true", help="redo outputs that already exist (default: skip them)")
    parser.add_argument("--num-parts", type=int, help="split the sorted file list into this many parts (independent jobs)")
    parser.add_argument("--part-id", type=int, help="the part this job handles: files i with i %% num-parts == part-id")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-report", action="store_true", help="no report.html")


def apply_from_args(args: argparse.Namespace) -> int:
    """Run ``denoise apply``; print a summary and where the records are; exit status."""
    if (args.num_parts is None) != (args.part_id is None):
        raise PipelineError("give --num-parts and --part-id together (e.g. --num-parts 4 --part-id 0)")
    result = apply_folder(
        args.input, args.output, args.model, fmt=args.format, tile_size=args.tile_size,
        overlap=args.overlap, device=args.device, batch_size=args.batch_size, overwrite=args.overwrite,
        num_parts=args.num_parts, part_id=args.part_id, progress=not args.no_progress, report=not args.no_report,
    )
    print(result.summary())
    print(f"manifest: {result.manifest}")
    print(f"failures: {result.failures}" + (f" ({result.failed} files)" if result.failed else " (none)"))
    if result.report is not None:
        print(f"report: {result.report}")
    elif result.num_parts > 1:
        print(
            "part files are merged into manifest.csv (and the report written) by torchrun's rank 0, "
            "or else by one run without --num-parts once every part is done"
        )
    return result.exit_code
