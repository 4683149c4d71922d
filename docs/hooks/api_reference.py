"""MkDocs hook: one API reference page per module of the ``pipeline`` package.

The module list is read from the checkout at build time, so a module added, moved or
removed changes the reference by itself; mkdocstrings renders each page from the
module's docstrings and signatures. The pages are appended to the nav section named
:data:`NAV_SECTION`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "pipeline"
NAV_SECTION = "API reference"


def modules() -> list[str]:
    """Dotted names of the package's public modules, packages before their contents."""
    names = []
    for path in sorted((PROJECT_ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(p.startswith("_") for p in parts):
            continue
        names.append(".".join(parts))
    return sorted(names, key=lambda n: n.split("."))


def page_uri(module: str) -> str:
    return f"reference/{module.replace('.', '/')}.md"


def on_config(config: Any) -> Any:
    """Append a nav entry per module to the API reference section."""
    for item in config.nav or []:
        if isinstance(item, dict) and NAV_SECTION in item:
            item[NAV_SECTION] += [{f"{name}": page_uri(name)} for name in modules()]
    return config


def on_files(files: Files, config: Any) -> Files:
    """Add a generated page per module that mkdocstrings fills in."""
    for name in modules():
        files.append(File.generated(config, page_uri(name), content=f"# `{name}`\n\n::: {name}\n"))
    return files
