"""The ``data`` section of a run's config (see :mod:`pipeline.config`).

Where the clean images come from, how they are split, cut into patches and sampled.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.sections import Section
from pipeline.text import short_text


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


class ScanAugmentConfig(Section):
    """The ``data.scan_augment`` section: how real scans differ, drawn per training patch."""

    gamma: tuple[float, float] | None = Field(
        None,
        description="Display gamma drawn log-uniformly from [low, high] per patch, e.g. "
        "[0.7, 1.4] (None: off).",
    )
    window: float = Field(
        0.0,
        ge=0.0,
        le=0.25,
        description="Each end of the display window moved by up to this fraction of the range, "
        "the result clipped to [0, 1], e.g. 0.1 (0: off).",
    )
    scale: tuple[float, float] | None = Field(
        None,
        description="Pixel size changed by a factor drawn log-uniformly from [low, high], e.g. "
        "[0.8, 1.25]: below 1 a patch shows a larger region at coarser pixels (anti-aliased), "
        "above 1 a smaller one at finer pixels; bilinear interpolation (None: off).",
    )
    rotate: float = Field(
        0.0, ge=0.0, le=45.0, description="Rotation by up to this many degrees either way (0: off)."
    )

    @field_validator("gamma", "scale")
    @classmethod
    def _check_range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 < value[0] <= value[1]:
            raise ValueError(f"must be [low, high] with 0 < low <= high, got {list(value)}")
        return value


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
        8,
        ge=1,
        description="Random patches drawn per training image per epoch (on average, with a "
        "patch_sampling other than per_image).",
    )
    patch_sampling: Literal["per_image", "by_area", "by_source"] = Field(
        "per_image",
        description="How an epoch's patches (patches_per_image x training images) are shared: "
        "per_image, the same number from every image; by_area, in proportion to each image's "
        "pixels; by_source, equally among the sources of data.split_csv (its source column), "
        "then equally among a source's images.",
    )
    min_patch_std: float = Field(
        0.01,
        ge=0.0,
        description="Patches whose std is below this are treated as background and redrawn.",
    )
    augment: bool = Field(
        False, description="Random flips and 90-degree rotations of training images or patches."
    )
    scan_augment: ScanAugmentConfig = Field(
        default_factory=ScanAugmentConfig,
        description="Display gamma/window, pixel size and rotation changes of training patches.",
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
        if self.patch_sampling == "by_source" and self.split_csv is None:
            raise ValueError(
                "patch_sampling by_source needs data.split_csv (its source column names each "
                "image's source); use per_image or by_area without one"
            )
        return self
