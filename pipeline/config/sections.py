"""The run, model, train, inference and report sections of a run's config.

The data, noise and evaluate sections are in their own modules (see :mod:`pipeline.config`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


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
