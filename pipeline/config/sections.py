"""The sections of a run's config other than noise and evaluate (see :mod:`pipeline.config`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.text import short_text


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated.

    Floats must be finite (``.inf`` and ``.nan`` are refused).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class RunConfig(Section):
    """The ``run`` section: name, seed, output folder, device, stages and threads of a run."""

    name: str = Field(
        "run", description="Name of the run; the run folder is <output_dir>/<name>/<timestamp>."
    )
    seed: int = Field(
        0,
        ge=0,
        le=2**32 - 1,
        description="One seed for data order, noise and initialisation (0 to 2**32-1).",
    )
    output_dir: Path = Field(Path("runs"), description="Folder under which run folders are made.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where to train and denoise; auto picks cuda when present."
    )
    stages: list[Literal["train", "evaluate", "report"]] = Field(
        ["train", "evaluate", "report"], description="Stages to run, in order."
    )
    threads: int | None = Field(
        None, ge=1, description="CPU threads for torch (None: torch's default)."
    )

    @field_validator("name")
    @classmethod
    def _one_folder_name(cls, name: str) -> str:
        """The run name is one folder name, so the run folder stays inside output_dir."""
        if not name or name in (".", "..") or any(c in name for c in "/\\\0") or len(name) > 200:
            raise ValueError(
                "must be one folder name (no '/', '\\', '..' or NUL; 1-200 characters)"
            )
        return name


class GroupsConfig(Section):
    """The ``data.groups`` section: how files are assigned to patients (groups) for the split."""

    csv: Path | None = Field(
        None,
        description="Metadata CSV mapping image files to patients (None: only DICOM PatientID "
        "and group_pattern).",
    )
    file_column: str = Field("filename", description="CSV column with the image's file name.")
    group_column: str = Field("patientid", description="CSV column with the patient (group) id.")
    dicom_patient_id: bool = Field(
        True,
        description="Group DICOM files by their PatientID tag when the CSV does not list them.",
    )


class DataConfig(Section):
    """The ``data`` section: where the clean images come from, how they are split and cut."""

    kind: Literal["mnist", "folder", "openi"] = Field(
        "mnist", description="Where the clean images come from."
    )
    root: Path | list[Path] | None = Field(
        None,
        description="Data folder (MNIST IDX files, a folder of scans, or the OpenI layout); for "
        "folder data also a list of folders and single scan files. None: the bundled MNIST "
        "sample.",
    )
    test_root: Path | list[Path] | None = Field(
        None,
        description="Optional separate test images (for folder data): a folder, or a list of "
        "folders and single files; MNIST finds t10k files in root itself.",
    )
    mnist_test_set: Literal["auto", "split", "t10k"] = Field(
        "auto",
        description="MNIST test images: t10k files when present (auto/t10k) or a split of the "
        "training file.",
    )
    val_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Fraction of training images (or patients) held out for validation.",
    )
    test_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Fraction held out for testing when no separate test set is given.",
    )
    max_train: int | None = Field(
        None, ge=1, description="Use at most this many training images (None: all)."
    )
    max_val: int | None = Field(None, ge=1, description="Use at most this many validation images.")
    max_test: int | None = Field(None, ge=1, description="Use at most this many test images.")
    group_pattern: str | None = Field(
        None,
        description="Folder: regex whose first group is the patient id in a file name, so "
        "splits keep a patient's images together (e.g. '^(\\d+)_').",
    )

    @field_validator("group_pattern")
    @classmethod
    def _valid_pattern(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        try:
            groups = re.compile(pattern).groups
        except (re.error, RecursionError, OverflowError) as err:
            raise ValueError(
                f"not a valid regular expression ({short_text(str(err), 100)})"
            ) from None
        if groups < 1:
            raise ValueError(
                "needs a group, in parentheses, around the patient id (e.g. '^(\\d+)_')"
            )
        return pattern

    groups: GroupsConfig | None = Field(
        None,
        description="Folder: patient of each file from a metadata CSV and/or the DICOM "
        "PatientID, so every split is by patient; files without one are their own group (with a "
        "warning).",
    )
    split_csv: Path | None = Field(
        None,
        description="Folder: a CSV that fixes the split (columns file, patient, split, optional "
        "source; file relative to data.root, split train/val/test); data.root must be one "
        "folder. Made e.g. by scripts/make_multisite_split.py.",
    )
    max_train_patients: int | None = Field(
        None,
        ge=1,
        description="With data.split_csv: train on this many of its training patients only, "
        "each source keeping its share (learning curves). None: all.",
    )
    test_also_from_root: bool = Field(
        False,
        description="Folder with test_root: also hold out test_fraction of root's patients as "
        "test images (with test_root's); test images are never filtered by max_clean_noise.",
    )
    frontal_only: bool = Field(
        False, description="OpenI: keep frontal views only (from the DICOM header or report)."
    )
    strict: bool = Field(
        False, description="Folder: stop at the first unreadable file instead of skipping it."
    )
    resize: int | None = Field(
        None, ge=8, description="Resize every image to this square size on load (None: keep size)."
    )
    patch_size: int | None = Field(
        None, ge=8, description="Train on random patches of this size (None: whole images)."
    )
    patches_per_image: int = Field(
        8, ge=1, description="Random patches drawn per training image per epoch."
    )
    min_patch_std: float = Field(
        0.01,
        ge=0.0,
        description="Patches whose std is below this are treated as background and redrawn.",
    )
    augment: bool = Field(
        False, description="Random flips and 90-degree rotations of training images or patches."
    )
    train_scales: list[float] = Field(
        [1.0],
        min_length=1,
        description="Train on the training images at these scales (anti-aliased downscaling, "
        "e.g. [1.0, 0.5]), so a model sees several pixel spacings.",
    )
    max_clean_noise: float | None = Field(
        None,
        gt=0,
        description="Leave out training/validation images whose own noise (estimated on their "
        "central half) is above this, e.g. 0.006 (~1.5/255): a clean reference must be cleaner "
        "than the noise a model learns to remove.",
    )

    @model_validator(mode="after")
    def _check_fractions(self) -> DataConfig:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be below 1")
        if self.split_csv is not None and (
            self.kind != "folder" or isinstance(self.root, list) or self.test_root is not None
        ):
            raise ValueError(
                "data.split_csv needs folder data with data.root one folder and no data.test_root"
            )
        if isinstance(self.root, list) and self.kind != "folder":
            raise ValueError(f"data.root may be a list only for folder data, not {self.kind}")
        if any(not 0 < s <= 1 for s in self.train_scales):
            raise ValueError(f"train_scales must lie in (0, 1], got {self.train_scales}")
        return self


#: Largest width (filters, channels, latent size) a config may give a network: wider ones
#: take gigabytes per layer, and a typo such as 100000000 would fail in allocation.
MAX_WIDTH = 4096


class ModelConfig(Section):
    """The ``model`` section: which network and its size."""

    name: Literal["dense", "conv", "unet", "dncnn"] = Field(
        "dense", description="Network (see pipeline.models)."
    )
    latent: int = Field(64, ge=1, le=MAX_WIDTH, description="dense: size of the hidden layer.")
    image_size: int = Field(
        28,
        ge=4,
        le=MAX_WIDTH,
        description="dense: side of the square images it takes (784 = 28x28).",
    )
    features: int = Field(32, ge=1, le=MAX_WIDTH, description="conv/dncnn: filters per layer.")
    channels: list[Annotated[int, Field(ge=1, le=MAX_WIDTH)]] = Field(
        [16, 32, 64, 128], min_length=1, max_length=12, description="unet: channels per level."
    )
    refine_channels: int = Field(
        0,
        ge=0,
        le=MAX_WIDTH,
        description="unet: width of a full-resolution head that refines the noise estimate (0: "
        "none).",
    )
    depth: int = Field(17, ge=3, le=1000, description="dncnn: number of conv layers.")
    residual: bool = Field(
        True, description="unet/dncnn: predict the noise and subtract it (True) or the clean image."
    )


class SelfSupervisedConfig(Section):
    """Settings of the self-supervised objectives (see pipeline.selfsupervised)."""

    mask_fraction: float = Field(
        0.01, gt=0, lt=0.5, description="blindspot: share of pixels that are blind-spot centres."
    )
    span: list[int] = Field(
        [2, 2],
        min_length=2,
        max_length=2,
        description="blindspot: half-widths (rows, columns) of the box hidden around each "
        "centre; cover the noise's correlation length ([0, 0]: plain Noise2Void).",
    )
    margin: int = Field(
        2,
        ge=1,
        description="blindspot: hidden pixels take the mean of visible pixels this far beyond "
        "the box.",
    )
    stride: int = Field(
        4, ge=2, description="subsample: cell side of the pixel-shuffle down-sampling."
    )
    gap: int = Field(
        3, ge=1, description="subsample: least distance between the two pixels drawn from a cell."
    )
    gamma: float = Field(
        1.0, ge=0, description="subsample: weight of Neighbor2Neighbor's regulariser."
    )

    @model_validator(mode="after")
    def _check(self) -> SelfSupervisedConfig:
        if any(s < 0 for s in self.span):
            raise ValueError(f"span must not be negative, got {self.span}")
        if self.gap >= self.stride:
            raise ValueError(
                f"gap ({self.gap}) must be below stride ({self.stride}): two pixels of a cell "
                "are at most stride - 1 apart"
            )
        return self


class TrainConfig(Section):
    """The ``train`` section: objective, loss, optimisation, schedule, checkpoints and stopping."""

    objective: Literal["supervised", "blindspot", "subsample", "fitted"] = Field(
        "supervised",
        description="supervised: learn noisy -> clean pairs; blindspot (Noise2Void with a "
        "structured mask) or subsample (Neighbor2Neighbor on pixel-shuffled cells): learn from "
        "the noisy images alone; fitted (denoise adapt only): supervised on the starting "
        "model's denoised scans with X-ray noise fitted to the scans.",
    )
    self_supervised: SelfSupervisedConfig = Field(
        default_factory=SelfSupervisedConfig,
        description="Settings of the self-supervised objectives.",
    )
    epochs: int = Field(100, ge=0, description="Training epochs.")
    batch_size: int = Field(256, ge=1, description="Images (or patches) per batch.")
    loss: Literal["bce", "mse", "l1", "ssim_mix"] = Field("bce", description="Training loss.")
    loss_weighting: Literal["none", "inverse_noise"] = Field(
        "none",
        description="inverse_noise: weight each sample's loss by 1/(its noise std), so "
        "low-noise samples count as much as high-noise ones in blind training.",
    )
    detail_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of a penalty on erasing fine detail: the squared slope of the error "
        "regressed on the clean patch's Laplacian of Gaussian (the detail of "
        "metrics.detail_loss), added to the loss. 0: off.",
    )
    transfer_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of a penalty on content lost at 0.1-0.2 cycles/pixel: (1 - T)^2 "
        "where the batch's detail kept T (pipeline.detail) is below 1, added to the loss. 0: "
        "off.",
    )
    optimizer: Literal["adadelta", "adam", "adamw"] = Field("adadelta", description="Optimizer.")
    lr: float = Field(1.0, gt=0, description="Learning rate (Adadelta's default is 1.0).")
    weight_decay: float = Field(0.0, ge=0, description="Weight decay.")
    schedule: Literal["none", "cosine"] = Field(
        "none", description="Learning-rate schedule over the epochs."
    )
    grad_clip: float | None = Field(
        None, gt=0, description="Clip the gradient norm to this value (None: off)."
    )
    validate_every: int = Field(
        1, ge=1, description="Validate every this many epochs (and always after the last)."
    )
    early_stop_patience: int | None = Field(
        None, ge=1, description="Stop after this many epochs without a better validation PSNR."
    )
    resume: Path | None = Field(None, description="Checkpoint (last.pt) to resume training from.")
    init_from: Path | None = Field(
        None,
        description="Start from this checkpoint's weights (fine-tuning) with a fresh optimizer "
        "and schedule.",
    )
    progress: bool = Field(
        True, description="Show progress bars (one line per epoch is printed either way)."
    )
    amp: bool = Field(True, description="Mixed precision when training on a GPU.")
    workers: int = Field(
        0,
        ge=0,
        description="Processes that make the training patches and noise (0: the training "
        "process itself). A GPU trains faster than one CPU core makes patches; each sample "
        "depends only on (seed, epoch, index), so the result is the same for any number.",
    )
    max_train_seconds: float | None = Field(
        None, gt=0, description="Stop training after this many seconds (checked after each epoch)."
    )


#: Largest tile overlap: 0.75 computes each pixel about 16 times; 0.99 would be 10,000 times.
MAX_OVERLAP = 0.75


class InferenceConfig(Section):
    """How a trained network runs on images, for validation, evaluation and apply.

    Validation runs on the training device; ``device`` is for evaluation (``denoise apply``
    has the same settings as options).
    """

    model_config = ConfigDict(frozen=True)

    tile_size: int | None = Field(
        512,
        ge=8,
        description="Denoise images larger than this in tiles of this size (None: whole images).",
    )
    overlap: float = Field(
        0.25,
        ge=0,
        le=MAX_OVERLAP,
        description=(
            f"Overlap of neighbouring tiles (0.25 = 25%; at most {MAX_OVERLAP}: each pixel is "
            "computed about 1/(1 - overlap)**2 times)."
        ),
    )
    batch_size: int = Field(1, ge=1, description="Tiles (or same-size images) per forward pass.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where the network runs; auto picks cuda when present."
    )


class ReportConfig(Section):
    """The ``report`` section: what the run's report shows."""

    n_examples: int = Field(10, ge=0, description="Example images shown in the figures.")
    html: bool = Field(True, description="Write the self-contained report.html.")
