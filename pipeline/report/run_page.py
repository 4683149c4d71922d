"""The run page: ``summary.json``, ``report.md``, ``figures/`` and ``report.html``.

For an evaluated run (:mod:`pipeline.runner`), on :mod:`pipeline.report.results_page`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.config import Config
from pipeline.detail import band_transfer, by_method, curves
from pipeline.detail_figure import transfer_figure
from pipeline.evaluate import EvalResult, noise_given_by_method, read_spectra
from pipeline.ingest import DataSplits
from pipeline.records import write_json
from pipeline.report.example_figure import example_caption, example_panel_figure
from pipeline.report.figures import distribution_figure, loss_curve_figure
from pipeline.report.results_page import write_report_html
from pipeline.report.summaries import summarize_methods
from pipeline.report.tables import write_report_md

DETAIL_KEPT_CAPTION = (
    "Detail kept T(f) per method (the task transfer function on the content: 1 keeps all, lower "
    "smooths more; noise left in does not raise it; grey: the reported bands) and the noise "
    "power spectrum of each method's residual (output − clean)"
)


def write_run_report(
    cfg: Config,
    run_dir: Path,
    result: EvalResult,
    splits: DataSplits,
    train_log: list[dict[str, Any]],
    extra: dict[str, Any],
) -> tuple[dict[str, Any], Path]:
    """Write summary.json, report.md, figures/ and report.html of an evaluated run.

    report.html only with ``report.html: true``. Returns the summary and the report's path
    (report.md without the HTML).
    """
    spectra = by_method(read_spectra(run_dir / "spectra.jsonl"))
    summary = run_summary(cfg, run_dir, result, splits, extra, spectra)
    write_json(summary, run_dir / "summary.json")
    figures = _run_figures(cfg, run_dir, result, train_log, spectra)
    lines = _run_lines(cfg, splits, summary, train_log)
    write_report_md(summary, run_dir / "report.md", f"Run {cfg.run.name}", lines)
    html_path = run_dir / "report.html"
    if not cfg.report.html:
        return summary, run_dir / "report.md"
    env = json.loads((run_dir / "environment.json").read_text())
    facts = {
        "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "commit": env.get("commit") or "unknown (not a git checkout)",
        "version": env.get("package", ""),
        "run folder": str(run_dir),
    }
    write_report_html(html_path, f"Run {cfg.run.name}", summary, figures, lines, facts)
    return summary, html_path


def run_summary(
    cfg: Config,
    run_dir: Path,
    result: EvalResult,
    splits: DataSplits,
    extra: dict[str, Any],
    spectra: Mapping[str, Any],
) -> dict[str, Any]:
    """The run's ``summary.json``.

    :func:`summarize_methods` of the rows plus the run, data, noise, test-set size, `extra`, the
    noise given to baselines and the detail kept.
    """
    summary = summarize_methods(result.rows)
    summary["run"] = {"name": cfg.run.name, "seed": cfg.run.seed, "folder": str(run_dir)}
    summary["data"] = splits.description
    summary["noise"] = (cfg.evaluate.noise or cfg.noise).model_dump(mode="json")
    summary["n_test_images"] = len(splits.test)
    summary.update(extra)
    given = noise_given_by_method(result.rows)
    if given:
        summary["noise_given"] = given
    if spectra:
        summary["detail_kept"] = {m: band_transfer(s) for m, s in spectra.items()}
    return summary


def _run_figures(
    cfg: Config,
    run_dir: Path,
    result: EvalResult,
    train_log: list[dict[str, Any]],
    spectra: Mapping[str, Any],
) -> dict[str, Path]:
    """The run's figures in ``figures/``, keyed by caption."""
    figures: dict[str, Path] = {}
    fig_dir = run_dir / "figures"
    if result.examples and cfg.report.n_examples:
        examples = result.examples[: cfg.report.n_examples]
        figures[example_caption(examples)] = example_panel_figure(
            examples, fig_dir / "examples.png"
        )
    figures["PSNR and SSIM per image, by method"] = distribution_figure(
        result.rows, fig_dir / "distributions.png"
    )
    if spectra:
        curves_by_method = {m: curves(s) for m, s in spectra.items()}
        figures[DETAIL_KEPT_CAPTION] = transfer_figure(
            [("test images", curves_by_method)], fig_dir / "detail_kept.png"
        )
    if train_log:
        figures["Training loss and validation PSNR by epoch"] = loss_curve_figure(
            train_log, fig_dir / "loss_curve.png"
        )
    return figures


def _run_lines(
    cfg: Config, splits: DataSplits, summary: Mapping[str, Any], train_log: list[dict[str, Any]]
) -> list[str]:
    """The lines above the run's method table: data, noise, metrics, training, detail kept."""
    test_noise = (cfg.evaluate.noise or cfg.noise).kind
    lines = [
        f"Data: {splits.description}; {len(splits.test)} test images.",
        (
            f"Test noise: {test_noise} ({noise_description(cfg)}), seed {cfg.run.seed}; "
            "every method sees the same noisy images."
        ),
        "Metrics: PSNR (dB) and SSIM with data_range = each image's real range (pixels "
        "normalised to [0, 1] by it).",
    ]
    given = summary.get("noise_given")
    if given:
        lines.append(
            "Noise given to baselines: "
            + "; ".join(f"{name} the noise's {_given_words(kind)}" for name, kind in given.items())
            + "."
        )
    if train_log:
        last = train_log[-1]
        seconds = sum(r["seconds"] for r in train_log)
        lines.append(
            f"Training: {cfg.model.name}, {len(train_log)} epochs, final val PSNR "
            f"{last['val_psnr']:.2f} dB, {seconds:.0f} s."
        )
    if "detail_kept" in summary:
        lines.append(
            "Detail kept (pooled over the test images, per band of cycles/pixel): "
            + "; ".join(
                f"{m} "
                + ", ".join(
                    f"{band.removeprefix('T_')} {value:.3f}" for band, value in bands.items()
                )
                for m, bands in summary["detail_kept"].items()
            )
            + "."
        )
    return lines


def _given_words(kind: str) -> str:
    return (
        "power spectrum (PSD)" if kind == "psd" else "true std (sigma)" if kind == "sigma" else kind
    )


def noise_description(cfg: Config) -> str:
    """The test noise's parameters in words, e.g. ``sigma 0.098``."""
    return (cfg.evaluate.noise or cfg.noise).describe()
