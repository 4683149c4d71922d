"""Figures of results: saving, embedding, per-image distributions and training curves.

Figures are drawn on :class:`matplotlib.figure.Figure` objects (no pyplot state; PNG
output goes through the Agg renderer) and saved by :func:`save_figure`.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from pipeline.report.formatting import as_float
from pipeline.report.summaries import Row

FIGURE_DPI = 100


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save a figure as PNG (parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=FIGURE_DPI)
    return path


def png_data_uri(path: str | Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def show(ax: Any, image: np.ndarray | None, title: str = "", **kwargs: Any) -> Any:
    """Draw an image on an axis without ticks (a blank axis when image is None)."""
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)
    if image is None:
        ax.set_frame_on(False)
        return None
    kwargs = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0, "interpolation": "antialiased", **kwargs}
    return ax.imshow(image, **kwargs)


def _values_by_method(rows: Iterable[Row], key: str) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for row in rows:
        x = as_float(row.get(key))
        values.setdefault(str(row["method"]), [])
        if math.isfinite(x):
            values[str(row["method"])].append(x)
    return values


#: Below this many images per method, the distribution figure also shows each image's value.
FEW_POINTS = 10


def distribution_figure(rows: Iterable[Row], path: str | Path) -> Path:
    """Box plots of per-image PSNR and SSIM per method (non-finite values left out).

    Boxes span the quartiles, the line is the median, the triangle the mean; methods with
    fewer than :data:`FEW_POINTS` images also show every image as a dot (and then no
    separate outlier circles).
    """
    rows = list(rows)
    fig = Figure(figsize=(10, 4.4), layout="constrained")
    keys = [("psnr", "PSNR (dB)"), ("ssim", "SSIM")]
    few = any(
        0 < len(v) < FEW_POINTS for key, _ in keys for v in _values_by_method(rows, key).values()
    )
    for ax, (key, label) in zip(fig.subplots(1, 2), keys):
        _box_plot(ax, _values_by_method(rows, key), label, few)
    handles = _distribution_legend(few)
    fig.legend(handles=handles, loc="outside upper center", ncols=len(handles), frameon=False)
    return save_figure(fig, path)


def _box_plot(ax: Any, values: dict[str, list[float]], label: str, few: bool) -> None:
    """One box per method on `ax`; methods with few images also get a dot per image.

    With `few`, outliers are not drawn separately (the dots show them).
    """
    ax.boxplot(
        [v or [math.nan] for v in values.values()],
        showmeans=True,
        showfliers=not few,
        medianprops={"color": "tab:orange", "linewidth": 1.5},
        meanprops={
            "marker": "^",
            "markerfacecolor": "tab:green",
            "markeredgecolor": "tab:green",
        },
    )
    for position, v in enumerate(values.values(), start=1):
        if 0 < len(v) < FEW_POINTS:
            offsets = np.linspace(-0.12, 0.12, len(v)) if len(v) > 1 else np.zeros(1)
            ax.scatter(position + offsets, v, s=14, color="tab:blue", alpha=0.7, zorder=3)
    ax.set_xticks(range(1, len(values) + 1), list(values), rotation=30, ha="right")
    ax.set_ylabel(label)
    ax.grid(axis="y", alpha=0.3)


def _distribution_legend(few: bool) -> list[Any]:
    """Return the legend entries of :func:`distribution_figure`.

    They are the median, mean and box, then the image dots (with `few`) or the outlier
    circles.
    """
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color="tab:orange", linewidth=1.5, label="median"),
        Line2D([], [], color="tab:green", marker="^", linestyle="none", label="mean"),
        Line2D(
            [],
            [],
            color="black",
            linewidth=0,
            marker="s",
            markerfacecolor="none",
            markersize=9,
            label="box: middle half of the images",
        ),
    ]
    if few:
        handles.append(
            Line2D(
                [], [], color="tab:blue", marker="o", linestyle="none", alpha=0.7, label="one image"
            )
        )
    else:
        handles.append(
            Line2D(
                [],
                [],
                color="black",
                marker="o",
                markerfacecolor="none",
                linestyle="none",
                label="outlier (beyond 1.5 box heights)",
            )
        )
    return handles


def _series(rows: Sequence[Row], key: str) -> tuple[list[float], list[float]]:
    """(epoch, value) pairs of a training-log column where both are finite."""
    pairs = [(as_float(r.get("epoch")), as_float(r.get(key))) for r in rows]
    kept = [(e, v) for e, v in pairs if math.isfinite(e) and math.isfinite(v)]
    return [e for e, _ in kept], [v for _, v in kept]


def loss_curve_figure(train_log_rows: Iterable[Row], path: str | Path) -> Path:
    """Training and validation loss (left) and validation PSNR (right) by epoch."""
    rows = list(train_log_rows)
    fig = Figure(figsize=(10, 4), layout="constrained")
    loss_ax, psnr_ax = fig.subplots(1, 2)
    for key, label in (("train_loss", "train loss"), ("val_loss", "validation loss")):
        x, y = _series(rows, key)
        if x:
            loss_ax.plot(x, y, marker=".", label=label)
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    if loss_ax.lines:
        loss_ax.legend()
    x, y = _series(rows, "val_psnr")
    psnr_ax.plot(x, y, marker=".", color="tab:green")
    psnr_ax.set(xlabel="epoch", ylabel="PSNR (dB)", title="validation PSNR")
    for ax in (loss_ax, psnr_ax):
        ax.grid(alpha=0.3)
    return save_figure(fig, path)
