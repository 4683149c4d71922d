"""`denoise export --format torchscript|onnx`: dynamic sizes, in-graph padding, checked metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import save_tiny_unet

from pipeline.checkpoint import load_model
from pipeline.cli import main
from pipeline.config import InferenceConfig
from pipeline.errors import PipelineError
from pipeline.export import (
    ONNX_OPSET,
    TOLERANCE,
    ExportResult,
    export_model,
    file_sha256,
    sample_batch,
    verification_sizes,
)
from pipeline.exported import load_exported
from pipeline.inference import ModelDenoiser

FORMATS = [("torchscript", "pt"), ("onnx", "onnx")]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_unet(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def exports(tiny, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ExportResult]:
    """The tiny model exported once in each format."""
    folder = tmp_path_factory.mktemp("exports")
    return {fmt: export_model(tiny, fmt, folder / f"model.{suffix}") for fmt, suffix in FORMATS}


@pytest.mark.parametrize(("fmt", "suffix"), FORMATS)
def test_export_records_its_check_and_matches_pytorch_on_new_sizes(
    tiny, exports, fmt, suffix
) -> None:
    result = exports[fmt]
    meta = result.metadata
    assert [c["shape"][2:] for c in meta["verification"]] == [[32, 32], [24, 40], [35, 29]]
    assert meta["max_abs_diff"] == max(c["max_abs_diff"] for c in meta["verification"]) <= TOLERANCE
    assert meta["model_sha256"] == file_sha256(tiny)
    assert meta["model"]["size_multiple"] == 4 and meta["package_version"] == "0.1.0"
    assert "BitsStored" in meta["values"]["bit_depth"]
    assert (meta.get("onnx_opset") == ONNX_OPSET) == (fmt == "onnx")

    exported = load_exported(result.path)
    assert exported.metadata == meta  # stored inside the file itself
    reference = ModelDenoiser(load_model(tiny).model, InferenceConfig(tile_size=None), "cpu")
    for shape in [(3, 1, 17, 50), (1, 1, 4, 9)]:  # sizes the export never saw, odd ones included
        x = sample_batch(shape, seed=5)
        expected = reference.denoise_tensor(x)
        got = exported(x)
        assert got.shape == expected.shape
        assert float((got - expected).abs().max()) <= TOLERANCE
        assert float((got - x).abs().max()) > 1e-3  # the model does change the image


@pytest.mark.parametrize(("fmt", "suffix"), FORMATS)
def test_exported_file_tiles_like_a_checkpoint(tiny, exports, fmt, suffix) -> None:
    path = exports[fmt].path
    image = sample_batch((1, 1, 70, 45), seed=2)[0, 0].numpy()
    tiled_ref = ModelDenoiser(load_model(tiny).model, InferenceConfig(tile_size=16), "cpu")(image)
    tiled_exported = ModelDenoiser(load_exported(path), InferenceConfig(tile_size=16), "cpu")(image)
    assert np.abs(tiled_exported - tiled_ref).max() <= TOLERANCE


def test_cli_exports_the_shipped_model_by_default(tmp_path, capsys) -> None:
    assert main(["export", "--format", "torchscript", "-o", str(tmp_path / "shipped.ts")]) == 0
    out = capsys.readouterr().out
    meta = load_exported(tmp_path / "shipped.ts").metadata
    assert meta["source_checkpoint"] == "cxr_default.pt" and meta["model"]["name"] == "unet"
    checked = ", ".join(
        f"{h}x{w}" for _, _, h, w in verification_sizes(meta["model"]["size_multiple"])
    )
    assert "max abs difference to PyTorch" in out and checked in out


def test_export_refuses_bad_requests_clearly(tiny, tmp_path, capsys) -> None:
    assert main(["export", str(tiny), "--format", "onnx", "-o", str(tmp_path / "m.pt")]) == 2
    assert "does not end in .onnx" in capsys.readouterr().err
    with pytest.raises(PipelineError, match="model checkpoint not found"):
        export_model(tmp_path / "missing.pt", "torchscript", tmp_path / "m.pt")
    dense = tmp_path / "dense.pt"
    ckpt = torch.load(tiny, weights_only=True)
    ckpt["config"]["model"]["name"] = "dense"
    from pipeline.config import config_from_dict
    from pipeline.models import build_model

    ckpt["model_state"] = build_model(config_from_dict(ckpt["config"]).model).state_dict()
    torch.save(ckpt, dense)
    with pytest.raises(PipelineError, match="cannot be exported with dynamic height and width"):
        export_model(dense, "onnx", tmp_path / "dense.onnx")
    assert not list(tmp_path.glob("*.onnx")) and not list(tmp_path.glob(".*partial*"))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_file_not_written_by_export_is_refused(tmp_path) -> None:
    plain = torch.jit.script(torch.nn.Identity())
    torch.jit.save(plain, str(tmp_path / "plain.pt"))
    with pytest.raises(PipelineError, match="not written by `denoise export`"):
        load_exported(tmp_path / "plain.pt")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(PipelineError, match="not a readable ONNX model"):
        load_exported(tmp_path / "junk.onnx")


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_denoise_apply_runs_an_export_like_its_checkpoint(tiny, exports, tmp_path, fmt) -> None:
    from PIL import Image

    from pipeline.apply import ApplyOptions, apply_folder
    from pipeline.io import read_image

    scans = tmp_path / "in"
    scans.mkdir()
    pixels = sample_batch((1, 1, 70, 45), seed=7)[0, 0].numpy()
    Image.fromarray(np.round(pixels * 65535).astype(np.uint16)).save(scans / "scan.png")
    apply_folder(
        scans,
        tmp_path / "from_checkpoint",
        tiny,
        ApplyOptions(progress=False, report=False),
        InferenceConfig(tile_size=32, device="cpu"),
    )
    args = [
        "apply",
        "-i",
        str(scans),
        "-o",
        str(tmp_path / "from_export"),
        "--model",
        str(exports[fmt].path),
        "--tile-size",
        "32",
        "--device",
        "cpu",
        "--no-progress",
        "--no-report",
    ]
    assert main(args) == 0
    expected = read_image(tmp_path / "from_checkpoint" / "scan.png")[0].pixels
    got = read_image(tmp_path / "from_export" / "scan.png")[0].pixels
    assert np.abs(got - expected).max() <= TOLERANCE
    assert np.abs(got - pixels).max() > 1e-3
    manifest = (tmp_path / "from_export" / "manifest.csv").read_text()
    assert exports[fmt].path.name in manifest and file_sha256(exports[fmt].path)[:16] in manifest
