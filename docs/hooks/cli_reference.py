"""MkDocs hook: the command-line reference page, rendered from the ``denoise`` parser.

Each sub-command's ``--help`` text is taken from :func:`pipeline.cli.build_parser` at build
time, so the page lists exactly the options the command accepts.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PAGE = "reference/cli.md"
INTRO = """# Command-line reference

Generated at build time from the `denoise` command's own parser, so every option below is
one the command accepts. What the commands do, with examples: [Command line](../guide/cli.md).
"""


def _parser() -> argparse.ArgumentParser:
    """The ``denoise`` parser of the checkout being documented."""
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    return importlib.import_module("pipeline.cli").build_parser()


def render() -> str:
    """The whole page: the top-level help, then each sub-command's."""
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps help text to the terminal width
    try:
        parser = _parser()
        lines = [INTRO, "## `denoise`", "", "```text", parser.format_help().rstrip(), "```", ""]
        for action in parser._subparsers._group_actions:  # the one sub-parsers action
            for name, sub in action.choices.items():
                help_text = sub.format_help().rstrip()
                lines += [f"## `denoise {name}`", "", "```text", help_text, "```", ""]
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return "\n".join(lines)


def on_files(files: Files, config: Any) -> Files:
    """Add the generated page to the site."""
    files.append(File.generated(config, PAGE, content=render()))
    return files
