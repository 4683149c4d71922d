"""``denoise fetch-data`` and ``config``: data and settings."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.commands.configs import add_config_args
from pipeline.config import describe_defaults, load_config
from pipeline.ingest.fetch import fetch_dataset


def add_fetch_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``denoise fetch-data``."""
    p.add_argument(
        "name",
        choices=["mnist", "openi"],
        help="mnist: the four MNIST IDX files (~11 MiB); "
        "openi: the Indiana chest X-ray collection (large)",
    )
    p.add_argument("--dest", type=Path, required=True, help="folder to put the data in")
    p.add_argument("--url", help="base URL of a mirror (default: the public source)")
    p.add_argument(
        "--no-progress", action="store_true", help="print nothing but errors and the final line"
    )


def cmd_fetch(args: argparse.Namespace) -> int:
    """Run ``denoise fetch-data``; print where the data set is."""
    dest = fetch_dataset(args.name, args.dest, base_url=args.url, progress=not args.no_progress)
    print(f"{args.name} is ready in {dest}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """Run ``denoise config``: print the defaults, or the given config resolved."""
    if args.defaults or args.config is None:
        print(describe_defaults())
    else:
        print(load_config(args.config, args.overrides).to_yaml(), end="")
    return 0


def add_show_config_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``denoise config``."""
    add_config_args(p, config_required=False)
    p.add_argument(
        "--defaults",
        action="store_true",
        help="print every field with its default, its allowed values and description",
    )
