"""Command-line options of the PACS commands.

The DICOMweb options of ``denoise apply``, and ``denoise listen``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.errors import PipelineError

DICOMWEB_OPTIONS = ("study", "series", "query", "store", "store_to", "auth_file", "ca_bundle")


def add_dicomweb_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``denoise apply`` for ``--input dicomweb:URL`` (see docs/pacs.md)."""
    group = parser.add_argument_group(
        "DICOMweb input (--input dicomweb:URL)",
        "credentials come from DENOISE_DICOMWEB_TOKEN, "
        "DENOISE_DICOMWEB_USER/DENOISE_DICOMWEB_PASSWORD or a netrc-style file, never from the "
        "command line",
    )
    group.add_argument(
        "--study",
        action="append",
        default=[],
        metavar="UID",
        help="a StudyInstanceUID to denoise (repeatable)",
    )
    group.add_argument("--series", metavar="UID", help="a SeriesInstanceUID to denoise")
    group.add_argument(
        "--query",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="QIDO-RS match key, e.g. Modality=CR or StudyDate=20240101-20241231 (repeatable)",
    )
    group.add_argument(
        "--store",
        action="store_true",
        help="store the derived series back on the input server (STOW-RS)",
    )
    group.add_argument(
        "--store-to", metavar="dicomweb:URL", help="store the derived series on this server instead"
    )
    group.add_argument(
        "--auth-file", type=Path, help="netrc-style file: machine HOST login USER password PASSWORD"
    )
    group.add_argument(
        "--ca-bundle",
        type=Path,
        help="PEM file of CA certificates to trust (TLS is always verified)",
    )


def _query(items: list[str]) -> dict[str, str]:
    query = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise PipelineError(f"--query {item!r}: give KEY=VALUE, e.g. --query Modality=CR")
        query[key.strip()] = value.strip()
    return query


def check_folder_options(args: argparse.Namespace) -> None:
    """PipelineError when DICOMweb options are given for a folder input."""
    given = [name for name in DICOMWEB_OPTIONS if getattr(args, name, None)]
    if given:
        raise PipelineError(
            f"--{given[0].replace('_', '-')} needs a DICOMweb input (--input dicomweb:URL)"
        )


def cmd_apply_dicomweb(args: argparse.Namespace, url: str) -> int:
    """``denoise apply --input dicomweb:URL``: print a summary and where the records are.

    Returns the exit status.
    """
    from pipeline.apply import ApplyOptions
    from pipeline.inference import settings_from_options
    from pipeline.pacs.dicomweb import Server, apply_dicomweb, parse_input
    from pipeline.pacs.select import Selection

    if args.overwrite or args.num_parts is not None or args.format not in (None, "dicom"):
        raise PipelineError(
            "--overwrite, --num-parts and --format do not apply to a DICOMweb input "
            "(its outputs are DICOM; use a new output folder to redo a selection)"
        )
    source = Server(url, args.auth_file, args.ca_bundle)
    destination = source if args.store else None
    if args.store_to:
        dest_url = parse_input(args.store_to)
        if dest_url is None:
            raise PipelineError(f"--store-to {args.store_to!r}: give dicomweb:URL")
        destination = Server(dest_url, args.auth_file, args.ca_bundle)
    selection = Selection(tuple(args.study), args.series, _query(args.query))
    result = apply_dicomweb(
        source,
        selection,
        args.output,
        args.model,
        destination=destination,
        options=ApplyOptions(progress=not args.no_progress, report=not args.no_report),
        inference=settings_from_options(args),
    )
    print(result.summary())
    print(f"manifest: {result.denoise.manifest}")
    print(
        f"failures: {result.output_dir / 'failures.csv'}"
        + (f" ({len(result.failures)})" if result.failures else " (none)")
    )
    return result.exit_code


def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``denoise listen`` (besides the model and tile options)."""
    parser.add_argument(
        "--destination",
        required=True,
        metavar="AET@HOST:PORT",
        help="where the denoised instances go (C-STORE), e.g. ORTHANC@pacs.local:4242",
    )
    parser.add_argument(
        "--spool",
        required=True,
        type=Path,
        help="folder for received, denoised, failed instances and the records",
    )
    parser.add_argument(
        "--ae-title", default="DENOISE", help="this node's AE title (default DENOISE)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all)"
    )
    parser.add_argument("--port", type=int, default=11112, help="port to listen on (default 11112)")
    parser.add_argument(
        "--max-associations", type=int, default=4, help="associations served at once (default 4)"
    )
    parser.add_argument(
        "--retries", type=int, default=3, help="tries again to deliver an instance (default 3)"
    )


def cmd_listen(args: argparse.Namespace) -> int:
    """``denoise listen``: run the node until SIGTERM or SIGINT."""
    from pipeline.inference import settings_from_options
    from pipeline.pacs.dicomweb import load_run_model
    from pipeline.pacs.forward import Destination
    from pipeline.pacs.listen import ListenSettings, listen

    if not 0 < args.port < 65536 or args.max_associations < 1 or args.retries < 0:
        raise PipelineError(
            "--port must be 1..65535, --max-associations at least 1, --retries at least 0"
        )
    if len(args.ae_title.strip()) > 16 or not args.ae_title.strip():
        raise PipelineError(f"--ae-title {args.ae_title!r}: give 1 to 16 characters")
    settings = ListenSettings(
        args.spool,
        Destination.parse(args.destination, args.ae_title.strip()),
        args.ae_title.strip(),
        args.host,
        args.port,
        args.max_associations,
        args.retries,
    )
    listen(settings, load_run_model(args.model)[0], settings_from_options(args))
    return 0
