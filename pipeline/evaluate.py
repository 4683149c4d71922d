"""Evaluation: every method on the same clean images and the same seeded noise.

A method is a :class:`~pipeline.denoiser.Denoiser`: a trained model
(:class:`pipeline.inference.ModelDenoiser`), a classical baseline
(:class:`pipeline.baselines.Baseline`) or the noisy input itself. Each is offered what is
known about the noise (its power spectrum for correlated noise, else its true std) and uses
what it takes; the rows record what it was given (``noise_given``). Pixels are normalised
by each image's real range (e.g. 4095 for 12-bit data), so metrics use ``data_range=1.0``
in these units, which is that range.

Rows are appended to ``metrics.csv`` as they are computed; rerunning on the same folder
skips (image, method) pairs already there, so an interrupted evaluation resumes. For images of
at least :data:`SPECTRUM_MIN_SIDE` pixels a side, each row also has ``detail_kept`` (the task
transfer function in the 0.1-0.2 cycles/pixel band, :mod:`pipeline.detail`), and its radial
spectra go to ``spectra.jsonl`` beside it, from which tables pool T over images.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from pipeline.denoiser import Denoiser, noise_given
from pipeline.detail import ACCEPTANCE_BAND, band_transfer, transfer_spectra
from pipeline.image import ScanImage
from pipeline.metrics import psnr, ssim
from pipeline.noise import NoiseModel, noise_rng
from pipeline.records import append_csv_row, columns_of, parse_cell, read_csv, write_csv

#: The first columns of ``metrics.csv`` (extra keys of a row follow them).
METRIC_COLUMNS: tuple[str, ...] = ("image", "method", "psnr", "ssim", "seconds")
#: Columns kept as text when ``metrics.csv`` is read back.
TEXT_COLUMNS: tuple[str, ...] = ("image", "method")
#: Images smaller than this on either side get no spectra (too few frequencies per band).
SPECTRUM_MIN_SIDE = 32


def write_metrics_csv(rows: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write all rows (replacing the file atomically); columns: the standard ones, then extras."""
    rows = list(rows)
    return write_csv(rows, path, columns_of(rows, METRIC_COLUMNS))


def append_metrics_row(row: Mapping[str, Any], path: str | Path) -> Path:
    """Append one row (finished rows survive an interrupted evaluation).

    A new key widens the header.
    """
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


def append_spectra(image: str, method: str, spectra: dict[str, list[float]], path: Path) -> None:
    """Append one (image, method)'s radial spectra to a ``spectra.jsonl`` file."""
    line = {
        "image": image,
        "method": method,
        **{k: [float(f"{v:.6g}") for v in vals] for k, vals in spectra.items()},
    }
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def read_spectra(path: str | Path) -> dict[tuple[str, str], dict[str, list[float]]]:
    """(image, method) -> spectra from a ``spectra.jsonl``.

    The last line of a pair wins; a cut line is skipped.
    """
    path = Path(path)
    spectra: dict[tuple[str, str], dict[str, list[float]]] = {}
    if not path.is_file():
        return spectra
    for text in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(text)
        except json.JSONDecodeError:
            continue
        spectra[(entry.pop("image"), entry.pop("method"))] = entry
    return spectra


@dataclass
class EvalResult:
    """Metric rows (one per image and method) and a few examples for the figures."""

    rows: list[dict[str, Any]]
    examples: list[dict[str, Any]] = field(default_factory=list)
    methods: list[Denoiser] = field(default_factory=list)


#: Images noised together and given to a model as batches (its own batch size), so that its
#: time per image is what it costs in use rather than one forward pass per image. A chunk
#: holds at most this many images and this many pixels.
CHUNK_IMAGES = 64
CHUNK_PIXELS = 16_000_000


def _chunks(images: list[ScanImage]) -> list[range]:
    """Consecutive index ranges of at most CHUNK_IMAGES images and CHUNK_PIXELS pixels.

    Each range has at least one image.
    """
    chunks, start, pixels = [], 0, 0
    for index, img in enumerate(images):
        if index > start and (
            index - start == CHUNK_IMAGES or pixels + img.pixels.size > CHUNK_PIXELS
        ):
            chunks.append(range(start, index))
            start, pixels = index, 0
        pixels += img.pixels.size
    if start < len(images):
        chunks.append(range(start, len(images)))
    return chunks


def _batch_function(method: Denoiser) -> Callable[[list[np.ndarray]], list[np.ndarray]] | None:
    """The method's ``denoise_many`` (a model's batched inference) when it takes no noise facts."""
    many = getattr(method, "denoise_many", None)
    return many if many is not None and not method.takes else None


def _batched_outputs(
    methods: list[Denoiser], noisy: dict[int, np.ndarray], wanted: Callable[[int, str], bool]
) -> dict[tuple[int, str], tuple[np.ndarray, float]]:
    """(output, seconds per image) of each batchable method on the chunk's images it still needs."""
    results: dict[tuple[int, str], tuple[np.ndarray, float]] = {}
    for method in methods:
        many = _batch_function(method)
        todo = [i for i in noisy if wanted(i, method.name)]
        if many is None or not todo:
            continue
        t0 = time.perf_counter()
        outputs = many([noisy[i] for i in todo])
        per_image = (time.perf_counter() - t0) / len(todo)
        for i, out in zip(todo, outputs):
            results[(i, method.name)] = (out, per_image)
    return results


def _output(
    method: Denoiser,
    noisy: np.ndarray,
    sigma: float,
    psd: np.ndarray | None,
    batched: tuple[np.ndarray, float] | None,
) -> tuple[np.ndarray, float, Any]:
    """(output clipped to [0, 1], seconds, the noise fact given) of `method` on `noisy`.

    `batched` is its (output, seconds) when already computed in a batch.
    """
    given = noise_given(method, psd is not None)
    if batched is not None:
        raw, seconds = batched
    else:
        t0 = time.perf_counter()
        raw = (
            method(noisy, psd=psd)
            if given == "psd"
            else method(noisy, sigma=sigma)
            if given
            else method(noisy)
        )
        seconds = time.perf_counter() - t0
    return np.clip(raw, 0.0, 1.0).astype(np.float32), seconds, given


def _write_row(
    name: str,
    method: Denoiser,
    clean: np.ndarray,
    out: np.ndarray,
    facts: dict[str, Any],
    out_dir: Path,
) -> None:
    """Append one image's scores for one method to metrics.csv.

    Its spectra go beside it when the image is large enough.
    """
    row = {
        "image": name,
        "method": method.name,
        "kind": method.kind,
        "psnr": psnr(clean, out, data_range=1.0),
        "ssim": ssim(clean, out, data_range=1.0),
        "seconds": facts["seconds"],
        "megapixels": clean.size / 1e6,
        "noise_std": facts["noise_std"],
        "noise_given": facts["noise_given"],
    }
    if min(clean.shape) >= SPECTRUM_MIN_SIDE:
        spectra = transfer_spectra(clean, out)
        row["detail_kept"] = band_transfer([spectra], [ACCEPTANCE_BAND]).popitem()[1]
        append_spectra(name, method.name, spectra, out_dir / "spectra.jsonl")
    append_metrics_row(row, out_dir / "metrics.csv")


def evaluate(
    images: list[ScanImage],
    noise: NoiseModel,
    seed: int,
    methods: list[Denoiser],
    out_dir: Path,
    n_examples: int = 8,
    progress: bool = True,
) -> EvalResult:
    """Run every method on every image; append rows to ``out_dir/metrics.csv`` as they come.

    Models run on batches of a chunk of images (:data:`CHUNK_IMAGES`), each image's
    ``seconds`` being the batch's time divided by its images; the other methods run one
    image at a time.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "metrics.csv"
    done = (
        {(r["image"], r["method"]) for r in read_metrics_csv(csv_path)}
        if csv_path.exists()
        else set()
    )
    examples: list[dict[str, Any]] = []
    names = _unique_names(images)

    def wanted(index: int, method: str) -> bool:
        return (names[index], method) not in done or index < n_examples

    with tqdm(total=len(images), desc="evaluate", disable=not progress) as bar:
        for chunk in _chunks(images):
            needed = [
                i for i in chunk if any(wanted(i, m.name) for m in methods)
            ]  # rows already written: no work
            noisy_of = {i: noise(images[i].pixels, noise_rng(seed, "test", 0, i)) for i in needed}
            batched = _batched_outputs(methods, noisy_of, wanted)
            bar.update(len(chunk) - len(needed))
            for index in needed:
                chosen = [m for m in methods if wanted(index, m.name)]
                example = _evaluate_image(
                    names[index],
                    images[index].pixels,
                    noisy_of[index],
                    noise,
                    (methods, chosen),
                    {m.name: batched.get((index, m.name)) for m in chosen},
                    done,
                    out_dir,
                )
                if index < n_examples:
                    examples.append(example)
                bar.update(1)
    return EvalResult(read_metrics_csv(csv_path), examples, methods)


def _evaluate_image(
    name: str,
    clean: np.ndarray,
    noisy: np.ndarray,
    noise: NoiseModel,
    methods: tuple[list[Denoiser], list[Denoiser]],
    batched: dict[str, Any],
    done: set[tuple[str, str]],
    out_dir: Path,
) -> dict[str, Any]:
    """Run the chosen methods on one image; write their rows not yet written; its example.

    `methods` is (all methods, the ones to run on this image); `batched` holds the outputs
    already computed in a batch, by method name.
    """
    every, chosen = methods
    sigma = noise.std(clean)
    psd = _noise_psd(noise, clean, every)
    example: dict[str, Any] = {"image": name, "clean": clean, "noisy": noisy, "outputs": {}}
    for method in chosen:
        out, seconds, given = _output(method, noisy, sigma, psd, batched.get(method.name))
        if method.kind != "input":
            example["outputs"][method.name] = out
        if (name, method.name) not in done:
            _write_row(
                name,
                method,
                clean,
                out,
                {"seconds": seconds, "noise_std": sigma, "noise_given": given},
                out_dir,
            )
    return example


def noise_given_by_method(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Method -> the noise information it was given, from metric rows.

    The information is "psd", "sigma", or both joined.
    """
    given: dict[str, set[str]] = {}
    for row in rows:
        if row.get("noise_given"):
            given.setdefault(row["method"], set()).add(str(row["noise_given"]))
    return {name: "/".join(sorted(kinds)) for name, kinds in given.items()}


def _noise_psd(noise: NoiseModel, clean: np.ndarray, methods: list[Denoiser]) -> np.ndarray | None:
    """The noise's power spectrum on this image when it has one and a method takes it."""
    psd = getattr(noise, "psd", None)
    if psd is None or not any("psd" in m.takes for m in methods):
        return None
    return psd(clean, clean.shape)


def _unique_names(images: list[ScanImage]) -> list[str]:
    """Image ids for the tables: file names (with frame), made unique by their index if needed."""
    names = [img.meta.name for img in images]
    if len(set(names)) == len(names):
        return names
    return [f"{i:05d}:{n}" for i, n in enumerate(names)]
