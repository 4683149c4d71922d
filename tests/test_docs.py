"""The generated pages of the documentation site: every config field and every command is listed."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from pipeline.cli import build_parser
from pipeline.config import Config

HOOKS = Path(__file__).resolve().parents[1] / "docs" / "hooks"


def _hook(name: str) -> ModuleType:
    pytest.importorskip("mkdocs", reason="the documentation hooks need mkdocs (docs, dev extras)")
    spec = importlib.util.spec_from_file_location(f"{name}_hook", HOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_configuration_reference_has_a_row_for_every_field_of_every_section() -> None:
    hook = _hook("config_reference")
    page = hook.render()
    found = hook.sections(Config)
    nested = {"data.groups", "train.self_supervised"}
    assert {path for path, _ in found} >= set(Config.model_fields) | nested
    headings = page.split("\n## ")
    for path, model in found:  # a union's members (the noise kinds) share a path: one heading each
        table = next(
            h
            for h in headings
            if h.startswith(f"`{path}`") and model.__name__ in h.split("\n", 1)[0]
        )
        for name in model.model_fields:
            assert f"| `{name}` |" in table, f"{path}.{name} is not in the configuration reference"


def test_configuration_reference_states_defaults_and_bounds() -> None:
    page = _hook("config_reference").render()
    assert "| `tile_size` | integer or null | `512` | ≥ 8 |" in page
    assert "| `device` | `auto` \\| `cpu` \\| `cuda` | `auto` |" in page


def test_cli_reference_has_every_command_with_its_options() -> None:
    page = _hook("cli_reference").render()
    commands = build_parser()._subparsers._group_actions[0].choices
    for name, parser in commands.items():
        section = page.split(f"## `denoise {name}`", 1)[1].split("\n## ", 1)[0]
        for action in parser._actions:
            for option in action.option_strings:
                assert option in section, f"denoise {name} {option} missing from the CLI reference"
