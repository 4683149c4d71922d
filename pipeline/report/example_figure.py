"""The example figure: clean / noisy / each method per example, zoomed crops, residuals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from pipeline.metrics import psnr, ssim
from pipeline.report.figures import save_figure, show

PANEL_INCHES = 2.2


def _block_mean(image: np.ndarray, step: int) -> np.ndarray:
    """Mean of each step x step block (the image cut to whole blocks)."""
    if step <= 1:
        return image.astype(np.float32)
    h, w = (image.shape[0] // step) * step, (image.shape[1] // step) * step
    return (
        image[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3), dtype=np.float32)
    )


def detail_crop(image: np.ndarray, side: int, margin: float = 0.08) -> tuple[int, int, int]:
    """``(top, left, side)`` of the square window with the most local detail.

    Detail is the gradient magnitude (on a copy reduced to about 256 px), clipped at its
    95th percentile so that a few strong edges (collimator borders, burned-in markers) do
    not outweigh texture such as ribs and vessels, and averaged over the window. Windows
    closer than ``margin`` (a fraction of the side) to the border are not considered when
    the image leaves room for that. Give it the cleanest version of the image at hand: the
    clean reference, else the denoised output.
    """
    h, w = image.shape
    side = int(min(side, h, w))
    step = max(1, min(h, w) // 256)
    small = _block_mean(np.asarray(image, dtype=np.float32), step)
    gy, gx = np.gradient(small)
    detail = np.hypot(gx, gy)
    detail = np.minimum(detail, np.percentile(detail, 95))
    k = max(1, min(side // step, *small.shape))
    sums = np.pad(detail.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    windows = (
        sums[k:, k:] - sums[:-k, k:] - sums[k:, :-k] + sums[:-k, :-k]
    )  # [i, j]: top-left (i, j)
    rows, cols = windows.shape
    mi, mj = int(margin * small.shape[0]), int(margin * small.shape[1])
    if rows > 2 * mi and cols > 2 * mj:
        windows = windows[mi : rows - mi, mj : cols - mj]
    else:
        mi = mj = 0
    i, j = np.unravel_index(int(np.argmax(windows)), windows.shape)
    top, left = min((int(i) + mi) * step, h - side), min((int(j) + mj) * step, w - side)
    return top, left, side


#: Images smaller than this (on their short side) get no zoomed crop: they are shown whole.
MIN_CROP_IMAGE = 96
SMALL_IMAGE_PANEL_INCHES = 1.5


def _outline(ax: Any, crop: tuple[int, int, int]) -> None:
    from matplotlib.patches import Rectangle

    top, left, side = crop
    ax.add_patch(
        Rectangle(
            (left - 0.5, top - 0.5), side, side, fill=False, edgecolor="#ffcc00", linewidth=1.2
        )
    )


def _example_label(text: str, width: int) -> str:
    """An example's id on at most two lines of about ``width`` characters (middle elided)."""
    if len(text) <= width:
        return text
    if len(text) <= 2 * width:
        return text[:width] + "\n" + text[width:]
    half = width - 1
    return text[:half] + "…\n…" + text[-half:]


def example_caption(examples: Sequence[Mapping[str, Any]]) -> str:
    """The caption of :func:`example_panel_figure` for `examples`.

    It names the zoomed crop only when some example is large enough to get one.
    """
    cropped = any(min(np.shape(ex["noisy"])) >= MIN_CROP_IMAGE for ex in examples)
    crop = "; a zoomed crop of the most detailed part (outlined)" if cropped else ""
    return (
        f"Examples: clean / noisy / each method with PSNR and SSIM{crop}; "
        "each method's error (output − clean) on a symmetric scale"
    )


def example_panel_figure(
    examples: Sequence[Mapping[str, Any]], path: str | Path, crop_fraction: float = 0.25
) -> Path:
    """Example grid: per example a row clean / noisy / each method, and residuals.

    Panels are labelled with PSNR and SSIM when there is a clean image; a zoomed crop on the most
    detailed part (outlined on the full images; left out for images under :data:`MIN_CROP_IMAGE`
    px); and each method's residual on a symmetric scale chosen from that example's residuals.

    The residual is output minus clean when there is a clean image (the error left), else
    input minus output (what the method removed).

    Parameters
    ----------
    examples : dicts ``{"image": id, "clean": array or None, "noisy": array,
        "outputs": {method: array}}``, arrays float (H, W) in [0, 1].
    path : PNG file to write.
    crop_fraction : side of the zoomed crop as a fraction of the image's short side.
    """
    if not examples:
        raise ValueError("example_panel_figure needs at least one example")
    methods = list(dict.fromkeys(m for ex in examples for m in ex.get("outputs", {})))
    has_clean = any(ex.get("clean") is not None for ex in examples)
    columns = (["clean"] if has_clean else []) + ["noisy"] + methods
    crops = [_crop_of(ex, methods, crop_fraction) for ex in examples]
    row_counts = [3 if crop else 2 for crop in crops]
    small = all(min(_image_of(ex, "noisy").shape) < MIN_CROP_IMAGE for ex in examples)
    inches = SMALL_IMAGE_PANEL_INCHES if small else PANEL_INCHES
    ncols = len(columns)
    label_height = 0.45
    fig = Figure(
        figsize=(inches * ncols + 1.2, sum(n * inches + label_height for n in row_counts)),
        layout="constrained",
    )
    subfigs = fig.subfigures(
        len(examples),
        1,
        squeeze=False,
        height_ratios=[n * inches + label_height for n in row_counts],
    )[:, 0]
    for ex, crop, nrows, sub in zip(examples, crops, row_counts, subfigs):
        sub.suptitle(
            _example_label(str(ex.get("image", "")), 12 * ncols),
            fontsize=10,
            x=0.01,
            ha="left",
            fontweight="bold",
        )
        axes = sub.subplots(nrows, ncols, squeeze=False)
        residuals = _draw_images(axes, ex, columns, methods, crop)
        _draw_residuals(sub, axes, residuals, crop, has_clean=_image_of(ex, "clean") is not None)
    return save_figure(fig, path)


def _image_of(ex: Mapping[str, Any], column: str) -> np.ndarray | None:
    """An example's image of a column (clean, noisy or a method) as float32; None when absent."""
    value = ex.get(column) if column in ("clean", "noisy") else ex.get("outputs", {}).get(column)
    return None if value is None else np.asarray(value, dtype=np.float32)


def _crop_of(
    ex: Mapping[str, Any], methods: Sequence[str], crop_fraction: float
) -> tuple[int, int, int] | None:
    """The example's zoomed crop, found on its cleanest image; None for a small image."""
    reference = _image_of(ex, "clean")
    if reference is None:
        outputs = [_image_of(ex, m) for m in methods]
        reference = next((o for o in outputs if o is not None), _image_of(ex, "noisy"))
    if min(reference.shape) < MIN_CROP_IMAGE:
        return None
    return detail_crop(reference, round(min(reference.shape) * crop_fraction))


def _draw_images(
    axes: Any,
    ex: Mapping[str, Any],
    columns: Sequence[str],
    methods: Sequence[str],
    crop: tuple[int, int, int] | None,
) -> dict[int, np.ndarray]:
    """The example's images (with PSNR and SSIM) and crops; its residuals by column index."""
    clean = _image_of(ex, "clean")
    noisy = _image_of(ex, "noisy")
    residuals: dict[int, np.ndarray] = {}
    for c, column in enumerate(columns):
        img = _image_of(ex, column)
        show(axes[0, c], img, column)
        if img is None:
            continue
        if clean is not None and column != "clean":
            axes[0, c].set_xlabel(
                f"PSNR {psnr(clean, img, data_range=1.0):.2f} dB\nSSIM "
                f"{ssim(clean, img, data_range=1.0):.3f}",
                fontsize=10,
            )
        if crop is not None:
            _outline(axes[0, c], crop)
            top, left, side = crop
            show(axes[1, c], img[top : top + side, left : left + side])
        if column in methods:
            residuals[c] = img - clean if clean is not None else noisy - img
    return residuals


def _draw_residuals(
    sub: Any,
    axes: Any,
    residuals: dict[int, np.ndarray],
    crop: tuple[int, int, int] | None,
    has_clean: bool,
) -> None:
    """The last row: each method's residual on one symmetric scale, its meaning and a colour bar."""
    ncols = axes.shape[1]
    res_axes = axes[-1]
    if crop is not None:
        axes[1, 0].set_ylabel(f"crop {crop[2]} px", fontsize=10)
    words = "output − clean\n(error left)" if has_clean else "input − output\n(removed)"
    limit = max([float(np.percentile(np.abs(r), 99.5)) for r in residuals.values()] + [1e-6])
    shown = None
    for c in range(ncols):
        shown = show(res_axes[c], residuals.get(c), cmap="RdBu_r", vmin=-limit, vmax=limit) or shown
    first_blank = next((c for c in range(ncols) if c not in residuals), None)
    if first_blank is not None:
        res_axes[first_blank].text(
            0.5,
            0.5,
            words,
            ha="center",
            va="center",
            fontsize=10,
            transform=res_axes[first_blank].transAxes,
        )
    if shown is not None:
        sub.colorbar(shown, ax=list(res_axes), shrink=0.85, label=f"±{limit:.3g}")
