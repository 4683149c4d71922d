"""Models: shapes, value range, size rules."""

from __future__ import annotations

import pytest
import torch

from pipeline.config import InferenceConfig, ModelConfig
from pipeline.models import build_model


def test_dense_is_the_tutorial_shape() -> None:
    model = build_model(ModelConfig(name="dense"))
    shapes = [tuple(p.shape) for p in model.parameters()]
    assert shapes == [(64, 784), (64,), (784, 64), (784,)]
    out = model(torch.rand(3, 1, 28, 28))
    assert out.shape == (3, 1, 28, 28) and out.min() >= 0 and out.max() <= 1


def test_dense_rejects_other_sizes_with_a_clear_message() -> None:
    model = build_model(ModelConfig(name="dense"))
    with pytest.raises(ValueError, match="exactly 28x28"):
        model(torch.rand(1, 1, 32, 32))


@pytest.mark.parametrize("name", ["conv", "unet", "dncnn"])
@pytest.mark.parametrize("size", [(32, 32), (64, 48)])
@torch.no_grad()
def test_fully_convolutional_models_keep_shape_and_range(name: str, size: tuple[int, int]) -> None:
    model = build_model(ModelConfig(name=name, depth=5, features=8, channels=[8, 16, 32]))
    assert size[0] % model.size_multiple == 0 and size[1] % model.size_multiple == 0
    out = model(torch.rand(2, 1, *size))
    assert out.shape == (2, 1, *size)
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0


def test_residual_models_start_near_identity_when_noise_prediction_is_zero() -> None:
    model = build_model(ModelConfig(name="dncnn", depth=4, features=8))
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    x = torch.rand(1, 1, 16, 16)
    assert torch.allclose(model(x), x)


@torch.no_grad()
def test_unet_refinement_head_starts_as_the_plain_unet_and_can_change_it() -> None:
    torch.manual_seed(0)
    plain = build_model(ModelConfig(name="unet", channels=[8, 16, 32]))
    headed = build_model(ModelConfig(name="unet", channels=[8, 16, 32], refine_channels=4))
    missing, unexpected = headed.load_state_dict(plain.state_dict(), strict=False)
    assert missing and all(k.startswith("refine.") for k in missing) and not unexpected
    for p in plain.net.parameters():  # a U-Net whose noise estimate is not zero
        p.add_(0.05 * torch.randn_like(p))
    headed.net.load_state_dict(plain.net.state_dict())
    x = torch.rand(2, 1, 32, 48)
    assert torch.equal(headed(x), plain(x))
    last = [m for m in headed.refine.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    last.bias.fill_(0.01)
    assert not torch.equal(headed(x), plain(x))


def test_unet_refinement_head_needs_the_residual_form() -> None:
    with pytest.raises(ValueError, match="refine_channels needs residual"):
        build_model(ModelConfig(name="unet", channels=[8, 16], residual=False, refine_channels=4))


def test_unet_size_multiple_follows_levels() -> None:
    assert build_model(ModelConfig(name="unet", channels=[8, 16, 32, 64])).size_multiple == 8
    assert build_model(ModelConfig(name="conv")).size_multiple == 4


def test_tiled_inference_handles_thin_images_and_matches_whole_image_size() -> None:
    import numpy as np

    from pipeline.denoiser import Denoiser
    from pipeline.inference import ModelDenoiser

    denoiser = ModelDenoiser(
        build_model(ModelConfig(name="conv", features=4)), InferenceConfig(tile_size=64), "cpu"
    )
    assert isinstance(denoiser, Denoiser) and denoiser.takes == ()
    for shape in [(20, 600), (130, 70), (257, 255)]:
        out = denoiser(np.random.default_rng(0).random(shape, dtype=np.float32))
        assert out.shape == shape and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0


@pytest.mark.parametrize(
    ("shape", "tile", "batch"),
    [((100, 130), 32, 4), ((20, 90), 32, 3), ((97, 97), 40, 1), ((150, 70), 48, 8)],
)
def test_banded_sliding_window_equals_monai_and_may_write_in_place(shape, tile, batch) -> None:
    """Same tiles, weights and blending as MONAI's SlidingWindowInferer: the same output, bit for
    bit."""
    import numpy as np
    from monai.inferers import SlidingWindowInferer

    from pipeline.inference import ModelDenoiser

    torch.manual_seed(0)
    denoiser = ModelDenoiser(
        build_model(ModelConfig(name="unet", channels=[8, 16])),
        InferenceConfig(tile_size=tile, batch_size=batch),
        "cpu",
    )
    pixels = np.random.default_rng(1).random(shape, dtype=np.float32)
    monai = SlidingWindowInferer(
        roi_size=(tile, tile),
        sw_batch_size=batch,
        overlap=0.25,
        mode="gaussian",
        padding_mode="replicate",
    )
    with torch.inference_mode():
        expected = (
            monai(torch.from_numpy(pixels)[None, None], denoiser._forward_padded)
            .clamp(0, 1)[0, 0]
            .numpy()
        )
    assert np.array_equal(denoiser(pixels), expected)
    in_place = pixels.copy()
    assert denoiser(in_place, out=in_place) is in_place
    assert np.array_equal(in_place, expected)


def test_deep_dncnn_learns_from_its_first_steps() -> None:
    """With He initialisation a 10-layer DnCNN reduces the error quickly (torch's default init did
    not)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="dncnn", depth=10, features=16))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    clean = torch.nn.functional.avg_pool2d(torch.rand(16, 1, 40, 40, generator=gen), 5, 1, 2)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=gen)
    first = torch.nn.functional.mse_loss(model(noisy), clean).item()
    for _ in range(40):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(noisy), clean)
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
