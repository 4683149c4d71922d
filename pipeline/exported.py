"""Load a model written by ``denoise export`` (TorchScript or ONNX) and run it like a network.

An export holds its graph and the metadata :mod:`pipeline.export` stored in it (the config,
the value contract, the source checkpoint's SHA-256): TorchScript as the extra file
``denoise_pipeline.json``, ONNX as the metadata property ``denoise_pipeline``.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from pipeline.checkpoint import LoadedModel
from pipeline.errors import PipelineError, require

#: Key of the metadata inside an exported file.
METADATA_KEY = "denoise_pipeline"
#: The TorchScript archive's extra file that holds the metadata.
TORCHSCRIPT_EXTRA = f"{METADATA_KEY}.json"


@contextmanager
def no_jit_deprecation() -> Iterator[None]:
    """Silence torch's notice that TorchScript is deprecated (the user asked for TorchScript)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


class ExportedModel:
    """A TorchScript or ONNX export as a callable on (N, 1, H, W) float32 tensors in [0, 1].

    Attributes
    ----------
    path: the file. fmt: ``"torchscript"`` or ``"onnx"``. metadata: what export stored.
    size_multiple, fixed_size: as on a model (fixed_size is always None), so that
        :class:`~pipeline.inference.ModelDenoiser` can tile with it.
    """

    fixed_size = None

    def __init__(self, path: Path, device: str | torch.device = "cpu") -> None:
        self.path = path
        self.device = torch.device(device)
        if not path.is_file():
            raise PipelineError(f"exported model not found: {path}")
        self.fmt = export_format(path)
        if self.fmt == "onnx":
            ort = require("onnxruntime", "onnxruntime", "running an ONNX model")
            try:
                self._session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            except Exception as err:  # noqa: BLE001 - any parse failure means a bad file
                raise PipelineError(f"{path} is not a readable ONNX model ({err})") from None
            raw = self._session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        else:
            extra = {TORCHSCRIPT_EXTRA: ""}
            try:
                with no_jit_deprecation():
                    self._module = torch.jit.load(
                        str(path), map_location=self.device, _extra_files=extra
                    ).eval()
            except Exception as err:  # noqa: BLE001 - any load failure means a bad file
                raise PipelineError(f"{path} is not a readable TorchScript model ({err})") from None
            raw = extra[TORCHSCRIPT_EXTRA] or None
        if not raw:
            raise PipelineError(
                f"{path} was not written by `denoise export` (no {METADATA_KEY} metadata); "
                "export it again"
            )
        self.metadata: dict[str, Any] = json.loads(raw)
        self.size_multiple = int(self.metadata["model"]["size_multiple"])
        if self.fmt == "onnx":
            self.to(self.device)

    def eval(self) -> ExportedModel:
        """Return the model itself (an export has no training mode)."""
        return self

    def to(
        self, device: str | torch.device, memory_format: torch.memory_format | None = None
    ) -> ExportedModel:
        """Run on `device` from now on (ONNX: CUDA when onnxruntime has it, else the CPU).

        `memory_format` is the layout of a TorchScript model's weights (ONNX Runtime keeps
        its own).
        """
        self.device = torch.device(device)
        if self.fmt == "torchscript":
            layout = {} if memory_format is None else {"memory_format": memory_format}
            self._module = self._module.to(self.device, **layout)
        elif self.device.type == "cuda":
            import onnxruntime as ort

            if "CUDAExecutionProvider" in ort.get_available_providers():
                self._session = ort.InferenceSession(
                    str(self.path), providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
                )
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise `x` (N, 1, H, W) float32 in [0, 1]; the output is on `x`'s device."""
        if self.fmt == "onnx":
            out = self._session.run(
                None, {"image": x.detach().to("cpu", torch.float32).contiguous().numpy()}
            )[0]
            return torch.from_numpy(out).to(x.device)
        with torch.no_grad():
            return self._module(x.to(self.device, torch.float32)).to(x.device)


def load_exported(path: str | Path, device: str | torch.device = "cpu") -> ExportedModel:
    """Load a file written by :func:`export_model`; its metadata is ``.metadata``."""
    return ExportedModel(Path(path), device)


def is_exported(path: object) -> bool:
    """Whether `path` names an ONNX or TorchScript file (rather than a checkpoint or run folder)."""
    if not isinstance(path, (str, Path)) or not Path(path).is_file():
        return False
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return True
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:  # TorchScript archives hold code/ and constants.pkl
        return any(
            name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist()
        )


def load_exported_model(path: str | Path) -> LoadedModel:
    """An export as a :class:`~pipeline.checkpoint.LoadedModel`.

    Its network is an :class:`ExportedModel`.

    What ``denoise apply --model FILE.onnx|FILE.pt`` runs: the same tiling, records and
    outputs as for a checkpoint, with the export file's name and checksum as the model's.
    """
    from pipeline.config import config_from_dict

    exported = ExportedModel(Path(path), "cpu")
    config = config_from_dict(exported.metadata["config"], origin=f"the metadata inside {path}")
    return LoadedModel(exported, config, Path(path), dict(exported.metadata))  # type: ignore[arg-type]


def export_format(path: Path) -> str:
    """``"onnx"`` or ``"torchscript"`` by suffix; PipelineError otherwise.

    ``.onnx`` is ONNX; ``.pt``, ``.ts`` and ``.pth`` are TorchScript.
    """
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in (".pt", ".ts", ".pth", ".torchscript"):
        return "torchscript"
    raise PipelineError(f"{path}: an exported model ends in .onnx (ONNX) or .pt/.ts (TorchScript)")
