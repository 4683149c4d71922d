r"""Write a trained denoiser as a MONAI bundle (``denoise export --format monai-bundle``).

Layout (MONAI bundle specification)::

    BUNDLE/
      configs/metadata.json    versions, task, network_data_format (inputs and outputs)
      configs/inference.json   LoadImaged -> sliding-window inference -> SaveImaged, one folder
      models/model.pt          state dict of the network that inference.json's network_def builds
      docs/README.md           what it does, the command, the value contract
      docs/data_license.txt    where the training data came from (when the checkpoint says)
      LICENSE                  the package's licence (MIT)

Run from the bundle folder::

    python -m monai.bundle run --config_file configs/inference.json \
        --meta_file configs/metadata.json --dataset_dir /scans --output_dir /denoised

Every PNG/JPEG/TIFF/DICOM/NIfTI under ``dataset_dir`` is read with
:class:`pipeline.monai.ScanReader` (the pipeline's own readers, so values, bit depth and
MONOCHROME1 are handled as ``denoise apply`` handles them), denoised with
:class:`pipeline.monai.TileInferer` (MONAI's SlidingWindowInferer with ``denoise apply``'s
tile, overlap and batch) and written as ``<name>_denoised.nii.gz``, float32 on the file's
own value scale. The bundle needs this package installed (its network and reader).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline import __version__
from pipeline.checkpoint import load_model
from pipeline.errors import PipelineError
from pipeline.export import PaddedDenoiser, exportable
from pipeline.inference import DEFAULT_INFERENCE
from pipeline.provenance import file_sha256

#: JSON schema of metadata.json that MONAI's verify_metadata checks against.
METADATA_SCHEMA = "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20240725.json"
BUNDLE_VERSION = "0.1.0"


def bundle_network(model: dict[str, Any]) -> PaddedDenoiser:
    """The network of a bundle.

    The model a ``model`` config section describes, padded to its size multiple.
    """
    from pipeline.config import ModelConfig
    from pipeline.models import build_model

    return exportable(build_model(ModelConfig(**model)))


def list_images(folder: str | Path) -> list[str]:
    """The image files under `folder` that ``denoise apply`` would read (sorted).

    These are a bundle's datalist.
    """
    from pipeline.ingest.folder import scan_folder

    files = [str(path) for path in scan_folder(folder).files]
    if not files:
        raise PipelineError(
            f"no images under {folder}: "
            "pass --dataset_dir FOLDER with PNG/JPEG/TIFF/DICOM/NIfTI files"
        )
    return files


@dataclass(frozen=True)
class BundleResult:
    """A written bundle."""

    path: Path
    metadata: dict[str, Any]

    def summary(self) -> str:
        """What was written and the command that runs it."""
        return (
            f"wrote MONAI bundle {self.path} ({self.metadata['denoise_pipeline']['model']}); "
            "run it with:\n"
            f"  cd {self.path} && python -m monai.bundle run --config_file configs/inference.json "
            "--meta_file configs/metadata.json --dataset_dir SCANS --output_dir OUT"
        )


def _metadata(loaded: Any, multiple: int) -> dict[str, Any]:
    """configs/metadata.json: the specification's keys plus this package's provenance."""
    import monai

    provenance = loaded.meta.get("provenance") or {}
    tensor = {
        "type": "image",
        "format": "magnitude",
        "modality": "DX/CR (radiograph)",
        "num_channels": 1,
        "spatial_shape": [f"{multiple}*n", f"{multiple}*m"],
        "dtype": "float32",
        "value_range": [0, 1],
        "is_patch_data": True,
        "channel_def": {"0": "image"},
    }
    return {
        "schema": METADATA_SCHEMA,
        "version": BUNDLE_VERSION,
        "changelog": {BUNDLE_VERSION: f"exported by denoise-pipeline {__version__}"},
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__.split("+")[0],
        "numpy_version": np.__version__,
        "required_packages_version": {"denoise-pipeline": __version__},
        "optional_packages_version": {
            "pydicom": _version("pydicom"),
            "nibabel": _version("nibabel"),
        },
        "task": "Denoising of 2-D radiographs (DICOM, PNG, JPEG, TIFF)",
        "description": (
            f"{loaded.identity}. Gray 2-D images are mapped to [0, 1] over their file's full "
            "value range "
            "(DICOM: BitsStored through the modality LUT; MONOCHROME1 inverted), "
            "denoised in 512-px tiles "
            "and written back on the file's value scale."
        ),
        "authors": "denoise-pipeline",
        "copyright": "denoise-pipeline contributors; MIT licence",
        "data_source": provenance.get("training_data", f"see the run of {loaded.config.run.name}"),
        "data_type": "dicom, png",
        "image_classes": "one channel, values in [0, 1], high = bright",
        "pred_classes": "one channel, the denoised image, values in [0, 1], high = bright",
        "intended_use": "Research preprocessing; not for diagnostic use.",
        "network_data_format": {
            "inputs": {"image": tensor},
            "outputs": {"pred": dict(tensor, channel_def={"0": "denoised image"})},
        },
        "denoise_pipeline": {
            "model": loaded.identity,
            "model_config": loaded.config.model.model_dump(mode="json"),
            "source_checkpoint": loaded.path.name,
            "model_sha256": file_sha256(loaded.path),
            "package_version": __version__,
            "size_multiple": multiple,
        },
    }


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return ""


def _inference_config(model_config: dict[str, Any]) -> dict[str, Any]:
    """configs/inference.json: a folder of radiographs in, ``*_denoised.nii.gz`` out."""
    return {
        "imports": [
            "$import torch",
            "$import numpy as np",
            "$import pipeline",
            "$import pipeline.monai",
            "$import pipeline.bundle",
        ],
        "bundle_root": ".",
        "dataset_dir": "$@bundle_root + '/input'",
        "output_dir": "$@bundle_root + '/eval'",
        "device": "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "datalist": "$pipeline.bundle.list_images(@dataset_dir)",
        "network_def": {"_target_": "pipeline.bundle.bundle_network", "model": model_config},
        "network": "$@network_def.to(@device)",
        **_reading(),
        "inferer": _inferer(),
        "postprocessing": _postprocessing(),
        **_evaluation(),
        "initialize": ["$monai.utils.set_determinism(seed=0)"],
        "run": ["$@evaluator.run()"],
    }


def _reading() -> dict[str, Any]:
    """The inference config's reading: transforms, data set and loader."""
    return {
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {
                    "_target_": "LoadImaged",
                    "keys": "image",
                    "reader": "$pipeline.monai.ScanReader()",
                },
                {"_target_": "EnsureChannelFirstd", "keys": "image"},
                {
                    "_target_": "Transposed",
                    "keys": "image",
                    "indices": [0, 2, 1],
                    "_desc_": "MONAI readers give (W, H); the network was trained on rows first",
                },
            ],
        },
        "dataset": {
            "_target_": "Dataset",
            "data": "$[{'image': i} for i in @datalist]",
            "transform": "@preprocessing",
        },
        "dataloader": {
            "_target_": "DataLoader",
            "dataset": "@dataset",
            "batch_size": 1,
            "shuffle": False,
            "num_workers": 0,
        },
    }


def _inferer() -> dict[str, Any]:
    """The inference config's inferer: tiles as ``denoise apply``'s defaults."""
    tile = [DEFAULT_INFERENCE.tile_size, DEFAULT_INFERENCE.tile_size]
    return {
        "_target_": "pipeline.monai.TileInferer",
        "_desc_": "MONAI's SlidingWindowInferer (a subclass): an image that fits in one tile "
        "runs whole, as in denoise apply",
        "roi_size": tile,
        "sw_batch_size": DEFAULT_INFERENCE.batch_size,
        "overlap": DEFAULT_INFERENCE.overlap,
        "mode": "gaussian",
        "padding_mode": "replicate",
    }


def _postprocessing() -> dict[str, Any]:
    """The inference config's postprocessing: back to the file's values, saved as NIfTI."""
    return {
        "_target_": "Compose",
        "transforms": [
            {"_target_": "Transposed", "keys": "pred", "indices": [0, 2, 1]},
            {"_target_": "pipeline.monai.FromUnitRanged", "keys": "pred", "ref_key": "image"},
            {
                "_target_": "SaveImaged",
                "keys": "pred",
                "output_dir": "@output_dir",
                "output_postfix": "denoised",
                "output_ext": ".nii.gz",
                "output_dtype": "$np.float32",
                "resample": False,
                "separate_folder": False,
                "print_log": False,
            },
        ],
    }


def _evaluation() -> dict[str, Any]:
    """The inference config's handlers and evaluator."""
    return {
        "handlers": [
            {
                "_target_": "CheckpointLoader",
                "load_path": "$@bundle_root + '/models/model.pt'",
                "load_dict": {"model": "@network"},
            },
            {"_target_": "StatsHandler", "iteration_log": False},
        ],
        "evaluator": {
            "_target_": "SupervisedEvaluator",
            "device": "@device",
            "val_data_loader": "@dataloader",
            "network": "@network",
            "inferer": "@inferer",
            "postprocessing": "@postprocessing",
            "val_handlers": "@handlers",
            "amp": False,
        },
    }


def _readme(meta: dict[str, Any]) -> str:
    info = meta["denoise_pipeline"]
    return f"""# Radiograph denoiser (denoise-pipeline {info["package_version"]})

{meta["description"]}

Model: {info["model"]}; checkpoint `{info["source_checkpoint"]}`, SHA-256 `{info["model_sha256"]}`.

## Run

Needs the denoise-pipeline package installed (the network is
`pipeline.bundle.bundle_network`, the reader `pipeline.monai.ScanReader`; its `bundle` extra
adds `fire` and `pytorch-ignite`, which MONAI's command and evaluator need). From this folder:

```bash
python -m monai.bundle run --config_file configs/inference.json --meta_file configs/metadata.json \\
    --dataset_dir /path/to/scans --output_dir /path/to/denoised
```

Every PNG/JPEG/TIFF/DICOM/NIfTI under `dataset_dir` gives `<name>_denoised.nii.gz`: float32,
one channel, on the input file's own value scale (DICOM: modality values; 8-bit PNG: 0-255),
columns first as MONAI's readers give them.

## Values

- Input of the network: float32 (N, 1, H, W) in [0, 1], high = bright. The reader
  (`pipeline.monai.ScanReader`) maps stored values over the file's full range: DICOM
  BitsStored (e.g. 12 bits -> 0-4095, not the dtype's 65535) through the rescale slope and
  intercept, MONOCHROME1 inverted; 8/16-bit PNG over 255/65535.
- Tiling: 512-px tiles, overlap 0.25, Gaussian blending; an image that fits in one tile
  runs whole. The network pads sides that are not multiples of {info["size_multiple"]} (reflect).
- Outputs agree with `denoise apply` on the same files (same reader, tiling and network).

Research use only; not for diagnosis.
"""


_MIT = """MIT License

Copyright (c) denoise-pipeline contributors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def write_bundle(model: str | Path | None, output: str | Path) -> BundleResult:
    """Write the bundle of a checkpoint, a run folder or the shipped model (None) to `output`.

    `output` is a folder.

    An existing non-empty `output` is refused unless it is a bundle (then it is replaced).
    """
    output = Path(output)
    if output.exists() and (
        not output.is_dir()
        or (any(output.iterdir()) and not (output / "configs" / "metadata.json").is_file())
    ):
        raise PipelineError(
            f"{output} exists and is not a MONAI bundle: choose a new folder for the bundle"
        )
    loaded = load_model(model, "cpu")
    network = exportable(loaded.model)
    metadata = _metadata(loaded, network.multiple)
    tmp = output.with_name(f".{output.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for sub in ("configs", "models", "docs"):
        (tmp / sub).mkdir(parents=True)
    (tmp / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    inference = _inference_config(loaded.config.model.model_dump(mode="json"))
    (tmp / "configs" / "inference.json").write_text(json.dumps(inference, indent=2) + "\n")
    torch.save(network.state_dict(), tmp / "models" / "model.pt")
    (tmp / "docs" / "README.md").write_text(_readme(metadata))
    training_data = (loaded.meta.get("provenance") or {}).get("training_data")
    if training_data:
        (tmp / "docs" / "data_license.txt").write_text(
            f"Training data of this model: {training_data}\n"
        )
    (tmp / "LICENSE").write_text(_MIT)
    shutil.rmtree(output, ignore_errors=True)
    tmp.rename(output)
    return BundleResult(output, metadata)
