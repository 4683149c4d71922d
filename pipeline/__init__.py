"""denoise-pipeline: denoising of radiographs and other scans.

Stages (each usable alone): :mod:`pipeline.ingest`, :mod:`pipeline.noise`,
:mod:`pipeline.models`, :mod:`pipeline.train`, :mod:`pipeline.inference`,
:mod:`pipeline.metrics`, :mod:`pipeline.report`; :mod:`pipeline.runner` chains them and
:mod:`pipeline.apply` denoises whole folders (``from pipeline import apply_folder``).
"""

from typing import Any

from pipeline.version import __version__

__all__ = ["__version__", "apply_folder"]


def __getattr__(name: str) -> Any:
    """``pipeline.apply_folder``, imported on first use so that ``import pipeline`` stays light."""
    if name == "apply_folder":
        from pipeline.apply import apply_folder

        return apply_folder
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
