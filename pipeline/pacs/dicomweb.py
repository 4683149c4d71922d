"""``denoise apply --input dicomweb:URL``: denoise instances of a DICOMweb server, store them back.

The run keeps everything in its output folder OUT:

- ``OUT/retrieved/``: the instances fetched (WADO-RS), never modified; each batch of them
  that the denoiser took at once is one folder, the input of one folder run
  (:mod:`~pipeline.pacs.retrieve`);
- ``OUT/denoised/``: what :func:`pipeline.apply.apply_folder` writes for those batches
  (derived DICOM files under ``<study>/<series>/``, ``manifest.csv``, ``failures.csv``, the
  report), so tiles, model and records are those of a folder run;
- ``OUT/stored.csv``: derived instances the destination holds (:mod:`~pipeline.pacs.store`);
- ``OUT/failures.csv``: every failure of the run (selection, retrieval, denoising,
  storing), one line each.

The three steps overlap: the next instances are fetched while a batch is denoised, and
the derived instances are stored while the next batch is denoised. A rerun skips what is
done at each step (fetched, denoised, stored) and, before fetching, sources whose derived
instance by the same model is on the destination already.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pipeline.apply import ApplyOptions, ApplyResult, apply_folder
from pipeline.apply.api import DEFAULT_OPTIONS
from pipeline.apply.records import FAILURES, MANIFEST, manifest_rows
from pipeline.checkpoint import LoadedModel, load_model
from pipeline.config import InferenceConfig
from pipeline.errors import PipelineError
from pipeline.exported import is_exported, load_exported_model
from pipeline.inference import DEFAULT_INFERENCE
from pipeline.ingest.failures import FAILURE_COLUMNS, Failure, write_failures_csv
from pipeline.logs import each_warning_once
from pipeline.pacs.auth import check_url, make_session
from pipeline.pacs.errors import ServerError
from pipeline.pacs.retrieve import Spool, fetch_ahead
from pipeline.pacs.select import InstanceRef, Selection, already_derived, find_instances
from pipeline.pacs.store import STORED, StoreCounts, Storer, derived_files
from pipeline.provenance import file_sha256
from pipeline.records import read_csv
from pipeline.report.apply_page import write_report

log = logging.getLogger(__name__)

SCHEME = "dicomweb:"
RETRIEVED, DENOISED = "retrieved", "denoised"
#: The logger of the folder runs' warnings (e.g. about the model): given once per DICOMweb run.
FOLDER_RUN_LOG = logging.getLogger(apply_folder.__module__)
#: Tries of each request (no answer, 429, 503, 504...), waits doubling from 2 x HTTP_WAIT_MS.
HTTP_ATTEMPTS, HTTP_WAIT_MS = 3, 250


@dataclass(frozen=True)
class Server:
    """Where and how to reach a DICOMweb server (the secrets stay in the session)."""

    url: str
    auth_file: str | Path | None = None
    ca_bundle: str | Path | None = None

    def client(self):
        """A dicomweb_client.DICOMwebClient for this server.

        Raises PipelineError when the library is missing.
        """
        try:
            from dicomweb_client import DICOMwebClient
        except ImportError:
            raise PipelineError(
                "DICOMweb needs the dicomweb-client package: pip install dicomweb-client "
                "(or pip install denoise-pipeline[pacs])"
            ) from None
        url = check_url(self.url)
        client = DICOMwebClient(url, session=make_session(url, self.auth_file, self.ca_bundle))
        # the library tries 5 times with waits doubling from 2 s (31 s for a server that is down)
        client.set_http_retry_params(
            max_attempts=HTTP_ATTEMPTS, wait_exponential_multiplier=HTTP_WAIT_MS
        )
        return client


@dataclass(frozen=True)
class DicomwebResult:
    """What :func:`apply_dicomweb` did; ``failures`` is OUT/failures.csv (every step's)."""

    output_dir: Path
    selected: int
    on_server: int
    denoise: ApplyResult
    stored: StoreCounts | None
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        """1 when anything failed, else 0 (as for a folder)."""
        return 1 if self.failures else 0

    def summary(self) -> str:
        """One line: counts of each step."""
        stored = (
            ""
            if self.stored is None
            else (
                f", stored {self.stored.sent} (found {self.stored.found} on the server, "
                f"{self.stored.recorded} recorded earlier)"
            )
        )
        return (
            f"selected {self.selected} instances ({self.on_server} already derived on the server), "
            f"denoised {self.denoise.done}, skipped {self.denoise.skipped} finished{stored}, "
            f"{len(self.failures)} failed in {self.seconds:.1f} s -> {self.output_dir}"
        )


def parse_input(text: str) -> str | None:
    """The server URL of an input ``dicomweb:URL``, or None for a folder."""
    return text[len(SCHEME) :] if str(text).startswith(SCHEME) else None


def load_run_model(model: str | Path | LoadedModel | None) -> tuple[LoadedModel, str]:
    """The model and the first 16 hex digits of its file's SHA-256 (as the manifest has it)."""
    if is_exported(model):
        model = load_exported_model(model)
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    return loaded, file_sha256(loaded.path)[:16]


def _on_destination(client, studies: set[str], model_sha: str) -> set[str]:
    """Sources already derived by this model on the destination.

    Empty when it cannot be asked: storing then fails per instance and a rerun stores them.
    """
    if client is None:
        return set()
    try:
        return already_derived(client, studies, model_sha)
    except ServerError as err:
        log.warning("%s", err)
        return set()


@dataclass
class _Denoised:
    """What the folder runs of one DICOMweb run did, summed over its batches."""

    done: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)


def _denoise_as_fetched(
    client: Any,
    todo: list[InstanceRef],
    spool: Spool,
    denoise: Callable[[Path], None],
    progress: bool,
) -> list[Failure]:
    """Finish an earlier run's batches, then denoise `todo` in batches as they arrive.

    Returns the instances that could not be retrieved.
    """
    failures: list[Failure] = []
    with (
        tqdm(total=len(todo), unit="instance", desc="dicomweb", disable=not progress) as bar,
        each_warning_once(FOLDER_RUN_LOG),
    ):
        for batch in list(spool.batches):  # an earlier run's: finish and store what is left
            denoise(batch)
        if spool.waiting():
            denoise(spool.new_batch(spool.waiting()))
        for fetched in fetch_ahead(client, todo, spool):
            failures += [failure for _ref, failure in fetched if failure is not None]
            arrived = [ref for ref, failure in fetched if failure is None]
            if arrived:
                denoise(spool.new_batch(arrived))
            bar.update(len(fetched))
    return failures


def _denoise_batch(
    batch: Path,
    out: Path,
    loaded: LoadedModel,
    options: ApplyOptions,
    inference: InferenceConfig,
    totals: _Denoised,
    storer: Storer | None,
) -> None:
    """One folder run on `batch` into OUT/denoised; its derived files are handed to `storer`."""
    denoised = out / DENOISED
    result = apply_folder(batch, denoised, loaded, options, inference)
    totals.done += result.done
    totals.skipped += result.skipped
    totals.failures += [
        Failure(Path(row[FAILURE_COLUMNS[0]]), row[FAILURE_COLUMNS[1]])
        for row in read_csv(denoised / FAILURES)
    ]  # this run's (each run rewrites it)
    if storer is not None:
        inside = batch.resolve()
        outputs = [
            row["output"]
            for row in manifest_rows(denoised)
            if Path(row["input"]).is_relative_to(inside)
        ]
        for path in derived_files(denoised, outputs):
            storer.submit(path)


def _finish_denoised(out: Path, totals: _Denoised, report: bool, seconds: float) -> ApplyResult:
    """OUT/denoised/failures.csv with every batch's failures, the report; the summed ApplyResult."""
    denoised = out / DENOISED
    failures_csv = write_failures_csv(totals.failures, denoised / FAILURES)
    report_path = None
    if report:
        report_path = write_report(
            manifest_rows(denoised), denoised, out / RETRIEVED, read_csv(failures_csv)
        )
    return ApplyResult(
        denoised,
        totals.done,
        totals.skipped,
        len(totals.failures),
        denoised / MANIFEST,
        failures_csv,
        report_path,
        seconds=seconds,
    )


def apply_dicomweb(
    source: Server,
    selection: Selection,
    output_dir: str | Path,
    model: str | Path | LoadedModel | None = None,
    *,
    destination: Server | None = None,
    options: ApplyOptions = DEFAULT_OPTIONS,
    inference: InferenceConfig = DEFAULT_INFERENCE,
) -> DicomwebResult:
    """Denoise the selected instances of `source` into `output_dir`; store them on `destination`.

    Retrieval, denoising and storing overlap: instances are fetched a bounded number ahead
    of the denoiser, which takes what has arrived as one batch (a folder run), and derived
    files are stored on background threads while the next batch is denoised.
    `options` (its format replaced by DICOM; progress and report are the whole run's) and
    `inference` go to :func:`~pipeline.apply.apply_folder`. Raises PipelineError when
    `source` cannot be used at all (unreachable, credentials refused) or a setting is wrong;
    failures of single instances are recorded instead (see :mod:`pipeline.pacs.dicomweb`).
    """
    start = time.perf_counter()
    out = Path(output_dir)
    client = source.client()
    dest_client = destination.client() if destination is not None else None
    loaded, model_sha = load_run_model(model)
    try:
        refs, failures = find_instances(client, selection)
        done = _on_destination(dest_client, {r.study for r in refs}, model_sha)
    except ServerError as err:
        raise PipelineError(str(err)) from None
    spool = Spool(out / RETRIEVED)
    todo = [ref for ref in refs if ref.sop not in done and ref.sop not in spool.held]
    storer = (
        None if dest_client is None else Storer(dest_client, out / STORED, dest_client.base_url)
    )
    totals, counts = _Denoised(), None
    batch_options = replace(options, fmt="dicom", progress=False, report=False)

    def denoise(batch: Path) -> None:
        _denoise_batch(batch, out, loaded, batch_options, inference, totals, storer)

    try:
        failures += _denoise_as_fetched(client, todo, spool, denoise, options.progress)
    finally:
        if storer is not None:
            counts, store_failures = storer.close()
            failures += store_failures
    result = _finish_denoised(out, totals, options.report, time.perf_counter() - start)
    failures += totals.failures
    write_failures_csv(failures, out / FAILURES)
    return DicomwebResult(
        out, len(refs), len(done), result, counts, failures, time.perf_counter() - start
    )
