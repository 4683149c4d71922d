"""The HTML sections of the apply report: a scan's viewer, the gallery and the file tables."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline.report.apply_sample import Row, noise_of, relative_input
from pipeline.report.apply_views import ScanView
from pipeline.report.formatting import as_float, format_number
from pipeline.text import short_text

#: Decimals of the estimated noise (a fraction of the full range).
NOISE_DIGITS = 4


def noise_change(before: float, after: float) -> float:
    """The change from `before` to `after` in percent (nan where undefined)."""
    return 100.0 * (after - before) / before if before > 0 and math.isfinite(after) else math.nan


def scan_section(view: ScanView) -> str:
    """A sampled scan's viewer: its facts, the compare controls, the views and the crops."""
    h, w = view.shape
    top, left, side = view.crop
    name = html.escape(view.rel_input)
    data = " ".join(f'data-{k}="{html.escape(v)}"' for k, v in view.files.items())
    return (
        f"""<section class="scan" id="scan-{view.index}" {data}>
<h3>{name}</h3>
{_scan_facts(view)}
{CONTROLS}
{_stage(view, name)}
<p>Outlined: the {side}×{side} px crop with the most detail (at x {left}, y {top}), """
        f"""at native size (1:1; smaller only on a narrow screen):</p>
<div class="crops">{_crops(view, name)}</div>
<div class="scale"><span>removed component:</span> <span>−{view.limit:.3g}</span>"""
        f"""<span class="bar"></span><span>+{view.limit:.3g}</span>
<span>(fraction of the full range;</span> <span>blue: output brighter,</span> """
        """<span>red: output darker)</span></div>
</section>"""
    )


#: The buttons and the divider slider of a scan's viewer.
CONTROLS = (
    """<div class="controls">
<button type="button" data-mode="compare">Compare</button>
<label>input <input type="range" min="0" max="100" value="50" """
    """aria-label="divide input (left) and output (right)"> output</label>
<button type="button" data-mode="input">Input</button>
<button type="button" data-mode="output">Output</button>
<button type="button" data-mode="removed">Removed</button>
<button type="button" class="zoom" aria-pressed="false">Native size 1:1</button>
</div>"""
)


def _scan_facts(view: ScanView) -> str:
    """The line under a scan's name: size, estimated noise before and after, output."""
    h, w = view.shape
    change = noise_change(view.noise_before, view.noise_after)
    before = format_number(view.noise_before, NOISE_DIGITS)
    after = format_number(view.noise_after, NOISE_DIGITS)
    return (
        f"<p>{w}×{h} px · estimated noise {before} → {after}\n"
        f"({'–' if math.isnan(change) else f'{change:+.0f}%'}) of the full range · "
        f"output {html.escape(view.rel_output)}</p>"
    )


def _stage(view: ScanView, name: str) -> str:
    """The stacked input and output views, the divider and the outline of the crop."""
    h, w = view.shape
    top, left, side = view.crop
    box = (
        f"left:{100 * left / w:.3f}%;top:{100 * top / h:.3f}%;"
        f"width:{100 * side / w:.3f}%;height:{100 * side / h:.3f}%"
    )
    return f"""<div class="stage"><div class="layers">
<img class="base" src="{html.escape(view.files["input"])}" alt="{name}">
<img class="top" src="{html.escape(view.files["output"])}" alt="{name}, denoised">
<div class="divider"></div>
<div class="cropbox" style="{box}"></div>
</div></div>"""


def _crops(view: ScanView, name: str) -> str:
    """The input, output and removed crops at native size."""
    side = view.crop[2]
    return "".join(
        f'<figure><img src="{view.crops[key]}" width="{side}" height="{side}" '
        f'alt="{key} crop of {name}">'
        f"<figcaption>{words}</figcaption></figure>"
        for key, words in (
            ("input", "input"),
            ("output", "output"),
            ("removed", "removed (input − output)"),
        )
    )


def gallery(views: Sequence[ScanView]) -> str:
    """Thumbnails of the sample, each a link to its viewer."""
    items = "".join(
        f'<a href="#scan-{v.index}"><img src="{v.thumbnail}" alt="">{html.escape(v.rel_input)}</a>'
        for v in views
    )
    return f'<div class="gallery">{items}</div>'


def file_table(rows: Sequence[Row], input_dir: Path | None) -> str:
    """The sortable table of every denoised file."""
    columns = [
        ("input (relative to IN)", "text"),
        ("output (relative to OUT)", "text"),
        ("pixels", "number"),
        ("noise before", "number"),
        ("noise after", "number"),
        ("change", "number"),
        ("seconds", "number"),
    ]
    head = "".join(f'<th data-sort="{kind}">{html.escape(title)}</th>' for title, kind in columns)
    body = []
    for row in rows:
        before, after = noise_of(row)
        change = noise_change(before, after)
        h, w = as_float(row.get("height")), as_float(row.get("width"))
        seconds = as_float(row.get("seconds"))
        cells = [
            (relative_input(row, input_dir), relative_input(row, input_dir), "path"),
            (str(row.get("output") or "–"), str(row.get("output") or ""), "path"),
            (
                f"{w:.0f}×{h:.0f}" if math.isfinite(h * w) else "–",
                h * w if math.isfinite(h * w) else "",
                "",
            ),
            (format_number(before, NOISE_DIGITS), before if math.isfinite(before) else "", ""),
            (format_number(after, NOISE_DIGITS), after if math.isfinite(after) else "", ""),
            (
                "–" if math.isnan(change) else f"{change:+.1f}%",
                "" if math.isnan(change) else change,
                "",
            ),
            (format_number(seconds, 2), seconds if math.isfinite(seconds) else "", ""),
        ]
        body.append(
            "<tr>"
            + "".join(
                f'<td class="{cls}" data-value="{html.escape(str(value))}">{html.escape(text)}</td>'
                for text, value, cls in cells
            )
            + "</tr>"
        )
    return (
        f'<div class="table-wrap"><table class="sortable"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def failure_rows(failures: Sequence[Mapping[str, str]], input_dir: Path | None) -> list[list[str]]:
    """(input relative to IN, reason) of each failure, cut and escaped as failures.csv's are."""
    return [
        [
            short_text(relative_input({"input": f.get("path", "")}, input_dir)),
            short_text(str(f.get("reason", ""))),
        ]
        for f in failures
    ]


def failure_table(failures: Sequence[Mapping[str, str]], input_dir: Path | None) -> str:
    """The table of the failed files and their reasons."""
    rows = "".join(
        f'<tr><td class="path">{html.escape(p)}</td><td>{html.escape(r)}</td></tr>'
        for p, r in failure_rows(failures, input_dir)
    )
    return (
        "<h2>Failed files</h2><p>Not denoised; the same reasons are in failures.csv.</p>"
        '<div class="table-wrap"><table><thead><tr><th>input (relative to IN)</th>'
        "<th>reason</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div>"
    )
