"""The HTML shell every report page shares: the page, its style, its header, tables, figures.

Pages are self-contained: the style (and script) is inline and every figure is a base64
PNG ``data:`` URI, so one file opens offline.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from pipeline.report.figures import png_data_uri
from pipeline.report.tables import Table, describe_method

STYLE = """
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
dl.methods { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; font-size: \
0.95em; }
dl.methods dt { font-family: monospace; font-weight: bold; }
dl.methods dd { margin: 0; }
figure { margin: 1.5em 0; }
img { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9em; }
"""


def html_table(table: Table) -> str:
    """A table (header, rows) as HTML, every cell escaped, in a horizontally scrolling box."""
    header, rows = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return (
        "<div "
        f'class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def html_header(title: str, facts: Mapping[str, str]) -> str:
    """The page's title and a line of facts (date, commit, folder, ...)."""
    items = "".join(
        f"<span><b>{html.escape(k)}</b> {html.escape(str(v))}</span>" for k, v in facts.items() if v
    )
    meta = f'<p class="meta">{items}</p>' if items else ""
    return f"<header><h1>{html.escape(title)}</h1>{meta}</header>"


def html_methods(methods: Iterable[str]) -> str:
    """The method codes with their meaning (:func:`pipeline.report.tables.describe_method`)."""
    items = "".join(
        f"<dt>{html.escape(name)}</dt><dd>{html.escape(describe_method(name))}</dd>"
        for name in methods
    )
    return f'<dl class="methods">{items}</dl>'


def html_page(title: str, body: str, style: str = "", script: str = "") -> str:
    """A whole self-contained page: the shell every report page shares.

    Parameters
    ----------
    title : the browser tab's title (escaped here).
    body : the page's HTML, usually starting with :func:`html_header`.
    style : CSS added after the shared :data:`STYLE` (fonts, header, tables, figures).
    script : JavaScript put at the end of the body.

    Returns
    -------
    The document: doctype, ``lang``, UTF-8 and viewport meta tags, the inline style, the
    body and the script. Nothing is loaded from outside the file.
    """
    tail = f"<script>{script}</script>" if script else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}{style}</style></head>\n<body>\n"
        f"{body}\n{tail}</body></html>\n"
    )


def figure_html(caption: str, uri: str, alt: str | None = None) -> str:
    """A ``<figure>`` of the image at `uri` (a path or data URI) with `caption` under it."""
    alt_text = caption if alt is None else alt
    return (
        f'<figure><img src="{uri}" alt="{html.escape(alt_text)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def page_title(title: str, facts: Mapping[str, str] | None) -> str:
    """The tab title: `title`, then the ``date`` fact when there is one (``title · date``)."""
    return " · ".join([title, *(str(v) for k, v in (facts or {}).items() if k == "date" and v)])


def write_html(
    path: str | Path,
    title: str,
    lines: Sequence[str],
    tables: Sequence[Table],
    figures: Mapping[str, str | Path],
    notes: Sequence[str],
    facts: Mapping[str, str] | None = None,
    methods: Sequence[str] = (),
) -> Path:
    """A results page: header, paragraphs, tables, method codes, figures and notes.

    The header holds `facts`, `lines` become paragraphs, figures (caption -> PNG file) are embedded
    as data URIs.
    """
    parts = [html_header(title, facts or {})]
    parts += [f"<p>{html.escape(line)}</p>" for line in lines if line]
    parts += [html_table(t) for t in tables]
    if methods:
        parts.append(html_methods(methods))
    for caption, fig_path in figures.items():
        if not Path(fig_path).is_file():
            raise FileNotFoundError(f"figure {caption!r} not found: {fig_path}")
        parts.append(figure_html(caption, png_data_uri(fig_path)))
    if notes:
        parts.append("<h2>Notes</h2><ul>")
        parts += [f"<li>{html.escape(n)}</li>" for n in notes]
        parts.append("</ul>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_page(page_title(title, facts), "\n".join(parts)), encoding="utf-8")
    return path
