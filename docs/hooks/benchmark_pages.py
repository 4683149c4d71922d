"""MkDocs hook: publish the benchmarks/ folder (results pages and their data) in the site.

The benchmark scripts write ``benchmarks/`` at the project root; this hook adds every file
there to the site under ``benchmarks/`` without copying it into ``docs/``, so the pages
and their links are checked by ``mkdocs build --strict`` and always show what the scripts
last wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def on_files(files: Files, config: Any) -> Files:
    """Add each file under benchmarks/ (Markdown as pages, the rest as downloads)."""
    for path in sorted(BENCHMARKS.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            uri = f"benchmarks/{path.relative_to(BENCHMARKS).as_posix()}"
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
