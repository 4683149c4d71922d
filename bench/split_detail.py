"""What the acceptance tables say beyond pooled PSNR/SSIM: detail kept, per-source leads, spectra
figures.

Detail kept is the task transfer function of :mod:`pipeline.detail`, pooled over the images of a
table from each condition's ``spectra.jsonl``. Per source, each method's mean PSNR lead over BM3D
with its paired 95% CI on the images of that source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.detail import band_transfer, by_method, curves
from pipeline.detail_figure import transfer_figure
from pipeline.evaluate import read_spectra
from pipeline.image import ScanImage
from pipeline.report import summarize_methods


def source_of(image: ScanImage) -> str:
    """The site or collection an image comes from: ``meta.extra['source']``, else its folder's
    name."""
    source = image.meta.extra.get("source") if image.meta.extra else None
    if source:
        return str(source)
    return image.meta.source.parent.name if image.meta.source is not None else ""


Spectra = dict[tuple[str, str], dict[str, list[float]]]


def condition_spectra(work: Path) -> Spectra:
    """A condition's spectra (``spectra.jsonl`` of its work folder), read once per table."""
    return read_spectra(work / "spectra.jsonl")


def transfer_by_method(spectra: Spectra, images: set[str]) -> dict[str, dict[str, float]]:
    """Pooled detail kept per band for each method, over `images` (methods without spectra left
    out)."""
    return {m: band_transfer(s) for m, s in by_method(spectra, images).items()}


def transfer_curves(spectra: Spectra, images: set[str]) -> dict[str, dict[str, list[float | None]]]:
    """Per method: frequency, T(f) and the residual's noise power spectrum, pooled over `images`."""
    return {m: curves(s) for m, s in by_method(spectra, images).items()}


def by_source(
    rows: list[dict[str, Any]], sources: dict[str, str], spectra: Spectra
) -> dict[str, Any]:
    """Per source: each method's PSNR/SSIM summary against BM3D and its detail kept, on the images
    with BM3D."""
    out: dict[str, Any] = {}
    with_bm3d = {r["image"] for r in rows if r["method"] == "bm3d"}
    for source in sorted(set(sources.values())):
        names = {img for img, s in sources.items() if s == source and img in with_bm3d}
        if not names:
            continue
        summary = summarize_methods(
            [r for r in rows if r["image"] in names], reference_method="bm3d"
        )
        out[source] = {
            "n": len(names),
            "methods": summary["methods"],
            "transfer": transfer_by_method(spectra, names),
        }
    return out


def condition_figure(result: dict[str, Any], path: Path) -> Path | None:
    """T(f) and residual NPS per method, one column per condition of an acceptance result (None
    without curves)."""
    return transfer_figure(
        [(c["label"], c.get("curves") or {}) for c in result["conditions"].values()], path
    )
