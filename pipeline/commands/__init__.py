"""The ``denoise`` sub-commands, one module per group: their options and what each runs.

:mod:`pipeline.cli` builds the parser from them and runs one; :mod:`~pipeline.commands.configs`
holds ``run``, ``evaluate`` and ``compare`` (commands on configs),
:mod:`~pipeline.commands.models` ``apply``, ``adapt`` and ``export`` (commands that use or make
a model; ``listen`` is in :mod:`pipeline.pacs.cli`), and :mod:`~pipeline.commands.tools`
``fetch-data`` and ``config``.
"""

from __future__ import annotations

import argparse


def add_set_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """The repeatable ``--set KEY=VALUE`` config override, collected in ``args.overrides``."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )
