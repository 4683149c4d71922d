"""Configuration of a run: pydantic models, YAML in, resolved YAML out.

Every field has a default and a one-line description. Unknown keys are errors naming the
key path. ``--set a.b=value`` overrides any field (see :func:`apply_overrides`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipeline.errors import ConfigError
from pipeline.text import short_text

#: A config file larger than this (bytes) is refused unread: real configs are a few KB.
MAX_CONFIG_BYTES = 1 << 20
#: Most values (counted through every alias) and deepest nesting a config may have; a
#: YAML alias bomb or a deeply nested file is refused at once instead of exhausting memory.
MAX_CONFIG_VALUES = 100_000
MAX_CONFIG_DEPTH = 32


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated,
    floats must be finite (``.inf`` and ``.nan`` are refused)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class RunConfig(Section):
    name: str = Field("run", description="Name of the run; the run folder is <output_dir>/<name>/<timestamp>.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="One seed for data order, noise and initialisation (0 to 2**32-1).")
    output_dir: Path = Field(Path("runs"), description="Folder under which run folders are made.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where to train and denoise; auto picks cuda when present.")
    stages: list[Literal["train", "evaluate", "report"]] = Field(
        ["train", "evaluate", "report"], description="Stages to run, in order."
    )
    threads: int | None = Field(None, ge=1, description="CPU threads for torch (None: torch's default).")

    @field_validator("name")
    @classmethod
    def _one_folder_name(cls, name: str) -> str:
        """The run name is one folder name, so the run folder stays inside output_dir."""
        if not name or name in (".", "..") or any(c in name for c in "/\\\0") or len(name) > 200:
            raise ValueError("must be one folder name (no '/', '\\', '..' or NUL; 1-200 characters)")
        return name


class GroupsConfig(Section):
    csv: Path | None = Field(None, description="Metadata CSV mapping image files to patients (None: only DICOM PatientID and group_pattern).")
    file_column: str = Field("filename", description="CSV column with the image's file name.")
    group_column: str = Field("patientid", description="CSV column with the patient (group) id.")
    dicom_patient_id: bool = Field(True, description="Group DICOM files by their PatientID tag when the CSV does not list them.")


class DataConfig(Section):
    kind: Literal["mnist", "folder", "openi"] = Field("mnist", description="Where the clean images come from.")
    root: Path | list[Path] | None = Field(
        None,
        description="Data folder (MNIST IDX files, a folder of scans, or the OpenI layout); for folder data also a list of folders and single scan files. None: the bundled MNIST sample.",
    )
    test_root: Path | list[Path] | None = Field(
        None, description="Optional separate test images (for folder data): a folder, or a list of folders and single files; MNIST finds t10k files in root itself."
    )
    mnist_test_set: Literal["auto", "split", "t10k"] = Field(
        "auto", description="MNIST test images: t10k files when present (auto/t10k) or a split of the training file."
    )
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction of training images (or patients) held out for validation.")
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="Fraction held out for testing when no separate test set is given.")
    max_train: int | None = Field(None, ge=1, description="Use at most this many training images (None: all).")
    max_val: int | None = Field(None, ge=1, description="Use at most this many validation images.")
    max_test: int | None = Field(None, ge=1, description="Use at most this many test images.")
    group_pattern: str | None = Field(
        None, description="Folder: regex whose first group is the patient id in a file name, so splits keep a patient's images together (e.g. '^(\\d+)_')."
    )

    @field_validator("group_pattern")
    @classmethod
    def _valid_pattern(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        try:
            groups = re.compile(pattern).groups
        except (re.error, RecursionError, OverflowError) as err:
            raise ValueError(f"not a valid regular expression ({short_text(str(err), 100)})") from None
        if groups < 1:
            raise ValueError("needs a group, in parentheses, around the patient id (e.g. '^(\\d+)_')")
        return pattern
    groups: GroupsConfig | None = Field(
        None, description="Folder: patient of each file from a metadata CSV and/or the DICOM PatientID, so every split is by patient; files without one are their own group (with a warning)."
    )
    split_csv: Path | None = Field(
        None,
        description="Folder: a CSV that fixes the split (columns file, patient, split, optional source; file relative to data.root, split train/val/test); data.root must be one folder. Made e.g. by scripts/make_multisite_split.py.",
    )
    max_train_patients: int | None = Field(
        None, ge=1, description="With data.split_csv: train on this many of its training patients only, each source keeping its share (learning curves). None: all."
    )
    test_also_from_root: bool = Field(
        False, description="Folder with test_root: also hold out test_fraction of root's patients as test images (with test_root's); test images are never filtered by max_clean_noise."
    )
    frontal_only: bool = Field(False, description="OpenI: keep frontal views only (from the DICOM header or report).")
    strict: bool = Field(False, description="Folder: stop at the first unreadable file instead of skipping it.")
    resize: int | None = Field(None, ge=8, description="Resize every image to this square size on load (None: keep size).")
    patch_size: int | None = Field(None, ge=8, description="Train on random patches of this size (None: whole images).")
    patches_per_image: int = Field(8, ge=1, description="Random patches drawn per training image per epoch.")
    min_patch_std: float = Field(0.01, ge=0.0, description="Patches whose std is below this are treated as background and redrawn.")
    augment: bool = Field(False, description="Random flips and 90-degree rotations of training images or patches.")
    train_scales: list[float] = Field(
        [1.0], min_length=1,
        description="Train on the training images at these scales (anti-aliased downscaling, e.g. [1.0, 0.5]), so a model sees several pixel spacings.",
    )
    max_clean_noise: float | None = Field(
        None, gt=0,
        description="Leave out training/validation images whose own noise (estimated on their central half) is above this, e.g. 0.006 (~1.5/255): a clean reference must be cleaner than the noise a model learns to remove.",
    )

    @model_validator(mode="after")
    def _check_fractions(self) -> DataConfig:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be below 1")
        if self.split_csv is not None and (self.kind != "folder" or isinstance(self.root, list) or self.test_root is not None):
            raise ValueError("data.split_csv needs folder data with data.root one folder and no data.test_root")
        if isinstance(self.root, list) and self.kind != "folder":
            raise ValueError(f"data.root may be a list only for folder data, not {self.kind}")
        if any(not 0 < s <= 1 for s in self.train_scales):
            raise ValueError(f"train_scales must lie in (0, 1], got {self.train_scales}")
        return self


#: Noise kinds a ``mixed`` model may draw from.
MixableNoise = Literal["gaussian", "poisson_gaussian", "xray"]

#: Defaults of ``photons`` and ``read_noise`` per kind (None in a config means these).
PHOTONS_DEFAULT = {"xray": 2000.0, "other": 1e4}
READ_NOISE_DEFAULT = {"xray": 3.0, "other": 10.0}


class NoiseConfig(Section):
    kind: Literal["gaussian", "poisson_gaussian", "xray", "salt_pepper", "speckle", "mixed"] = Field(
        "gaussian", description="Noise model (see pipeline.noise)."
    )
    sigma: float = Field(0.5, ge=0.0, description="Gaussian: std in [0,1] units (the tutorial's noise factor 0.5).")
    sigma_max: float | None = Field(
        None, ge=0.0, description="Gaussian: draw sigma uniformly in [sigma, sigma_max] per image (blind training)."
    )
    clip: bool = Field(True, description="Clip noisy values to [0, 1].")
    photons: float | None = Field(
        None, gt=0,
        description="Poisson-Gaussian: photons per pixel at full signal; xray: photons per pixel of an unattenuated ray at full dose (try 1e3-1e4). None: 1e4, or 2000 for xray (also when mixed includes xray).",
    )
    photons_min: float | None = Field(None, gt=0, description="Poisson-Gaussian: draw photons log-uniformly in [photons_min, photons].")
    dose: float = Field(1.0, gt=0, le=1.0, description="Poisson-Gaussian and xray: dose fraction of the full dose (0.25 = quarter dose).")
    dose_max: float | None = Field(
        None, gt=0, le=1.0, description="xray: draw the dose log-uniformly in [dose, dose_max] per image or patch (blind training)."
    )
    read_noise: float | None = Field(
        None, ge=0, description="Poisson-Gaussian and xray: electronic (read) noise std in photon counts. None: 10, or 3 for xray."
    )
    mu: float = Field(3.0, gt=0, description="xray: attenuation of a display value p (transmission exp(-mu p)); 3.0 is a 20:1 range of transmitted intensity.")
    kernel_a: float | list[float] = Field(
        0.3, description="xray: detector kernel [a, 1, a] (normalised to unit energy) correlating quantum noise; one a, or [a_rows, a_cols] per axis; 0: white."
    )
    kernel_a_max: float | list[float] | None = Field(
        None, description="xray: draw each axis's a uniformly in [kernel_a, kernel_a_max] per image or patch (blind training)."
    )
    mixed_kinds: list[MixableNoise] = Field(
        ["gaussian", "poisson_gaussian"], min_length=1, description="mixed: kinds drawn per image with equal probability."
    )
    amount: float = Field(0.05, ge=0, le=1, description="Salt-and-pepper: fraction of pixels replaced.")
    speckle_sigma: float = Field(0.1, ge=0, description="Speckle: std of the multiplicative noise.")
    fresh_each_epoch: bool = Field(True, description="Draw new training noise each epoch (False: one fixed noisy set).")

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: Any) -> Any:
        """Fill photons and read_noise left out (or None) with the kind's default."""
        if not isinstance(data, dict):
            return data
        kind = data.get("kind", "gaussian")
        xray = kind == "xray" or (kind == "mixed" and "xray" in (data.get("mixed_kinds") or []))
        key = "xray" if xray else "other"
        data = dict(data)
        if data.get("photons") is None:
            data["photons"] = PHOTONS_DEFAULT[key]
        if data.get("read_noise") is None:
            data["read_noise"] = READ_NOISE_DEFAULT[key]
        return data

    @model_validator(mode="after")
    def _check_xray_ranges(self) -> NoiseConfig:
        if self.dose_max is not None and self.dose_max < self.dose:
            raise ValueError(f"dose_max ({self.dose_max}) must be at least dose ({self.dose})")
        low = kernel_axes(self.kernel_a, "kernel_a")
        if self.kernel_a_max is not None:
            high = kernel_axes(self.kernel_a_max, "kernel_a_max")
            if any(h < lo for lo, h in zip(low, high)):
                raise ValueError(f"kernel_a_max {self.kernel_a_max} must be at least kernel_a {self.kernel_a} on each axis")
        return self


def kernel_axes(value: float | list[float], name: str) -> tuple[float, float]:
    """(a_rows, a_cols) of a kernel_a value; a must lie in [0, 1]."""
    pair = [value, value] if isinstance(value, (int, float)) else list(value)
    if len(pair) != 2:
        raise ValueError(f"{name} must be one number or [a_rows, a_cols]; got {value}")
    if any(not 0.0 <= a <= 1.0 for a in pair):
        raise ValueError(f"{name} values must lie in [0, 1]; got {value}")
    return float(pair[0]), float(pair[1])


#: Largest width (filters, channels, latent size) a config may give a network: wider ones
#: take gigabytes per layer, and a typo such as 100000000 would fail in allocation.
MAX_WIDTH = 4096


class ModelConfig(Section):
    name: Literal["dense", "conv", "unet", "dncnn"] = Field("dense", description="Network (see pipeline.models).")
    latent: int = Field(64, ge=1, le=MAX_WIDTH, description="dense: size of the hidden layer.")
    image_size: int = Field(28, ge=4, le=MAX_WIDTH, description="dense: side of the square images it takes (784 = 28x28).")
    features: int = Field(32, ge=1, le=MAX_WIDTH, description="conv/dncnn: filters per layer.")
    channels: list[Annotated[int, Field(ge=1, le=MAX_WIDTH)]] = Field(
        [16, 32, 64, 128], min_length=1, max_length=12, description="unet: channels per level.")
    refine_channels: int = Field(
        0, ge=0, le=MAX_WIDTH, description="unet: width of a full-resolution head that refines the noise estimate (0: none)."
    )
    depth: int = Field(17, ge=3, le=1000, description="dncnn: number of conv layers.")
    residual: bool = Field(True, description="unet/dncnn: predict the noise and subtract it (True) or the clean image.")


class SelfSupervisedConfig(Section):
    """Settings of the self-supervised objectives (see pipeline.selfsupervised)."""

    mask_fraction: float = Field(0.01, gt=0, lt=0.5, description="blindspot: share of pixels that are blind-spot centres.")
    span: list[int] = Field(
        [2, 2], min_length=2, max_length=2,
        description="blindspot: half-widths (rows, columns) of the box hidden around each centre; cover the noise's correlation length ([0, 0]: plain Noise2Void).",
    )
    margin: int = Field(2, ge=1, description="blindspot: hidden pixels take the mean of visible pixels this far beyond the box.")
    stride: int = Field(4, ge=2, description="subsample: cell side of the pixel-shuffle down-sampling.")
    gap: int = Field(3, ge=1, description="subsample: least distance between the two pixels drawn from a cell.")
    gamma: float = Field(1.0, ge=0, description="subsample: weight of Neighbor2Neighbor's regulariser.")

    @model_validator(mode="after")
    def _check(self) -> SelfSupervisedConfig:
        if any(s < 0 for s in self.span):
            raise ValueError(f"span must not be negative, got {self.span}")
        if self.gap >= self.stride:
            raise ValueError(f"gap ({self.gap}) must be below stride ({self.stride}): two pixels of a cell are at most stride - 1 apart")
        return self


class TrainConfig(Section):
    objective: Literal["supervised", "blindspot", "subsample", "fitted"] = Field(
        "supervised",
        description="supervised: learn noisy -> clean pairs; blindspot (Noise2Void with a structured mask) or subsample (Neighbor2Neighbor on pixel-shuffled cells): learn from the noisy images alone; fitted (denoise adapt only): supervised on the starting model's denoised scans with X-ray noise fitted to the scans.",
    )
    self_supervised: SelfSupervisedConfig = Field(default_factory=SelfSupervisedConfig, description="Settings of the self-supervised objectives.")
    epochs: int = Field(100, ge=0, description="Training epochs.")
    batch_size: int = Field(256, ge=1, description="Images (or patches) per batch.")
    loss: Literal["bce", "mse", "l1", "ssim_mix"] = Field("bce", description="Training loss.")
    loss_weighting: Literal["none", "inverse_noise"] = Field(
        "none",
        description="inverse_noise: weight each sample's loss by 1/(its noise std), so low-noise samples count as much as high-noise ones in blind training.",
    )
    detail_weight: float = Field(
        0.0, ge=0,
        description="Weight of a penalty on erasing fine detail: the squared slope of the error regressed on the clean patch's Laplacian of Gaussian (the detail of metrics.detail_loss), added to the loss. 0: off.",
    )
    transfer_weight: float = Field(
        0.0, ge=0,
        description="Weight of a penalty on content lost at 0.1-0.2 cycles/pixel: (1 - T)^2 where the batch's detail kept T (pipeline.detail) is below 1, added to the loss. 0: off.",
    )
    optimizer: Literal["adadelta", "adam", "adamw"] = Field("adadelta", description="Optimizer.")
    lr: float = Field(1.0, gt=0, description="Learning rate (Adadelta's default is 1.0).")
    weight_decay: float = Field(0.0, ge=0, description="Weight decay.")
    schedule: Literal["none", "cosine"] = Field("none", description="Learning-rate schedule over the epochs.")
    grad_clip: float | None = Field(None, gt=0, description="Clip the gradient norm to this value (None: off).")
    validate_every: int = Field(1, ge=1, description="Validate every this many epochs (and always after the last).")
    early_stop_patience: int | None = Field(None, ge=1, description="Stop after this many epochs without a better validation PSNR.")
    resume: Path | None = Field(None, description="Checkpoint (last.pt) to resume training from.")
    init_from: Path | None = Field(
        None, description="Start from this checkpoint's weights (fine-tuning) with a fresh optimizer and schedule."
    )
    progress: bool = Field(True, description="Show progress bars (one line per epoch is printed either way).")
    amp: bool = Field(True, description="Mixed precision when training on a GPU.")
    workers: int = Field(
        0, ge=0,
        description="Processes that make the training patches and noise (0: the training process itself). A GPU trains faster than one CPU core makes patches; each sample depends only on (seed, epoch, index), so the result is the same for any number.",
    )
    max_train_seconds: float | None = Field(None, gt=0, description="Stop training after this many seconds (checked after each epoch).")


class EvaluateConfig(Section):
    baselines: list[Literal["bm3d", "nlm", "tv", "wavelet", "median"]] = Field(
        [], description="Classical denoisers compared with the model on the same images and noise."
    )
    models: list[Path] = Field([], description="Further checkpoints or run folders to compare on the same images.")
    noise: NoiseConfig | None = Field(
        None, description="Noise of the test images (None: the training noise), e.g. one level for a blind model."
    )


#: Largest tile overlap: 0.75 computes each pixel about 16 times; 0.99 would be 10,000 times.
MAX_OVERLAP = 0.75


class InferenceConfig(Section):
    """How a trained network runs on images: one set of settings for validation, evaluation and apply.

    Validation runs on the training device; ``device`` is for evaluation (``denoise apply``
    has the same settings as options).

    Tile side measured with the tiled denoiser on a 2048x2048 image, 2 shared CPU cores,
    overlap 0.25, 4 tiles per pass, untrained default-size models (seconds per image): conv
    128: 26.0, 256: 15.5, 512: 8.2, 1024: 11.9; unet 128: 20.6, 256: 15.8, 512: 6.0, 1024:
    7.7; peak memory 0.6-0.8 GiB at 512, 1.0-1.8 GiB at 1024.
    """

    tile_size: int | None = Field(512, ge=8, description="Denoise images larger than this in tiles of this size (None: whole images).")
    overlap: float = Field(0.25, ge=0, le=MAX_OVERLAP, description=(
        f"Overlap of neighbouring tiles (0.25 = 25%; at most {MAX_OVERLAP}: each pixel is computed "
        "about 1/(1 - overlap)**2 times)."))
    batch_size: int = Field(2, ge=1, description="Tiles (or whole images of one size) per forward pass.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Where the network runs; auto picks cuda when present.")


class ReportConfig(Section):
    n_examples: int = Field(10, ge=0, description="Example images shown in the figures.")
    html: bool = Field(True, description="Write the self-contained report.html.")


class Config(Section):
    """A whole run."""

    run: RunConfig = Field(default_factory=RunConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain, YAML-safe dictionary of every resolved field."""
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _format_errors(err: ValidationError, origin: str) -> str:
    lines = [f"invalid configuration ({origin}):"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  {path}: unknown key (check its spelling; see `denoise config --defaults`)")
        else:
            lines.append(f"  {path}: {e['msg']} (got {short_text(repr(e.get('input')), 80)})")
    return "\n".join(lines)


def _parse_value(text: str) -> Any:
    """Parse an override's value as YAML (numbers, booleans, lists), else keep the string."""
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError):
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides to a raw config dictionary (in place) and return it."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key.path=value (e.g. train.epochs=5)")
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


def _check_size(raw: Any, origin: str) -> None:
    """ConfigError when `raw` nests deeper than MAX_CONFIG_DEPTH or holds (counting every
    alias each time it is used) more than MAX_CONFIG_VALUES values."""
    budget = MAX_CONFIG_VALUES
    stack: list[tuple[Any, int]] = [(raw, 0)]
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise ConfigError(f"{origin}: too many values (over {MAX_CONFIG_VALUES:,}, counting "
                              "YAML aliases each time they are used); a config is a few dozen fields")
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(f"{origin}: nested deeper than {MAX_CONFIG_DEPTH} levels; a config has "
                              "sections of fields, a few levels deep")
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


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config (None: all defaults), apply overrides, validate.

    Relative data paths in the file are taken relative to the current directory.
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
            raise ConfigError(f"config file {path} must be a mapping of sections (run, data, noise, ...)")
        raw = loaded
    apply_overrides(raw, list(overrides or []))
    return config_from_dict(raw, origin)


def _read_yaml(path: Path) -> Any:
    """The YAML document in `path`; ConfigError when missing, too large, not UTF-8 or invalid."""
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (give the path of a YAML file, e.g. configs/mnist_conv.yaml)")
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is {size:,} bytes; a config is a few KB (limit {MAX_CONFIG_BYTES:,})")
        data = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"config file {path} cannot be read ({err.strerror})") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"config file {path} is UTF-16 text; save it as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
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
                    raise ConfigError(f"config file {path}: key {where}{name} is given twice (line "
                                      f"{key.start_mark.line + 1}); keep one (YAML would keep only the last)")
                keys.add(name)
                stack.append((value, f"{where}{name}."))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, f"{where}{index}.") for index, item in enumerate(node.value))


def save_config(cfg: Config, path: str | Path) -> None:
    """Write the resolved config (every field, seed included) as YAML."""
    Path(path).write_text(cfg.to_yaml())


def _allowed_values(annotation: Any) -> list[Any]:
    """The values a field admits when its type is (a list or optional of) a Literal, else []."""
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    return [v for arg in get_args(annotation) for v in _allowed_values(arg)]


def describe_defaults() -> str:
    """Every field with its default, allowed values and description, for `denoise config --defaults`."""
    lines: list[str] = []
    for section_name, section_field in Config.model_fields.items():
        section_cls = section_field.default_factory  # type: ignore[assignment]
        lines.append(f"{section_name}:")
        for name, f in section_cls.model_fields.items():  # type: ignore[union-attr]
            default = f.default if f.default_factory is None else f.default_factory()
            if isinstance(default, BaseModel):
                default = default.model_dump(mode="json")
            if isinstance(default, Path):
                default = str(default)
            allowed = _allowed_values(f.annotation)
            words = "Any of" if get_origin(f.annotation) is list else "One of"
            choices = f" {words}: {', '.join(map(str, allowed))}." if allowed else ""
            lines.append(f"  {name}: {yaml.safe_dump(default, default_flow_style=True).strip().removesuffix('...').strip()}  # {f.description}{choices}")
    return "\n".join(lines)
