"""Noise sections per kind: the same numbers as the flat shape they replace, older configs load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.checkpoint import read_checkpoint
from pipeline.config import (
    Config,
    GaussianNoiseConfig,
    MixedNoiseConfig,
    MixtureComponent,
    XrayNoiseConfig,
    config_from_dict,
    load_config,
    noise_config,
)
from pipeline.errors import ConfigError
from pipeline.noise import make_noise, noise_rng

ROOT = Path(__file__).resolve().parents[1]
CLEAN = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)

#: Means and pixel (3, 5) of the noisy CLEAN for images 0-3 of stream (7, train, epoch 0),
#: and the model's std, computed with the flat NoiseConfig (main before issue 26).
EXPECTED = {
    "gaussian": (
        [0.5004562, 0.4854945, 0.5049903, 0.4869863],
        [0.6339343, 0.4302473, 0.441767, 0.5031758],
        0.2,
    ),
    "xray": (
        [0.505353, 0.4908857, 0.5086319, 0.5047855],
        [0.4701223, 0.397725, 0.5492954, 0.4261775],
        0.040756,
    ),
    "mixed": (
        [0.5032252, 0.4933952, 0.5086932, 0.5016305],
        [0.4700017, 0.4479594, 0.4679859, 0.4609398],
        0.029108,
    ),
}
FLAT = {
    "gaussian": {"kind": "gaussian", "sigma": 0.1, "sigma_max": 0.3},
    "xray": {
        "kind": "xray",
        "dose": 0.1,
        "dose_max": 0.5,
        "kernel_a": [0.4, 0.1],
        "kernel_a_max": [0.6, 0.3],
    },
    "mixed": {"kind": "mixed", "mixed_kinds": ["gaussian", "xray", "xray"], "sigma": 0.05},
}
XRAY = XrayNoiseConfig(dose=0.1, dose_max=0.5, kernel_a=[0.4, 0.1], kernel_a_max=[0.6, 0.3])
NEW = {
    "gaussian": GaussianNoiseConfig(sigma=0.1, sigma_max=0.3),
    "xray": XRAY,
    "mixed": MixedNoiseConfig(
        components=[
            MixtureComponent(weight=1, noise=GaussianNoiseConfig(sigma=0.05)),
            MixtureComponent(weight=2, noise=XrayNoiseConfig()),
        ]
    ),
}


def _numbers(section) -> tuple[list[float], list[float], float]:
    model = make_noise(section)
    out = [model(CLEAN, noise_rng(7, "train", 0, i)) for i in range(4)]
    return ([float(o.mean()) for o in out], [float(o[3, 5]) for o in out], float(model.std(CLEAN)))


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("shape", ["flat", "per kind"])
def test_same_noise_numbers_as_the_flat_config(name: str, shape: str) -> None:
    section = noise_config(FLAT[name]) if shape == "flat" else NEW[name]
    means, pixels, std = _numbers(section)
    want_means, want_pixels, want_std = EXPECTED[name]
    assert means == pytest.approx(want_means, abs=1e-6) and pixels == pytest.approx(
        want_pixels, abs=1e-6
    )
    assert std == pytest.approx(want_std, abs=1e-6)


def test_flat_defaults_of_photons_follow_the_kinds() -> None:
    assert noise_config({"kind": "poisson_gaussian", "read_noise": None}).photons == 1e4
    mixed = noise_config({"kind": "mixed", "mixed_kinds": ["poisson_gaussian", "xray"]})
    assert [c.noise.photons for c in mixed.components] == [
        2000.0,
        2000.0,
    ]  # xray's default for both
    assert [c.noise.read_noise for c in mixed.components] == [3.0, 3.0]
    assert noise_config({"kind": "speckle", "speckle_sigma": 0.2, "sigma": 0.5}).sigma == 0.2
    assert noise_config({"kind": "mixed"}).components[1].noise.kind == "poisson_gaussian"


def test_flat_mixture_keeps_the_order_of_its_kinds() -> None:
    mixed = noise_config({"kind": "mixed", "mixed_kinds": ["xray", "gaussian", "xray"]})
    assert [(c.weight, c.noise.kind) for c in mixed.components] == [
        (1, "xray"),
        (1, "gaussian"),
        (1, "xray"),
    ]


def test_flat_and_new_shape_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"noise\.sigmaa: unknown key"):
        config_from_dict({"noise": {"kind": "gaussian", "sigma": 0.1, "photons": 5, "sigmaa": 1}})
    with pytest.raises(ConfigError, match=r"noise\.photons: unknown key"):
        config_from_dict({"noise": {"kind": "mixed", "components": [], "photons": 5}})
    with pytest.raises(ConfigError, match="mixed_kinds must be a non-empty list"):
        config_from_dict({"noise": {"kind": "mixed", "mixed_kinds": ["speckle"]}})
    with pytest.raises(ConfigError, match=r"noise: .*dose_max \(0.2\) must be at least dose"):
        load_config(None, ["noise.kind=xray", "noise.dose=0.5", "noise.dose_max=0.2"])


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads_and_round_trips(path: Path) -> None:
    cfg = load_config(path)
    again = config_from_dict(cfg.to_dict())
    assert again == cfg
    assert make_noise(cfg.noise) is not None and cfg.noise.describe()


def test_cxr_shipped_xray_draws_xray_two_times_in_three() -> None:
    noise = load_config(ROOT / "configs" / "cxr_shipped_xray.yaml").noise
    assert [(c.weight, c.noise.kind) for c in noise.components] == [
        (1.0, "gaussian"),
        (2.0, "xray"),
    ]


@pytest.mark.parametrize(
    "path", sorted((ROOT / "pipeline" / "weights").glob("*.pt")), ids=lambda p: p.name
)
def test_shipped_checkpoints_load_with_their_noise(path: Path) -> None:
    raw = read_checkpoint(path)["config"]
    cfg = config_from_dict(raw)
    assert isinstance(cfg, Config) and cfg.noise.kind == raw["noise"]["kind"]
    if "mixed_kinds" in raw["noise"]:
        weights = sum(c.weight for c in cfg.noise.components)
        assert weights == len(raw["noise"]["mixed_kinds"])


def test_defaults_list_every_noise_kind() -> None:
    from pipeline.config import describe_defaults

    text = describe_defaults()
    for kind in ("gaussian", "poisson_gaussian", "xray", "salt_pepper", "speckle", "mixed"):
        assert f"noise (kind: {kind}):" in text
