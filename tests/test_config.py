"""Config: validation errors name the key path, overrides, resolved YAML round trip."""

from __future__ import annotations

import pytest
import yaml

from pipeline.config import Config, apply_overrides, describe_defaults, load_config, save_config
from pipeline.errors import ConfigError


def test_defaults_validate_and_every_field_is_described() -> None:
    cfg = Config()
    assert cfg.run.seed == 0
    text = describe_defaults()
    assert "train:" in text and "epochs: 100" in text
    for line in text.splitlines():
        if line.startswith("  "):
            assert "#" in line and line.split("#", 1)[1].strip(), (
                f"field without description: {line}"
            )


def test_unknown_key_names_its_path(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epocs: 5\n")
    with pytest.raises(ConfigError, match=r"train\.epocs: unknown key"):
        load_config(path)


def test_bad_value_names_path_and_allowed_values(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  optimizer: sgd\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "train.optimizer" in str(err.value) and "adadelta" in str(err.value)


def test_negative_epochs_rejected() -> None:
    with pytest.raises(ConfigError, match=r"train\.epochs"):
        load_config(None, ["train.epochs=-1"])


def test_overrides_parse_yaml_values() -> None:
    cfg = load_config(
        None, ["train.epochs=5", "evaluate.baselines=[tv, nlm]", "noise.clip=false", "run.name=x"]
    )
    assert cfg.train.epochs == 5
    assert cfg.evaluate.baselines == ["tv", "nlm"]
    assert cfg.noise.clip is False
    assert cfg.run.name == "x"


def test_override_without_equals_is_an_error() -> None:
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides({}, ["train.epochs"])


def test_missing_config_file_message(tmp_path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_resolved_config_round_trips(tmp_path) -> None:
    cfg = load_config("configs/mnist_dense.yaml", ["run.seed=7"])
    save_config(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["run"]["seed"] == 7


def test_shipped_configs_validate() -> None:
    from pathlib import Path

    for path in sorted(Path("configs").glob("*.yaml")):
        load_config(path)


def test_tutorial_config_is_the_tutorial() -> None:
    cfg = load_config("configs/mnist_dense.yaml")
    assert (cfg.model.name, cfg.model.latent, cfg.model.image_size) == ("dense", 64, 28)
    assert (cfg.train.loss, cfg.train.optimizer, cfg.train.lr, cfg.train.epochs) == (
        "bce",
        "adadelta",
        1.0,
        100,
    )
    assert (cfg.noise.kind, cfg.noise.sigma, cfg.noise.clip) == ("gaussian", 0.5, True)


def test_train_scales_outside_zero_one_rejected() -> None:
    with pytest.raises(ConfigError, match=r"train_scales must lie in \(0, 1\]"):
        load_config(None, ["data.train_scales=[1.0, 2.0]"])
