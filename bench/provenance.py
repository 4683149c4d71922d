"""Where a figure comes from: command, settings, git commit, date, machine and versions."""

from __future__ import annotations

import logging
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from bench.settings import Settings
from pipeline.provenance import environment, git_commit

_logger = logging.getLogger(
    "pipeline.bench"
)  # under the package logger, which setup_logging configures


def log(message: str) -> None:
    """A progress step of the benchmark (logged at INFO level), with the time."""
    _logger.info("[%s] %s", f"{datetime.now():%H:%M:%S}", message)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(settings: Settings) -> dict[str, Any]:
    """Command, settings (as data), commit, date and machine, recorded with every figure."""
    env = environment()
    return {
        "command": settings.command,
        "settings": settings.to_dict(),
        "git_commit": git_commit(settings.project) or "unknown",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": settings.quick,
        "machine": {
            "cpu_model": cpu_model(),
            "cpu_cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "gpu": env["cuda"],
            "platform": env["platform"],
        },
        "versions": {
            k: env[k] for k in ("package", "python", "torch", "monai", "scikit_image", "numpy")
        },
    }
