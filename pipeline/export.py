"""Export a trained denoiser as a TorchScript or ONNX file that runs without this package.

The exported graph is :class:`PaddedDenoiser`: a batch (N, 1, H, W) float32 in [0, 1],
high = bright, of any N, H and W (at least the model's ``size_multiple``), to the
denoised batch of the same shape. Sides that are not multiples of ``size_multiple`` are
padded inside the graph (reflect, as :class:`~pipeline.inference.ModelDenoiser` does) and
the output is cropped back. The graph does no tiling: large images go through it in tiles
(``denoise apply --model FILE`` does that, as for a checkpoint).

At export the file is loaded back and compared with the PyTorch path on three image sizes
(one of them not a multiple of ``size_multiple``); the export is refused when the largest
absolute difference exceeds :data:`TOLERANCE`. The figures, the value contract, the
source checkpoint's SHA-256 and the package version are stored inside the file
(read back by :mod:`pipeline.exported`): TorchScript as the extra file ``denoise_pipeline.json``,
ONNX as the metadata property ``denoise_pipeline``.
"""

from __future__ import annotations

import json
import logging
import platform
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline import __version__
from pipeline.checkpoint import load_model
from pipeline.config import InferenceConfig
from pipeline.errors import PipelineError, require
from pipeline.exported import (
    METADATA_KEY,
    TORCHSCRIPT_EXTRA,
    ExportedModel,
    export_format,
    no_jit_deprecation,
)
from pipeline.inference import ModelDenoiser
from pipeline.provenance import file_sha256

#: Formats of :func:`export_model` (the MONAI bundle is written by :mod:`pipeline.bundle`).
GRAPH_FORMATS = ("torchscript", "onnx")
#: ONNX opset of the exported graph (the dynamo exporter's; onnxruntime >= 1.14 runs it).
ONNX_OPSET = 18
#: Largest accepted absolute difference between the exported graph and PyTorch.
TOLERANCE = 1e-4
#: How exported graphs expect their values (stored in every export's metadata).
VALUE_CONTRACT = {
    "input": "float32 tensor (N, 1, H, W), values in [0, 1], high = bright; H, W >= min_side",
    "output": "float32 tensor (N, 1, H, W), values in [0, 1], the denoised input",
    "bit_depth": (
        "the graph sees [0, 1] only: map stored values v to (v - low) / (high - low) over the "
        "file's full range (DICOM: 2**BitsStored - 1 stored levels through the modality LUT, "
        "not the dtype's 65535; 8-bit PNG: 255), invert MONOCHROME1 (1 - x) before and after, "
        "and map back with the same low/high; `denoise apply --model FILE` and "
        "pipeline.monai.Denoise do this"
    ),
    "padding": "H, W that are not multiples of size_multiple are reflect-padded inside the "
    "graph and cropped back",
    "tiling": "none inside the graph: feed large images in tiles (denoise apply uses 512-px "
    "tiles, overlap 0.25)",
}


class PaddedDenoiser(nn.Module):
    """A model that takes any H, W >= its size multiple: reflect-pad, denoise, crop.

    The same arithmetic as :class:`~pipeline.inference.ModelDenoiser` on an untiled image,
    written with tensor sizes only, so that TorchScript and ONNX keep H and W dynamic.
    """

    def __init__(self, model: nn.Module, multiple: int) -> None:
        super().__init__()
        self.model = model
        self.multiple = int(multiple)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad `x` (N, C, H, W) by reflection to the size multiple, run the model, crop back."""
        h, w = x.shape[-2], x.shape[-1]
        ph = (self.multiple - h % self.multiple) % self.multiple
        pw = (self.multiple - w % self.multiple) % self.multiple
        out = self.model(F.pad(x, (0, pw, 0, ph), mode="reflect"))
        return out[:, :, :h, :w]


@dataclass(frozen=True)
class ExportResult:
    """An exported file and the metadata stored inside it."""

    path: Path
    metadata: dict[str, Any]

    def summary(self) -> str:
        """One line: format, file, worst difference to PyTorch and the sizes checked."""
        meta = self.metadata
        sizes = ", ".join("x".join(str(s) for s in c["shape"][2:]) for c in meta["verification"])
        opset = f" (opset {meta['onnx_opset']})" if meta["format"] == "onnx" else ""
        return (
            f"exported {meta['model']['name']} as {meta['format']}{opset} to {self.path}; max "
            f"abs difference to PyTorch {meta['max_abs_diff']:.2e} on {sizes} (tolerance "
            f"{TOLERANCE:g})"
        )


def verification_sizes(multiple: int) -> list[tuple[int, int, int, int]]:
    """Three batch shapes: square and oblong multiples of `multiple`, and one that is not."""
    m = max(int(multiple), 1)
    return [(1, 1, 8 * m, 8 * m), (2, 1, 6 * m, 10 * m), (1, 1, 8 * m + 3, 6 * m + 5)]


def sample_batch(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """A seeded batch like a noisy radiograph: smooth structure plus Gaussian noise, in [0, 1]."""
    rng = np.random.default_rng(seed)
    n, c, h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    smooth = 0.5 + 0.3 * np.sin(x / max(w, 1) * 6.0) * np.cos(y / max(h, 1) * 4.0)
    noisy = smooth[None, None] + rng.normal(0.0, 0.05, size=(n, c, h, w))
    return torch.from_numpy(np.clip(noisy, 0.0, 1.0).astype(np.float32))


def exportable(model: nn.Module) -> PaddedDenoiser:
    """`model` wrapped for export; PipelineError for a model that takes one size only."""
    fixed = getattr(model, "fixed_size", None)
    if fixed is not None:
        raise PipelineError(
            f"this model takes only {fixed}x{fixed} images (a dense model), so it cannot be "
            "exported with dynamic height and width: export a convolutional model (conv, unet, "
            "dncnn)"
        )
    return PaddedDenoiser(model, int(getattr(model, "size_multiple", 1))).eval()


def torchscript_writer(module: PaddedDenoiser) -> Callable[[Path, dict[str, Any]], None]:
    """Script `module` once; the returned function saves it with given metadata (an extra file)."""
    with no_jit_deprecation():
        scripted = torch.jit.script(module)

    def write(path: Path, metadata: dict[str, Any]) -> None:
        with no_jit_deprecation():
            torch.jit.save(
                scripted,
                str(path),
                _extra_files={TORCHSCRIPT_EXTRA: json.dumps(metadata, indent=1)},
            )

    return write


def onnx_writer(module: PaddedDenoiser) -> Callable[[Path, dict[str, Any]], None]:
    """Export `module` once to ONNX; the returned function saves it with given metadata.

    Opset :data:`ONNX_OPSET`, dynamic N, H, W; the metadata is stored as a metadata property.
    """
    onnx = require("onnx", "onnx", "ONNX export")
    require("onnxscript", "onnxscript", "ONNX export")
    example = sample_batch(verification_sizes(module.multiple)[0])
    dims = {
        "x": {
            0: torch.export.Dim("batch", min=1, max=4096),
            2: torch.export.Dim("height", min=module.multiple, max=65536),
            3: torch.export.Dim("width", min=module.multiple, max=65536),
        }
    }
    quiet = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # it lists the torchvision operators it skips
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            None,
            input_names=["image"],
            output_names=["denoised"],
            dynamic_shapes=dims,
            opset_version=ONNX_OPSET,
            dynamo=True,
            verbose=False,
        )
    quiet.setLevel(level)
    proto = program.model_proto

    def write(path: Path, metadata: dict[str, Any]) -> None:
        del proto.metadata_props[:]
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(metadata, indent=1)
        onnx.save_model(proto, str(path))

    return write


def max_difference(exported: ExportedModel, model: nn.Module) -> list[dict[str, Any]]:
    """Largest absolute difference between `exported` and the PyTorch path.

    Measured on :func:`verification_sizes`.
    """
    reference = ModelDenoiser(model, InferenceConfig(tile_size=None), "cpu")
    checks = []
    for index, shape in enumerate(verification_sizes(exported.size_multiple)):
        x = sample_batch(shape, seed=index)
        expected = reference.denoise_tensor(x)
        got = exported(x)
        if tuple(got.shape) != tuple(expected.shape):
            raise PipelineError(
                f"the exported model gave shape {tuple(got.shape)} for input {shape}; expected "
                f"{tuple(expected.shape)}"
            )
        checks.append({"shape": list(shape), "max_abs_diff": float((got - expected).abs().max())})
    return checks


def export_metadata(loaded: Any, fmt: str, multiple: int) -> dict[str, Any]:
    """What an export records about its model, its source and the value contract."""
    config = loaded.config
    meta: dict[str, Any] = {
        "format": fmt,
        "package": "denoise-pipeline",
        "package_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_checkpoint": loaded.path.name,
        "model_sha256": file_sha256(loaded.path),
        "model": {
            "name": config.model.name,
            "identity": loaded.identity,
            "size_multiple": multiple,
            "min_side": multiple,
            "config": config.model.model_dump(mode="json"),
        },
        "config": config.to_dict(),
        "values": VALUE_CONTRACT,
        "input_name": "image",
        "output_name": "denoised",
        "dynamic_axes": {"0": "batch", "2": "height", "3": "width"},
        "tolerance": TOLERANCE,
    }
    if fmt == "onnx":
        meta["onnx_opset"] = ONNX_OPSET
    return meta


def export_model(model: str | Path | None, fmt: str, output: str | Path) -> ExportResult:
    """Export a checkpoint, a run folder or the shipped model (None) as TorchScript or ONNX.

    The file is written, loaded back and checked against PyTorch on three sizes; when the
    largest absolute difference exceeds :data:`TOLERANCE` the file is deleted and a
    PipelineError raised. The metadata is written once more with the measured figures.
    """
    if fmt not in GRAPH_FORMATS:
        raise PipelineError(
            f"export format {fmt!r} is not one of {', '.join(GRAPH_FORMATS)} (or monai-bundle)"
        )
    output = Path(output)
    if export_format(output) != fmt:
        wanted = ".onnx" if fmt == "onnx" else ".pt or .ts"
        raise PipelineError(f"output {output} does not end in {wanted}, as a {fmt} export should")
    if output.is_dir():
        raise PipelineError(f"output {output} is a folder; give a file name")
    loaded = load_model(model, "cpu")
    module = exportable(loaded.model)
    metadata = export_metadata(loaded, fmt, module.multiple)
    write = onnx_writer(module) if fmt == "onnx" else torchscript_writer(module)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.partial{output.suffix}")
    try:
        write(tmp, {**metadata, "verification": [], "max_abs_diff": None})
        checks = max_difference(ExportedModel(tmp, "cpu"), loaded.model)
        worst = max(c["max_abs_diff"] for c in checks)
        if not worst <= TOLERANCE:
            raise PipelineError(
                f"the {fmt} export differs from PyTorch by {worst:.3g} (> {TOLERANCE:g}); "
                "nothing was written"
            )
        metadata.update(verification=checks, max_abs_diff=worst)
        write(tmp, metadata)
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(output, metadata)
