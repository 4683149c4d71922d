"""Placeholder: batch denoising of folders (`denoise apply`) is being written."""

import argparse


def add_apply_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", required=True)
    parser.add_argument("-o", "--output", required=True)


def apply_from_args(args: argparse.Namespace) -> int:
    raise NotImplementedError
