"""pipeline.monai: Denoise/Denoised in MONAI Compose chains, ScanReader, TileInferer."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor, PydicomReader
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged
from PIL import Image
from tiny_models import save_tiny_unet

from pipeline.checkpoint import load_model
from pipeline.config import InferenceConfig
from pipeline.errors import PipelineError
from pipeline.export import sample_batch
from pipeline.inference import ModelDenoiser
from pipeline.io import read_image
from pipeline.monai import (
    Denoise,
    Denoised,
    FromUnitRanged,
    ScanReader,
    TileInferer,
    ToUnitRanged,
    UnitRange,
)

TOL = 1e-4
#: Whole images on the CPU.
WHOLE = InferenceConfig(tile_size=None, device="cpu")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_unet(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def network(tiny: Path) -> torch.nn.Module:
    return load_model(tiny).model


def _pipeline_result(
    path: Path, network: torch.nn.Module, tile_size: int
) -> tuple[np.ndarray, object]:
    """What `denoise apply` computes for the file: its reader, then ModelDenoiser, in [0, 1]."""
    image = read_image(path)[0]
    return ModelDenoiser(
        network, InferenceConfig(tile_size=tile_size, overlap=0.25, batch_size=4), "cpu"
    )(image.pixels), image.meta


def test_denoised_after_loadimaged_on_a_shared_dicom_matches_the_pipeline(cxr_dir, network) -> None:
    path = cxr_dir / "dicom" / "siim_Fake_MONOHR1_torchxrayvision.dcm"  # MONOCHROME1, 1024 x 1024
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI: no orientation tags, no nvImageCodec
        chain = Compose(
            [
                LoadImaged("image", reader=PydicomReader(prune_metadata=False)),
                EnsureChannelFirstd("image"),
                Denoised(
                    "image", model=network, inference=InferenceConfig(device="cpu", tile_size=256)
                ),
            ]
        )
        loaded = Compose(list(chain.transforms[:2]))({"image": str(path)})["image"]
        out = chain({"image": str(path)})["image"]
    assert isinstance(out, MetaTensor) and out.shape == loaded.shape and out.dtype == loaded.dtype
    assert out.meta["filename_or_obj"] == loaded.meta["filename_or_obj"]
    expected, meta = _pipeline_result(path, network, 256)
    unit = (out[0].numpy().T.astype(np.float64) - meta.value_min) / (
        meta.value_max - meta.value_min
    )
    unit = 1.0 - unit if meta.photometric == "MONOCHROME1" else unit
    assert np.abs(unit - expected).max() <= TOL
    assert np.abs(out - loaded).max() > 0  # it did denoise
    assert float(out.min()) >= meta.value_min and float(out.max()) <= meta.value_max


def test_denoise_keeps_array_type_dtype_and_range(network) -> None:
    pixels = sample_batch((1, 1, 45, 38), seed=3)[0].numpy()  # (1, H, W) in [0, 1]
    reference = ModelDenoiser(network, WHOLE, "cpu")(pixels[0])
    denoise = Denoise(network, WHOLE, columns_first=False)

    as_uint16 = np.round(pixels * 65535).astype(np.uint16)
    out16 = denoise(as_uint16)
    assert (
        isinstance(out16, np.ndarray)
        and out16.dtype == np.uint16
        and out16.shape == as_uint16.shape
    )
    assert np.abs(out16[0] / 65535.0 - reference).max() <= 1e-4 + 0.5 / 65535

    as_tensor = torch.from_numpy(pixels)
    out = denoise(as_tensor)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert np.abs(out[0].numpy() - reference).max() <= TOL

    twelve_bit = pixels.astype(np.float64) * 4095.0
    out12 = Denoise(network, WHOLE, columns_first=False, value_range=(0, 4095))(twelve_bit)
    assert out12.dtype == np.float64 and np.abs(out12[0] / 4095.0 - reference).max() <= TOL

    transposed = Denoise(network, WHOLE)(np.ascontiguousarray(pixels.transpose(0, 2, 1)))
    assert np.abs(transposed[0].T - reference).max() <= TOL  # MONAI's (W, H) order is handled


def test_denoise_loads_the_shipped_model_by_default() -> None:
    scan = np.round(sample_batch((1, 1, 40, 48), seed=6)[0].numpy() * 255).astype(np.uint8)
    out = Denoise(inference=InferenceConfig(device="cpu"))(scan)
    assert (
        out.dtype == np.uint8
        and out.shape == scan.shape
        and np.abs(out.astype(int) - scan).max() > 0
    )


def test_denoise_refuses_what_it_cannot_map(network) -> None:
    denoise = Denoise(network, WHOLE)
    with pytest.raises(PipelineError, match="pass value_range"):
        denoise(np.full((1, 16, 16), 300.0, dtype=np.float32))
    with pytest.raises(PipelineError, match="EnsureChannelFirst"):
        denoise(np.zeros((16, 16), dtype=np.uint8))
    with pytest.raises(PipelineError, match="high > low"):
        UnitRange.of(np.zeros((1, 4, 4)), (5, 5))


def test_scan_reader_gives_the_pipeline_pixels_and_restores_file_values(tmp_path, network) -> None:
    values = np.round(sample_batch((1, 1, 40, 52), seed=1)[0, 0].numpy() * 65535).astype(np.uint16)
    path = tmp_path / "scan.png"
    Image.fromarray(values).save(path)
    chain = Compose(
        [
            LoadImaged("image", reader=ScanReader()),
            EnsureChannelFirstd("image"),
            Denoised("image", model=network, inference=WHOLE),
        ]
    )
    data = chain({"image": str(path)})
    expected, _ = _pipeline_result(path, network, None)
    assert data["image"].shape == (1, 52, 40)  # columns first, as MONAI's readers
    assert np.abs(data["image"][0].numpy().T - expected).max() <= TOL
    assert ToUnitRanged("image")(data)["image"] is data["image"]  # already in [0, 1]: left as it is
    restored = FromUnitRanged("image", ref_key="image")(data)["image"]
    assert np.abs(restored[0].numpy().T - expected * 65535.0).max() <= TOL * 65535.0


def test_tile_inferer_agrees_with_the_model_denoiser(network) -> None:
    from pipeline.export import exportable

    padded = exportable(network)
    inferer = TileInferer(
        roi_size=(16, 16), sw_batch_size=4, overlap=0.25, mode="gaussian", padding_mode="replicate"
    )
    denoiser = ModelDenoiser(
        network, InferenceConfig(tile_size=16, overlap=0.25, batch_size=4), "cpu"
    )
    for shape in [(1, 1, 13, 10), (1, 1, 50, 37)]:  # one tile (whole image), many tiles
        x = sample_batch(shape, seed=4)
        with torch.no_grad():
            got = inferer(x, padded)
        assert float((got - denoiser.denoise_tensor(x)).abs().max()) <= TOL
