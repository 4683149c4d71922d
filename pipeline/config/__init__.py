"""Configuration of a run: pydantic models, YAML in, resolved YAML out.

Every field has a default and a one-line description. Unknown keys are errors naming the
key path. ``--set a.b=value`` overrides any field (see :func:`apply_overrides`).

Modules: :mod:`~pipeline.config.sections` (run, model, train, inference, report),
:mod:`~pipeline.config.data` (data),
:mod:`~pipeline.config.noise` (one section per noise kind), :mod:`~pipeline.config.root`
(the whole :class:`Config` and its validation), :mod:`~pipeline.config.files` (YAML files
and overrides), :mod:`~pipeline.config.upgrade` (older shapes).
"""

from pipeline.config.data import DataConfig, GroupsConfig, ScanAugmentConfig
from pipeline.config.files import (
    MAX_CONFIG_BYTES,
    apply_overrides,
    load_config,
    merge_settings,
    save_config,
)
from pipeline.config.noise import (
    NOISE_KINDS,
    GaussianNoiseConfig,
    MixedNoiseConfig,
    MixtureComponent,
    NoiseConfig,
    NoiseSection,
    PoissonGaussianNoiseConfig,
    SaltPepperNoiseConfig,
    SpeckleNoiseConfig,
    XrayNoiseConfig,
    kernel_axes,
    noise_config,
)
from pipeline.config.root import (
    MAX_CONFIG_DEPTH,
    MAX_CONFIG_VALUES,
    Config,
    EvaluateConfig,
    config_from_dict,
    describe_defaults,
)
from pipeline.config.sections import (
    MAX_OVERLAP,
    MAX_WIDTH,
    InferenceConfig,
    ModelConfig,
    ReportConfig,
    RunConfig,
    Section,
    SelfSupervisedConfig,
    TrainConfig,
)

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_DEPTH",
    "MAX_CONFIG_VALUES",
    "MAX_OVERLAP",
    "MAX_WIDTH",
    "NOISE_KINDS",
    "Config",
    "DataConfig",
    "EvaluateConfig",
    "GaussianNoiseConfig",
    "GroupsConfig",
    "InferenceConfig",
    "MixedNoiseConfig",
    "MixtureComponent",
    "ModelConfig",
    "NoiseConfig",
    "NoiseSection",
    "PoissonGaussianNoiseConfig",
    "ReportConfig",
    "RunConfig",
    "SaltPepperNoiseConfig",
    "ScanAugmentConfig",
    "Section",
    "SelfSupervisedConfig",
    "SpeckleNoiseConfig",
    "TrainConfig",
    "XrayNoiseConfig",
    "apply_overrides",
    "config_from_dict",
    "describe_defaults",
    "kernel_axes",
    "load_config",
    "merge_settings",
    "noise_config",
    "save_config",
]
