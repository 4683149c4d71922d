"""MNIST ingest: IDX parsing (gz and raw), corrupt files, the bundled split, t10k."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from pipeline.config import DataConfig
from pipeline.errors import PipelineError
from pipeline.ingest import load_splits
from pipeline.ingest.mnist import IdxError, load_mnist, read_idx


def write_idx(path, array: np.ndarray, compress: bool = True) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def test_read_idx_gz_and_raw(tmp_path) -> None:
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte.gz", arr)
    write_idx(tmp_path / "b-idx3-ubyte", arr, compress=False)
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), arr)
    assert np.array_equal(read_idx(tmp_path / "b-idx3-ubyte"), arr)


def test_truncated_idx_is_a_clear_error(tmp_path) -> None:
    arr = np.zeros((5, 28, 28), np.uint8)
    write_idx(tmp_path / "t.gz", arr)
    raw = gzip.decompress((tmp_path / "t.gz").read_bytes())
    (tmp_path / "t.gz").write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(IdxError, match="truncated or corrupt"):
        read_idx(tmp_path / "t.gz")


def test_not_gzip_and_bad_magic(tmp_path) -> None:
    (tmp_path / "x.gz").write_bytes(b"this is not gzip")
    with pytest.raises(IdxError, match="not a readable gzip"):
        read_idx(tmp_path / "x.gz")
    (tmp_path / "y").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(IdxError, match="bad magic"):
        read_idx(tmp_path / "y")


def test_bundled_sample_and_split() -> None:
    train, test = load_mnist()
    assert train.images.shape == (10000, 28, 28) and test is None
    assert (
        train.images.dtype == np.float32 and 0 <= train.images.min() and train.images.max() == 1.0
    )
    assert list(train.labels[:5]) == [5, 0, 4, 1, 9]
    splits = load_splits(DataConfig(), seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (8000, 1000, 1000)
    # The split is fixed, whatever the seed: every run is tested on the same images.
    other = load_splits(DataConfig(), seed=5)
    assert np.array_equal(splits.test[0].pixels, other.test[0].pixels)
    assert np.array_equal(splits.test[0].pixels, train.images[9000])


def test_t10k_used_when_present(shared_data) -> None:
    splits = load_splits(DataConfig(root=shared_data / "mnist", max_test=20), seed=0)
    assert len(splits.test) == 20 and "t10k" in splits.description
    assert len(splits.train) + len(splits.val) == 10000
    split_only = load_splits(DataConfig(root=shared_data / "mnist", mnist_test_set="split"), seed=0)
    assert len(split_only.test) == 1000


def test_missing_folder_and_missing_files(tmp_path) -> None:
    with pytest.raises(PipelineError, match="MNIST data folder not found"):
        load_mnist(tmp_path / "absent")
    with pytest.raises(PipelineError, match="no MNIST training images"):
        load_mnist(tmp_path)
