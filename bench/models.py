"""The networks of the quality tables: given checkpoints, MNIST models trained here, or why one is
absent."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.conditions import nih_patients
from bench.provenance import log
from bench.settings import LOWRES_SIZE, Settings, as_recorded, from_checkout
from pipeline.checkpoint import SHIPPED_MODEL
from pipeline.config import InferenceConfig, load_config
from pipeline.errors import PipelineError
from pipeline.inference import ModelDenoiser, denoiser_from_checkpoint
from pipeline.models import count_parameters
from pipeline.provenance import file_sha256
from pipeline.runner import run

#: ``origin`` of a model entry that is the package's shipped checkpoint (as it was when measured).
SHIPPED_ORIGIN = "shipped model"


@dataclass
class ModelEntry:
    """A network for a table: its denoiser and description, or why it is absent."""

    name: str
    denoiser: ModelDenoiser | None = None
    info: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None


def quality_device(settings: Settings) -> str:
    return "cuda" if settings.device != "cpu" and torch.cuda.is_available() else "cpu"


def load_entry(
    name: str, path: str | None, settings: Settings, origin: str = "given on the command line"
) -> ModelEntry:
    """Load a checkpoint (or run folder) as a named denoiser; absent or unreadable: skipped."""
    if path is None or path.lower() == "none":
        return ModelEntry(
            name, skipped="no checkpoint given" if path is None else "disabled with 'none'"
        )
    try:
        denoiser, loaded = denoiser_from_checkpoint(
            path, InferenceConfig(device=quality_device(settings), tile_size=settings.tile_size)
        )
    except PipelineError as err:
        return ModelEntry(name, skipped=f"checkpoint unusable: {err}")
    cfg = loaded.config
    root = cfg.data.root
    info = {
        "checkpoint": as_recorded(str(loaded.path), settings.project),
        "sha256": file_sha256(loaded.path),
        "origin": origin,
        "model": cfg.model.model_dump(mode="json"),
        "run": cfg.run.name,
        "checkpoint_epoch": loaded.meta.get("epoch"),
        "train_data": ", ".join(
            map(str, as_recorded(root if isinstance(root, list) else [root], settings.project))
        )
        if root is not None
        else f"{cfg.data.kind}: bundled sample",
        "train_noise": cfg.noise.kind,
        "parameters": count_parameters(loaded.model),
    }
    return ModelEntry(name, denoiser, info)


def train_mnist(config_file: Path, settings: Settings) -> tuple[Path, int]:
    """Train an MNIST config with :func:`pipeline.runner.run`; its best checkpoint and epochs
    asked."""
    cfg = load_config(config_file)
    cfg.run.output_dir = settings.work / "runs"
    cfg.run.stages = ["train"]
    cfg.run.seed = settings.seed
    cfg.run.device = settings.device
    cfg.train.progress = False
    cfg.data.root = settings.mnist_root
    if settings.epochs is not None:
        cfg.train.epochs = settings.epochs
    if settings.max_train is not None:
        cfg.data.max_train = settings.max_train
    log(f"training {config_file.name} for {cfg.train.epochs} epochs")
    result = run(cfg)
    return result.checkpoint, cfg.train.epochs


def mnist_entry(name: str, settings: Settings) -> ModelEntry:
    """An MNIST model: the given checkpoint, else trained here from its config (dense, conv)."""
    given = settings.mnist_models.get(name)
    if given is not None:
        return load_entry(name, given, settings)
    config_file = settings.project / "configs" / f"mnist_{name}.yaml"
    if name == "best" or not config_file.is_file():
        return ModelEntry(name, skipped=f"no --mnist-{name} checkpoint given")
    if not settings.train:
        return ModelEntry(
            name, skipped=f"no --mnist-{name} given and training disabled (--no-train)"
        )
    checkpoint, epochs = train_mnist(config_file, settings)
    default_epochs = load_config(config_file).train.epochs
    origin = (
        f"trained by this script from configs/{config_file.name} for {epochs} epochs (the "
        f"config says {default_epochs})"
    )
    return load_entry(name, str(checkpoint), settings, origin)


def require_size(entry: ModelEntry, side: int | None) -> ModelEntry:
    """Skip a fixed-size (dense) model that cannot take side x side images (None: any size)."""
    size = getattr(entry.denoiser.model, "fixed_size", None) if entry.denoiser else None
    if size is not None and size != side:
        where = f"{side}x{side} images" if side else "images of any size"
        return ModelEntry(
            entry.name,
            skipped=f"{entry.info['checkpoint']} takes only {size}x{size} images, not {where}",
        )
    return entry


def cxr_entry(name: str, settings: Settings) -> ModelEntry:
    """A radiograph model from its --cxr-NAME option (unet defaults to the shipped model)."""
    path = settings.cxr_models.get(name)
    if path is None and name == "unet":
        return ModelEntry(
            name,
            skipped="no --cxr-unet given and the shipped model "
            f"{as_recorded(SHIPPED_MODEL, settings.project)} is absent",
        )
    if path is None:
        return ModelEntry(name, skipped=f"no checkpoint given (--cxr-{name} RUN)")
    return load_entry(
        name,
        path,
        settings,
        SHIPPED_ORIGIN if path == str(SHIPPED_MODEL) else "given on the command line",
    )


def lowres_entry(name: str, settings: Settings) -> ModelEntry:
    """A 64-px model; a dense one must take exactly 64x64 images."""
    return require_size(cxr_entry(name, settings), LOWRES_SIZE)


def seen_patients(entries: list[ModelEntry], settings: Settings) -> set[str]:
    """NIH patient ids in the low-res training/validation folders and the models' data roots."""
    roots = [settings.lowres_dir / "train", settings.lowres_dir / "valid"]
    roots += [
        from_checkout(r, settings.project)
        for e in entries
        for r in e.info.get("train_data", "").split(", ")
        if r
    ]  # as recorded
    return nih_patients(roots)
