"""Config files: YAML read with limits and duplicate-key checks, ``--set`` overrides, loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipeline.config.root import Config, config_from_dict
from pipeline.errors import ConfigError
from pipeline.text import short_text

#: A config file larger than this (bytes) is refused unread: real configs are a few KB.
MAX_CONFIG_BYTES = 1 << 20


def _parse_value(text: str) -> Any:
    """Parse an override's value as YAML (numbers, booleans, lists), else keep the string."""
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        return text


def merge_settings(raw: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """A new raw config: `raw` with the values of `settings` put over it, section by section.

    `settings` holds nested section mappings of plain values; neither argument is changed.
    """
    merged = dict(raw)
    for key, value in settings.items():
        below = merged.get(key)
        merged[key] = (
            merge_settings(below, value)
            if isinstance(value, dict) and isinstance(below, dict)
            else value
        )
    return merged


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides to a raw config dictionary (in place) and return it."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(
                f"override {item!r} is not of the form key.path=value (e.g. train.epochs=5)"
            )
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = raw
        for p in parts[:-1]:
            child = node.setdefault(p, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {p} is not a section")
            node = child
        node[parts[-1]] = _parse_value(value)
    return raw


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    settings: dict[str, Any] | None = None,
    fixed: dict[str, Any] | None = None,
) -> Config:
    """Load a YAML config (None: all defaults), apply overrides, validate.

    `settings` (section mappings of values, see :func:`merge_settings`) go over the file
    before the overrides, `fixed` over both. Relative data paths in the file are taken
    relative to the current directory.
    """
    raw: dict[str, Any] = {}
    origin = "defaults"
    if path is not None:
        path = Path(path)
        origin = str(path)
        loaded = _read_yaml(path)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {path} must be a mapping of sections (run, data, noise, ...)"
            )
        raw = loaded
    raw = apply_overrides(merge_settings(raw, settings or {}), list(overrides or []))
    return config_from_dict(merge_settings(raw, fixed or {}), origin)


def _read_yaml(path: Path) -> Any:
    """The YAML document in `path`; ConfigError when missing, too large, not UTF-8 or invalid."""
    if not path.is_file():
        raise ConfigError(
            f"config file not found: {path} (give the path of a YAML file, e.g. "
            "configs/mnist_conv.yaml)"
        )
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"config file {path} is {size:,} bytes; a config is a few KB (limit "
                f"{MAX_CONFIG_BYTES:,})"
            )
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"config file {path} cannot be read ({err.strerror})") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"config file {path} is UTF-16 text; save it as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8"
        ) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        _refuse_duplicate_keys(root, path)
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {short_text(str(err))}") from None
    except RecursionError:
        raise ConfigError(f"config file {path}: nested too deeply to be a config") from None


def _refuse_duplicate_keys(root: yaml.Node | None, path: Path) -> None:
    """ConfigError naming the key path and line of a key given twice in one mapping.

    YAML keeps the last of two equal keys, so a second ``train:`` would silently replace
    the whole first section. Each node is visited once (aliases are not expanded).
    """
    stack: list[tuple[yaml.Node, str]] = [(root, "")] if root is not None else []
    seen: set[int] = set()
    while stack:
        node, where = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else ""
                if name and name != "<<" and name in keys:
                    raise ConfigError(
                        f"config file {path}: key {where}{name} is given twice (line "
                        f"{key.start_mark.line + 1}); keep one (YAML would keep only the last)"
                    )
                keys.add(name)
                stack.append((value, f"{where}{name}."))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{where}{index}.") for index, item in enumerate(node.value))


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config (every field, seed included) as YAML."""
    Path(path).write_text(cfg.to_yaml())
