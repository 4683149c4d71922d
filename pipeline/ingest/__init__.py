"""Where clean images come from: MNIST, a folder of scans, the Indiana (OpenI) collection.

:func:`load_splits` turns a ``data`` config section into train/validation/test lists of
:class:`~pipeline.image.ScanImage`; the modules below it are usable alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.config import DataConfig
from pipeline.errors import PipelineError
from pipeline.image import ImageMeta, ScanImage, center_crop
from pipeline.ingest.failures import Failure
from pipeline.ingest.folder import load_folder, read_files
from pipeline.ingest.groups import group_keys
from pipeline.ingest.mnist import load_mnist
from pipeline.ingest.openi import load_openi
from pipeline.ingest.split_file import read_split_csv, subset_rows
from pipeline.ingest.splits import group_of, split_groups
from pipeline.metrics import estimate_noise_sigma

__all__ = [
    "DataSplits",
    "drop_noisy_references",
    "group_of",
    "load_splits",
    "own_noise",
    "split_groups",
]


@dataclass
class DataSplits:
    """Clean images per split, the files that could not be read, and a one-line origin."""

    train: list[ScanImage]
    val: list[ScanImage]
    test: list[ScanImage]
    description: str
    failures: list = field(default_factory=list)
    assignment: list[dict[str, str]] = field(default_factory=list)
    """Folder data: one row per image (file, patient, split), written to the run's split.csv."""

    def train_sources(self) -> list[str] | None:
        """The source of each training image, in order; None where the split gives none."""
        sources = [row.get("source", "") for row in self.assignment if row["split"] == "train"]
        return sources if len(sources) == len(self.train) and all(sources) else None


def _limit(images: list[ScanImage], n: int | None) -> list[ScanImage]:
    return images if n is None else images[:n]


def _mnist_images(array: np.ndarray, source: Path, start: int = 0) -> list[ScanImage]:
    return [
        ScanImage(
            a,
            ImageMeta(
                format="mnist",
                source=source,
                dtype="uint8",
                bits_stored=8,
                value_max=255.0,
                frame=start + i,
            ),
        )
        for i, a in enumerate(array)
    ]


def _split_mnist(cfg: DataConfig) -> DataSplits:
    train_set, test_set = load_mnist(cfg.root)
    n = len(train_set.images)
    use_t10k = test_set is not None and cfg.mnist_test_set in ("auto", "t10k")
    if cfg.mnist_test_set == "t10k" and test_set is None:
        raise PipelineError(
            f"data.mnist_test_set is t10k but no t10k-images-idx3-ubyte[.gz] is in {cfg.root}"
        )
    n_test = 0 if use_t10k else round(n * cfg.test_fraction)
    n_val = round(n * cfg.val_fraction)
    n_train = n - n_val - n_test
    # Fixed, seed-independent split: MNIST is already shuffled, and every run of every
    # seed is then evaluated on the same images.
    images = _mnist_images(train_set.images, train_set.source)
    train, val = images[:n_train], images[n_train : n_train + n_val]
    if use_t10k:
        test = _mnist_images(test_set.images, test_set.source)
        origin = (
            f"MNIST: train/val from {train_set.source.name} ({n_train}/{n_val}), "
            "test = official t10k"
        )
    else:
        test = images[n_train + n_val :]
        origin = (
            f"MNIST: {train_set.source.name} split {n_train}/{n_val}/{n_test} "
            f"(train/val/test = images 0-{n_train - 1}, then in order)"
        )
    return DataSplits(
        _limit(train, cfg.max_train), _limit(val, cfg.max_val), _limit(test, cfg.max_test), origin
    )


def _names(roots: Path | list[Path]) -> str:
    return ", ".join(str(r) for r in (roots if isinstance(roots, list) else [roots]))


def _load_sources(entries: Path | list[Path], cfg: DataConfig) -> tuple[list[ScanImage], list]:
    """Images of one folder, or of a list of folders and single files, in the order given."""
    images: list[ScanImage] = []
    failures: list = []
    for entry in entries if isinstance(entries, list) else [entries]:
        if Path(entry).is_file():
            found, failed = read_files([Path(entry)], strict=cfg.strict, resize=cfg.resize)
        else:
            found, failed = load_folder(entry, strict=cfg.strict, resize=cfg.resize)
        images += found
        failures += failed
    return images, failures


def _split_from_csv(cfg: DataConfig, seed: int) -> DataSplits:
    """Folder data split as ``data.split_csv`` says.

    Train and validation references are filtered.
    """
    rows = subset_rows(read_split_csv(cfg.split_csv), cfg.max_train_patients, seed)
    root = Path(cfg.root)
    parts: dict[str, list[tuple[ScanImage, dict[str, str]]]] = {
        name: [] for name in ("train", "val", "test")
    }
    failures: list = []
    for row in rows:
        found, failed = read_files([root / row["file"]], strict=cfg.strict, resize=cfg.resize)
        failures += failed
        parts[row["split"]] += [(img, row) for img in found]
    for name in ("train", "val"):
        kept, too_noisy = drop_noisy_references(
            [img for img, _ in parts[name]], cfg.max_clean_noise
        )
        kept_ids = {id(img) for img in kept}
        parts[name] = [(img, row) for img, row in parts[name] if id(img) in kept_ids]
        failures += too_noisy
    limits = {"train": cfg.max_train, "val": cfg.max_val, "test": cfg.max_test}
    parts = {
        name: pairs if limits[name] is None else pairs[: limits[name]]
        for name, pairs in parts.items()
    }
    if not parts["train"]:
        raise PipelineError(f"no usable training image in {cfg.split_csv} under {root}")
    assignment = [
        {
            "file": str(img.meta.source),
            "patient": row["patient"],
            "split": name,
            "source": row.get("source", ""),
        }
        for name, pairs in parts.items()
        for img, row in pairs
    ]
    patients = len({row["patient"] for _, row in parts["train"]})
    origin = f"folder {root} split by {cfg.split_csv} ({patients} training patients)"
    images = {name: [img for img, _ in pairs] for name, pairs in parts.items()}
    return DataSplits(images["train"], images["val"], images["test"], origin, failures, assignment)


def _split_folder(cfg: DataConfig, seed: int) -> DataSplits:
    if cfg.split_csv is not None:
        return _split_from_csv(cfg, seed)
    if cfg.root is None and cfg.test_root is not None:
        test, failures = _load_sources(cfg.test_root, cfg)
        return DataSplits(
            [],
            [],
            _limit(test, cfg.max_test),
            f"folder {_names(cfg.test_root)} (all images as test)",
            failures,
        )
    if cfg.root is None:
        raise PipelineError(
            "data.root must be set for folder data (e.g. --set data.root=/path/to/scans)"
        )
    images, failures = _load_sources(cfg.root, cfg)
    if not images:
        raise PipelineError(
            f"no readable images in {_names(cfg.root)} ({len(failures)} files failed)"
        )
    root = _split_root(images, cfg, seed)
    failures = failures + root.too_noisy
    if not root.images:
        raise PipelineError(
            f"every image in {_names(cfg.root)} is noisier than "
            f"data.max_clean_noise={cfg.max_clean_noise}"
        )
    test, test_keys = root.test, root.test_keys
    if cfg.test_root is not None:
        extra_test, test_failures = _load_sources(cfg.test_root, cfg)
        failures = failures + test_failures
        test, test_keys = test + extra_test, test_keys + group_keys(extra_test, cfg, warn=False)
    return _folder_splits(root, test, test_keys, cfg, failures)


@dataclass
class _RootSplit:
    """The images of data.root with their patient keys and parts, after the noisy references.

    `test` and `test_keys` are the root's own test images (none when data.test_root is the
    test set alone); `too_noisy` the references dropped; `origin` says how it was split.
    """

    images: list[ScanImage]
    keys: list[str]
    where: list[str]
    test: list[ScanImage]
    test_keys: list[str]
    too_noisy: list[Failure]
    origin: str


def _split_root(images: list[ScanImage], cfg: DataConfig, seed: int) -> _RootSplit:
    """Split data.root's images by patient (or file) into train, val and test."""
    by = "patient" if cfg.group_pattern or cfg.groups is not None else "file"
    test: list[ScanImage] = []
    test_keys: list[str] = []
    if cfg.test_root is not None and cfg.test_also_from_root:
        # Split every patient first, so the test part is never filtered; then drop noisy
        # references.
        keys = group_keys(images, cfg)
        where = split_groups(keys, cfg.val_fraction, cfg.test_fraction, seed)
        test = [img for img, w in zip(images, where) if w == "test"]
        test_keys = [k for k, w in zip(keys, where) if w == "test"]
        rest = [(img, k, w) for img, k, w in zip(images, keys, where) if w != "test"]
        kept, too_noisy = drop_noisy_references([r[0] for r in rest], cfg.max_clean_noise)
        kept_ids = {id(img) for img in kept}
        rest = [r for r in rest if id(r[0]) in kept_ids]
        images, keys, where = [r[0] for r in rest], [r[1] for r in rest], [r[2] for r in rest]
        origin = (
            f"folder {_names(cfg.root)} split by {by} with seed {seed} "
            f"(test also {_names(cfg.test_root)})"
        )
    else:
        images, too_noisy = drop_noisy_references(images, cfg.max_clean_noise)
        keys = group_keys(images, cfg)
        if cfg.test_root is not None:
            where = split_groups(keys, cfg.val_fraction, 0.0, seed)
            origin = f"folder {_names(cfg.root)} (train/val by {by}), test {_names(cfg.test_root)}"
        else:
            where = split_groups(keys, cfg.val_fraction, cfg.test_fraction, seed)
            test = [img for img, w in zip(images, where) if w == "test"]
            test_keys = [k for k, w in zip(keys, where) if w == "test"]
            origin = f"folder {_names(cfg.root)} split by {by} with seed {seed}"
    return _RootSplit(images, keys, where, test, test_keys, too_noisy, origin)


def _folder_splits(
    root: _RootSplit,
    test: list[ScanImage],
    test_keys: list[str],
    cfg: DataConfig,
    failures: list[Failure],
) -> DataSplits:
    """The limited parts and the file-to-part assignment of a folder split."""
    keys, where = root.keys, root.where
    train = [img for img, w in zip(root.images, where) if w == "train"]
    val = [img for img, w in zip(root.images, where) if w == "val"]
    train, val, test = (
        _limit(train, cfg.max_train),
        _limit(val, cfg.max_val),
        _limit(test, cfg.max_test),
    )
    assignment = [
        {"file": str(img.meta.source or img.meta.name), "patient": key, "split": split}
        for split, part, part_keys in (
            ("train", train, [k for k, w in zip(keys, where) if w == "train"]),
            ("val", val, [k for k, w in zip(keys, where) if w == "val"]),
            ("test", test, test_keys),
        )
        for img, key in zip(part, part_keys)
    ]
    return DataSplits(train, val, test, root.origin, failures, assignment)


def _split_openi(cfg: DataConfig, seed: int) -> DataSplits:

    if cfg.root is None:
        raise PipelineError(
            "data.root must be set to the Indiana (OpenI) collection folder for "
            "configs/cxr_openi.yaml "
            "(e.g. --set data.root=/data/NLMCXR; "
            "get it with `denoise fetch-data openi --dest DIR`)"
        )
    splits, failures = load_openi(
        cfg.root,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        seed=seed,
        frontal_only=cfg.frontal_only,
        resize=cfg.resize,
        max_train=cfg.max_train,
        max_val=cfg.max_val,
        max_test=cfg.max_test,
        strict=cfg.strict,
    )
    train, noisy_train = drop_noisy_references(splits["train"], cfg.max_clean_noise)
    val, noisy_val = drop_noisy_references(splits["val"], cfg.max_clean_noise)
    failures = failures + noisy_train + noisy_val
    return DataSplits(
        train,
        val,
        splits["test"],
        f"Indiana/OpenI collection at {cfg.root}, split by report with seed {seed}",
        failures,
    )


def own_noise(image: np.ndarray) -> float:
    """Estimated noise std of an image that is meant to be clean, on its central half."""
    h, w = image.shape
    return estimate_noise_sigma(center_crop(image, h - 2 * (h // 4), w - 2 * (w // 4)))


def drop_noisy_references(
    images: list[ScanImage], limit: float | None
) -> tuple[list[ScanImage], list]:
    """Split `images` into those whose own noise is at most `limit` and failures for the rest.

    A model learns to keep whatever noise its clean references carry, so a reference noisier
    than `limit` would teach it to leave that much noise in. None keeps every image.
    """
    if limit is None:
        return images, []
    kept: list[ScanImage] = []
    dropped: list[Failure] = []
    for img in images:
        sigma = own_noise(img.pixels)
        if sigma > limit:
            reason = (
                f"not used for training: own noise {sigma * 255:.2f}/255 is above "
                f"data.max_clean_noise {limit * 255:.2f}/255"
            )
            dropped.append(Failure(img.meta.source or Path(img.meta.name), reason))
        else:
            kept.append(img)
    return kept, dropped


def load_splits(cfg: DataConfig, seed: int) -> DataSplits:
    """Clean train/validation/test images for a ``data`` config section."""
    if cfg.kind == "mnist":
        return _split_mnist(cfg)
    if cfg.kind == "folder":
        return _split_folder(cfg, seed)
    return _split_openi(cfg, seed)
