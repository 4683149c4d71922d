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


class ImageWriteError(PipelineError):
    """An image could not be encoded in the chosen format; the message names the output."""


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


def given_path(value: object, what: str) -> object:
    """`value` unchanged; PipelineError when it is an empty or blank string.

    ``-o ""`` (often an unset shell variable) would otherwise mean the current folder.
    """
    if isinstance(value, str) and not value.strip():
        raise PipelineError(f"{what} is an empty path (an unset shell variable?): give a folder")
    return value
