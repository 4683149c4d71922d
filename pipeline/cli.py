"""The `denoise` command: a thin layer over the Python API (no logic of its own).

Errors a user can cause end in one line on stderr and exit status 2, never a traceback;
any other error is a bug and ends in one line and exit status 3. The parser is built here;
each command's options and what it runs are in :mod:`pipeline.commands`.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

from pipeline import __version__
from pipeline._mplcache import (
    exit_on_sigterm,
    no_onnxruntime_telemetry,
    use_private_matplotlib_cache,
)

# The denoise command keeps libraries' caches out of $HOME: set before the imports below load
# matplotlib (MONAI imports it) or onnxruntime. Importing the library elsewhere changes nothing.
use_private_matplotlib_cache()
no_onnxruntime_telemetry()

from pipeline.commands.configs import (
    RUNS_WHERE,
    add_compare_arguments,
    add_config_args,
    add_evaluate_arguments,
    cmd_compare,
    cmd_evaluate,
    cmd_run,
)
from pipeline.commands.configs import evaluate_fixed as _evaluate_fixed  # noqa: F401 - tests
from pipeline.commands.configs import evaluate_settings as _evaluate_settings  # noqa: F401
from pipeline.commands.models import (
    add_adapt_arguments,
    add_apply_arguments,
    add_export_arguments,
    add_inference_arguments,
    cmd_adapt,
    cmd_apply,
    cmd_export,
)
from pipeline.commands.tools import (
    add_fetch_arguments,
    add_show_config_arguments,
    cmd_config,
    cmd_fetch,
)
from pipeline.errors import PipelineError
from pipeline.logs import WarningPrinter as _WarningPrinter
from pipeline.logs import setup_logging, verbosity_level
from pipeline.pacs.cli import add_listen_arguments, cmd_listen


def _verbosity_options(default: object) -> argparse.ArgumentParser:
    """``-q``/``-v``, accepted before and after the command name."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=default,
        help="fewer messages: warnings only (-qq: errors only)",
    )
    options.add_argument(
        "-v", "--verbose", action="count", default=default, help="more messages (debug details)"
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``denoise`` command."""
    parser = argparse.ArgumentParser(
        prog="denoise",
        description="Denoise radiographs and other scans; train and evaluate denoisers.",
        parents=[_verbosity_options(0)],
    )
    parser.add_argument("--version", action="version", version=f"denoise-pipeline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    verbosity = [
        _verbosity_options(argparse.SUPPRESS)
    ]  # after the command, not overwriting the values before it
    _add_run_commands(sub, verbosity)
    _add_model_commands(sub, verbosity)
    _add_tool_commands(sub, verbosity)
    return parser


def _add_run_commands(sub: Any, verbosity: list[argparse.ArgumentParser]) -> None:
    """run, evaluate, compare: commands on configs."""
    p = sub.add_parser(
        "run",
        help="run the stages a config lists (train, evaluate, report)",
        parents=verbosity,
        description=f"Run the stages a config lists (train, evaluate, report); {RUNS_WHERE}.",
    )
    add_config_args(p, config_required=True)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "evaluate",
        help="compare models and classical baselines on clean images with synthetic noise",
        parents=verbosity,
        description="Add seeded synthetic noise to clean images and score models and baselines "
        "on them; needs --data or a CONFIG. The noise is the config's; with --data alone, "
        "Gaussian sigma 25/255 (a radiograph condition; the first line of output says which); "
        f"{RUNS_WHERE}.",
    )
    add_evaluate_arguments(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "compare",
        help="train several configs and compare them with baselines on the first one's test images",
        parents=verbosity,
        description="Train several configs, then compare them with baselines on the first one's "
        f"test images; {RUNS_WHERE}.",
    )
    add_compare_arguments(p)
    p.set_defaults(func=cmd_compare)


def _add_model_commands(sub: Any, verbosity: list[argparse.ArgumentParser]) -> None:
    """apply, listen, adapt, export: commands that use or make a model."""
    p = sub.add_parser(
        "apply", help="denoise every image under a folder into another folder", parents=verbosity
    )
    add_apply_arguments(p)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser(
        "listen",
        help="a DICOM node: receive instances (C-STORE), denoise them, forward them to an AE",
        parents=verbosity,
    )
    add_inference_arguments(p)
    add_listen_arguments(p)
    p.set_defaults(func=cmd_listen)

    p = sub.add_parser(
        "adapt",
        help="fine-tune a model on your own noisy scans, without clean images (self-supervised)",
        parents=verbosity,
    )
    add_adapt_arguments(p)
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser(
        "export",
        help="export a model as TorchScript, ONNX or a MONAI bundle (checked against PyTorch)",
        parents=verbosity,
    )
    add_export_arguments(p)
    p.set_defaults(func=cmd_export)


def _add_tool_commands(sub: Any, verbosity: list[argparse.ArgumentParser]) -> None:
    """fetch-data, config: data and settings."""
    p = sub.add_parser(
        "fetch-data",
        help="download a public data set (mnist, openi) with resume and checksums",
        parents=verbosity,
    )
    add_fetch_arguments(p)
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser(
        "config",
        help="print the defaults, or validate a config and print it resolved",
        parents=verbosity,
    )
    add_show_config_arguments(p)
    p.set_defaults(func=cmd_config)


def _user_error(err: BaseException) -> str | None:
    """The one-line message for an error the user or the environment caused, else None."""
    from pipeline.text import path_text, short_text

    if isinstance(err, PipelineError):
        return str(err)
    if isinstance(err, OSError) and err.strerror:  # disk full, read-only, a file as a folder...
        where = f"{path_text(err.filename)}: " if err.filename is not None else ""
        return f"{where}{err.strerror}; check the path, its permissions and free space"
    if isinstance(err, MemoryError):
        return (
            "out of memory; process fewer or smaller images at a time (e.g. a smaller --tile-size)"
        )
    if isinstance(err, RecursionError):
        return short_text(f"input nested too deeply ({err})")
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status.

    The status is 0 (done), 1 (apply: some files failed), 2 (user error), 3 (internal error:
    a bug; the message says so; DENOISE_DEBUG=1 shows the traceback).
    """
    import os

    for stream in (sys.stdout, sys.stderr):  # undecodable file names print as \xNN escapes
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(verbosity_level(args.quiet, args.verbose))
    if args.command == "apply":  # before its reader and writer threads start
        from pipeline.process import limit_heap_arenas

        limit_heap_arenas(1)  # memory one thread frees is reused by the others
    shown_before, warnings.showwarning = warnings.showwarning, _WarningPrinter()
    try:
        with exit_on_sigterm():
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; finished outputs are kept", file=sys.stderr)
        return 130
    except Exception as err:
        from pipeline.text import short_text

        message = _user_error(err)
        if message is not None:
            print(f"error: {message}", file=sys.stderr)
            return 2
        if os.environ.get("DENOISE_DEBUG"):
            raise
        print(
            f"error: internal error ({short_text(f'{type(err).__name__}: {err}', 200)}); this is "
            "a bug: please report it with the command (DENOISE_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 3
    finally:
        warnings.showwarning = shown_before


if __name__ == "__main__":
    raise SystemExit(main())
