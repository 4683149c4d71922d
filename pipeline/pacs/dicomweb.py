"""``denoise apply --input dicomweb:URL``: denoise instances of a DICOMweb server, store them back.

The run keeps everything in its output folder OUT:

- ``OUT/retrieved/<study>/<series>/<sop>.dcm``: the instances fetched (WADO-RS), the input
  of the folder run (never modified);
- ``OUT/denoised/``: what :func:`pipeline.apply.apply_folder` writes for that input (derived
  DICOM files, ``manifest.csv``, ``failures.csv``, the report), so tiles, model and
  records are those of a folder run;
- ``OUT/stored.csv``: derived instances the destination holds (:mod:`~pipeline.pacs.store`);
- ``OUT/failures.csv``: every failure of the run (selection, retrieval, denoising,
  storing), one line each.

A rerun skips what is done at each step (fetched, denoised, stored) and, before fetching,
sources whose derived instance by the same model is on the destination already.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipeline.apply import ApplyOptions, ApplyResult, apply_folder
from pipeline.apply.api import DEFAULT_OPTIONS
from pipeline.apply.records import FAILURES, manifest_rows
from pipeline.checkpoint import LoadedModel, load_model
from pipeline.config import InferenceConfig
from pipeline.errors import PipelineError
from pipeline.export import file_sha256, is_exported, load_exported_model
from pipeline.inference import DEFAULT_INFERENCE
from pipeline.ingest.failures import FAILURE_COLUMNS, Failure, write_failures_csv
from pipeline.pacs.auth import check_url, make_session
from pipeline.pacs.errors import ServerError
from pipeline.pacs.retrieve import retrieve_all
from pipeline.pacs.select import Selection, already_derived, find_instances
from pipeline.pacs.store import STORED, StoreCounts, derived_files, store_all
from pipeline.records import read_csv

log = logging.getLogger(__name__)

SCHEME = "dicomweb:"
RETRIEVED, DENOISED = "retrieved", "denoised"
#: Tries of each request (no answer, 429, 503, 504...), waits doubling from 2 x HTTP_WAIT_MS.
HTTP_ATTEMPTS, HTTP_WAIT_MS = 3, 250


@dataclass(frozen=True)
class Server:
    """Where and how to reach a DICOMweb server (the secrets stay in the session)."""

    url: str
    auth_file: str | Path | None = None
    ca_bundle: str | Path | None = None

    def client(self):
        """A dicomweb_client.DICOMwebClient for this server; PipelineError when the library is missing."""
        try:
            from dicomweb_client import DICOMwebClient
        except ImportError:
            raise PipelineError("DICOMweb needs the dicomweb-client package: pip install dicomweb-client "
                                "(or pip install denoise-pipeline[pacs])") from None
        url = check_url(self.url)
        client = DICOMwebClient(url, session=make_session(url, self.auth_file, self.ca_bundle))
        # the library tries 5 times with waits doubling from 2 s (31 s for a server that is down)
        client.set_http_retry_params(max_attempts=HTTP_ATTEMPTS, wait_exponential_multiplier=HTTP_WAIT_MS)
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
        stored = "" if self.stored is None else (
            f", stored {self.stored.sent} (found {self.stored.found} on the server, "
            f"{self.stored.recorded} recorded earlier)")
        return (f"selected {self.selected} instances ({self.on_server} already derived on the server), "
                f"denoised {self.denoise.done}, skipped {self.denoise.skipped} finished{stored}, "
                f"{len(self.failures)} failed in {self.seconds:.1f} s -> {self.output_dir}")


def parse_input(text: str) -> str | None:
    """The server URL of an input ``dicomweb:URL``, or None for a folder."""
    return text[len(SCHEME):] if str(text).startswith(SCHEME) else None


def load_run_model(model: str | Path | LoadedModel | None) -> tuple[LoadedModel, str]:
    """The model and the first 16 hex digits of its file's SHA-256 (as the manifest has it)."""
    if is_exported(model):
        model = load_exported_model(model)
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    return loaded, file_sha256(loaded.path)[:16]


def _on_destination(client, studies: set[str], model_sha: str) -> set[str]:
    """Sources already derived by this model on the destination (none when it cannot be asked:
    storing then fails per instance and a rerun stores them)."""
    if client is None:
        return set()
    try:
        return already_derived(client, studies, model_sha)
    except ServerError as err:
        log.warning("%s", err)
        return set()


def _denoise_failures(denoised: Path) -> list[Failure]:
    return [Failure(Path(row[FAILURE_COLUMNS[0]]), row[FAILURE_COLUMNS[1]])
            for row in read_csv(denoised / FAILURES)]


def apply_dicomweb(
    source: Server, selection: Selection, output_dir: str | Path, model: str | Path | LoadedModel | None = None,
    *, destination: Server | None = None, options: ApplyOptions = DEFAULT_OPTIONS,
    inference: InferenceConfig = DEFAULT_INFERENCE,
) -> DicomwebResult:
    """Denoise the selected instances of `source` into `output_dir`; store them on `destination`.

    `options` (its format replaced by DICOM) and `inference` go to
    :func:`~pipeline.apply.apply_folder`. Raises PipelineError when `source` cannot be
    used at all (unreachable, credentials refused) or a setting is wrong; failures of single
    instances are recorded instead (see :mod:`pipeline.pacs.dicomweb`).
    """
    start = time.perf_counter()
    out = Path(output_dir)
    client = source.client()
    dest_client = destination.client() if destination is not None else None
    loaded, model_sha = load_run_model(model)
    try:
        refs, failures = find_instances(client, selection)
        done = _on_destination(dest_client, {r.study for r in refs}, model_sha)
        todo = [ref for ref in refs if ref.sop not in done]
        (out / RETRIEVED).mkdir(parents=True, exist_ok=True)
        _retrieved, fetch_failures = retrieve_all(client, todo, out / RETRIEVED)
    except ServerError as err:
        raise PipelineError(str(err)) from None
    result = apply_folder(out / RETRIEVED, out / DENOISED, loaded, replace(options, fmt="dicom"), inference)
    failures += fetch_failures + _denoise_failures(out / DENOISED)
    counts = None
    if dest_client is not None:
        outputs = [row["output"] for row in manifest_rows(out / DENOISED)]
        counts, store_failures = store_all(dest_client, derived_files(out / DENOISED, outputs),
                                           out / STORED, dest_client.base_url)
        failures += store_failures
    write_failures_csv(failures, out / FAILURES)
    return DicomwebResult(out, len(refs), len(done), result, counts, failures, time.perf_counter() - start)
