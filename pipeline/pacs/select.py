"""Which instances a DICOMweb run denoises: a selection resolved through QIDO-RS.

A selection is study UIDs, a series UID, or QIDO-RS match keys (``Modality=CR``,
``StudyDate=20240101-20241231``, ``PatientID=...``). Series this tool derived earlier are
never selected, and sources whose derived instance by the same model is already on the
server are reported apart, so a rerun (even from a new output folder) stores nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pipeline.errors import PipelineError
from pipeline.ingest.failures import Failure
from pipeline.pacs.errors import ServerError, server_error

log = logging.getLogger(__name__)

STUDY, SERIES, SOP, SOP_CLASS = "0020000D", "0020000E", "00080018", "00080016"
SERIES_DESCRIPTION, DERIVATION, SOURCE_IMAGES, REFERENCED_SOP = (
    "0008103E",
    "00082111",
    "00082112",
    "00081155",
)
#: SeriesDescription of the series `denoise apply` writes:
#: "Denoised (<model> <sha>) denoise-pipeline <version>".
DERIVED_MARK = ("Denoised", "denoise-pipeline")


@dataclass(frozen=True)
class Selection:
    """What to denoise: study UIDs, one series UID, or QIDO-RS match keys (exactly one kind)."""

    studies: tuple[str, ...] = ()
    series: str | None = None
    query: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kinds = sum([bool(self.studies), self.series is not None, bool(self.query)])
        if kinds != 1:
            raise PipelineError(
                "a DICOMweb input needs exactly one selection: --study UID (repeatable), "
                "--series UID, or --query KEY=VALUE (repeatable)"
            )


@dataclass(frozen=True)
class InstanceRef:
    """One instance on the server."""

    study: str
    series: str
    sop: str
    sop_class: str

    @property
    def name(self) -> str:
        """How records name it: ``study/series/sop``."""
        return f"{self.study}/{self.series}/{self.sop}"


def first_value(item: Mapping[str, dict], tag: str) -> object:
    """The first value of `tag` in a DICOM JSON object, or None."""
    values = item.get(tag, {}).get("Value") or [None]
    return values[0]


def _refs(items: Sequence[Mapping[str, dict]]) -> list[InstanceRef]:
    refs = []
    for item in items:
        uids = [first_value(item, tag) for tag in (STUDY, SERIES, SOP)]
        if all(uids):
            refs.append(InstanceRef(*map(str, uids), str(first_value(item, SOP_CLASS) or "")))
    return refs


def _search(client, what: str, **kwargs) -> list[Mapping[str, dict]]:
    """QIDO-RS instance search; ServerError with one line when it fails."""
    try:
        return client.search_for_instances(get_remaining=True, **kwargs)
    except Exception as err:  # noqa: BLE001 - every failure becomes one line
        raise server_error(err, what, client.base_url) from None


def _searches(selection: Selection) -> list[tuple[str, dict]]:
    """(what, search_for_instances arguments) for each part of `selection`."""
    if selection.studies:
        return [(f"study {uid}", {"study_instance_uid": uid}) for uid in selection.studies]
    if selection.series is not None:
        return [
            (
                f"series {selection.series}",
                {"search_filters": {"SeriesInstanceUID": selection.series}},
            )
        ]
    query = " ".join(f"{k}={v}" for k, v in selection.query.items())
    return [(f"query {query}", {"search_filters": dict(selection.query)})]


def find_instances(client, selection: Selection) -> tuple[list[InstanceRef], list[Failure]]:
    """The selected instances (sorted, derived series left out) and the selections that found none.

    Raises ServerError when the server cannot be used at all (no answer, credentials refused).
    """
    failures: list[Failure] = []
    found: list[InstanceRef] = []
    for what, kwargs in _searches(selection):
        try:
            refs = _refs(_search(client, f"find the instances of {what}", **kwargs))
        except ServerError as err:
            if err.fatal:
                raise
            failures.append(Failure(what, str(err)))
            continue
        if not refs:
            failures.append(
                Failure(
                    what, f"{what}: not found on the server (no instances); check the UID or query"
                )
            )
        found += refs
    derived = derived_series(client, {ref.study for ref in found})
    kept = sorted({ref for ref in found if ref.series not in derived}, key=lambda r: r.name)
    if len(kept) < len(found):
        log.info(
            "left out %d instances of series this tool derived earlier", len(found) - len(kept)
        )
    return kept, failures


def derived_series(client, studies: set[str]) -> set[str]:
    """SeriesInstanceUIDs of the series this tool derived in `studies` (by their description)."""
    uids = set()
    for study in sorted(studies):
        try:
            items = client.search_for_series(study_instance_uid=study, fields=["SeriesDescription"])
        except Exception as err:  # noqa: BLE001
            raise server_error(err, f"list the series of study {study}", client.base_url) from None
        for item in items:
            text = str(first_value(item, SERIES_DESCRIPTION) or "")
            if text.startswith(DERIVED_MARK[0]) and DERIVED_MARK[1] in text:
                uids.add(str(first_value(item, SERIES)))
    return uids


def already_derived(client, studies: set[str], model_sha: str) -> set[str]:
    """SOPInstanceUIDs of sources whose derived instance by the model `model_sha` is on the server.

    Read from the metadata (WADO-RS) of the derived series: DerivationDescription names the
    model's checksum, SourceImageSequence the source.
    """
    sources = set()
    for study in sorted(studies):
        for series in sorted(derived_series(client, {study})):
            try:
                items = client.retrieve_series_metadata(study, series)
            except Exception as err:  # noqa: BLE001
                raise server_error(err, f"read derived series {series}", client.base_url) from None
            for item in items:
                if model_sha not in str(first_value(item, DERIVATION) or ""):
                    continue
                for ref in item.get(SOURCE_IMAGES, {}).get("Value") or []:
                    if first_value(ref, REFERENCED_SOP):
                        sources.add(str(first_value(ref, REFERENCED_SOP)))
    return sources
