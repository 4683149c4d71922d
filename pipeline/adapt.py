"""``denoise adapt``: fine-tune a model on a user's own noisy scans, without clean images.

The scans are read with the same readers as ``denoise apply`` (any format and size, DICOM
MONOCHROME1 shown the usual way round). A model (default: the shipped one) is fine-tuned on
random patches of the scans for a time budget, by one of three methods:

- ``blindspot`` and ``subsample``: self-supervised objectives on the noisy patches
  (:mod:`pipeline.selfsupervised`);
- ``fitted``: a noise model (``xray``, or white ``gaussian`` when that matches better) is
  fitted to the scans (:mod:`pipeline.noisefit`), and the model learns, supervised, to map the source model's denoised scans with that
  noise added back to the denoised scans. The references are the source model's outputs,
  never clean images; what the model learns is the scans' own noise on the scans' own
  anatomy.
 The result is an ordinary run folder::

    RUN_DIR/config.yaml            resolved config (the source model's, with the adapt settings)
    RUN_DIR/environment.json       versions, threads, load average at the start
    RUN_DIR/checkpoints/{last,best}.pt
    RUN_DIR/train_log.csv
    RUN_DIR/adapt.json             scans, noise estimates, checks, timing
    RUN_DIR/report.html, report.md, figures/

so that ``denoise apply --model RUN_DIR`` uses the adapted model. Killed runs resume: the
same command on the same RUN_DIR continues from ``last.pt`` with the time that is left.

The time budget covers everything before the report: reading the scans, the ``fitted``
method's references and noise fit (which stops at :data:`FIT_SHARE` of the budget with the
best parameters so far) and training (checked after each short epoch of :data:`EPOCH_PATCHES` patches).

Checks without a clean reference (per scan, on the central crop of at most
:data:`CHECK_CROP` pixels a side; ``removed`` = input − output):

- noise estimate (wavelet MAD) of the input and of the output;
- autocorrelation of ``removed`` at lag 1 along rows and along columns (and a small map):
  the detector's noise is correlated over a pixel or two and no further; a removed part
  correlated far beyond that holds structure, not noise.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.config import Config, apply_overrides, config_from_dict, save_config
from pipeline.errors import PipelineError, given_path
from pipeline.image import ScanImage, center_crop
from pipeline.records import write_json

#: Adapt methods (``--method``, ``train.objective``).
ADAPT_METHODS = ("blindspot", "subsample", "fitted")
#: Method used when none is named (see benchmarks/adapt.md).
DEFAULT_METHOD = "fitted"
#: Patches per epoch (rounded up to whole patches per scan). An epoch is the unit of
#: checkpoints, resume and the time check, so it is kept short; on 2 cores shared with a
#: dozen other processes one took 102-397 s (benchmarks/adapt.md).
EPOCH_PATCHES = 64
#: Upper bound of epochs; the time budget ends adapting long before.
MAX_EPOCHS = 100_000
#: Side of the central crop the noise estimates and checks are computed on.
CHECK_CROP = 1024
#: Scans denoised for the report (the first ones in path order).
REPORT_SCANS = 12
#: Largest side of the report's example panels, and their number.
EXAMPLE_SIDE = 512
EXAMPLES = 3
#: Training seconds given to a new run whose time budget was used up before training (the loop
#: checks the budget after each epoch, so this means one epoch).
MIN_TRAIN_SECONDS = 1e-3

#: Share of the time budget the ``fitted`` method's noise fit may use at most.
FIT_SHARE = 0.5
#: Half-width of the removed part's autocorrelation map.
MAP_LAGS = 4
#: Settings adapt puts over the source model's config (`overrides` come on top).
ADAPT_SETTINGS = [
    "run.stages=[train]", "data.kind=folder", "data.val_fraction=0.0", "data.test_fraction=0.0",
    "data.test_root=null", "data.patch_size=128", "data.min_patch_std=0.0", "data.augment=true",
    "data.max_clean_noise=null", "data.train_scales=[1.0]", "data.resize=null",
    "train.batch_size=4", "train.loss=mse", "train.loss_weighting=none", "train.optimizer=adam",
    "train.lr=0.0001", "train.weight_decay=0.0", "train.schedule=none", "train.grad_clip=1.0",
    "train.validate_every=1", "train.early_stop_patience=null", "train.workers=0",
    f"train.epochs={MAX_EPOCHS}", "evaluate.baselines=[]", "evaluate.models=[]", "evaluate.noise=null",
]


class AsIs:
    """The 'noise model' of scans that are noisy already: they go to training unchanged."""

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(clean, np.float32)

    def std(self, clean: np.ndarray) -> float:
        return 0.0


@dataclass
class AdaptResult:
    """What adapting produced."""

    run_dir: Path
    checkpoint: Path
    report: Path
    record: dict[str, Any]


# --------------------------------------------------------------------------- checks


def noise_level(pixels: np.ndarray) -> float:
    """Estimated noise std (wavelet MAD, [0, 1] units) on the central crop.

    It is made for white noise: on correlated noise it reads low, since the finest wavelet
    band holds only part of that noise's power.
    """
    from pipeline.metrics import estimate_noise_sigma

    return estimate_noise_sigma(center_crop(pixels, CHECK_CROP))


def autocorrelation_map(values: np.ndarray, lags: int = MAP_LAGS) -> np.ndarray:
    """Normalised autocorrelation of `values` for row and column lags in [-lags, lags] (centre 1)."""
    x = center_crop(values, CHECK_CROP).astype(np.float64)
    x = x - x.mean()
    h, w = x.shape
    spectrum = np.fft.rfft2(x, s=(2 * h, 2 * w))  # zero padded: linear, not circular, correlation
    corr = np.fft.irfft2(np.abs(spectrum) ** 2, s=(2 * h, 2 * w))
    corr = np.fft.fftshift(corr)[h - lags : h + lags + 1, w - lags : w + lags + 1]
    return corr / corr[lags, lags] if corr[lags, lags] > 0 else np.full_like(corr, np.nan)


def scan_checks(noisy: np.ndarray, output: np.ndarray) -> dict[str, Any]:
    """Noise before/after and the removed part's lag-1 autocorrelations."""
    removed = noisy - output
    corr = autocorrelation_map(removed)
    c = MAP_LAGS
    return {
        "noise_before": noise_level(noisy),
        "noise_after": noise_level(output),
        "removed_std": float(center_crop(removed, CHECK_CROP).std()),
        "removed_lag1_rows": float(corr[c + 1, c]),  # neighbour one row down
        "removed_lag1_columns": float(corr[c, c + 1]),  # neighbour one column right
        "removed_autocorrelation": corr,
    }


# --------------------------------------------------------------------------- set-up


def _load_scans(scans: Path) -> tuple[list[ScanImage], list]:
    from pipeline.ingest.folder import load_folder

    images, failures = load_folder(scans)
    if not images:
        why = f"; {len(failures)} could not be read (first: {failures[0].reason})" if failures else ""
        raise PipelineError(f"no readable scans under {scans}{why}: give a folder of PNG/JPEG/TIFF/DICOM/NIfTI scans")
    return images, failures


def adapt_config(
    source: Path, scans: Path, run_dir: Path, method: str, minutes: float, seed: int,
    threads: int | None, progress: bool, n_images: int, overrides: list[str],
) -> Config:
    """The source model's config with the adapt settings (resolved and validated)."""
    from pipeline.checkpoint import read_checkpoint

    raw = read_checkpoint(source, "--from")["config"]
    per_image = max(1, math.ceil(EPOCH_PATCHES / n_images))
    apply_overrides(raw, [
        *ADAPT_SETTINGS, "run.name=adapt", f"run.seed={seed}", f"run.output_dir={run_dir.parent}",
        f"run.threads={'null' if threads is None else threads}", f"data.root={scans}",
        f"data.patches_per_image={per_image}", f"train.objective={method}",
        f"train.init_from={source}", "train.resume=null", f"train.max_train_seconds={minutes * 60}",
        f"train.progress={str(progress).lower()}",
    ])
    apply_overrides(raw, overrides)
    cfg = config_from_dict(raw, "adapt settings")
    if cfg.model.name == "dense":
        raise PipelineError(f"{source} is a dense model of fixed image size; adapt needs a convolutional model (unet, dncnn, conv)")
    return cfg


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    """A config without the fields a resumed run may change (budget, resume point, progress, threads)."""
    cfg = json.loads(json.dumps(cfg))
    for section, key in (("train", "resume"), ("train", "max_train_seconds"), ("train", "progress"), ("run", "threads")):
        cfg.get(section, {}).pop(key, None)
    return cfg


def _resume_point(cfg: Config, run_dir: Path) -> tuple[Path | None, float]:
    """(last.pt to resume from or None, seconds already spent) for a RUN_DIR that may hold a killed run."""
    last = run_dir / "checkpoints" / "last.pt"
    if not last.is_file():
        if run_dir.is_dir() and any(p.name not in ("config.yaml", "environment.json", "checkpoints") for p in run_dir.iterdir()):
            raise PipelineError(f"{run_dir} is not empty and holds no adapt checkpoint: give a new or empty folder as -o")
        return None, 0.0
    from pipeline.checkpoint import read_checkpoint

    ckpt = read_checkpoint(last, "adapt resume")
    if _comparable(ckpt.get("config", {})) != _comparable(cfg.to_dict()):
        raise PipelineError(
            f"{run_dir} holds an adapt run with other settings (scans, model, method or options); "
            "give a new folder as -o, or the same options to resume it"
        )
    spent = sum(float(row["seconds"]) for row in ckpt.get("state", {}).get("log", []))
    return last, spent


def _environment() -> dict[str, Any]:
    from pipeline.runner import environment

    env = environment()
    if hasattr(os, "getloadavg"):
        env["load_average_1_5_15_min"] = list(os.getloadavg())
    return env


# --------------------------------------------------------------------------- adapt


def adapt(
    scans: str | Path, run_dir: str | Path, source: str | Path | None = None, method: str = DEFAULT_METHOD,
    minutes: float = 15.0, seed: int = 0, threads: int | None = None, device: str = "auto",
    progress: bool = True, overrides: list[str] | None = None,
) -> AdaptResult:
    """Fine-tune `source` (default: the shipped model) on the noisy `scans` alone; see the module docstring."""
    from pipeline.checkpoint import checkpoint_path
    from pipeline.inference import resolve_device
    from pipeline.noise import make_noise
    from pipeline.train import read_log, train

    if minutes <= 0:
        raise PipelineError(f"--minutes must be positive, got {minutes}")
    began = time.perf_counter()  # the budget counts from here: reading, references, noise fit, training
    scans = Path(given_path(scans, "the scan folder (-i)"))
    run_dir = Path(given_path(run_dir, "the run folder (-o)"))
    if not scans.exists():
        raise PipelineError(f"scan folder not found: {scans}")
    source_path = checkpoint_path(source)
    if threads:
        torch.set_num_threads(threads)
    images, failures = _load_scans(scans)
    cfg = adapt_config(source_path, scans, run_dir, method, minutes, seed, threads, progress, len(images), list(overrides or []))
    if cfg.train.objective not in ADAPT_METHODS:
        raise PipelineError(f"adapt has no clean images: choose one of {', '.join(ADAPT_METHODS)} (not {cfg.train.objective})")
    dev = resolve_device(device)
    fit_record, fit_seconds, source_outputs = None, 0.0, None
    if cfg.train.objective == "fitted":  # its references and noise fit count against the budget
        prepared = time.perf_counter()
        deadline = began + FIT_SHARE * minutes * 60
        train_pixels, fit_record = _fitted_references(images, source_path, cfg, run_dir, dev, seed, deadline)
        source_outputs = train_pixels  # the source model's outputs: the report shows them too
        noise_model = make_noise(cfg.noise)
        fit_seconds = time.perf_counter() - prepared
    else:
        train_pixels, noise_model = [img.pixels for img in images], AsIs()
    resume, spent = _resume_point(cfg, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume is not None:
        cfg.train.resume = resume
    save_config(cfg, run_dir / "config.yaml")
    write_json(_environment(), run_dir / "environment.json")
    if failures:
        from pipeline.ingest.failures import write_failures_csv

        write_failures_csv(failures, run_dir / "failures.csv")
    before = [noise_level(img.pixels) for img in images]
    prepare_seconds = time.perf_counter() - began
    remaining = minutes * 60 - spent - prepare_seconds
    t0 = time.perf_counter()
    if remaining > 0 or resume is None:  # a new run trains at least one epoch, even if preparing used the budget
        cfg.train.max_train_seconds = max(remaining, MIN_TRAIN_SECONDS)
        words = f"resuming after {spent:.0f} s" if resume is not None else "starting"
        left = f"up to {remaining / 60:.1f} min left" if remaining > 0 else "one epoch (preparing used the time budget)"
        print(f"adapt: {words}; {len(images)} scans, {cfg.train.objective}, {left}")
        out = train(cfg, train_pixels, [], noise_model, run_dir, dev)
        model = out.model
    else:  # the budget was spent before a kill: nothing left to train
        from pipeline.checkpoint import load_model

        model = load_model(run_dir, dev).model
    train_seconds = time.perf_counter() - t0
    record = _record(cfg, source_path, scans, images, before, failures, minutes, spent, train_seconds)
    record["epochs"] = len(read_log(run_dir / "train_log.csv"))
    if fit_record is not None:
        record["noise_fit"] = {**fit_record, "seconds": fit_seconds}
    record["seconds_preparing"] = prepare_seconds
    report = write_adapt_report(model, source_path, images, record, run_dir, dev, cfg, source_outputs)
    write_json(record, run_dir / "adapt.json")
    return AdaptResult(run_dir, run_dir / "checkpoints" / "best.pt", report, record)


def _fitted_references(
    images: list[ScanImage], source: Path, cfg: Config, run_dir: Path, device: torch.device, seed: int,
    deadline: float | None = None,
) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The source model's denoised scans (the ``fitted`` method's references) and the noise fit; sets ``cfg.noise``.

    A resumed run takes the noise from its checkpoint instead of fitting it again, so it
    goes on with the noise it started with.
    """
    from pipeline.checkpoint import load_model, read_checkpoint
    from pipeline.config import noise_config
    from pipeline.inference import ModelDenoiser
    from pipeline.noisefit import FIT_SCANS, fit_noise

    denoiser = ModelDenoiser.from_settings(load_model(source, device).model, cfg.inference, device, "source")
    references = [denoiser(img.pixels) for img in images]
    last = run_dir / "checkpoints" / "last.pt"
    saved = read_checkpoint(last, "adapt resume").get("config", {}).get("noise") if last.is_file() else None
    if saved:
        cfg.noise = noise_config(saved)
        return references, {"noise": cfg.noise.model_dump(mode="json", exclude_none=True), "from": "the resumed run's checkpoint"}
    left = "" if deadline is None else f", for at most {max(deadline - time.perf_counter(), 0):.0f} s"
    print(f"adapt: fitting the noise of {min(len(images), FIT_SCANS)} scans{left}")
    fit = fit_noise([img.pixels for img in images], denoiser, cfg.noise, seed, deadline)
    cfg.noise = fit.noise
    return references, fit.to_dict()


def _record(
    cfg: Config, source: Path, scans: Path, images: list[ScanImage], before: list[float], failures: list,
    minutes: float, spent: float, seconds: float,
) -> dict[str, Any]:
    return {
        "source_model": str(source),
        "scans": str(scans),
        "method": cfg.train.objective,
        "self_supervised": cfg.train.self_supervised.model_dump(mode="json"),
        "budget_minutes": minutes,
        "seconds_before_resume": spent,
        "seconds_this_run": seconds,
        "patches_per_epoch": cfg.data.patches_per_image * len(images),
        "threads": torch.get_num_threads(),
        "n_scans": len(images),
        "n_failed": len(failures),
        "noise_estimate_before": {img.meta.name: b for img, b in zip(images, before)},
        "noise_estimate_before_mean": float(np.mean(before)),
    }


# --------------------------------------------------------------------------- report


def _thumbnail(pixels: np.ndarray) -> np.ndarray:
    step = max(1, -(-max(pixels.shape) // EXAMPLE_SIDE))
    return np.ascontiguousarray(pixels[::step, ::step], dtype=np.float32)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def write_adapt_report(
    model: torch.nn.Module, source: Path, images: list[ScanImage], record: dict[str, Any], run_dir: Path,
    device: torch.device, cfg: Config, source_outputs: list[np.ndarray] | None = None,
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
    original = None if source_outputs else ModelDenoiser.from_settings(load_model(source, device).model, cfg.inference, device, "source")
    rows, maps, examples = [], [], []
    for i, img in enumerate(images[:REPORT_SCANS]):
        out = adapted(img.pixels)
        checks = scan_checks(img.pixels, out)
        maps.append(checks.pop("removed_autocorrelation"))
        rows.append({"scan": img.meta.name, "height": img.pixels.shape[0], "width": img.pixels.shape[1], **checks})
        if i < EXAMPLES:
            before = source_outputs[i] if source_outputs else original(img.pixels)
            outputs = {"source model": _thumbnail(before), "adapted": _thumbnail(out)}
            examples.append({"image": img.meta.name, "clean": None, "noisy": _thumbnail(img.pixels), "outputs": outputs})
    record["report_scans"] = rows
    mean_map = np.nanmean(np.stack(maps), axis=0)
    record["removed_autocorrelation_mean_map"] = mean_map.round(4).tolist()
    summary = {k: _mean([r[k] for r in rows]) for k in ("noise_before", "noise_after", "removed_lag1_rows", "removed_lag1_columns")}
    record["report_means"] = summary

    fig_dir = run_dir / "figures"
    figures = {
        "Scans: input, the source model's output, the adapted model's output; crop and residual (output minus input) of the first":
            report.example_panel_figure(examples, fig_dir / "examples.png"),
        "Autocorrelation of the removed part (input minus output), mean over the report's scans; centre = lag 0":
            autocorrelation_figure(mean_map, fig_dir / "removed_autocorrelation.png"),
    }
    log_rows = read_log(run_dir / "train_log.csv")
    if any(math.isfinite(r.get("train_loss", math.nan)) for r in log_rows):
        figures["Self-supervised training loss by epoch"] = report.loss_curve_figure(log_rows, fig_dir / "loss_curve.png")
    header = ["scan", "size", "noise before", "noise after", "removed lag-1 rows", "removed lag-1 columns"]
    table = (header, [
        [r["scan"], f"{r['height']}x{r['width']}", f"{r['noise_before']:.4f}", f"{r['noise_after']:.4f}",
         f"{r['removed_lag1_rows']:+.3f}", f"{r['removed_lag1_columns']:+.3f}"]
        for r in rows
    ])
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
    written = report.write_page(run_dir, f"Adapt: {record['method']} on {record['scans']}", lines, [table], figures)
    return written["html"]


def _seconds_used(record: dict[str, Any]) -> float:
    """Seconds of the budget used: earlier runs (a resumed run), preparing and training."""
    return record["seconds_before_resume"] + record.get("seconds_preparing", 0.0) + record["seconds_this_run"]


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
    shown = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1, extent=(-lags - 0.5, lags + 0.5, lags + 0.5, -lags - 0.5))
    for (i, j), v in np.ndenumerate(corr):
        if math.isfinite(v):
            ax.text(j - lags, i - lags, f"{v:.2f}", ha="center", va="center", fontsize=6)
    ax.set(xlabel="column lag (px)", ylabel="row lag (px)")
    fig.colorbar(shown, ax=ax, shrink=0.8)
    return save_figure(fig, path)


def add_adapt_arguments(parser: Any) -> None:
    """Options of ``denoise adapt``."""
    parser.add_argument("-i", "--input", required=True, help="folder of noisy scans (anything `denoise apply` reads)")
    parser.add_argument("-o", "--output", required=True, help="run folder to write (rerun on it to resume after a kill)")
    parser.add_argument("--from", dest="source", type=Path, help="checkpoint or run folder to start from (default: the shipped model)")
    parser.add_argument("--method", default=DEFAULT_METHOD, choices=ADAPT_METHODS, help=f"adapt method (default: {DEFAULT_METHOD}; see the README)")
    parser.add_argument("--minutes", type=float, default=15.0,
                        help="time budget in minutes for reading, preparing and training; the report comes after it (default: 15)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set train.lr=0.0003 or --set train.self_supervised.span=[0,2]")


def adapt_from_args(args: Any) -> int:
    result = adapt(
        args.input, args.output, args.source, args.method, args.minutes, args.seed, args.threads,
        args.device, not args.no_progress, args.overrides,
    )
    means = result.record["report_means"]
    print(
        f"noise estimate {means['noise_before']:.4f} -> {means['noise_after']:.4f}; removed lag-1 autocorrelation {means['removed_lag1_rows']:+.3f} (rows), "
        f"{means['removed_lag1_columns']:+.3f} (columns)"
    )
    print(f"run folder: {result.run_dir}  (use it with: denoise apply --model {result.run_dir})")
    print(f"report: {result.report}")
    return 0


