"""Results of an evaluation as files: markdown, figures, HTML.

A metrics row is a dict with ``image`` (id), ``method``, ``psnr``, ``ssim`` and ``seconds``
plus any extra keys. Figures are drawn on :class:`matplotlib.figure.Figure` objects
(no pyplot state; PNG output goes through the Agg renderer) and saved by
:func:`save_figure`; the HTML report embeds them as base64 ``data:`` URIs so that one file
opens offline.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from pipeline.baselines import BASELINES
from pipeline.metrics import paired_difference, psnr, ssim, summarize

NOISY = "noisy"
FIGURE_DPI = 100
PANEL_INCHES = 2.2

Row = Mapping[str, Any]
Table = tuple[list[str], list[list[str]]]


# --------------------------------------------------------------------------- summaries


def as_float(value: Any) -> float:
    """A float, or NaN for None / empty / non-numeric values."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def rows_by_method(rows: Iterable[Row]) -> dict[str, dict[str, Row]]:
    """``{method: {image: row}}``, in order of appearance; a repeated pair keeps its last row."""
    table: dict[str, dict[str, Row]] = {}
    for row in rows:
        table.setdefault(str(row["method"]), {})[str(row["image"])] = row
    return table


def _choose_reference(
    table: dict[str, dict[str, Row]], reference_method: str | None, baselines: Iterable[str]
) -> tuple[str | None, str]:
    if reference_method is not None:
        if reference_method not in table:
            raise ValueError(
                f"reference method {reference_method!r} has no rows; methods: {', '.join(table)}"
            )
        return reference_method, "given"
    candidates = [m for m in table if m in set(baselines)]
    if candidates:

        def mean_psnr(method: str) -> float:
            mean = summarize([as_float(r.get("psnr")) for r in table[method].values()])["mean"]
            return mean if math.isfinite(mean) else -math.inf

        return max(candidates, key=mean_psnr), "best classical baseline by mean PSNR"
    if NOISY in table:
        return NOISY, "noisy input"
    return None, "none"


def summarize_methods(
    rows: Iterable[Row],
    reference_method: str | None = None,
    baselines: Iterable[str] = BASELINES,
) -> dict[str, Any]:
    """Per-method statistics and paired differences to a reference method.

    Parameters
    ----------
    rows : metrics rows; a repeated (image, method) pair counts once (its last row).
    reference_method : the method to compare with; None: the classical baseline (a method
        named in ``baselines``) with the highest mean PSNR, else ``"noisy"`` when present.
    baselines : names of the classical methods.

    Returns
    -------
    ``{"reference", "reference_rule", "methods": {name: {"n", "kind", "psnr", "ssim",
    "seconds_per_image", "images_per_second", "vs_reference"}}}`` where ``kind`` is the rows'
    ``kind`` (input, model, baseline; None when absent), the times are NaN for the noisy
    input (nothing is computed), ``psnr`` and
    ``ssim`` are :func:`pipeline.metrics.summarize` dicts and ``vs_reference`` maps
    ``psnr``/``ssim`` to :func:`pipeline.metrics.paired_difference` of method minus
    reference over the images both have (None without a reference).
    """
    table = rows_by_method(rows)
    reference, rule = _choose_reference(table, reference_method, baselines)
    methods: dict[str, Any] = {}
    for method, by_image in table.items():
        kind = next((str(r["kind"]) for r in by_image.values() if r.get("kind")), None)
        timed = kind != "input" and method != NOISY  # the noisy input costs nothing to "compute"
        seconds = [s for s in (as_float(r.get("seconds")) for r in by_image.values()) if s >= 0 and timed]
        total = sum(seconds)
        entry: dict[str, Any] = {
            "n": len(by_image),
            "kind": kind,
            "psnr": summarize([as_float(r.get("psnr")) for r in by_image.values()]),
            "ssim": summarize([as_float(r.get("ssim")) for r in by_image.values()]),
            "seconds_per_image": total / len(seconds) if seconds else math.nan,
            "images_per_second": len(seconds) / total if total > 0 else math.nan,
            "vs_reference": None,
        }
        if reference is not None:
            ref = table[reference]
            common = [image for image in by_image if image in ref]
            entry["vs_reference"] = {
                key: paired_difference(
                    [as_float(by_image[i].get(key)) for i in common],
                    [as_float(ref[i].get(key)) for i in common],
                )
                for key in ("psnr", "ssim")
            }
        methods[method] = entry
    return {"reference": reference, "reference_rule": rule, "methods": methods}


# --------------------------------------------------------------------------- tables


def _fmt(value: Any, digits: int, signed: bool = False) -> str:
    x = as_float(value)
    if math.isnan(x):
        return "–"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def format_ci(stat: Mapping[str, Any] | None, digits: int, signed: bool = False) -> str:
    """``mean [low, high]``, or the mean alone when the interval is undefined."""
    if not stat:
        return "–"
    mean = _fmt(stat.get("mean"), digits, signed)
    if math.isnan(as_float(stat.get("ci_low"))):
        return mean
    low, high = _fmt(stat["ci_low"], digits, signed), _fmt(stat["ci_high"], digits, signed)
    return f"{mean} [{low}, {high}]"


def summary_table(summary: Mapping[str, Any]) -> Table:
    """Header and rows of the method table shared by the markdown and HTML reports."""
    ref = summary.get("reference")
    header = ["method", "n", "PSNR (dB) [95% CI]", "SSIM [95% CI]"]
    if ref:
        header += [f"ΔPSNR vs {ref} (dB)", f"ΔSSIM vs {ref}"]
    header.append("images/s")
    rows = []
    for method, e in summary["methods"].items():
        row = [method, str(e["n"]), format_ci(e["psnr"], 2), format_ci(e["ssim"], 3)]
        if ref:
            diff = e.get("vs_reference") or {}
            row += [format_ci(diff.get("psnr"), 2, True), format_ci(diff.get("ssim"), 3, True)]
        row.append(_fmt(e.get("images_per_second"), 2))  # "–" for the noisy input
        rows.append(row)
    return header, rows


#: What the method codes in the tables stand for (trained models: see :func:`describe_method`).
METHOD_WORDS: dict[str, str] = {
    NOISY: "the noisy input itself, not denoised (the starting point)",
    "bm3d": "BM3D, block-matching and 3-D collaborative filtering (given the true noise level)",
    "nlm": "non-local means (noise level estimated per image)",
    "tv": "total-variation denoising, Chambolle's algorithm (given the true noise level)",
    "wavelet": "wavelet soft thresholding, BayesShrink (noise level estimated per image)",
    "median": "3×3 median filter",
}
MODEL_WORDS: dict[str, str] = {
    "dense": "dense autoencoder",
    "conv": "convolutional autoencoder",
    "unet": "residual U-Net",
    "dncnn": "DnCNN",
}


def describe_method(name: str) -> str:
    """A method code in words: ``tv`` → total-variation denoising ...; ``unet:x`` → trained residual U-Net (x)."""
    if name in METHOD_WORDS:
        return METHOD_WORDS[name]
    network, _, origin = name.partition(":")
    words = MODEL_WORDS.get(network, network)
    return f"trained {words}" + (f" ({origin})" if origin else "")


def method_lines(methods: Iterable[str]) -> list[str]:
    """``code: words`` for each method, for the text under a table."""
    return [f"{name}: {describe_method(name)}" for name in methods]


def _reference_line(summary: Mapping[str, Any]) -> str:
    ref = summary.get("reference")
    if not ref:
        return "No reference method: paired differences are not reported."
    return (
        f"Differences are paired per image, method minus {ref} "
        f"({summary.get('reference_rule', '')}), with 95% t-intervals."
    )


def markdown_table(table: Table) -> list[str]:
    """A table as markdown lines (``|`` in cells escaped)."""
    header, rows = table

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), line(["---"] * len(header)), *(line(r) for r in rows)]


def write_md(path: str | Path, title: str, lines: Sequence[str], tables: Sequence[Table]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = [f"# {title}", "", *lines, ""]
    for table in tables:
        out += [*markdown_table(table), ""]
    path.write_text("\n".join(out))
    return path


def write_report_md(
    summary: Mapping[str, Any],
    path: str | Path,
    title: str = "Denoising results",
    extra_lines: Sequence[str] = (),
) -> Path:
    """A short markdown report: the method table and any extra lines (setup, notes)."""
    methods = [f"- {line}" for line in method_lines(summary["methods"])]
    return write_md(
        path, title, [_reference_line(summary), "", *extra_lines, "", "Methods:", "", *methods],
        [summary_table(summary)],
    )


# --------------------------------------------------------------------------- figures


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save a figure as PNG (parent folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=FIGURE_DPI)
    return path


def png_data_uri(path: str | Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _show(ax: Any, image: np.ndarray | None, title: str = "", **kwargs: Any) -> Any:
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


def _block_mean(image: np.ndarray, step: int) -> np.ndarray:
    """Mean of each step x step block (the image cut to whole blocks)."""
    if step <= 1:
        return image.astype(np.float32)
    h, w = (image.shape[0] // step) * step, (image.shape[1] // step) * step
    return image[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3), dtype=np.float32)


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
    windows = sums[k:, k:] - sums[:-k, k:] - sums[k:, :-k] + sums[:-k, :-k]  # [i, j]: top-left (i, j)
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
    ax.add_patch(Rectangle((left - 0.5, top - 0.5), side, side, fill=False, edgecolor="#ffcc00", linewidth=1.2))


def _example_label(text: str, width: int) -> str:
    """An example's id on at most two lines of about ``width`` characters (middle elided)."""
    if len(text) <= width:
        return text
    if len(text) <= 2 * width:
        return text[:width] + "\n" + text[width:]
    half = width - 1
    return text[:half] + "…\n…" + text[-half:]


def example_caption(examples: Sequence[Mapping[str, Any]]) -> str:
    """The caption of :func:`example_panel_figure` for `examples`: it names the zoomed crop
    only when some example is large enough to get one."""
    cropped = any(min(np.shape(ex["noisy"])) >= MIN_CROP_IMAGE for ex in examples)
    crop = "; a zoomed crop of the most detailed part (outlined)" if cropped else ""
    return (f"Examples: clean / noisy / each method with PSNR and SSIM{crop}; "
            "each method's error (output − clean) on a symmetric scale")


def example_panel_figure(
    examples: Sequence[Mapping[str, Any]], path: str | Path, crop_fraction: float = 0.25
) -> Path:
    """Example grid: for each example a row clean / noisy / each method, labelled with PSNR
    and SSIM when there is a clean image; a zoomed crop on the most detailed part (outlined
    on the full images; left out for images under :data:`MIN_CROP_IMAGE` px); and each
    method's residual on a symmetric scale chosen from that example's residuals.

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

    def image_of(ex: Mapping[str, Any], column: str) -> np.ndarray | None:
        value = ex.get(column) if column in ("clean", "noisy") else ex.get("outputs", {}).get(column)
        return None if value is None else np.asarray(value, dtype=np.float32)

    def crop_of(ex: Mapping[str, Any]) -> tuple[int, int, int] | None:
        reference = image_of(ex, "clean")
        if reference is None:
            outputs = [image_of(ex, m) for m in methods]
            reference = next((o for o in outputs if o is not None), image_of(ex, "noisy"))
        if min(reference.shape) < MIN_CROP_IMAGE:
            return None
        return detail_crop(reference, round(min(reference.shape) * crop_fraction))

    crops = [crop_of(ex) for ex in examples]
    row_counts = [3 if crop else 2 for crop in crops]
    small = all(min(image_of(ex, "noisy").shape) < MIN_CROP_IMAGE for ex in examples)
    inches = SMALL_IMAGE_PANEL_INCHES if small else PANEL_INCHES
    ncols = len(columns)
    label_height = 0.45
    fig = Figure(
        figsize=(inches * ncols + 1.2, sum(n * inches + label_height for n in row_counts)),
        layout="constrained",
    )
    subfigs = fig.subfigures(len(examples), 1, squeeze=False,
                             height_ratios=[n * inches + label_height for n in row_counts])[:, 0]
    for ex, crop, nrows, sub in zip(examples, crops, row_counts, subfigs):
        sub.suptitle(_example_label(str(ex.get("image", "")), 12 * ncols), fontsize=10,
                     x=0.01, ha="left", fontweight="bold")
        axes = sub.subplots(nrows, ncols, squeeze=False)
        clean = image_of(ex, "clean")
        noisy = image_of(ex, "noisy")
        residuals: dict[int, np.ndarray] = {}
        for c, column in enumerate(columns):
            img = image_of(ex, column)
            _show(axes[0, c], img, column)
            if img is None:
                continue
            if clean is not None and column != "clean":
                axes[0, c].set_xlabel(
                    f"PSNR {psnr(clean, img, data_range=1.0):.2f} dB\nSSIM {ssim(clean, img, data_range=1.0):.3f}",
                    fontsize=10,
                )
            if crop is not None:
                _outline(axes[0, c], crop)
                top, left, side = crop
                _show(axes[1, c], img[top : top + side, left : left + side])
            if column in methods:
                residuals[c] = img - clean if clean is not None else noisy - img
        res_axes = axes[-1]
        if crop is not None:
            axes[1, 0].set_ylabel(f"crop {crop[2]} px", fontsize=10)
        words = "output − clean\n(error left)" if clean is not None else "input − output\n(removed)"
        limit = max([float(np.percentile(np.abs(r), 99.5)) for r in residuals.values()] + [1e-6])
        shown = None
        for c in range(ncols):
            shown = _show(res_axes[c], residuals.get(c), cmap="RdBu_r", vmin=-limit, vmax=limit) or shown
        first_blank = next((c for c in range(ncols) if c not in residuals), None)
        if first_blank is not None:
            res_axes[first_blank].text(0.5, 0.5, words, ha="center", va="center", fontsize=10,
                                       transform=res_axes[first_blank].transAxes)
        if shown is not None:
            sub.colorbar(shown, ax=list(res_axes), shrink=0.85, label=f"±{limit:.3g}")
    return save_figure(fig, path)


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
    from matplotlib.lines import Line2D

    rows = list(rows)
    fig = Figure(figsize=(10, 4.4), layout="constrained")
    keys = [("psnr", "PSNR (dB)"), ("ssim", "SSIM")]
    few = any(0 < len(v) < FEW_POINTS for key, _ in keys for v in _values_by_method(rows, key).values())
    for ax, (key, label) in zip(fig.subplots(1, 2), keys):
        values = _values_by_method(rows, key)
        names = list(values)
        ax.boxplot(
            [v or [math.nan] for v in values.values()], showmeans=True, showfliers=not few,
            medianprops={"color": "tab:orange", "linewidth": 1.5},
            meanprops={"marker": "^", "markerfacecolor": "tab:green", "markeredgecolor": "tab:green"},
        )
        for position, v in enumerate(values.values(), start=1):
            if 0 < len(v) < FEW_POINTS:
                offsets = np.linspace(-0.12, 0.12, len(v)) if len(v) > 1 else np.zeros(1)
                ax.scatter(position + offsets, v, s=14, color="tab:blue", alpha=0.7, zorder=3)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    handles = [
        Line2D([], [], color="tab:orange", linewidth=1.5, label="median"),
        Line2D([], [], color="tab:green", marker="^", linestyle="none", label="mean"),
        Line2D([], [], color="black", linewidth=0, marker="s", markerfacecolor="none", markersize=9,
               label="box: middle half of the images"),
    ]
    if few:
        handles.append(Line2D([], [], color="tab:blue", marker="o", linestyle="none", alpha=0.7, label="one image"))
    else:
        handles.append(Line2D([], [], color="black", marker="o", markerfacecolor="none", linestyle="none",
                              label="outlier (beyond 1.5 box heights)"))
    fig.legend(handles=handles, loc="outside upper center", ncols=len(handles), frameon=False)
    return save_figure(fig, path)


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


# --------------------------------------------------------------------------- HTML

_STYLE = """
* { box-sizing: border-box; }
body { font-family: sans-serif; line-height: 1.4; margin: 1em auto; padding: 0 1em;
       max-width: 1200px; color: #222; overflow-wrap: anywhere; }
header p.meta { color: #444; margin: 0.2em 0 1.2em; }
header p.meta span { margin-right: 1.2em; display: inline-block; }
.table-wrap { max-width: 100%; overflow-x: auto; margin: 1em 0; }
table { border-collapse: collapse; font-size: 0.9em; overflow-wrap: normal; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
th { background: #eee; }
dl.methods { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; font-size: 0.95em; }
dl.methods dt { font-family: monospace; font-weight: bold; }
dl.methods dd { margin: 0; }
figure { margin: 1.5em 0; }
img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9em; }
"""


def _html_table(table: Table) -> str:
    header, rows = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def html_header(title: str, facts: Mapping[str, str]) -> str:
    """The page's title and a line of facts (date, commit, folder, ...)."""
    items = "".join(
        f"<span><b>{html.escape(k)}</b> {html.escape(str(v))}</span>" for k, v in facts.items() if v
    )
    meta = f'<p class="meta">{items}</p>' if items else ""
    return f"<header><h1>{html.escape(title)}</h1>{meta}</header>"


def _html_methods(methods: Iterable[str]) -> str:
    items = "".join(
        f"<dt>{html.escape(name)}</dt><dd>{html.escape(describe_method(name))}</dd>" for name in methods
    )
    return f'<dl class="methods">{items}</dl>'


def html_page(title: str, body: str, style: str = "", script: str = "") -> str:
    """A whole self-contained page: viewport meta tag, inline style (and script), the body."""
    tail = f"<script>{script}</script>" if script else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}{style}</style></head>\n<body>\n"
        f"{body}\n{tail}</body></html>\n"
    )


def _write_html(
    path: str | Path,
    title: str,
    lines: Sequence[str],
    tables: Sequence[Table],
    figures: Mapping[str, str | Path],
    notes: Sequence[str],
    facts: Mapping[str, str] | None = None,
    methods: Sequence[str] = (),
) -> Path:
    """One self-contained page: inline style, tables, figures as data URIs, notes."""
    parts = [html_header(title, facts or {})]
    parts += [f"<p>{html.escape(line)}</p>" for line in lines if line]
    parts += [_html_table(t) for t in tables]
    if methods:
        parts.append(_html_methods(methods))
    for caption, fig_path in figures.items():
        if not Path(fig_path).is_file():
            raise FileNotFoundError(f"figure {caption!r} not found: {fig_path}")
        parts.append(
            f'<figure><img src="{png_data_uri(fig_path)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    if notes:
        parts.append("<h2>Notes</h2><ul>")
        parts += [f"<li>{html.escape(n)}</li>" for n in notes]
        parts.append("</ul>")
    full_title = " · ".join([title, *(str(v) for k, v in (facts or {}).items() if k == "date" and v)])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_page(full_title, "\n".join(parts)), encoding="utf-8")
    return path


def write_report_html(
    path: str | Path,
    title: str,
    summary: Mapping[str, Any] | None,
    figures: Mapping[str, str | Path],
    notes: Sequence[str] = (),
    facts: Mapping[str, str] | None = None,
) -> Path:
    """Self-contained HTML report: a header (title and ``facts`` such as date, commit and
    run folder), the method table with the method codes spelled out, figures (keyed by
    caption), notes.

    Nothing is loaded from outside the file: the style is inline and every figure is a
    base64 PNG data URI, so it opens offline.
    """
    lines = [] if summary is None else [_reference_line(summary)]
    tables = [] if summary is None else [summary_table(summary)]
    methods = [] if summary is None else list(summary["methods"])
    return _write_html(path, title, lines, tables, figures, notes, facts, methods)


def write_page(
    out_dir: str | Path,
    title: str,
    lines: Sequence[str],
    tables: Sequence[Table],
    figures: Mapping[str, Path],
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """report.md and the self-contained report.html in `out_dir` (figures inside it).

    Returns ``{"markdown": path, "html": path}``.
    """
    out_dir = Path(out_dir)
    links = [
        f"![{caption}]({Path(path).relative_to(out_dir).as_posix()})" for caption, path in figures.items()
    ]
    return {
        "markdown": write_md(out_dir / "report.md", title, [*lines, "", *links, *notes], tables),
        "html": _write_html(out_dir / "report.html", title, lines, tables, figures, notes),
    }
