"""The report of a folder run (``OUT/report.html``): a viewer of a sample of the scans and a
sortable table of every file.

The page itself is self-contained (inline style and script; thumbnails and crops as
``data:`` URIs). Full-resolution views of the sampled scans (input, output and the removed
component, input minus output) are PNG files in ``report_views/`` beside it, linked
relatively, so the page stays light for a folder of any size. The sample covers the
formats, the sub-folders and the range of estimated noise (:func:`choose_sample`).
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
import shlex
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from matplotlib.figure import Figure

from pipeline import __version__
from pipeline.apply.plan import REPORT_VIEWS
from pipeline.apply.records import NOISE_AFTER, NOISE_BEFORE
from pipeline.io import read_image
from pipeline.io.png import write_png
from pipeline.metrics import paired_difference
from pipeline.report import (
    Table,
    as_float,
    detail_crop,
    format_ci,
    html_header,
    html_page,
    png_data_uri,
    save_figure,
    write_md,
)
from pipeline.text import path_from_text, path_text, short_text

log = logging.getLogger(__name__)

#: Scans shown in the viewer.
SAMPLE_SIZE = 8
#: Largest side of the inline thumbnails.
THUMBNAIL_SIDE = 192
#: The zoomed crop's side: a quarter of the short side, within these bounds.
CROP_MIN, CROP_MAX = 64, 256
#: Pixels of a full-resolution view converted at a time (2 MiB of RGBA float64).
BLOCK_PIXELS = 1 << 16
#: zlib level of the full-resolution views.
VIEW_COMPRESS_LEVEL = 6
VIEWS = REPORT_VIEWS

Row = Mapping[str, Any]


def noise_of(row: Row) -> tuple[float, float]:
    """(before, after) estimated noise of a manifest row (NaN where unknown)."""
    return as_float(row.get(NOISE_BEFORE)), as_float(row.get(NOISE_AFTER))


def relative_input(row: Row, input_dir: Path | None) -> str:
    """The row's input path relative to IN (as given when it is outside IN or IN is unknown)."""
    path = Path(str(row.get("input", "")))  # as the manifest records it: printable text
    if input_dir is not None:
        try:
            return path.relative_to(path_text(input_dir)).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def _format_of(row: Row) -> str:
    suffixes = "".join(Path(str(row.get("input", ""))).suffixes[-2:]).lower()
    return suffixes.lstrip(".") or "no suffix"


def choose_sample(rows: Sequence[Row], input_dir: Path | None, size: int = SAMPLE_SIZE) -> list[Row]:
    """At most `size` rows covering formats, folders and the noise range.

    First the noisiest row of each (format, folder) group in turn, then rows spread evenly
    over the estimated noise before denoising (lowest and highest included), until `size`.
    Returned in path order.
    """
    rows = [r for r in rows if r.get("output")]
    if len(rows) <= size:
        return sorted(rows, key=lambda r: relative_input(r, input_dir))

    def noise(row: Row) -> float:
        value = noise_of(row)[0]
        return value if math.isfinite(value) else -math.inf

    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        folder = Path(relative_input(row, input_dir)).parent.as_posix()
        groups.setdefault((_format_of(row), folder), []).append(row)
    chosen: dict[str, Row] = {}
    for group in groups.values():
        if len(chosen) == size:
            break
        best = max(group, key=noise)
        chosen[str(best["input"])] = best
    by_noise = sorted(rows, key=noise)
    slots = size - len(chosen)
    for k in range(slots):
        if len(chosen) == size:
            break
        index = round(k * (len(by_noise) - 1) / max(1, slots - 1))
        candidates = by_noise[index:] + by_noise[:index][::-1]
        row = next(r for r in candidates if str(r["input"]) not in chosen)
        chosen[str(row["input"])] = row
    return sorted(chosen.values(), key=lambda r: relative_input(r, input_dir))


# --------------------------------------------------------------------------- pictures


def _first_image(path: Path) -> np.ndarray:
    """Pixels of the first image of a file, or of the first file of a frames folder."""
    if path.is_dir():
        path = min(p for p in path.iterdir() if not p.name.startswith("."))
    return read_image(path)[0].pixels


def _png(array: np.ndarray) -> bytes:
    """PNG bytes of an 8-bit gray (H, W) or RGB (H, W, 3) array."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def _gray8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def _diverging8(diff: np.ndarray, limit: float) -> np.ndarray:
    """RGB of a signed image on a blue-white-red scale, ±limit at the ends."""
    from matplotlib import colormaps

    rgba = colormaps["RdBu_r"](np.clip(diff / limit, -1, 1) * 0.5 + 0.5)
    return np.round(rgba[..., :3] * 255).astype(np.uint8)


def _by_rows(image: np.ndarray, convert: Callable[[np.ndarray], np.ndarray], channels: int = 0) -> np.ndarray:
    """``convert(image)`` as uint8, computed :data:`BLOCK_PIXELS` pixels at a time: its float
    temporaries (RGBA float64 for a colour map) stay a few MiB on a scan of any size."""
    picture = np.empty(image.shape + ((channels,) if channels else ()), np.uint8)
    step = max(1, BLOCK_PIXELS // max(image.shape[1], 1))
    for top in range(0, image.shape[0], step):
        picture[top : top + step] = convert(image[top : top + step])
    return picture


def _thumbnail(image: np.ndarray, side: int = THUMBNAIL_SIDE) -> np.ndarray:
    """Block-mean reduction so that no side exceeds `side`."""
    step = max(1, -(-max(image.shape[:2]) // side))
    h, w = (image.shape[0] // step) * step, (image.shape[1] // step) * step
    return image[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3))


def _uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


@dataclass
class ScanView:
    """One sampled scan as the viewer shows it."""

    index: int
    rel_input: str
    rel_output: str
    shape: tuple[int, int]
    noise_before: float
    noise_after: float
    limit: float
    crop: tuple[int, int, int]
    files: dict[str, str]  # input/output/removed -> path relative to the report
    crops: dict[str, str]  # input/output/removed -> data URI
    thumbnail: str


def _subtract_spilled(minuend: np.ndarray, spill: BinaryIO) -> None:
    """``minuend -= image`` for the float32 image of its shape written to `spill`, a block of
    rows at a time (only one block of the image is in memory)."""
    spill.seek(0)
    step = max(1, BLOCK_PIXELS // max(minuend.shape[1], 1))
    for top in range(0, minuend.shape[0], step):
        rows = minuend[top : top + step]
        rows -= np.fromfile(spill, np.float32, rows.size).reshape(rows.shape)


def _magnitude_percentile(image: np.ndarray, q: float, spill: BinaryIO) -> float:
    """``np.percentile(np.abs(image), q)`` without a second image in memory: `image` is set
    aside in `spill` while its magnitudes replace it, then read back."""
    spill.seek(0)
    image.tofile(spill)
    value = float(np.percentile(np.abs(image, out=image), q, overwrite_input=True))
    spill.seek(0)
    spill.readinto(memoryview(image).cast("B"))
    return value


def make_view(index: int, row: Row, output_dir: Path, input_dir: Path | None) -> ScanView:
    """Read a sampled scan and its output; write its full-resolution views beside the report.

    Memory: about two float32 images at once, never three. The output is read and drawn
    first, then set aside in an anonymous temporary file while the input is read; the
    removed component replaces the input in place, and the pictures are made a block of
    rows at a time.
    """
    after_img = _first_image(output_dir / path_from_text(str(row["output"])))
    shape = h, w = after_img.shape
    crop = detail_crop(after_img, int(np.clip(min(h, w) // 4, min(CROP_MIN, h, w), CROP_MAX)))
    folder = output_dir / VIEWS
    folder.mkdir(parents=True, exist_ok=True)
    files, crops = {}, {}

    def save(name: str, picture: np.ndarray) -> None:
        top, left, side = crop
        target = folder / f"{index:03d}_{name}.png"
        write_png(picture, target, level=VIEW_COMPRESS_LEVEL)  # in bands: no whole-file copy
        files[name] = f"{VIEWS}/{target.name}"
        crops[name] = _uri(_png(np.ascontiguousarray(picture[top : top + side, left : left + side])))

    save("output", _by_rows(after_img, _gray8))
    thumbnail = _uri(_png(_gray8(_thumbnail(after_img))))
    with tempfile.TemporaryFile(dir=folder) as spill:  # removed by the system, even after a crash
        after_img.astype(np.float32, copy=False).tofile(spill)
        del after_img
        removed = _first_image(Path(path_from_text(str(row["input"]))))
        if removed.shape != shape:
            raise ValueError(f"input {removed.shape} and output {shape} differ in size")
        save("input", _by_rows(removed, _gray8))
        _subtract_spilled(removed, spill)  # input - output, in place of the input
        limit = max(_magnitude_percentile(removed, 99.5, spill), 1e-4)
    picture = _by_rows(removed, lambda rows: _diverging8(rows, limit), channels=3)
    del removed
    save("removed", picture)
    before, after = noise_of(row)
    return ScanView(
        index, relative_input(row, input_dir), str(row["output"]), (h, w), before, after, limit, crop,
        {name: files[name] for name in ("input", "output", "removed")}, crops, thumbnail,
    )


# --------------------------------------------------------------------------- page

HOW_TO_VIEW = (
    "<p>Each scan: <b>Compare</b> shows the input left of the slider and the output right of it; "
    "<b>Input</b>, <b>Output</b> and <b>Removed</b> show one of them; <b>Native size 1:1</b> shows every "
    "pixel (scroll to pan). The full-resolution views are the PNG files in {views}/ beside this page.</p>"
)

_STYLE = """
.gallery { display: flex; flex-wrap: wrap; gap: 0.6em; margin: 1em 0; }
.gallery a { display: block; width: 140px; text-decoration: none; color: #222; font-size: 0.8em; }
.gallery img { display: block; width: 140px; height: 140px; object-fit: contain; background: #000; }
section.scan { border-top: 1px solid #ccc; padding-top: 0.8em; margin-top: 1.5em; }
section.scan h3 { margin: 0 0 0.2em; font-size: 1.05em; }
.controls { display: flex; flex-wrap: wrap; gap: 0.4em 0.8em; align-items: center; margin: 0.5em 0; }
.controls button { font: inherit; padding: 0.2em 0.7em; border: 1px solid #888; background: #f4f4f4;
  border-radius: 3px; cursor: pointer; }
.controls button[aria-pressed="true"] { background: #234; color: #fff; }
.stage { max-width: 100%; max-height: 85vh; overflow: auto; background: #000; text-align: center; }
.layers { position: relative; display: inline-block; max-width: 100%; line-height: 0; vertical-align: top; }
.layers img { display: block; max-width: 100%; max-height: 80vh; width: auto; height: auto; }
.stage.native .layers { max-width: none; }
.stage.native .layers img { max-width: none; max-height: none; }
.layers img.top { position: absolute; left: 0; top: 0; width: 100%; height: 100%; }
.divider { position: absolute; top: 0; bottom: 0; width: 2px; background: #ffcc00; pointer-events: none; }
.cropbox { position: absolute; border: 2px solid #ffcc00; pointer-events: none; }
.crops { display: flex; flex-wrap: wrap; gap: 0.8em; margin: 0.8em 0; }
.crops figure { margin: 0; flex: 0 1 auto; max-width: 100%; }
.crops img { max-width: 100%; height: auto; image-rendering: pixelated; display: block; }
.scale { display: flex; flex-wrap: wrap; align-items: center; gap: 0.3em 0.5em; font-size: 0.9em; }
.scale span { white-space: nowrap; }
.scale .bar { width: 160px; height: 12px;
  background: linear-gradient(to right, #053061, #f7f7f7, #67001f); border: 1px solid #888; }
td.path { overflow-wrap: anywhere; text-align: left; min-width: 12em; }
th[data-sort="text"] { text-align: left; }
th[data-sort] { cursor: pointer; }
th[data-sort]::after { content: " ⇅"; color: #888; }
"""

_SCRIPT = """
document.querySelectorAll('section.scan').forEach(function (scan) {
  var stage = scan.querySelector('.stage'), top = scan.querySelector('img.top');
  var base = scan.querySelector('img.base'), slider = scan.querySelector('input[type=range]');
  var divider = scan.querySelector('.divider'), buttons = scan.querySelectorAll('button[data-mode]');
  function setMode(mode) {
    buttons.forEach(function (b) { b.setAttribute('aria-pressed', String(b.dataset.mode === mode)); });
    var compare = mode === 'compare';
    slider.disabled = !compare;
    top.style.visibility = compare ? 'visible' : 'hidden';
    divider.style.visibility = compare ? 'visible' : 'hidden';
    base.src = scan.dataset[compare ? 'input' : mode];
  }
  function slide() {
    top.style.clipPath = 'inset(0 0 0 ' + slider.value + '%)';
    divider.style.left = slider.value + '%';
  }
  buttons.forEach(function (b) { b.addEventListener('click', function () { setMode(b.dataset.mode); }); });
  slider.addEventListener('input', slide);
  scan.querySelector('button.zoom').addEventListener('click', function (e) {
    var native = stage.classList.toggle('native');
    e.target.setAttribute('aria-pressed', String(native));
  });
  slide();
  setMode('compare');
});
document.querySelectorAll('table.sortable').forEach(function (table) {
  table.querySelectorAll('th[data-sort]').forEach(function (th, column) {
    th.addEventListener('click', function () {
      var body = table.tBodies[0], rows = Array.from(body.rows);
      var ascending = th.dataset.order !== 'asc';
      th.dataset.order = ascending ? 'asc' : 'desc';
      var numeric = th.dataset.sort === 'number';
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.value, y = b.cells[column].dataset.value;
        var c = numeric ? (parseFloat(x) || 0) - (parseFloat(y) || 0) : x.localeCompare(y);
        return ascending ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _fmt(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "–"


def _change(before: float, after: float) -> float:
    return 100.0 * (after - before) / before if before > 0 and math.isfinite(after) else math.nan


def _scan_section(view: ScanView) -> str:
    h, w = view.shape
    top, left, side = view.crop
    box = (f"left:{100 * left / w:.3f}%;top:{100 * top / h:.3f}%;"
           f"width:{100 * side / w:.3f}%;height:{100 * side / h:.3f}%")
    change = _change(view.noise_before, view.noise_after)
    name = html.escape(view.rel_input)
    data = " ".join(f'data-{k}="{html.escape(v)}"' for k, v in view.files.items())
    crops = "".join(
        f'<figure><img src="{view.crops[key]}" width="{side}" height="{side}" alt="{key} crop of {name}">'
        f'<figcaption>{words}</figcaption></figure>'
        for key, words in (("input", "input"), ("output", "output"), ("removed", "removed (input − output)"))
    )
    return f"""<section class="scan" id="scan-{view.index}" {data}>
<h3>{name}</h3>
<p>{w}×{h} px · estimated noise {_fmt(view.noise_before)} → {_fmt(view.noise_after)}
({'–' if math.isnan(change) else f'{change:+.0f}%'}) of the full range · output {html.escape(view.rel_output)}</p>
<div class="controls">
<button type="button" data-mode="compare">Compare</button>
<label>input <input type="range" min="0" max="100" value="50" aria-label="divide input (left) and output (right)"> output</label>
<button type="button" data-mode="input">Input</button>
<button type="button" data-mode="output">Output</button>
<button type="button" data-mode="removed">Removed</button>
<button type="button" class="zoom" aria-pressed="false">Native size 1:1</button>
</div>
<div class="stage"><div class="layers">
<img class="base" src="{html.escape(view.files['input'])}" alt="{name}">
<img class="top" src="{html.escape(view.files['output'])}" alt="{name}, denoised">
<div class="divider"></div>
<div class="cropbox" style="{box}"></div>
</div></div>
<p>Outlined: the {side}×{side} px crop with the most detail (at x {left}, y {top}), at native size (1:1; smaller only on a narrow screen):</p>
<div class="crops">{crops}</div>
<div class="scale"><span>removed component:</span> <span>−{view.limit:.3g}</span><span class="bar"></span><span>+{view.limit:.3g}</span>
<span>(fraction of the full range;</span> <span>blue: output brighter,</span> <span>red: output darker)</span></div>
</section>"""


def _gallery(views: Sequence[ScanView]) -> str:
    items = "".join(
        f'<a href="#scan-{v.index}"><img src="{v.thumbnail}" alt="">{html.escape(v.rel_input)}</a>' for v in views
    )
    return f'<div class="gallery">{items}</div>'


def _file_table(rows: Sequence[Row], input_dir: Path | None) -> str:
    columns = [("input (relative to IN)", "text"), ("output (relative to OUT)", "text"), ("pixels", "number"),
               ("noise before", "number"), ("noise after", "number"), ("change", "number"), ("seconds", "number")]
    head = "".join(f'<th data-sort="{kind}">{html.escape(title)}</th>' for title, kind in columns)
    body = []
    for row in rows:
        before, after = noise_of(row)
        change = _change(before, after)
        h, w = as_float(row.get("height")), as_float(row.get("width"))
        seconds = as_float(row.get("seconds"))
        cells = [
            (relative_input(row, input_dir), relative_input(row, input_dir), "path"),
            (str(row.get("output") or "–"), str(row.get("output") or ""), "path"),
            (f"{w:.0f}×{h:.0f}" if math.isfinite(h * w) else "–", h * w if math.isfinite(h * w) else "", ""),
            (_fmt(before), before if math.isfinite(before) else "", ""),
            (_fmt(after), after if math.isfinite(after) else "", ""),
            ("–" if math.isnan(change) else f"{change:+.1f}%", "" if math.isnan(change) else change, ""),
            (_fmt(seconds, 2), seconds if math.isfinite(seconds) else "", ""),
        ]
        body.append("<tr>" + "".join(
            f'<td class="{cls}" data-value="{html.escape(str(value))}">{html.escape(text)}</td>' for text, value, cls in cells
        ) + "</tr>")
    return (f'<div class="table-wrap"><table class="sortable"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _failure_rows(failures: Sequence[Mapping[str, str]], input_dir: Path | None) -> list[list[str]]:
    """(input relative to IN, reason) of each failure, cut and escaped as failures.csv's are."""
    return [[short_text(relative_input({"input": f.get("path", "")}, input_dir)), short_text(str(f.get("reason", "")))]
            for f in failures]


def _failure_table(failures: Sequence[Mapping[str, str]], input_dir: Path | None) -> str:
    rows = "".join(f"<tr><td class=\"path\">{html.escape(p)}</td><td>{html.escape(r)}</td></tr>"
                   for p, r in _failure_rows(failures, input_dir))
    return ('<h2>Failed files</h2><p>Not denoised; the same reasons are in failures.csv.</p>'
            '<div class="table-wrap"><table><thead><tr><th>input (relative to IN)</th><th>reason</th></tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")


def _command_line() -> str:
    """How this process was started, e.g. ``denoise apply -i IN -o OUT``."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program == "__main__.py":
        program = "python -m pipeline"
    return " ".join([program, *(shlex.quote(path_text(a)) for a in sys.argv[1:])])


def _summary_lines(rows: Sequence[Row], shown: int, failed: int = 0) -> list[str]:
    pairs = [noise_of(r) for r in rows]
    pairs = [(b, a) for b, a in pairs if math.isfinite(b) and math.isfinite(a)]
    seconds = [s for s in (as_float(r.get("seconds")) for r in rows) if math.isfinite(s)]
    failed_words = f"{failed} failed (reasons under Failed files and in failures.csv); " if failed else ""
    lines = [(
        f"{len(rows)} files denoised; {failed_words}{shown} of the denoised shown below, chosen to cover the formats, the folders "
        "and the range of noise. There is no clean reference, so the noise is estimated (wavelet median "
        "absolute deviation on the central part, as a fraction of the image's full range) before and after."
    )]
    if pairs:
        before, after = [b for b, _ in pairs], [a for _, a in pairs]
        diff = paired_difference(after, before)
        lines.append(
            f"Mean estimated noise {np.mean(before):.4f} before, {np.mean(after):.4f} after; "
            f"mean change {format_ci(diff, 4, True)} (95% CI, {diff['n']} files)."
        )
    if seconds and sum(seconds) > 0:
        lines.append(f"{sum(seconds):.1f} s of work in all, {len(seconds) / sum(seconds):.2f} files/s.")
    return lines


def noise_figure(rows: Sequence[Row], path: Path) -> Path | None:
    """Estimated noise after versus before denoising, one point per file (None without data)."""
    pairs = [p for p in (noise_of(r) for r in rows) if all(math.isfinite(v) for v in p)]
    if not pairs:
        return None
    before, after = [b for b, _ in pairs], [a for _, a in pairs]
    fig = Figure(figsize=(5, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.scatter(before, after, s=14, alpha=0.7)
    top = max(before + after + [1e-3]) * 1.05
    ax.plot([0, top], [0, top], color="gray", linestyle="--", linewidth=1, label="no change")
    ax.set(xlabel="estimated noise before (fraction of range)", ylabel="estimated noise after",
           xlim=(0, top), ylim=(0, top))
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _facts(rows: Sequence[Row], output_dir: Path, input_dir: Path | None) -> dict[str, str]:
    models = list(dict.fromkeys(str(r.get("model") or "") for r in rows if r.get("model")))
    checksums = list(dict.fromkeys(str(r.get("model_sha256") or "") for r in rows if r.get("model_sha256")))
    return {
        "model": "; ".join(models) or "unknown",
        "sha256 (first 16 hex digits)": "; ".join(checksums) or "unknown",
        "version": f"denoise-pipeline {__version__}",
        "IN": path_text(input_dir) if input_dir is not None else "unknown",
        "OUT": path_text(output_dir),
        "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "command": _command_line(),
    }


@contextmanager
def _quiet_reads() -> Iterator[None]:
    """No warnings from reading files: what reading a file warns (an old ACR-NEMA file, ...)
    was said when the file was denoised; the report does not repeat it, not even on a
    rerun that skips every file."""
    logger = logging.getLogger("pipeline.io")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _return_freed_heap() -> None:
    """Give the heap memory that the denoising threads freed back to the system.

    glibc keeps it in the threads' own arenas, where the report, built on this thread,
    cannot reuse it: the views would come on top of it. Nothing to do on other C libraries.
    """
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _clear_old_views(folder: Path) -> None:
    """Remove the views an earlier report wrote (only files named as this module names them)."""
    if folder.is_dir():
        for path in folder.glob("[0-9][0-9][0-9]_*.png"):
            if path.stem.split("_", 1)[1] in ("input", "output", "removed"):
                path.unlink()


def write_apply_report(
    rows: Sequence[Row], output_dir: Path, input_dir: Path | None = None, sample_size: int = SAMPLE_SIZE,
    failures: Sequence[Mapping[str, str]] = (),
) -> dict[str, Path]:
    """``report.html``, ``report.md``, the sample's views and the noise figure; their paths.

    Parameters
    ----------
    rows : manifest rows (``input`` absolute, ``output`` relative to `output_dir`, noise,
        size, seconds, model and its sha256); values may be CSV strings.
    output_dir : OUT, where the page, ``report.md`` and ``report_views/`` (the views, the
        noise figure) go.
    input_dir : IN, for paths relative to it (None: paths as recorded).
    sample_size : scans shown in the viewer.
    failures : failures.csv rows (``path``, ``reason``), counted and listed.
    """
    output_dir = Path(output_dir)
    rows = sorted(rows, key=lambda r: relative_input(r, input_dir))
    _clear_old_views(output_dir / VIEWS)
    views = []
    _return_freed_heap()
    with _quiet_reads():
        for row in choose_sample(rows, input_dir, sample_size):
            try:
                views.append(make_view(len(views), row, output_dir, input_dir))
            except Exception as err:  # noqa: BLE001 - a scan that cannot be shown is left out
                log.warning("no view of %s in the report (%s)", row.get("input"), short_text(str(err), 200))
    facts = _facts(rows, output_dir, input_dir)
    lines = _summary_lines(rows, len(views), len(failures))
    written: dict[str, Path] = {}
    figure = noise_figure(rows, output_dir / VIEWS / "noise_before_after.png")
    parts = [html_header("Denoised scans", facts)]
    parts += [f"<p>{html.escape(line)}</p>" for line in lines]
    if views:
        parts += ["<h2>Sample</h2>", _gallery(views), HOW_TO_VIEW.format(views=VIEWS)]
        parts += [_scan_section(v) for v in views]
    if failures:
        parts.append(_failure_table(failures, input_dir))
    parts += ["<h2>All files</h2><p>Click a column title to sort.</p>", _file_table(rows, input_dir)]
    if figure is not None:
        written["noise"] = figure
        parts.append(f'<figure><img src="{png_data_uri(figure)}" alt="noise after versus before">'
                     "<figcaption>Estimated noise after versus before denoising, one point per file</figcaption></figure>")
    page = output_dir / "report.html"
    page.write_text(html_page("Denoised scans · " + facts["date"], "\n".join(parts), _STYLE, _SCRIPT), encoding="utf-8")
    written["html"] = page
    table: Table = (
        ["input (relative to IN)", "output", "noise before", "noise after", "seconds"],
        [[relative_input(r, input_dir), str(r.get("output") or "–"), _fmt(noise_of(r)[0]), _fmt(noise_of(r)[1]),
          _fmt(as_float(r.get("seconds")), 2)] for r in rows],
    )
    md_lines = [f"{k}: {v}" for k, v in facts.items()] + ["", *lines, "", "The viewer is report.html."]
    tables = [table] + ([(["failed input (relative to IN)", "reason"], _failure_rows(failures, input_dir))]
                        if failures else [])
    written["markdown"] = write_md(output_dir / "report.md", "Denoised scans", md_lines, tables)
    return written


def write_report(
    rows: Sequence[Row], output_dir: Path, input_dir: Path | None = None, failures: Sequence[Mapping[str, str]] = (),
) -> Path | None:
    """report.html (and report.md, report_views/) for the manifest rows and failures; None when there are neither."""
    if not rows and not failures:
        return None
    try:
        return write_apply_report(rows, output_dir, input_dir, failures=failures)["html"]
    except Exception as err:  # noqa: BLE001 - the denoised files are complete either way
        log.warning("the report could not be written (%s: %s)", type(err).__name__, err)
        return None
