"""The adapt run's report page: checks on the first scans, examples, autocorrelation map.

The page is a results page of :mod:`pipeline.report` (its HTML shell and its number
formatter); this module only gathers what the page shows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
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
#: The per-scan checks averaged over the report's scans (``report_means`` in adapt.json).
MEAN_CHECKS = ("noise_before", "noise_after", "removed_lag1_rows", "removed_lag1_columns")
#: Column headers of the report's table of scans.
SCAN_TABLE_HEADER = [
    "scan",
    "size",
    "noise before",
    "noise after",
    "removed lag-1 rows",
    "removed lag-1 columns",
]
EXAMPLES_CAPTION = (
    "Scans: input, the source model's output, the adapted model's output; "
    "crop and residual (output minus input) of the first"
)
AUTOCORRELATION_CAPTION = (
    "Autocorrelation of the removed part (input minus output), "
    "mean over the report's scans; centre = lag 0"
)

Denoise = Callable[[np.ndarray], np.ndarray]


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
    """Write the adapt run's report page in `run_dir`; its path (report.html).

    The first scans are denoised with the adapted model and checked; the checks go into
    `record` and on the page (with report.md and figures/). `source_outputs` (the source
    model's outputs of `images`, when already computed) are shown instead of denoising the
    examples with the source model again.
    """
    from pipeline.inference import ModelDenoiser
    from pipeline.report import write_page

    befores = _source_thumbnails(source, images, device, cfg, source_outputs)
    adapted = ModelDenoiser(model, cfg.inference, device, "adapted")
    rows, maps, examples = _check_scans(images, adapted, befores)
    mean_map = np.nanmean(np.stack(maps), axis=0)
    summary = {k: _mean([r[k] for r in rows]) for k in MEAN_CHECKS}
    record["report_scans"] = rows
    record["removed_autocorrelation_mean_map"] = mean_map.round(4).tolist()
    record["report_means"] = summary
    figures = _figures(run_dir, examples, mean_map)
    lines = _page_lines(source, record, len(rows), summary)
    title = f"Adapt: {record['method']} on {record['scans']}"
    return write_page(run_dir, title, lines, [_scan_table(rows)], figures)["html"]


def _source_thumbnails(
    source: Path,
    images: list[ScanImage],
    device: torch.device,
    cfg: Config,
    source_outputs: list[np.ndarray] | None,
) -> list[np.ndarray]:
    """Thumbnails of the source model's outputs of the first :data:`EXAMPLES` scans.

    The given `source_outputs` are used when there are any, else the scans are denoised
    with the source model now.
    """
    if not source_outputs:
        from pipeline.checkpoint import load_model
        from pipeline.inference import ModelDenoiser

        model = load_model(source, device).model
        original = ModelDenoiser(model, cfg.inference, device, "source")
        source_outputs = [original(img.pixels) for img in images[:EXAMPLES]]
    return [_thumbnail(out) for out in source_outputs[:EXAMPLES]]


def _check_scans(
    images: list[ScanImage], adapted: Denoise, befores: list[np.ndarray]
) -> tuple[list[dict[str, Any]], list[np.ndarray], list[dict[str, Any]]]:
    """Check the first :data:`REPORT_SCANS` scans denoised by the adapted model.

    Returns the checks (one row per scan), the removed parts' autocorrelation maps and the
    example panels (the first scans, with `befores` as the source model's outputs).
    """
    rows, maps, examples = [], [], []
    for i, img in enumerate(images[:REPORT_SCANS]):
        out = adapted(img.pixels)
        checks = scan_checks(img.pixels, out)
        maps.append(checks.pop("removed_autocorrelation"))
        height, width = img.pixels.shape[:2]
        rows.append({"scan": img.meta.name, "height": height, "width": width, **checks})
        if i < EXAMPLES:
            outputs = {"source model": befores[i], "adapted": _thumbnail(out)}
            noisy = _thumbnail(img.pixels)
            examples.append(
                {"image": img.meta.name, "clean": None, "noisy": noisy, "outputs": outputs}
            )
    return rows, maps, examples


def _figures(
    run_dir: Path, examples: list[dict[str, Any]], mean_map: np.ndarray
) -> dict[str, Path]:
    """Draw the page's figures in ``figures/``; the files keyed by caption.

    The figures are the examples, the mean autocorrelation map and, when the run logged
    one, the training loss.
    """
    from pipeline.report import example_panel_figure, loss_curve_figure
    from pipeline.train import read_log

    fig_dir = run_dir / "figures"
    figures = {
        EXAMPLES_CAPTION: example_panel_figure(examples, fig_dir / "examples.png"),
        AUTOCORRELATION_CAPTION: autocorrelation_figure(
            mean_map, fig_dir / "removed_autocorrelation.png"
        ),
    }
    log_rows = read_log(run_dir / "train_log.csv")
    if any(math.isfinite(r.get("train_loss", math.nan)) for r in log_rows):
        figures["Self-supervised training loss by epoch"] = loss_curve_figure(
            log_rows, fig_dir / "loss_curve.png"
        )
    return figures


def _scan_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """The table of scans: size, noise before and after, removed part's lag-1 correlation."""
    from pipeline.report import format_number

    return SCAN_TABLE_HEADER, [
        [
            r["scan"],
            f"{r['height']}x{r['width']}",
            format_number(r["noise_before"], 4),
            format_number(r["noise_after"], 4),
            format_number(r["removed_lag1_rows"], 3, signed=True),
            format_number(r["removed_lag1_columns"], 3, signed=True),
        ]
        for r in rows
    ]


def _page_lines(
    source: Path, record: Mapping[str, Any], n_checked: int, summary: Mapping[str, float]
) -> list[str]:
    """The paragraphs above the table: what was adapted how, the checks and how to read them."""
    from pipeline.report import format_number

    return [
        (
            f"Adapted {source.name} to {record['n_scans']} scans of {record['scans']} "
            f"with the {record['method']} method ({_method_words(record)}); "
            f"{format_number(_seconds_used(record), 0)} s of a "
            f"{format_number(record['budget_minutes'], 1)} min budget "
            f"({format_number(record['seconds_preparing'], 0)} s reading and preparing, "
            f"{format_number(record['seconds_this_run'], 0)} s training in this run), "
            f"{torch.get_num_threads()} threads."
        ),
        (
            f"Checks on the first {n_checked} scans (central crop of at most {CHECK_CROP} "
            "pixels; removed = input − output). Mean estimated noise "
            f"{format_number(summary['noise_before'], 4)} before, "
            f"{format_number(summary['noise_after'], 4)} after "
            "(wavelet MAD, [0, 1] units; it reads low on correlated noise)."
        ),
        (
            "Removed part's autocorrelation at lag 1: "
            f"{format_number(summary['removed_lag1_rows'], 3, signed=True)} along rows, "
            f"{format_number(summary['removed_lag1_columns'], 3, signed=True)} along columns. "
            "A detector's noise is correlated over a pixel or two (0 for white noise, up to "
            "about 0.7 for a strongly blurring detector) and vanishes beyond; correlation "
            "that stays high at larger lags in the map means the removed part holds "
            "structure, not noise."
        ),
    ]


def _seconds_used(record: Mapping[str, Any]) -> float:
    """Seconds of the budget used: earlier runs (a resumed run), preparing and training."""
    return (
        record["seconds_before_resume"]
        + record.get("seconds_preparing", 0.0)
        + record["seconds_this_run"]
    )


def _method_words(record: Mapping[str, Any]) -> str:
    """How the method learnt, for the report: no clean image either way."""
    from pipeline.report import format_number

    if "noise_fit" not in record:
        return "self-supervised: no clean image is used"
    noise = record["noise_fit"]["noise"]
    words = (
        "no clean image is used: references are the source model's outputs "
        "with noise fitted to the scans, "
    )
    if noise["kind"] == "gaussian":
        return words + f"white Gaussian noise of sigma {format_number(noise['sigma'] * 255, 1)}/255"
    a = noise["kernel_a"] if isinstance(noise["kernel_a"], list) else [noise["kernel_a"]] * 2
    return words + (
        f"X-ray noise of {format_number(noise['photons'] * noise['dose'], 0)} quanta per "
        f"unattenuated pixel, detector kernel a {format_number(a[0], 2)} along rows and "
        f"{format_number(a[-1], 2)} along columns, read noise "
        f"{format_number(noise['read_noise'], 1)} counts, mu {noise['mu']:g}"
    )


def autocorrelation_figure(corr: np.ndarray, path: Path) -> Path:
    """The autocorrelation map as an image with its values written in."""
    from matplotlib.figure import Figure

    from pipeline.report import format_number, save_figure

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
            ax.text(j - lags, i - lags, format_number(v), ha="center", va="center", fontsize=6)
    ax.set(xlabel="column lag (px)", ylabel="row lag (px)")
    fig.colorbar(shown, ax=ax, shrink=0.8)
    return save_figure(fig, path)
