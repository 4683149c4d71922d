"""Where a result comes from: the software environment, the git commit of the code, files' SHA-256.

Saved beside every run, adaptation and benchmark figure (``environment.json``) and in the
apply manifest (each input's and the model's digest).
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pipeline.version import __version__

#: The folder above the package: the git checkout when the code runs from one.
SOURCE_CHECKOUT = Path(__file__).resolve().parent.parent


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_commit(
    checkout: str | Path = SOURCE_CHECKOUT, digits: int = 40, untracked: bool = True
) -> str | None:
    """The HEAD commit of the git checkout `checkout`, with ``+dirty`` when it has changes.

    Its first `digits` hex digits; new untracked files count as changes when `untracked`. None
    outside a checkout or without git.
    """

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(checkout), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout.strip()

    try:
        head = (
            git("rev-parse", f"--short={digits}", "HEAD")
            if digits < 40
            else git("rev-parse", "HEAD")
        )
        dirty = git("status", "--porcelain", f"--untracked-files={'normal' if untracked else 'no'}")
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def environment() -> dict[str, Any]:
    """Versions and hardware, saved beside every result."""
    import numpy as np
    import pydicom
    import skimage
    import torch

    return {
        "package": __version__,
        "commit": git_commit(digits=12, untracked=False),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "monai": version("monai"),  # its installed version: importing MONAI loads all of it
        "pydicom": pydicom.__version__,
        "scikit_image": skimage.__version__,
        "numpy": np.__version__,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
