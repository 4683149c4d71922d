"""MNIST from IDX files (``.gz`` or raw): the bundled 10k sample, a user's folder, t10k.

The IDX format: a 4-byte magic (two zero bytes, a type code, the number of dimensions),
then one big-endian uint32 per dimension, then the values. MNIST images are uint8
(type 0x08) with 3 dimensions (count, rows, columns); labels have 1 dimension.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError

BUNDLED_DIR = Path(__file__).resolve().parents[1] / "data"

#: Candidate file stems, in order of preference, for each part of the set.
TRAIN_IMAGES = (
    "train-images-idx3-ubyte",
    "train-images.idx3-ubyte",
    "train-images-first10k-idx3-ubyte",
)
TEST_IMAGES = ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte")


class IdxError(PipelineError):
    """An IDX file is corrupt or of an unexpected shape."""


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a numpy array of its declared shape."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"MNIST file not found: {path}")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise IdxError(
            f"{path} is not a readable gzip file ({err}); download it again (denoise fetch-data "
            "mnist)"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IdxError(
            f"{path} is not an IDX file (bad magic number); download it again (denoise "
            "fetch-data mnist)"
        )
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise IdxError(f"{path}: unknown IDX value type 0x{raw[2]:02x}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{path} is truncated (header cut short)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(dtypes[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise IdxError(
            f"{path} is truncated or corrupt: header declares shape {shape} ({expected} bytes), "
            f"file holds {len(raw) - header}; download it again (denoise fetch-data mnist)"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(root: Path, stems: tuple[str, ...]) -> Path | None:
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        for stem in stems:
            for name in (stem + ".gz", stem):
                if (folder / name).is_file():
                    return folder / name
    return None


@dataclass
class MnistSet:
    """MNIST images as float32 in [0, 1], shape (N, 28, 28), with labels."""

    images: np.ndarray
    labels: np.ndarray
    source: Path


def _labels_beside(images_path: Path) -> Path | None:
    """The labels file named like `images_path` (images -> labels, idx3 -> idx1), if present."""
    name = images_path.name.replace("images", "labels").replace("idx3", "idx1")
    candidate = images_path.with_name(name)
    return candidate if candidate.is_file() else None


def _load_pair(images_path: Path) -> MnistSet:
    images = read_idx(images_path)
    labels_path = _labels_beside(images_path)
    if images.ndim != 3:
        raise IdxError(f"{images_path}: expected a 3-D image array, got shape {images.shape}")
    labels = read_idx(labels_path) if labels_path else np.full(len(images), -1, np.int64)
    if len(labels) != len(images):
        raise IdxError(
            f"{labels_path} holds {len(labels)} labels for {len(images)} images in {images_path}"
        )
    return MnistSet((images.astype(np.float32) / 255.0), labels.astype(np.int64), images_path)


def load_mnist(root: str | Path | None = None) -> tuple[MnistSet, MnistSet | None]:
    """Training set and (when its t10k files are present) the official test set.

    ``root=None`` uses the bundled sample (training images 0-9,999). A folder is searched
    for the standard file names, also under ``MNIST/raw`` as torchvision lays it out.
    """
    folder = BUNDLED_DIR if root is None else Path(root)
    if not folder.is_dir():
        raise PipelineError(
            f"MNIST data folder not found: {folder} (set data.root to a folder of MNIST IDX "
            "files, or leave it unset for the bundled sample)"
        )
    train_images = _find(folder, TRAIN_IMAGES)
    if train_images is None:
        raise PipelineError(
            f"no MNIST training images in {folder}: expected a file named {TRAIN_IMAGES[0]}[.gz] "
            "(get them with `denoise fetch-data mnist --dest DIR`)"
        )
    train = _load_pair(train_images)
    test_images = _find(folder, TEST_IMAGES)
    test = _load_pair(test_images) if test_images else None
    return train, test
