"""Checkpoints: the one place that builds, saves, loads and versions them.

A checkpoint is a dict that ``torch.load(weights_only=True)`` can read (tensors, numbers,
strings, lists and dicts only):

``format_version``
    :data:`FORMAT_VERSION`. Files written before the key existed count as version 1 and
    are upgraded when read: their config's ``evaluate.tile_size``/``tile_overlap`` become
    the ``inference`` section (``evaluate.batch_size`` counted images, not tiles, and is
    dropped). Version 2 files hold the flat noise section, upgraded to the per-kind one
    (:mod:`pipeline.config.upgrade`).
``model_state``, ``config``, ``version``, ``epoch``
    the weights, the resolved config they were trained with (a dict), the package version
    and the epochs trained.
``optimizer_state``, ``scheduler_state``, ``state``
    what resuming needs (training state); :func:`strip_training_state` removes it for
    shipping or copying.

Training starts from a checkpoint through :func:`init_weights` (weights only) or
:func:`resume_training` (weights and training state); both check that it holds this
config's model.
anything else, e.g. ``provenance``
    kept as it is.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pipeline import __version__
from pipeline.config import Config, ModelConfig, config_from_dict
from pipeline.config.upgrade import upgrade_noise
from pipeline.errors import PipelineError
from pipeline.models import build_model
from pipeline.records import replacing
from pipeline.text import library_detail

#: Version of the checkpoint layout written by :func:`build_checkpoint`.
FORMAT_VERSION = 3
#: Keys only resuming needs.
TRAINING_STATE_KEYS = ("optimizer_state", "scheduler_state", "state")
#: The radiograph model shipped inside the package (used when no model is given).
SHIPPED_MODEL = Path(__file__).resolve().parent / "weights" / "cxr_default.pt"


def build_checkpoint(
    model: nn.Module,
    cfg: Config,
    *,
    epoch: int = 0,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    state: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A checkpoint of `model` trained with `cfg`; training state included when given."""
    return {
        "format_version": FORMAT_VERSION,
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
        "epoch": epoch,
        "config": cfg.to_dict(),
        "version": __version__,
        "state": state if state is not None else {},
        **extra,
    }


def strip_training_state(ckpt: dict[str, Any]) -> dict[str, Any]:
    """A copy of `ckpt` without optimizer, scheduler and training-loop state.

    Weights, config and the rest are kept.
    """
    return {k: v for k, v in ckpt.items() if k not in TRAINING_STATE_KEYS}


def save_checkpoint(ckpt: dict[str, Any], path: str | Path) -> Path:
    """Write `ckpt` to `path` atomically; the folder is created.

    A crash leaves the previous file.
    """
    with replacing(path) as tmp:
        torch.save(ckpt, tmp)
    return Path(path)


def read_checkpoint(path: str | Path, what: str = "model checkpoint") -> dict[str, Any]:
    """A checkpoint dict, read with ``weights_only=True``.

    PipelineError names `what` and the file.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{what}: checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise PipelineError(
            f"{what}: {path} is not a readable checkpoint of this tool ({library_detail(err, 160)})"
        ) from None
    if not isinstance(ckpt, dict) or "model_state" not in ckpt or "config" not in ckpt:
        raise PipelineError(
            f"{what}: {path} is not a checkpoint of this tool (no model_state/config)"
        )
    version = ckpt.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise PipelineError(
            f"{what}: {path} has checkpoint format {version}, newer than this version reads "
            f"({FORMAT_VERSION}); upgrade denoise-pipeline"
        )
    return _upgrade(ckpt) if version < FORMAT_VERSION else ckpt


def _upgrade(ckpt: dict[str, Any]) -> dict[str, Any]:
    """An older checkpoint in the current layout.

    Version 1: tile settings moved to ``inference``; versions 1 and 2: noise sections in the
    per-kind shape.
    """
    config = dict(ckpt["config"])
    evaluate = dict(config.get("evaluate") or {})
    for section in (config, evaluate):
        if section.get("noise") is not None:
            section["noise"] = upgrade_noise(section["noise"])
    inference = dict(config.get("inference") or {})
    if "tile_size" in evaluate:
        inference["tile_size"] = evaluate.pop("tile_size")
    if "tile_overlap" in evaluate:
        inference["overlap"] = evaluate.pop("tile_overlap")
    evaluate.pop("batch_size", None)
    config["evaluate"], config["inference"] = evaluate, inference
    return {**ckpt, "config": config, "format_version": FORMAT_VERSION}


def checkpoint_model_config(ckpt: dict[str, Any]) -> ModelConfig | None:
    """The model section a checkpoint was trained with (defaults filled in), or None."""
    config = ckpt.get("config") if isinstance(ckpt, dict) else None
    raw = config.get("model") if isinstance(config, dict) else None
    try:
        return ModelConfig(**raw) if isinstance(raw, dict) else None
    except ValueError:
        return None


def _require_same_model(
    ckpt: dict[str, Any], path: Path, cfg: Config, what: str, hint: str = ""
) -> None:
    if checkpoint_model_config(ckpt) != cfg.model:
        raise PipelineError(
            f"{what}: {path} was trained with a different model section; use the same model "
            f"settings{hint}"
        )


def _adds_refinement_head(theirs: ModelConfig | None, ours: ModelConfig) -> bool:
    """True when `ours` is the U-Net `theirs` plus a refinement head."""
    return (
        theirs is not None
        and ours.name == "unet"
        and theirs.refine_channels == 0 < ours.refine_channels
        and theirs.model_copy(update={"refine_channels": ours.refine_channels}) == ours
    )


def init_weights(path: Path, cfg: Config, model: nn.Module) -> None:
    """Load ``train.init_from``'s weights into `model` (a fine-tuning start).

    The checkpoint must hold the same model section as `cfg`, or the same U-Net without
    the refinement head (which then starts at zero); else a PipelineError says so.
    """
    what = "train.init_from"
    ckpt = read_checkpoint(path, what)
    if not _adds_refinement_head(checkpoint_model_config(ckpt), cfg.model):
        _require_same_model(
            ckpt,
            path,
            cfg,
            what,
            " (or the same unet with refine_channels: 0, to add a refinement head)",
        )
        model.load_state_dict(ckpt["model_state"])
        return
    missing, unexpected = model.load_state_dict(ckpt["model_state"], strict=False)
    if unexpected or any(not key.startswith("refine.") for key in missing):
        raise PipelineError(f"{what}: {path} does not hold this network's weights")


def resume_training(
    path: Path, cfg: Config, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any
) -> tuple[int, dict[str, Any]]:
    """Load ``train.resume``'s weights, optimizer and scheduler state.

    Returns its epochs and training state.

    The checkpoint must hold the same model section as `cfg` (else a PipelineError).
    """
    what = "train.resume"
    ckpt = read_checkpoint(path, what)
    _require_same_model(ckpt, path, cfg, what)
    model.load_state_dict(ckpt["model_state"])
    optimizer.load_state_dict(ckpt["optimizer_state"])
    if scheduler is not None and ckpt.get("scheduler_state"):
        scheduler.load_state_dict(ckpt["scheduler_state"])
    return int(ckpt["epoch"]), dict(ckpt["state"])


def checkpoint_path(path: str | Path | None) -> Path:
    """A checkpoint file from a file path, a run folder (its best.pt) or None.

    None is the shipped model.
    """
    if path is None:
        if not SHIPPED_MODEL.is_file():
            raise PipelineError(
                f"no --model given and the shipped model {SHIPPED_MODEL} is missing; pass "
                "--model CHECKPOINT"
            )
        return SHIPPED_MODEL
    path = Path(path)
    if path.is_dir():
        for candidate in (
            path / "checkpoints" / "best.pt",
            path / "best.pt",
            path / "checkpoints" / "last.pt",
        ):
            if candidate.is_file():
                return candidate
        raise PipelineError(f"no checkpoint in run folder {path} (expected checkpoints/best.pt)")
    if not path.is_file():
        raise PipelineError(f"model checkpoint not found: {path}")
    return path


@dataclass
class LoadedModel:
    """A network with its weights, the config it was trained with, and its checkpoint path.

    ``meta`` holds the checkpoint's other entries (version, epoch, provenance...) without
    the weights and the optimizer and scheduler state.
    """

    model: nn.Module
    config: Config
    path: Path
    meta: dict[str, Any]

    @property
    def method_name(self) -> str:
        """Name in result tables: ``<model>:<run name>``."""
        return f"{self.config.model.name}:{self.config.run.name}"

    @property
    def identity(self) -> str:
        """Short description for reports and DICOM DerivationDescription."""
        return (
            f"{self.config.model.name} model from {self.path.name} (run {self.config.run.name}, "
            f"seed {self.config.run.seed})"
        )


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """Build a checkpoint's network with its weights.

    The checkpoint is a file, a run folder, or None for the shipped model.
    """
    ckpt_file = checkpoint_path(path)
    ckpt = read_checkpoint(ckpt_file)
    if not isinstance(ckpt["config"], dict):
        raise PipelineError(
            f"{ckpt_file} is not a checkpoint of this tool (its config is not a mapping)"
        )
    config = config_from_dict(ckpt["config"], origin=f"config inside {ckpt_file}")
    model = build_model(config.model)
    try:
        model.load_state_dict(ckpt["model_state"])
    except Exception as err:  # noqa: BLE001 - missing, extra or misshapen tensors
        raise PipelineError(
            f"{ckpt_file}: its weights do not fit its {config.model.name} model section (a damaged "
            f"checkpoint, or one of another architecture): {library_detail(err, 120)}"
        ) from None
    _check_finite_weights(model, ckpt_file)
    model.eval().to(device)
    meta = {
        k: v
        for k, v in ckpt.items()
        if k not in ("model_state", "optimizer_state", "scheduler_state")
    }
    return LoadedModel(model, config, ckpt_file, meta)


def _check_finite_weights(model: nn.Module, path: Path) -> None:
    """PipelineError when a weight is NaN or infinite (the outputs would be NaN: black images)."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise PipelineError(
                f"{path}: weight {name} holds NaN or infinite values; the checkpoint is unusable"
            )
