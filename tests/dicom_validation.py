"""Test helper: the errors the independent validator dciodvfy (dicom3tools) reports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest


def dciodvfy_errors(path: Path) -> set[str]:
    """The "Error" lines dciodvfy reports for `path`, with quoted values blanked.

    Quoted values (UIDs, dates: ``= <1995.07.20>``) differ between a source and its
    derived file, so they are blanked; attribute and module names are kept.
    """
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    run = subprocess.run(
        ["dciodvfy", str(path)], check=False, capture_output=True, text=True, timeout=60
    )
    lines = (run.stdout + run.stderr).splitlines()
    blank = re.compile(r"(?<!attribute )(?<!=)<[^>]*>")
    return {blank.sub("<>", line).strip() for line in lines if line.startswith("Error")}
