"""Evaluation: every method on the same clean images and the same seeded noise.

A method is a function from a noisy float32 (H, W) image in [0, 1] to its denoised version:
a trained model (:class:`pipeline.denoise.ModelDenoiser`) or a classical baseline
(:mod:`pipeline.baselines`). Pixels are normalised by each image's real range (e.g. 4095
for 12-bit data), so metrics use ``data_range=1.0`` in these units, which is that range.

Rows are appended to ``metrics.csv`` as they are computed; rerunning on the same folder
skips (image, method) pairs already there, so an interrupted evaluation resumes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.baselines import make_baseline
from pipeline.image import ScanImage
from pipeline.metrics import psnr, ssim
from pipeline.noise import NoiseModel, noise_rng
from pipeline.records import append_csv_row, columns_of, parse_cell, read_csv, write_csv

#: Baselines that are given the noise's true standard deviation (others estimate it).
SIGMA_GIVEN = ("bm3d", "tv")
#: The first columns of ``metrics.csv`` (extra keys of a row follow them).
METRIC_COLUMNS: tuple[str, ...] = ("image", "method", "psnr", "ssim", "seconds")
#: Columns kept as text when ``metrics.csv`` is read back.
TEXT_COLUMNS: tuple[str, ...] = ("image", "method")


def write_metrics_csv(rows: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write all rows (replacing the file atomically); columns: the standard ones, then extras."""
    rows = list(rows)
    return write_csv(rows, path, columns_of(rows, METRIC_COLUMNS))


def append_metrics_row(row: Mapping[str, Any], path: str | Path) -> Path:
    """Append one row (finished rows survive an interrupted evaluation); a new key widens the header."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return write_metrics_csv([row], path)
    return append_csv_row(row, path)


def read_metrics_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a metrics CSV; numbers parsed back, empty cells None, ids kept as strings."""
    return [
        {k: (v or "") if k in TEXT_COLUMNS else parse_cell(v) for k, v in row.items()}
        for row in read_csv(path)
    ]
#: Baselines given the noise power spectrum instead when the noise model has one (correlated noise).
PSD_GIVEN = ("bm3d",)


@dataclass
class Method:
    """A named denoiser. ``fn(noisy, sigma)`` gets the noise's true std (baselines may use it).

    ``psd_fn(noisy, psd)``, when set, is used instead for noise models that have a power
    spectrum (``noise.psd``, e.g. correlated X-ray noise); rows record which one ran.
    """

    name: str
    fn: Callable[[np.ndarray, float], np.ndarray]
    kind: str = "model"  # "input", "model" or "baseline"
    psd_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


def noisy_input_method() -> Method:
    """The noisy image itself, as the reference row every table starts from."""
    return Method("noisy", lambda noisy, sigma: noisy, "input")


def baseline_method(name: str) -> Method:
    """A classical baseline by name (bm3d, nlm, tv, wavelet, median)."""
    make_baseline(name, 0.1)  # fail early on unknown names or a missing package
    if name in SIGMA_GIVEN:
        psd_fn = (lambda noisy, psd: make_baseline(name, psd=psd)(noisy)) if name in PSD_GIVEN else None
        return Method(name, lambda noisy, sigma: make_baseline(name, sigma)(noisy), "baseline", psd_fn)
    fn = make_baseline(name, None)
    return Method(name, lambda noisy, sigma: fn(noisy), "baseline")


def model_method(name: str, denoiser: Callable[[np.ndarray], np.ndarray]) -> Method:
    return Method(name, lambda noisy, sigma: denoiser(noisy), "model")


@dataclass
class EvalResult:
    """Metric rows (one per image and method) and a few examples for the figures."""

    rows: list[dict[str, Any]]
    examples: list[dict[str, Any]] = field(default_factory=list)
    methods: list[Method] = field(default_factory=list)


def evaluate(
    images: list[ScanImage], noise: NoiseModel, seed: int, methods: list[Method], out_dir: Path,
    n_examples: int = 8, progress: bool = True,
) -> EvalResult:
    """Run every method on every image; append rows to ``out_dir/metrics.csv`` as they come."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "metrics.csv"
    done = {(r["image"], r["method"]) for r in read_metrics_csv(csv_path)} if csv_path.exists() else set()
    examples: list[dict[str, Any]] = []
    names = _unique_names(images)
    for index, (img, name) in enumerate(tqdm(list(zip(images, names)), desc="evaluate", disable=not progress)):
        clean = img.pixels
        noisy = noise(clean, noise_rng(seed, "test", 0, index))
        sigma = noise.std(clean)
        psd = _noise_psd(noise, clean, methods)
        keep = index < n_examples
        example = {"image": name, "clean": clean, "noisy": noisy, "outputs": {}}
        for method in methods:
            if (name, method.name) in done and not keep:
                continue
            given = noise_given(method, psd is not None)
            t0 = time.perf_counter()
            raw = method.psd_fn(noisy, psd) if given == "psd" else method.fn(noisy, sigma)  # type: ignore[misc]
            out = np.clip(raw, 0.0, 1.0).astype(np.float32)
            seconds = time.perf_counter() - t0
            if method.kind != "input":
                example["outputs"][method.name] = out
            if (name, method.name) in done:
                continue
            row = {
                "image": name, "method": method.name, "kind": method.kind,
                "psnr": psnr(clean, out, data_range=1.0), "ssim": ssim(clean, out, data_range=1.0),
                "seconds": seconds, "megapixels": clean.size / 1e6, "noise_std": sigma, "noise_given": given,
            }
            append_metrics_row(row, csv_path)
        if keep:
            examples.append(example)
    return EvalResult(read_metrics_csv(csv_path), examples, methods)


def noise_given(method: Method, has_psd: bool) -> str:
    """What a method is told about the noise: "psd", "sigma" (its true std) or "" (nothing)."""
    if method.kind != "baseline":
        return ""
    if has_psd and method.psd_fn is not None:
        return "psd"
    return "sigma" if method.name in SIGMA_GIVEN else ""


def noise_given_by_method(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Method -> the noise information it was given ("psd", "sigma", or both joined), from metric rows."""
    given: dict[str, set[str]] = {}
    for row in rows:
        if row.get("noise_given"):
            given.setdefault(row["method"], set()).add(str(row["noise_given"]))
    return {name: "/".join(sorted(kinds)) for name, kinds in given.items()}


def _noise_psd(noise: NoiseModel, clean: np.ndarray, methods: list[Method]) -> np.ndarray | None:
    """The noise's power spectrum on this image when it has one and a method takes it."""
    psd = getattr(noise, "psd", None)
    if psd is None or not any(m.psd_fn is not None for m in methods):
        return None
    return psd(clean, clean.shape)


def _unique_names(images: list[ScanImage]) -> list[str]:
    """Image ids for the tables: file names (with frame), made unique by their index if needed."""
    names = [img.meta.name for img in images]
    if len(set(names)) == len(names):
        return names
    return [f"{i:05d}:{n}" for i, n in enumerate(names)]
