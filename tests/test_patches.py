"""Random patch sampling: shapes, seeding, background rejection, padding, augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.ingest.patches import PatchSampler, at_scales, augment, pad_to_size, sample_patches


def test_shapes_and_dtype(smooth_image, rng):
    big = np.tile(smooth_image, (2, 3))  # 128 x 192
    out = sample_patches([smooth_image, big], patch_size=16, per_image=5, rng=rng)
    assert out.shape == (10, 16, 16) and out.dtype == np.float32
    assert sample_patches([], 16, 5, rng).shape == (0, 16, 16)


def test_patches_are_crops_of_the_image(smooth_image, rng):
    patch = PatchSampler(8, min_std=0.0).sample_one(smooth_image, rng)
    windows = np.lib.stride_tricks.sliding_window_view(smooth_image, (8, 8))
    assert np.any(np.all(windows == patch, axis=(2, 3)))


def test_same_seed_same_patches(smooth_image):
    a = sample_patches([smooth_image], 16, 6, np.random.default_rng(7), augment=True)
    b = sample_patches([smooth_image], 16, 6, np.random.default_rng(7), augment=True)
    c = sample_patches([smooth_image], 16, 6, np.random.default_rng(8), augment=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_background_is_rejected(rng):
    image = np.zeros((64, 64), np.float32)
    image[:, 32:] = rng.random((64, 32), dtype=np.float32)  # left half flat, right half textured
    patches = sample_patches([image], 16, 50, rng, min_std=0.05, augment=False)
    assert (patches.std(axis=(1, 2)) >= 0.05).all()
    # Without the rule, flat patches from the left half do appear.
    plain = sample_patches([image], 16, 50, np.random.default_rng(0), min_std=0.0)
    assert (plain.std(axis=(1, 2)) < 0.05).any()


def test_flat_image_still_gives_patches(rng):
    flat = np.full((32, 32), 0.3, np.float32)
    out = PatchSampler(8, min_std=0.1, max_tries=3)(flat, 4, rng)
    assert out.shape == (4, 8, 8) and np.all(out == np.float32(0.3))


def test_small_image_is_padded_by_reflection():
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    padded = pad_to_size(image, 6)
    assert padded.shape == (6, 6)
    # 3 rows padded by 1 above and 2 below: reflection about the edge rows.
    np.testing.assert_array_equal(padded[:, 1:5], image[[1, 0, 1, 2, 1, 0]])
    np.testing.assert_array_equal(padded[1, :], [1, 0, 1, 2, 3, 2])
    assert pad_to_size(image, 2) is image
    assert pad_to_size(np.ones((1, 3), np.float32), 4).shape == (4, 4)  # 1-pixel axis: repeated


def test_small_image_gives_full_size_patches(rng):
    tiny = np.random.default_rng(1).random((5, 40), dtype=np.float32)
    out = sample_patches([tiny], 16, 3, rng, min_std=0.0)
    assert out.shape == (3, 16, 16)
    assert set(np.unique(out)) <= set(np.unique(tiny))


def test_augment_preserves_values_and_covers_symmetries():
    patch = np.arange(16, dtype=np.float32).reshape(4, 4)
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(200):
        out = augment(patch, rng)
        assert out.shape == patch.shape and out.flags.c_contiguous
        np.testing.assert_array_equal(np.sort(out, axis=None), np.sort(patch, axis=None))
        seen.add(out.tobytes())
    assert len(seen) == 8


def test_augmented_patches_keep_value_multiset(smooth_image):
    sampler_plain = PatchSampler(16, min_std=0.0, augment=False)
    sampler_aug = PatchSampler(16, min_std=0.0, augment=True)
    plain = sampler_plain.sample_one(smooth_image, np.random.default_rng(5))
    aug = sampler_aug.sample_one(
        smooth_image, np.random.default_rng(5)
    )  # same crop, then a symmetry
    np.testing.assert_array_equal(np.sort(aug, axis=None), np.sort(plain, axis=None))


@pytest.mark.parametrize("kwargs", [{"patch_size": 0}, {"patch_size": 8, "max_tries": 0}])
def test_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        PatchSampler(**kwargs)


def test_at_scales_gives_each_image_at_each_scale(smooth_image):
    big = np.kron(smooth_image, np.ones((2, 2), dtype=np.float32))  # every 2x2 block one value
    out = at_scales([smooth_image, big], [1.0, 0.5])
    h, w = smooth_image.shape
    assert [o.shape for o in out] == [(h, w), (h // 2, w // 2), big.shape, (h, w)]
    assert np.array_equal(out[0], smooth_image)
    assert all(o.dtype == np.float32 and o.min() >= 0 and o.max() <= 1 for o in out)
    # Halving an image made of 2x2 blocks gives back (nearly) the image the blocks came from.
    assert np.abs(out[3] - smooth_image).mean() < 0.02
