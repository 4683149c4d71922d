"""The adapt run's report page: checks on the first scans, examples, autocorrelation map."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.adapt.checks import CHECK_CROP, scan_checks
from pipeline.config import Config
from pipeline.image import ScanImage

#: Scans denoised for the report (the first ones in path order).
REPORT_SCANS = 12
#: Largest side of the report's example panels, and their number.
EXAMPLE_SIDE = 512
EXAMPLES = 3


def _thumbnail(pixels: np.ndarray) -> np.ndarray:
    step = max(1, -(-max(pixels.shape) // EXAMPLE_SIDE))
    return np.ascontiguousarray(pixels[::step, ::step], dtype=np.float32)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def write_adapt_report(
    model: torch.nn.Module,
    source: Path,
    images: list[ScanImage],
    record: dict[str, Any],
    run_dir: Path,
    device: torch.device,
    cfg: Config,
    source_outputs: list[np.ndarray] | None = None,
) -> Path:
    """Denoise the first scans with the adapted model, add the checks to `record`, write report.html.

    `source_outputs` (the source model's outputs of `images`, when already computed) are
    shown instead of denoising the examples with the source model again.
    """
    from pipeline import report
    from pipeline.checkpoint import load_model
    from pipeline.inference import ModelDenoiser
    from pipeline.train import read_log

    adapted = ModelDenoiser.from_settings(model, cfg.inference, device, "adapted")
    original = (
        None
        if source_outputs
        else ModelDenoiser.from_settings(
            load_model(source, device).model, cfg.inference, device, "source"
        )
    )
    rows, maps, examples = [], [], []
    for i, img in enumerate(images[:REPORT_SCANS]):
        out = adapted(img.pixels)
        checks = scan_checks(img.pixels, out)
        maps.append(checks.pop("removed_autocorrelation"))
        rows.append(
            {
                "scan": img.meta.name,
                "height": img.pixels.shape[0],
                "width": img.pixels.shape[1],
                **checks,
            }
        )
        if i < EXAMPLES:
            before = source_outputs[i] if source_outputs else original(img.pixels)
            outputs = {"source model": _thumbnail(before), "adapted": _thumbnail(out)}
            examples.append(
                {
                    "image": img.meta.name,
                    "clean": None,
                    "noisy": _thumbnail(img.pixels),
                    "outputs": outputs,
                }
            )
    record["report_scans"] = rows
    mean_map = np.nanmean(np.stack(maps), axis=0)
    record["removed_autocorrelation_mean_map"] = mean_map.round(4).tolist()
    summary = {
        k: _mean([r[k] for r in rows])
        for k in ("noise_before", "noise_after", "removed_lag1_rows", "removed_lag1_columns")
    }
    record["report_means"] = summary

    fig_dir = run_dir / "figures"
    figures = {
        "Scans: input, the source model's output, the adapted model's output; crop and residual (output minus input) of the first": report.example_panel_figure(
            examples, fig_dir / "examples.png"
        ),
        "Autocorrelation of the removed part (input minus output), mean over the report's scans; centre = lag 0": autocorrelation_figure(
            mean_map, fig_dir / "removed_autocorrelation.png"
        ),
    }
    log_rows = read_log(run_dir / "train_log.csv")
    if any(math.isfinite(r.get("train_loss", math.nan)) for r in log_rows):
        figures["Self-supervised training loss by epoch"] = report.loss_curve_figure(
            log_rows, fig_dir / "loss_curve.png"
        )
    header = [
        "scan",
        "size",
        "noise before",
        "noise after",
        "removed lag-1 rows",
        "removed lag-1 columns",
    ]
    table = (
        header,
        [
            [
                r["scan"],
                f"{r['height']}x{r['width']}",
                f"{r['noise_before']:.4f}",
                f"{r['noise_after']:.4f}",
                f"{r['removed_lag1_rows']:+.3f}",
                f"{r['removed_lag1_columns']:+.3f}",
            ]
            for r in rows
        ],
    )
    lines = [
        (
            f"Adapted {source.name} to {record['n_scans']} scans of {record['scans']} with the {record['method']} method "
            f"({_method_words(record)}); {_seconds_used(record):.0f} s of a {record['budget_minutes']:.1f} min budget "
            f"({record['seconds_preparing']:.0f} s reading and preparing, {record['seconds_this_run']:.0f} s training "
            f"in this run), {torch.get_num_threads()} threads."
        ),
        (
            f"Checks on the first {len(rows)} scans (central crop of at most {CHECK_CROP} pixels; removed = input − output). "
            f"Mean estimated noise {summary['noise_before']:.4f} before, {summary['noise_after']:.4f} after "
            "(wavelet MAD, [0, 1] units; it reads low on correlated noise)."
        ),
        (
            f"Removed part's autocorrelation at lag 1: {summary['removed_lag1_rows']:+.3f} along rows, "
            f"{summary['removed_lag1_columns']:+.3f} along columns. A detector's noise is correlated over a pixel or two "
            "(0 for white noise, up to about 0.7 for a strongly blurring detector) and vanishes beyond; correlation that "
            "stays high at larger lags in the map means the removed part holds structure, not noise."
        ),
    ]
    written = report.write_page(
        run_dir, f"Adapt: {record['method']} on {record['scans']}", lines, [table], figures
    )
    return written["html"]


def _seconds_used(record: dict[str, Any]) -> float:
    """Seconds of the budget used: earlier runs (a resumed run), preparing and training."""
    return (
        record["seconds_before_resume"]
        + record.get("seconds_preparing", 0.0)
        + record["seconds_this_run"]
    )


def _method_words(record: dict[str, Any]) -> str:
    """How the method learnt, for the report: no clean image either way."""
    if "noise_fit" not in record:
        return "self-supervised: no clean image is used"
    noise = record["noise_fit"]["noise"]
    words = "no clean image is used: references are the source model's outputs with noise fitted to the scans, "
    if noise["kind"] == "gaussian":
        return words + f"white Gaussian noise of sigma {noise['sigma'] * 255:.1f}/255"
    a = noise["kernel_a"] if isinstance(noise["kernel_a"], list) else [noise["kernel_a"]] * 2
    return words + (
        f"X-ray noise of {noise['photons'] * noise['dose']:.0f} quanta per unattenuated pixel, detector kernel a "
        f"{a[0]:.2f} along rows and {a[-1]:.2f} along columns, read noise {noise['read_noise']:.1f} counts, mu {noise['mu']:g}"
    )


def autocorrelation_figure(corr: np.ndarray, path: Path) -> Path:
    """The autocorrelation map as an image with its values written in."""
    from matplotlib.figure import Figure

    from pipeline.report import save_figure

    lags = corr.shape[0] // 2
    fig = Figure(figsize=(4.8, 4.2), layout="constrained")
    ax = fig.subplots()
    shown = ax.imshow(
        corr,
        cmap="RdBu_r",
        vmin=-1,
        vmax=1,
        extent=(-lags - 0.5, lags + 0.5, lags + 0.5, -lags - 0.5),
    )
    for (i, j), v in np.ndenumerate(corr):
        if math.isfinite(v):
            ax.text(j - lags, i - lags, f"{v:.2f}", ha="center", va="center", fontsize=6)
    ax.set(xlabel="column lag (px)", ylabel="row lag (px)")
    fig.colorbar(shown, ax=ax, shrink=0.8)
    return save_figure(fig, path)
