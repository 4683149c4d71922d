"""The self-supervised objectives against their definitions, and training with them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.config import ModelConfig, SelfSupervisedConfig, config_from_dict
from pipeline.models import build_model
from pipeline.selfsupervised import BlindSpot, Subsample, cell_pairs, make_objective, step_generator


def _unet() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="unet", channels=[8, 16], residual=True))
    for (
        p
    ) in model.parameters():  # the U-Net's output layer starts at zero: give every weight a value
        torch.nn.init.normal_(p, std=0.1)
    return model.double()


@pytest.mark.parametrize("span", [(0, 0), (0, 2), (2, 1)])
def test_blind_spot_prediction_ignores_the_hidden_box(span):
    """The prediction at a centre has no gradient from the centre's own value nor from its box."""
    blind = BlindSpot(fraction=0.01, span=span, margin=2)
    x = torch.rand(1, 1, 32, 32, dtype=torch.float64, requires_grad=True)
    centres, hidden = blind.masks((1, 1, 32, 32), torch.Generator().manual_seed(3))
    net = _unet()
    out = net(blind.hide(x, hidden))
    sy, sx = span
    checked = 0
    for _, _, i, j in centres.nonzero().tolist()[:5]:
        (grad,) = torch.autograd.grad(out[0, 0, i, j], x, retain_graph=True)
        box = grad[0, 0, max(i - sy, 0) : i + sy + 1, max(j - sx, 0) : j + sx + 1]
        assert torch.all(box == 0), f"the centre ({i}, {j}) sees its hidden box"
        assert grad.abs().sum() > 0, "the prediction must depend on the visible pixels"
        checked += 1
    assert checked > 0


def test_blind_spot_hidden_pixels_take_the_mean_of_visible_neighbours():
    blind = BlindSpot(fraction=0.01, span=(1, 1), margin=1)
    x = torch.arange(100, dtype=torch.float64).view(1, 1, 10, 10)
    hidden = torch.zeros(1, 1, 10, 10, dtype=torch.bool)
    hidden[0, 0, 4:7, 4:7] = True
    y = blind.hide(x, hidden)
    window = x[0, 0, 3:8, 3:8]  # the 5x5 window around (5, 5), minus the 3x3 hidden box
    expected = (window.sum() - x[0, 0, 4:7, 4:7].sum()) / 16
    assert float(y[0, 0, 5, 5]) == pytest.approx(float(expected))
    assert torch.equal(y[~hidden], x[~hidden])


def test_blind_spot_loss_uses_only_centres():
    """Changing the noisy value of a pixel that is neither centre nor hidden changes the input, not
    the target set."""
    blind = BlindSpot(fraction=0.02, span=(1, 1))
    gen_seed = 5
    centres, hidden = blind.masks((2, 1, 16, 16), torch.Generator().manual_seed(gen_seed))
    assert centres.flatten(1).any(dim=1).all()
    assert torch.all(hidden[centres])
    x = torch.rand(2, 1, 16, 16)
    loss = blind(lambda t: torch.zeros_like(t), x, None, torch.Generator().manual_seed(gen_seed))
    assert float(loss) == pytest.approx(float((x[centres] ** 2).mean()))


def test_cell_pairs_are_distinct_and_far_enough():
    pairs = cell_pairs(4, 3)
    assert pairs and all(a != b for a, b in pairs)
    for a, b in pairs:
        assert max(abs(a // 4 - b // 4), abs(a % 4 - b % 4)) >= 3
    assert len(cell_pairs(2, 1)) == 12  # every ordered pair of the 4 pixels of a 2x2 cell
    with pytest.raises(ValueError):
        Subsample(stride=3, gap=3)


def test_subsample_pairs_come_from_one_cell_and_never_reuse_a_pixel():
    sub = Subsample(stride=4, gap=3)
    h = w = 16
    coords = torch.arange(h * w, dtype=torch.float64).view(1, 1, h, w)  # each pixel's own index
    first, second = sub.pair_indices((1, 1, h, w), torch.Generator().manual_seed(0))
    a = sub.sub_image(coords, first).long().flatten()
    b = sub.sub_image(coords, second).long().flatten()
    assert a.shape == (16,) and len(set(a.tolist())) == 16 and len(set(b.tolist())) == 16
    ay, ax, by, bx = a // w, a % w, b // w, b % w
    assert torch.equal(ay // 4, by // 4) and torch.equal(ax // 4, bx // 4)  # same cell
    assert torch.all(torch.maximum((ay - by).abs(), (ax - bx).abs()) >= 3)  # far apart
    # sub-image pixel (i, j) comes from cell (i, j): the sub-images keep the layout
    assert torch.equal((ay // 4).view(4, 4), torch.arange(4).view(4, 1).expand(4, 4))


def test_subsample_pairs_have_independent_noise_for_correlated_noise():
    """On noise correlated over 2 pixels, pixels 3 apart are uncorrelated; neighbours are not."""
    rng = np.random.default_rng(0)
    white = rng.standard_normal((1, 1, 512, 512))
    kernel = np.array([0.5, 1.0, 0.5])
    smooth = white.copy()
    for axis in (2, 3):
        smooth = sum(k * np.roll(smooth, s, axis=axis) for k, s in zip(kernel, (-1, 0, 1)))
    noise = torch.from_numpy(smooth)
    far = Subsample(stride=4, gap=3)
    near = Subsample(stride=2, gap=1)

    def corr(sampler):
        first, second = sampler.pair_indices(tuple(noise.shape), torch.Generator().manual_seed(1))
        a, b = sampler.sub_image(noise, first).flatten(), sampler.sub_image(noise, second).flatten()
        return float(torch.corrcoef(torch.stack([a, b]))[0, 1])

    assert abs(corr(far)) < 0.03
    assert corr(near) > 0.3


def test_step_generator_is_reproducible():
    a = torch.rand(4, generator=step_generator(0, 2, 7))
    b = torch.rand(4, generator=step_generator(0, 2, 7))
    c = torch.rand(4, generator=step_generator(0, 2, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_make_objective_by_name():
    cfg = SelfSupervisedConfig()
    assert isinstance(make_objective("blindspot", cfg), BlindSpot)
    assert isinstance(make_objective("subsample", cfg), Subsample)
    with pytest.raises(ValueError):
        make_objective("noise2noise", cfg)


def test_config_rejects_a_gap_as_wide_as_the_cell():
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="gap"):
        config_from_dict(
            {"train": {"objective": "subsample", "self_supervised": {"stride": 2, "gap": 2}}}
        )


def test_run_trains_self_supervised_from_scratch(tmp_path):
    """`denoise run` with train.objective=subsample learns to denoise without using the clean images
    in its loss."""
    import csv

    from pipeline.config import load_config
    from pipeline.ingest import load_splits
    from pipeline.metrics import psnr
    from pipeline.noise import add_noise, make_noise
    from pipeline.runner import run

    cfg = load_config(
        None,
        [
            "data.max_train=512",
            "data.max_val=64",
            "train.batch_size=32",
            "train.progress=false",
            "run.stages=[train]",
            "model.name=unet",
            "model.channels=[8,16]",
            "train.optimizer=adam",
            "train.lr=0.003",
            "run.threads=1",
            "train.loss=mse",
            "noise.kind=gaussian",
            "noise.sigma=0.3",
            "train.epochs=3",
            "train.objective=subsample",
            "train.self_supervised.stride=2",
            "train.self_supervised.gap=1",
            f"run.output_dir={tmp_path}",
        ],
    )
    result = run(cfg)
    with open(result.run_dir / "train_log.csv") as fh:
        val_psnr = float(list(csv.DictReader(fh))[-1]["val_psnr"])
    val = [i.pixels for i in load_splits(cfg.data, cfg.run.seed).val]
    noisy = add_noise(val, make_noise(cfg.noise), cfg.run.seed, "val")
    noisy_psnr = float(np.mean([psnr(c, n, data_range=1.0) for c, n in zip(val, noisy)]))
    assert val_psnr > noisy_psnr + 1.5


def test_sub_images_smaller_than_the_networks_multiple_are_padded(tmp_path):
    """MNIST's 28x28 images give 7x7 sub-images at stride 4; a U-Net of multiple 4 still trains on
    them."""
    import csv
    import math

    from pipeline.config import load_config
    from pipeline.runner import run

    cfg = load_config(
        None,
        [
            "data.max_train=64",
            "data.max_val=8",
            "train.batch_size=16",
            "train.progress=false",
            "run.stages=[train]",
            "model.name=unet",
            "model.channels=[8,16,32]",
            "train.optimizer=adam",
            "train.lr=0.003",
            "run.threads=1",
            "train.epochs=1",
            "train.objective=subsample",
            f"run.output_dir={tmp_path}",
        ],
    )
    result = run(cfg)
    with open(result.run_dir / "train_log.csv") as fh:
        row = list(csv.DictReader(fh))[-1]
    assert math.isfinite(float(row["train_loss"])) and float(row["train_loss"]) > 0
