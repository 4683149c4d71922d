"""Tables of results: the method table, the method codes in words, markdown files."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.report.formatting import format_ci, format_number
from pipeline.report.summaries import NOISY

Table = tuple[list[str], list[list[str]]]


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
        row.append(format_number(e.get("images_per_second"), 2))  # "–" for the noisy input
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
    """A method code in words.

    ``tv`` → total-variation denoising ...; ``unet:x`` → trained residual U-Net (x).
    """
    if name in METHOD_WORDS:
        return METHOD_WORDS[name]
    network, _, origin = name.partition(":")
    words = MODEL_WORDS.get(network, network)
    return f"trained {words}" + (f" ({origin})" if origin else "")


def method_lines(methods: Iterable[str]) -> list[str]:
    """``code: words`` for each method, for the text under a table."""
    return [f"{name}: {describe_method(name)}" for name in methods]


def reference_line(summary: Mapping[str, Any]) -> str:
    """The sentence saying which method the paired differences are taken against."""
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
    """Write a Markdown page: `title`, `lines` and `tables`; its path."""
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
        path,
        title,
        [reference_line(summary), "", *extra_lines, "", "Methods:", "", *methods],
        [summary_table(summary)],
    )
