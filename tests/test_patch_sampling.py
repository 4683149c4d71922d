"""How an epoch's training patches are shared among images (data.patch_sampling)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.errors import PipelineError
from pipeline.noise import make_noise
from pipeline.train.data import NoisyPairs, patch_counts

SHAPES = [(100, 100), (100, 100), (200, 200), (300, 100)]


def test_per_image_gives_every_image_the_same_number() -> None:
    assert patch_counts(SHAPES, 5) == [5, 5, 5, 5]


def test_by_area_follows_the_pixels_and_keeps_the_total() -> None:
    counts = patch_counts(SHAPES, 5, "by_area")
    assert sum(counts) == 20
    assert counts == [2, 2, 9, 7]  # shares 2.2, 2.2, 8.9, 6.7: the two largest remainders up


def test_by_source_shares_equally_among_sources_then_images() -> None:
    counts = patch_counts(SHAPES, 6, "by_source", ["a", "a", "a", "b"])
    assert sum(counts) == 24 and counts[3] == 12 and counts[:3] == [4, 4, 4]
    with pytest.raises(PipelineError, match="data.split_csv with a source column"):
        patch_counts(SHAPES, 6, "by_source", None)
    with pytest.raises(PipelineError, match="source of every training image"):
        patch_counts(SHAPES, 6, "by_source", ["a", "", "a", "b"])


def test_pairs_draw_each_images_share_in_order() -> None:
    rng = np.random.default_rng(0)
    images = [rng.random(shape, dtype=np.float32) for shape in SHAPES]
    noise = make_noise(load_config(None, ["noise.sigma=0.1"]).noise)
    plain = NoisyPairs(images, noise, 0, patch_size=16, patches_per_image=3)
    assert len(plain) == 12 and [int(k) for k in plain.owner] == [i // 3 for i in range(12)]
    shared = NoisyPairs(images, noise, 0, patch_size=16, patch_counts=[0, 1, 4, 2])
    assert len(shared) == 7 and list(shared.owner) == [1, 2, 2, 2, 2, 3, 3]
    noisy, clean = shared[5]
    assert clean.shape == (1, 16, 16) and noisy.shape == (1, 16, 16)
    # a patch of image 3 (300 x 100): its values come from that image
    assert np.isin(clean.numpy().ravel()[:4], images[3]).all()
    with pytest.raises(ValueError, match="2 patch counts for 4 images"):
        NoisyPairs(images, noise, 0, patch_size=16, patch_counts=[1, 2])


def test_by_source_without_a_split_file_is_a_config_error() -> None:
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="by_source needs data.split_csv"):
        load_config(None, ["data.kind=folder", "data.root=x", "data.patch_sampling=by_source"])
