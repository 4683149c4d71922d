"""MkDocs hook: the configuration reference page, rendered from the pydantic schema.

Every section of :class:`pipeline.config.Config` becomes a table of its fields (type,
default, constraints, description), read from the models at build time, so the page
cannot disagree with the code. Models nested in a field (a sub-section, each member of a
union such as a discriminated ``kind``) get tables of their own.
"""

from __future__ import annotations

import html
import importlib
import sys
import types
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from mkdocs.structure.files import File, Files
from pydantic import BaseModel
from pydantic.fields import FieldInfo

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PAGE = "configuration.md"
INTRO = """# Configuration reference

Generated at build time from the pydantic models in `pipeline/config/`, so it always
matches the code. `denoise config --defaults` prints the same fields with their defaults,
`denoise config FILE` validates a file and prints it resolved, and
`--set section.field=value` overrides any field on the command line (see
[Runs and configs](guide/run.md)). Unknown keys and bad values fail with the key path and
what is allowed.
"""

#: annotated_types constraint names, as shown in the "allowed" column.
_BOUNDS = {
    "gt": ">",
    "ge": "≥",
    "lt": "<",
    "le": "≤",
    "min_length": "min length",
    "max_length": "max length",
}
#: Python type names as a config file's reader knows them.
_TYPE_WORDS = {
    "Path": "path",
    "str": "text",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
}


def _config_module() -> types.ModuleType:
    """pipeline.config of the checkout being documented (not another installed copy)."""
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    return importlib.import_module("pipeline.config")


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _members(annotation: Any) -> list[Any]:
    """The types inside Optional/Union/Annotated/list, or [annotation] for a plain type."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, types.UnionType, list, tuple, dict, set):
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]


def nested_models(annotation: Any) -> list[type[BaseModel]]:
    """Models that a field's value may be (in the order the annotation names them)."""
    return [m for m in _members(annotation) if _is_model(m)]


def type_text(annotation: Any, anchors: dict[type[BaseModel], str]) -> str:
    """A short, readable rendering of a field's type; models link to their section."""
    origin = get_origin(annotation)
    if annotation is type(None):
        return "null"
    if origin is Annotated:
        return type_text(get_args(annotation)[0], anchors)
    if origin is Literal:
        return " \\| ".join(f"`{v}`" for v in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " or ".join(type_text(a, anchors) for a in get_args(annotation))
    if origin in (list, tuple, set):
        args = get_args(annotation)
        return f"list of {type_text(args[0], anchors)}" if args else "list"
    if origin is dict:
        return "mapping"
    if _is_model(annotation):
        return f"[{annotation.__name__}](#{anchors[annotation]})"
    if isinstance(annotation, type):
        return _TYPE_WORDS.get(annotation.__name__, annotation.__name__)
    return str(annotation).replace("typing.", "")


def default_text(field: FieldInfo) -> str:
    """The default as YAML would write it in a config file."""
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "its section's defaults" if type(value).model_fields else "{}"
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    text = (
        yaml.safe_dump(value, default_flow_style=True, width=1 << 20)
        .strip()
        .removesuffix("...")
        .strip()
    )
    return f"`{text}`"


def constraint_text(field: FieldInfo) -> str:
    """Bounds such as ``≥ 0, < 1`` from the field's metadata."""
    parts = []
    for item in field.metadata:
        for name, symbol in _BOUNDS.items():
            bound = getattr(item, name, None)
            if bound is not None:
                parts.append(f"{symbol} {bound}")
    return ", ".join(parts)


def _cell(text: str) -> str:
    """Text for a table cell: no raw HTML, no column breaks, one line."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def model_table(model: type[BaseModel], anchors: dict[type[BaseModel], str]) -> list[str]:
    """The Markdown table of one model's fields."""
    rows = ["| field | type | default | allowed | description |", "|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        rows.append(
            f"| `{name}` | {type_text(field.annotation, anchors)} | {default_text(field)} "
            f"| {_cell(constraint_text(field))} | {_cell(field.description or '')} |"
        )
    return rows


def _summary(model: type[BaseModel]) -> str:
    """The first paragraph of a model's own docstring (not an inherited one)."""
    doc = model.__dict__.get("__doc__") or ""
    first = doc.strip().split("\n\n")[0]
    return " ".join(line.strip() for line in first.splitlines())


def _tag(model: type[BaseModel]) -> str:
    """``kind: xray`` for a model with a one-value Literal field (a union member), else ''."""
    for name, field in model.model_fields.items():
        if get_origin(field.annotation) is Literal and len(get_args(field.annotation)) == 1:
            return f"{name}: {get_args(field.annotation)[0]}"
    return ""


def _children(path: str, model: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    """(key path, model) of the models a model's fields may hold."""
    prefix = f"{path}." if path else ""
    fields = model.model_fields.items()
    return [(prefix + name, m) for name, f in fields for m in nested_models(f.annotation)]


def sections(root: type[BaseModel]) -> list[tuple[str, type[BaseModel]]]:
    """(key path, model) of every model reachable from the root, breadth first, each once."""
    found: list[tuple[str, type[BaseModel]]] = []
    queue = _children("", root)
    while queue:
        path, model = queue.pop(0)
        if all(model is not seen for _, seen in found):
            found.append((path, model))
            queue += _children(path, model)
    return found


def anchor_ids(found: list[tuple[str, type[BaseModel]]]) -> dict[type[BaseModel], str]:
    """A stable anchor per model: its key path (``train-self_supervised``), and for a
    second model at the same path (a union member) the path and its tag."""
    anchors: dict[type[BaseModel], str] = {}
    for path, model in found:
        anchor = path.replace(".", "-")
        if anchor in anchors.values():
            anchor += "-" + (_tag(model).split(": ")[-1] or model.__name__).lower()
        anchors[model] = anchor
    return anchors


def render() -> str:
    """The whole configuration reference page."""
    found = sections(_config_module().Config)
    anchors = anchor_ids(found)
    lines = [INTRO]
    for path, model in found:
        tag = f" (`{_tag(model)}`)" if _tag(model) else ""
        lines += [f"## `{path}`{tag}: {model.__name__} {{#{anchors[model]}}}", ""]
        if _summary(model):
            lines += [_summary(model), ""]
        lines += model_table(model, anchors) + [""]
    return "\n".join(lines) + "\n"


def on_files(files: Files, config: Any) -> Files:
    """Add the generated page to the site."""
    files.append(File.generated(config, PAGE, content=render()))
    return files
