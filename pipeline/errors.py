"""Errors a user can cause: each carries one clear message naming the thing and what to do.

The command line prints these without a traceback; anything else is a bug.
"""

from __future__ import annotations


class PipelineError(Exception):
    """A problem with the user's input (file, folder, config, missing plugin)."""


class ConfigError(PipelineError):
    """A configuration file or override is invalid."""


class ImageReadError(PipelineError):
    """A file could not be read as an image; the message names the file and the reason."""


class MissingDependencyError(PipelineError):
    """An optional package is needed; the message names the package to install."""


def require(module: str, package: str, purpose: str):
    """Import `module` or raise MissingDependencyError naming the pip `package` to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the Python package '{package}': install it with "
            f"`pip install {package}`"
        ) from exc
