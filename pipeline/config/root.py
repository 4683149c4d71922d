"""The whole config: its sections, validation with readable errors, and the defaults listing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from pipeline.config.data import DataConfig
from pipeline.config.noise import NOISE_KINDS, GaussianNoiseConfig, NoiseConfig
from pipeline.config.sections import (
    InferenceConfig,
    ModelConfig,
    ReportConfig,
    RunConfig,
    Section,
    TrainConfig,
)
from pipeline.config.upgrade import upgrade_noise
from pipeline.errors import ConfigError
from pipeline.text import short_text

#: Most values (counted through every alias) and deepest nesting a config may have; a
#: YAML alias bomb or a deeply nested file is refused at once instead of exhausting memory.
MAX_CONFIG_VALUES = 100_000
MAX_CONFIG_DEPTH = 32


class EvaluateConfig(Section):
    """What the evaluate stage compares, and on which noise."""

    baselines: list[Literal["bm3d", "nlm", "tv", "wavelet", "median"]] = Field(
        [], description="Classical denoisers compared with the model on the same images and noise."
    )
    models: list[Path] = Field(
        [], description="Further checkpoints or run folders to compare on the same images."
    )
    noise: NoiseConfig | None = Field(
        None,
        description="Noise of the test images (None: the training noise), e.g. one level for a "
        "blind model.",
    )


class Config(Section):
    """A whole run."""

    run: RunConfig = Field(default_factory=RunConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    noise: NoiseConfig = Field(default_factory=GaussianNoiseConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @model_validator(mode="before")
    @classmethod
    def _upgrade_noise(cls, data: Any) -> Any:
        """Noise sections of the older flat shape in the per-kind shape.

        See :mod:`pipeline.config.upgrade`.
        """
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "noise" in data:
            data["noise"] = upgrade_noise(data["noise"])
        if isinstance(data.get("evaluate"), dict) and data["evaluate"].get("noise") is not None:
            data["evaluate"] = {
                **data["evaluate"],
                "noise": upgrade_noise(data["evaluate"]["noise"]),
            }
        return data

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-safe dictionary of every resolved field."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        """The resolved config as YAML (fields in declaration order)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _format_errors(err: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for e in err.errors():
        path = _key_path(e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(
                f"  {path}: unknown key (check its spelling; see `denoise config --defaults`)"
            )
        else:
            lines.append(f"  {path}: {e['msg']} (got {short_text(repr(e.get('input')), 80)})")
    return "\n".join(lines)


def _key_path(loc: tuple[Any, ...]) -> str:
    """A validation error's location as a key path, without pydantic's union tags.

    ``noise.sigma``, not ``noise.gaussian.sigma``.
    """
    parts = [
        str(p) for i, p in enumerate(loc) if not (p in NOISE_KINDS and i and loc[i - 1] == "noise")
    ]
    return ".".join(parts) or "(top level)"


def _check_size(raw: Any, origin: str) -> None:
    """Raise ConfigError when `raw` nests too deep or holds too many values.

    Limits: MAX_CONFIG_DEPTH levels and MAX_CONFIG_VALUES values, counting every alias each time it
    is used.
    """
    budget = MAX_CONFIG_VALUES
    stack: list[tuple[Any, int]] = [(raw, 0)]
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise ConfigError(
                f"{origin}: too many values (over {MAX_CONFIG_VALUES:,}, counting "
                "YAML aliases each time they are used); a config is a few dozen fields"
            )
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(
                f"{origin}: nested deeper than {MAX_CONFIG_DEPTH} levels; a config has "
                "sections of fields, a few levels deep"
            )
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for pair in node.items() for v in pair)
        elif isinstance(node, (list, tuple, set)):
            stack.extend((v, depth + 1) for v in node)


def config_from_dict(raw: dict[str, Any], origin: str = "config") -> Config:
    """Validate a raw dictionary; errors name the key path and what is allowed."""
    _check_size(raw, origin)
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, origin)) from None


def _allowed_values(annotation: Any) -> list[Any]:
    """The values a field admits when its type is (a list or optional of) a Literal, else []."""
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    return [v for arg in get_args(annotation) for v in _allowed_values(arg)]


def _field_line(name: str, f: Any) -> str:
    """One field of `denoise config --defaults`: name, default, description, allowed values."""
    default = f.default if f.default_factory is None else f.default_factory()
    if isinstance(default, BaseModel):
        default = default.model_dump(mode="json")
    elif isinstance(default, list):
        default = [d.model_dump(mode="json") if isinstance(d, BaseModel) else d for d in default]
    if isinstance(default, Path):
        default = str(default)
    allowed = _allowed_values(f.annotation)
    words = "Any of" if get_origin(f.annotation) is list else "One of"
    choices = f" {words}: {', '.join(map(str, allowed))}." if allowed else ""
    shown = (
        yaml.safe_dump(default, default_flow_style=True, width=1 << 20)
        .strip()
        .removesuffix("...")
        .strip()
    )
    return f"  {name}: {shown}  # {f.description}{choices}"


def describe_defaults() -> str:
    """Every field with its default, allowed values and description.

    For ``denoise config --defaults``.

    The noise section is listed once per kind (``noise (kind: xray):``); the default is gaussian.
    """
    lines: list[str] = []
    for section_name, section_field in Config.model_fields.items():
        if section_name == "noise":
            sections = [(f"noise (kind: {kind})", cls) for kind, cls in NOISE_KINDS.items()]
        else:
            sections = [(section_name, section_field.default_factory)]
        for title, section_cls in sections:
            lines.append(f"{title}:")
            lines.extend(_field_line(n, f) for n, f in section_cls.model_fields.items())  # type: ignore[union-attr]
    return "\n".join(lines)
