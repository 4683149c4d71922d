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
from pipeline.image import center_crop
from pipeline.metrics import paired_difference, psnr, summarize

NOISY = "noisy"
FIGURE_DPI = 100
PANEL_INCHES = 2.2

Row = Mapping[str, Any]
Table = tuple[list[str], list[list[str]]]


# --------------------------------------------------------------------------- summaries


def _number(value: Any) -> float:
    """A float, or NaN for None / empty / non-numeric values."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _by_method(rows: Iterable[Row]) -> dict[str, dict[str, Row]]:
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
            mean = summarize([_number(r.get("psnr")) for r in table[method].values()])["mean"]
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
    ``{"reference", "reference_rule", "methods": {name: {"n", "psnr", "ssim",
    "seconds_per_image", "images_per_second", "vs_reference"}}}`` where ``psnr`` and
    ``ssim`` are :func:`pipeline.metrics.summarize` dicts and ``vs_reference`` maps
    ``psnr``/``ssim`` to :func:`pipeline.metrics.paired_difference` of method minus
    reference over the images both have (None without a reference).
    """
    table = _by_method(rows)
    reference, rule = _choose_reference(table, reference_method, baselines)
    methods: dict[str, Any] = {}
    for method, by_image in table.items():
        seconds = [s for s in (_number(r.get("seconds")) for r in by_image.values()) if s >= 0]
        total = sum(seconds)
        entry: dict[str, Any] = {
            "n": len(by_image),
            "psnr": summarize([_number(r.get("psnr")) for r in by_image.values()]),
            "ssim": summarize([_number(r.get("ssim")) for r in by_image.values()]),
            "seconds_per_image": total / len(seconds) if seconds else math.nan,
            "images_per_second": len(seconds) / total if total > 0 else math.nan,
            "vs_reference": None,
        }
        if reference is not None:
            ref = table[reference]
            common = [image for image in by_image if image in ref]
            entry["vs_reference"] = {
                key: paired_difference(
                    [_number(by_image[i].get(key)) for i in common],
                    [_number(ref[i].get(key)) for i in common],
                )
                for key in ("psnr", "ssim")
            }
        methods[method] = entry
    return {"reference": reference, "reference_rule": rule, "methods": methods}


# --------------------------------------------------------------------------- tables


def _fmt(value: Any, digits: int, signed: bool = False) -> str:
    x = _number(value)
    if math.isnan(x):
        return "–"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _fmt_ci(stat: Mapping[str, Any] | None, digits: int, signed: bool = False) -> str:
    """``mean [low, high]``, or the mean alone when the interval is undefined."""
    if not stat:
        return "–"
    mean = _fmt(stat.get("mean"), digits, signed)
    if math.isnan(_number(stat.get("ci_low"))):
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
        row = [method, str(e["n"]), _fmt_ci(e["psnr"], 2), _fmt_ci(e["ssim"], 3)]
        if ref:
            diff = e.get("vs_reference") or {}
            row += [_fmt_ci(diff.get("psnr"), 2, True), _fmt_ci(diff.get("ssim"), 3, True)]
        row.append(_fmt(e.get("images_per_second"), 2))
        rows.append(row)
    return header, rows


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


def _write_md(path: str | Path, title: str, lines: Sequence[str], tables: Sequence[Table]) -> Path:
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
    return _write_md(
        path, title, [_reference_line(summary), "", *extra_lines], [summary_table(summary)]
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
        ax.set_title(title, fontsize=9)
    if image is None:
        ax.set_frame_on(False)  # blank, but keeps a row label set with set_ylabel
        return None
    kwargs = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0, "interpolation": "antialiased", **kwargs}
    return ax.imshow(image, **kwargs)


def _crop_side(shape: tuple[int, ...], fraction: float) -> int:
    """Side of the zoomed crop: `fraction` of the shorter side, at least 8 pixels."""
    short = min(shape)
    return min(short, max(8, round(short * fraction)))


def example_panel_figure(
    examples: Sequence[Mapping[str, Any]], path: str | Path, crop_fraction: float = 0.25
) -> Path:
    """Example grid: one row per example, columns clean / noisy / each method.

    Two more rows show the first example: a central crop (``crop_fraction`` of the side)
    and the residual of each column (minus clean when there is one, else minus noisy) on
    one shared diverging scale. With a clean image, panels are labelled with their PSNR.

    Parameters
    ----------
    examples : dicts ``{"image": id, "clean": array or None, "noisy": array,
        "outputs": {method: array}}``, arrays float (H, W) in [0, 1].
    path : PNG file to write.
    """
    if not examples:
        raise ValueError("example_panel_figure needs at least one example")
    methods = list(dict.fromkeys(m for ex in examples for m in ex.get("outputs", {})))
    has_clean = any(ex.get("clean") is not None for ex in examples)
    columns = (["clean"] if has_clean else []) + ["noisy"] + methods

    def image_of(ex: Mapping[str, Any], column: str) -> np.ndarray | None:
        value = (
            ex.get(column) if column in ("clean", "noisy") else ex.get("outputs", {}).get(column)
        )
        return None if value is None else np.asarray(value, dtype=np.float32)

    nrows, ncols = len(examples) + 2, len(columns)
    fig = Figure(figsize=(PANEL_INCHES * ncols, PANEL_INCHES * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for r, ex in enumerate(examples):
        clean = image_of(ex, "clean")
        for c, column in enumerate(columns):
            img = image_of(ex, column)
            _show(axes[r, c], img, column if r == 0 else "")
            if img is not None and clean is not None and column != "clean":
                axes[r, c].set_xlabel(f"{psnr(clean, img, data_range=1.0):.2f} dB", fontsize=8)
        axes[r, 0].set_ylabel(str(ex.get("image", r)), fontsize=8)

    first = examples[0]
    base_name = "clean" if image_of(first, "clean") is not None else "noisy"
    base = image_of(first, base_name)
    crop_row, res_row = axes[-2], axes[-1]
    residuals: dict[int, np.ndarray] = {}
    for c, column in enumerate(columns):
        img = image_of(first, column)
        _show(crop_row[c], None if img is None else center_crop(img, _crop_side(img.shape, crop_fraction)))
        if img is not None and column != base_name:
            residuals[c] = img - base
    crop_row[0].set_ylabel(f"{first.get('image', 0)}: crop", fontsize=8)
    res_row[0].set_ylabel(f"minus {base_name}", fontsize=8)
    limit = max([float(np.percentile(np.abs(r), 99.5)) for r in residuals.values()] + [1e-6])
    shown = None
    for c in range(ncols):
        shown = _show(res_row[c], residuals.get(c), cmap="RdBu_r", vmin=-limit, vmax=limit) or shown
    if shown is not None:
        fig.colorbar(shown, ax=list(res_row), shrink=0.8, label="residual")
    return save_figure(fig, path)


def _values_by_method(rows: Iterable[Row], key: str) -> dict[str, list[float]]:
    values: dict[str, list[float]] = {}
    for row in rows:
        x = _number(row.get(key))
        values.setdefault(str(row["method"]), [])
        if math.isfinite(x):
            values[str(row["method"])].append(x)
    return values


def distribution_figure(rows: Iterable[Row], path: str | Path) -> Path:
    """Box plots of per-image PSNR and SSIM per method (non-finite values left out)."""
    rows = list(rows)
    fig = Figure(figsize=(10, 4), layout="constrained")
    for ax, (key, label) in zip(fig.subplots(1, 2), [("psnr", "PSNR (dB)"), ("ssim", "SSIM")]):
        values = _values_by_method(rows, key)
        names = list(values)
        ax.boxplot([v or [math.nan] for v in values.values()], showmeans=True)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)


def _series(rows: Sequence[Row], key: str) -> tuple[list[float], list[float]]:
    """(epoch, value) pairs of a training-log column where both are finite."""
    pairs = [(_number(r.get("epoch")), _number(r.get(key))) for r in rows]
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


def noise_figure(manifest_rows: Iterable[Row], path: str | Path) -> Path:
    """Estimated noise after versus before denoising, one point per image."""
    before, after = _noise_pairs(manifest_rows)
    fig = Figure(figsize=(4.5, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.scatter(before, after, s=12, alpha=0.7)
    top = max(before + after + [1e-3])
    ax.plot([0, top], [0, top], color="gray", linestyle="--", linewidth=1, label="no change")
    ax.set(xlabel="estimated noise before", ylabel="estimated noise after", xlim=(0, top * 1.05))
    ax.set_ylim(0, top * 1.05)
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


# --------------------------------------------------------------------------- HTML

_STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #eee; }
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
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _write_html(
    path: str | Path,
    title: str,
    lines: Sequence[str],
    tables: Sequence[Table],
    figures: Mapping[str, str | Path],
    notes: Sequence[str],
) -> Path:
    """One self-contained page: inline style, tables, figures as data URIs, notes."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p>{html.escape(line)}</p>" for line in lines if line]
    parts += [_html_table(t) for t in tables]
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
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def write_report_html(
    path: str | Path,
    title: str,
    summary: Mapping[str, Any] | None,
    figures: Mapping[str, str | Path],
    notes: Sequence[str] = (),
) -> Path:
    """Self-contained HTML report: the method table, figures (keyed by caption), notes.

    Nothing is loaded from outside the file: the style is inline and every figure is a
    base64 PNG data URI, so it opens offline.
    """
    lines = [] if summary is None else [_reference_line(summary)]
    tables = [] if summary is None else [summary_table(summary)]
    return _write_html(path, title, lines, tables, figures, notes)


# --------------------------------------------------------------------------- real scans


def _noise_pairs(manifest_rows: Iterable[Row]) -> tuple[list[float], list[float]]:
    """(before, after) estimated noise of the rows where both are known."""
    pairs = [(_number(r.get("noise_before")), _number(r.get("noise_after"))) for r in manifest_rows]
    kept = [(b, a) for b, a in pairs if math.isfinite(b) and math.isfinite(a)]
    return [b for b, _ in kept], [a for _, a in kept]


def apply_table(manifest_rows: Iterable[Row]) -> Table:
    """Per-image table of a ``denoise apply`` manifest: noise before/after, change, time."""
    header = ["input", "output", "noise before", "noise after", "change", "seconds"]
    rows = []
    for r in manifest_rows:
        before, after = _number(r.get("noise_before")), _number(r.get("noise_after"))
        change = 100.0 * (after - before) / before if before > 0 else math.nan
        rows.append(
            [
                Path(str(r.get("input", ""))).name,
                Path(str(r.get("output") or "")).name or "–",
                _fmt(before, 4),
                _fmt(after, 4),
                "–" if math.isnan(change) else f"{change:+.1f}%",
                _fmt(r.get("seconds"), 2),
            ]
        )
    return header, rows


def _apply_lines(manifest_rows: Sequence[Row]) -> list[str]:
    before, after = _noise_pairs(manifest_rows)
    seconds = [s for s in (_number(r.get("seconds")) for r in manifest_rows) if math.isfinite(s)]
    intro = (
        f"{len(manifest_rows)} images; no clean reference, so noise is estimated "
        "(wavelet MAD, in [0, 1] units) before and after denoising."
    )
    lines = [intro]
    if before:
        diff = paired_difference(after, before)
        lines.append(
            f"Mean estimated noise {np.mean(before):.4f} before, {np.mean(after):.4f} after; "
            f"mean change {_fmt_ci(diff, 4, True)} (95% CI, {diff['n']} images)."
        )
    if seconds and sum(seconds) > 0:
        lines.append(f"{sum(seconds):.1f} s in total, {len(seconds) / sum(seconds):.2f} images/s.")
    return lines


def write_apply_report(
    manifest_rows: Iterable[Row],
    examples: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    title: str = "Denoising of real scans",
) -> dict[str, Path]:
    """report.md and report.html for scans without a clean reference.

    Parameters
    ----------
    manifest_rows : rows of the ``denoise apply`` manifest (``input``, ``output``,
        ``noise_before``, ``noise_after``, ``seconds``, ...); values may be CSV strings.
    examples : example dicts as for :func:`example_panel_figure` (``clean`` None); may be empty.
    out_dir : folder for ``report.md``, ``report.html`` and ``figures/``.

    Returns
    -------
    ``{"markdown", "html", and each figure written: "noise", "examples"}`` paths.
    """
    rows, out_dir = list(manifest_rows), Path(out_dir)
    lines, table = _apply_lines(rows), apply_table(rows)
    written: dict[str, Path] = {}
    figures: dict[str, Path] = {}
    if _noise_pairs(rows)[0]:
        written["noise"] = noise_figure(rows, out_dir / "figures" / "noise_before_after.png")
        figures["Estimated noise after versus before denoising"] = written["noise"]
    if examples:
        written["examples"] = example_panel_figure(examples, out_dir / "figures" / "examples.png")
        figures["Examples: input, output; crop and residual (output minus input)"] = written[
            "examples"
        ]
    written.update(write_page(out_dir, title, lines, [table], figures))
    return written


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
        "markdown": _write_md(out_dir / "report.md", title, [*lines, "", *links, *notes], tables),
        "html": _write_html(out_dir / "report.html", title, lines, tables, figures, notes),
    }
