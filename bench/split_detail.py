"""What the acceptance tables say beyond pooled PSNR/SSIM: detail kept, per-source leads, spectra figures.

Detail kept is the task transfer function of :mod:`pipeline.detail`, pooled over the images of a
table from each condition's ``spectra.jsonl``. Per source, each method's mean PSNR lead over BM3D
with its paired 95% CI on the images of that source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.detail import BANDS, band_transfer, pooled_transfer
from pipeline.evaluate import read_spectra
from pipeline.image import ScanImage
from pipeline.report import summarize_methods


def source_of(image: ScanImage) -> str:
    """The site or collection an image comes from: ``meta.extra['source']``, else its folder's name."""
    source = image.meta.extra.get("source") if image.meta.extra else None
    if source:
        return str(source)
    return image.meta.source.parent.name if image.meta.source is not None else ""


def transfer_by_method(work: Path, images: set[str]) -> dict[str, dict[str, float]]:
    """Pooled detail kept per band for each method, over `images` (methods without spectra left out)."""
    spectra = read_spectra(work / "spectra.jsonl")
    methods = sorted({m for (img, m) in spectra if img in images})
    return {m: band_transfer([s for (img, name), s in spectra.items() if name == m and img in images]) for m in methods}


def transfer_curves(work: Path, images: set[str]) -> dict[str, dict[str, list[float]]]:
    """Per method: frequency, T(f) and the residual's noise power spectrum, pooled over `images`."""
    spectra = read_spectra(work / "spectra.jsonl")
    curves = {}
    for m in sorted({m for (img, m) in spectra if img in images}):
        pooled = pooled_transfer([s for (img, name), s in spectra.items() if name == m and img in images])
        curves[m] = {k: [None if not np.isfinite(v) else float(v) for v in pooled[k]] for k in ("frequency", "transfer", "nps")}
    return curves


def by_source(rows: list[dict[str, Any]], sources: dict[str, str], work: Path) -> dict[str, Any]:
    """Per source: each method's PSNR/SSIM summary against BM3D and its detail kept, on the images with BM3D."""
    out: dict[str, Any] = {}
    with_bm3d = {r["image"] for r in rows if r["method"] == "bm3d"}
    for source in sorted(set(sources.values())):
        names = {img for img, s in sources.items() if s == source and img in with_bm3d}
        if not names:
            continue
        summary = summarize_methods([r for r in rows if r["image"] in names], reference_method="bm3d")
        out[source] = {"n": len(names), "methods": summary["methods"], "transfer": transfer_by_method(work, names)}
    return out


def transfer_figure(result: dict[str, Any], path: Path) -> Path | None:
    """T(f) and residual NPS per method, one column per condition, into a PNG (None without curves)."""
    conditions = [(c["label"], c["curves"]) for c in result["conditions"].values() if c.get("curves")]
    if not conditions:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(conditions), figsize=(4 * len(conditions), 6.5), squeeze=False)
    for col, (label, curves) in enumerate(conditions):
        for method, c in curves.items():
            f = np.asarray(c["frequency"], float)
            axes[0, col].plot(f, np.asarray(c["transfer"], float), label=method)
            axes[1, col].semilogy(f, np.asarray(c["nps"], float), label=method)
        axes[0, col].set_title(label, fontsize=9)
        for lo, hi in BANDS:
            axes[0, col].axvspan(lo, hi, alpha=0.06 if (lo, hi) != BANDS[1] else 0.15, color="grey")
        axes[0, col].set_ylim(0, 1.2)
        axes[1, col].set_xlabel("cycles / pixel")
    axes[0, 0].set_ylabel("detail kept T(f)")
    axes[1, 0].set_ylabel("NPS of output - clean")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
