"""Training loop: noisy/clean pairs drawn per epoch, validation, checkpoints, resume, DDP.

Reproducibility: initialisation comes from ``torch.manual_seed(seed)``; the data order from
torch's ``DistributedSampler`` seeded with (seed, epoch); noise, patch positions and
augmentation from :func:`pipeline.noise.noise_rng` keyed by (seed, epoch, sample index).
Nothing depends on hidden generator state, so resuming from ``last.pt`` continues exactly
where an uninterrupted run would be, and ``torchrun`` workers see disjoint shards.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from pipeline.checkpoint import (
    build_checkpoint,
    checkpoint_model_config,
    read_checkpoint,
    save_checkpoint,
)
from pipeline.config import Config, InferenceConfig, ModelConfig, TrainConfig
from pipeline.distributed import DistInfo, init_distributed, local_device
from pipeline.errors import PipelineError
from pipeline.inference import ModelDenoiser, pad_to_multiple, resolve_device
from pipeline.ingest.patches import PatchSampler, at_scales
from pipeline.ingest.patches import augment as augment_patch
from pipeline.metrics import DETAIL_SIGMA, detail_highpass, psnr
from pipeline.models import build_model
from pipeline.noise import NoiseModel, add_noise, noise_rng
from pipeline.records import read_csv, write_csv
from pipeline.selfsupervised import Objective, make_objective, step_generator
from pipeline.transfer_loss import transfer_penalty

log = logging.getLogger(__name__)

LOG_FIELDS = ("epoch", "train_loss", "val_loss", "val_psnr", "lr", "seconds", "samples_per_second")


class NoisyPairs(Dataset):
    """(noisy, clean) training pairs; whole images or random patches, fresh noise per epoch.

    Sample ``i`` of epoch ``e`` is fully determined by (seed, e, i): with ``patch_size``
    set, sample i is a patch of image ``i // patches_per_image``.
    """

    def __init__(
        self, images: list[np.ndarray], noise: NoiseModel, seed: int, patch_size: int | None = None,
        patches_per_image: int = 1, min_patch_std: float = 0.0, augment: bool = False,
        fresh_each_epoch: bool = True,
    ) -> None:
        if not images:
            raise PipelineError("no training images: check data.root and the split fractions")
        if patch_size is None and len({img.shape for img in images}) > 1:
            raise PipelineError(
                "training images differ in size: set data.patch_size (train on random patches) or data.resize"
            )
        self.images = images
        self.noise = noise
        self.seed = seed
        self.sampler = PatchSampler(patch_size, min_patch_std) if patch_size else None
        self.per_image = patches_per_image if patch_size else 1
        self.augment = augment
        self.fresh = fresh_each_epoch
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.images) * self.per_image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = noise_rng(self.seed, "train", self.epoch if self.fresh else 0, index)
        clean = self.images[index // self.per_image]
        if self.sampler is not None:
            clean = self.sampler.sample_one(clean, rng)
        if self.augment:
            clean = augment_patch(clean, rng)
        noisy = self.noise(clean, rng)
        return torch.from_numpy(np.ascontiguousarray(noisy))[None], torch.from_numpy(np.ascontiguousarray(clean))[None]


def make_loss(name: str, detail_weight: float = 0.0, transfer_weight: float = 0.0):
    """Loss function by name: bce, mse, l1, or ssim_mix (0.84·(1−SSIM) + 0.16·L1, Zhao et al. 2017).

    With `detail_weight` > 0 the loss adds that weight times :func:`detail_slope` squared
    (mean over the samples): a penalty on erasing the clean image's fine detail. With
    `transfer_weight` > 0 it adds that weight times
    :func:`pipeline.transfer_loss.transfer_penalty`: content lost at 0.1-0.2 cycles/pixel.
    """
    base = _base_loss(name)
    terms = [(weight, term) for weight, term in (
        (detail_weight, lambda out, target: detail_slope(out, target).square().mean()),
        (transfer_weight, transfer_penalty),
    ) if weight > 0]
    if not terms:
        return base
    return lambda out, target: base(out, target) + sum(weight * term(out, target) for weight, term in terms)


def _base_loss(name: str):
    if name == "bce":
        return lambda out, target: F.binary_cross_entropy(out.clamp(1e-7, 1 - 1e-7), target)
    if name == "mse":
        return F.mse_loss
    if name == "l1":
        return F.l1_loss
    from monai.losses import SSIMLoss

    ssim_loss = SSIMLoss(spatial_dims=2, data_range=1.0)
    return lambda out, target: 0.84 * ssim_loss(out, target) + 0.16 * F.l1_loss(out, target)


DETAIL_VARIANCE_FLOOR = 1e-6
"""detail_slope: added to each sample's detail variance, so near-flat patches give slopes near 0, not noise."""


def detail_slope(out: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Per sample (N,): the slope of the error (out − clean) regressed on the clean image's fine detail.

    Fine detail is the Laplacian of Gaussian of :func:`pipeline.metrics.detail_highpass` (same
    scale), taken where the kernel fits inside the image. A denoiser that erases detail has an
    error proportional to it (slope > 0); noise left in the output is unrelated to it and adds
    nothing on average, so unlike a correlation the slope cannot be lowered by leaving noise in.
    """
    kernel = _log_kernel(clean.device, clean.dtype)
    pad = kernel.shape[-1] // 2
    detail = F.conv2d(clean, kernel)
    error = (out - clean)[..., pad:-pad, pad:-pad]
    detail = detail - detail.mean(dim=(-2, -1), keepdim=True)
    error = error - error.mean(dim=(-2, -1), keepdim=True)
    pixels = detail[0].numel()
    covariance = (error * detail).flatten(1).sum(1)
    return covariance / (detail.square().flatten(1).sum(1) + DETAIL_VARIANCE_FLOOR * pixels)


@functools.lru_cache(maxsize=4)
def _log_kernel(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The (1, 1, k, k) kernel of scipy's Laplacian of Gaussian at :data:`pipeline.metrics.DETAIL_SIGMA`."""
    radius = int(4 * DETAIL_SIGMA + 0.5)  # scipy's default truncation at 4 sigma
    impulse = np.zeros((2 * radius + 1, 2 * radius + 1))
    impulse[radius, radius] = 1.0
    return torch.as_tensor(detail_highpass(impulse), dtype=dtype, device=device)[None, None]


NOISE_STD_FLOOR = 0.01
"""inverse_noise weighting: noise std below this (about 2.5/255) counts as this, so near-clean samples do not dominate."""


def weighted_loss(loss_fn, out: torch.Tensor, clean: torch.Tensor, noisy: torch.Tensor, weighting: str) -> torch.Tensor:
    """The batch loss; with ``inverse_noise`` a weighted mean of per-sample losses.

    Weights are 1 / max(std(noisy − clean), NOISE_STD_FLOOR) per sample, normalised to mean 1
    in the batch. An L1 or MSE loss grows with the noise level, so without weights a blind
    model's training is dominated by its noisiest samples and it under-serves clean scans.
    """
    if weighting == "none":
        return loss_fn(out, clean)
    losses = torch.stack([loss_fn(out[i:i + 1], clean[i:i + 1]) for i in range(len(out))])
    std = (noisy - clean).flatten(1).std(dim=1).clamp_min(NOISE_STD_FLOOR)
    weights = 1.0 / std
    return (losses * (weights / weights.mean())).mean()


def supervised_objective(loss_fn, weighting: str) -> Objective:
    """The supervised objective: the (weighted) loss between the network's output and the clean batch."""
    return lambda forward, noisy, clean, generator: weighted_loss(loss_fn, forward(noisy), clean, noisy, weighting)


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@dataclass
class TrainResult:
    """What training produced: checkpoint paths, the per-epoch log and the trained model."""

    best: Path
    last: Path
    log: list[dict[str, Any]]
    model: nn.Module
    stopped_early: bool = False


def validate(
    model: nn.Module, noisy: list[np.ndarray], clean: list[np.ndarray], loss_fn, device, settings: InferenceConfig
) -> tuple[float, float]:
    """Mean loss and mean PSNR (data range 1) of the model on fixed noisy validation images."""
    if not noisy:
        return float("nan"), float("nan")
    model.eval()
    denoiser = ModelDenoiser.from_settings(model, settings, device)
    outputs = denoiser.denoise_many(noisy)
    losses = [float(loss_fn(torch.from_numpy(o)[None, None], torch.from_numpy(c)[None, None])) for o, c in zip(outputs, clean)]
    psnrs = [psnr(c, o, data_range=1.0) for o, c in zip(outputs, clean)]
    model.train()
    return float(np.mean(losses)), float(np.mean(psnrs))


def train(
    cfg: Config, train_images: list[np.ndarray], val_images: list[np.ndarray], noise: NoiseModel,
    out_dir: Path, device: str | torch.device | None = None,
) -> TrainResult:
    """Train the configured model; write ``checkpoints/{last,best}.pt`` and ``train_log.csv`` in `out_dir`."""
    tc = cfg.train
    device = resolve_device(cfg.run.device) if device is None else torch.device(device)
    info = init_distributed(device)
    device = local_device(device, info)
    seed = cfg.run.seed
    torch.manual_seed(seed)
    model = build_model(cfg.model).to(device)
    ckpt_dir = out_dir / "checkpoints"
    if info.is_main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)

    if cfg.data.train_scales != [1.0]:
        train_images = at_scales(train_images, cfg.data.train_scales)
    data = NoisyPairs(
        train_images, noise, seed, cfg.data.patch_size, cfg.data.patches_per_image,
        cfg.data.min_patch_std, cfg.data.augment, cfg.noise.fresh_each_epoch,
    )
    sampler = DistributedSampler(data, num_replicas=info.world, rank=info.rank, shuffle=True, seed=seed)
    loader = DataLoader(
        data, batch_size=tc.batch_size, sampler=sampler, num_workers=tc.workers, pin_memory=device.type == "cuda",
    )  # workers start anew each epoch, so they see the epoch set below
    val_noisy = add_noise(val_images, noise, seed, "val")
    loss_fn = make_loss(tc.loss, tc.detail_weight, tc.transfer_weight)
    if tc.objective in ("supervised", "fitted"):  # fitted: clean = the denoised scans (pipeline.adapt)
        objective = supervised_objective(loss_fn, tc.loss_weighting)
    else:
        objective = make_objective(tc.objective, tc.self_supervised)
    optimizer = make_optimizer(model.parameters(), tc)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(tc.epochs, 1)) if tc.schedule == "cosine" else None
    state: dict[str, Any] = {"best_val_psnr": -math.inf, "bad_epochs": 0, "log": []}
    start_epoch = 0
    if tc.init_from is not None:
        _init_weights(tc.init_from, cfg, model)
    if tc.resume is not None:
        start_epoch, state = _resume(tc.resume, cfg, model, optimizer, scheduler)
    net: nn.Module = model
    if info.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    use_amp = tc.amp and device.type == "cuda"
    multiple = int(getattr(model, "size_multiple", 1))

    def forward(x: torch.Tensor) -> torch.Tensor:  # padded to the network's size multiple (sub-images may not be)
        padded, (h, w) = pad_to_multiple(x, multiple)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            return net(padded).float()[..., :h, :w]

    started = time.perf_counter()
    stopped_early = False
    for epoch in range(start_epoch, tc.epochs):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        data.set_epoch(epoch)
        net.train()
        total, count = 0.0, 0
        label = _epoch_label(epoch, tc, time.perf_counter() - started)
        bar = tqdm(loader, desc=label, disable=not (tc.progress and info.is_main), leave=False)
        for step, (noisy, clean) in enumerate(bar):
            noisy, clean = noisy.to(device), clean.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = objective(forward, noisy, clean, step_generator(seed, epoch, step))
            loss.backward()
            if tc.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
            optimizer.step()
            total += loss.item() * len(noisy)
            count += len(noisy)
            bar.set_postfix(loss=f"{total / count:.4f}")
        bar.close()
        if scheduler is not None:
            scheduler.step()
        train_loss = _mean_across_ranks(total, count, device, info)
        out_of_time = bool(tc.max_train_seconds) and time.perf_counter() - started > tc.max_train_seconds
        if tc.max_train_seconds and info.world > 1:  # rank 0's clock decides, so all ranks stop (and validate) together
            out_of_time = bool(_broadcast(float(out_of_time), 0.0, device, info)[0])
        validated = (epoch + 1) % tc.validate_every == 0 or epoch + 1 == tc.epochs or out_of_time
        val_loss = val_psnr = float("nan")
        if validated:
            if info.is_main:
                val_loss, val_psnr = validate(model, val_noisy, val_images, loss_fn, device, cfg.inference)
            val_psnr, val_loss = _broadcast(val_psnr, val_loss, device, info)
        seconds = time.perf_counter() - t0
        row = {
            "epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss, "val_psnr": val_psnr,
            "lr": optimizer.param_groups[0]["lr"], "seconds": seconds,
            "samples_per_second": len(data) / seconds,
        }
        state["log"].append(row)
        if not validated:  # nothing to compare: keep best.pt and the patience count as they are
            improved = False
        else:
            improved = math.isnan(val_psnr) or val_psnr > state["best_val_psnr"]
            if improved:
                state["best_val_psnr"] = val_psnr if not math.isnan(val_psnr) else state["best_val_psnr"]
                state["bad_epochs"] = 0
            else:
                state["bad_epochs"] += 1
        if info.is_main:
            ckpt = build_checkpoint(model, cfg, epoch=epoch + 1, optimizer=optimizer, scheduler=scheduler, state=state)
            save_checkpoint(ckpt, ckpt_dir / "last.pt")
            if improved:
                save_checkpoint(ckpt, ckpt_dir / "best.pt")
            write_log(state["log"], out_dir / "train_log.csv")
            if not val_images:
                val_words = ""
            else:
                val_words = f", val loss {val_loss:.4f}, val PSNR {val_psnr:.2f} dB" if validated else ", not validated"
            log.info("%s: train loss %.4f%s (%.1f s)", label, train_loss, val_words, seconds)
        if tc.early_stop_patience and state["bad_epochs"] >= tc.early_stop_patience:
            stopped_early = True
            break
        if out_of_time:
            stopped_early = True
            break
    if info.is_main and not (ckpt_dir / "last.pt").exists():
        ckpt = build_checkpoint(model, cfg, epoch=start_epoch, optimizer=optimizer, scheduler=scheduler, state=state)
        save_checkpoint(ckpt, ckpt_dir / "last.pt")
        save_checkpoint(ckpt, ckpt_dir / "best.pt")
        write_log(state["log"], out_dir / "train_log.csv")
    if info.world > 1:
        dist.barrier()
    model.load_state_dict(read_checkpoint(ckpt_dir / "best.pt", "best checkpoint")["model_state"])
    return TrainResult(ckpt_dir / "best.pt", ckpt_dir / "last.pt", state["log"], model, stopped_early)


def _epoch_label(epoch: int, tc: TrainConfig, elapsed: float) -> str:
    """``epoch 3/30``, or with a time budget ``epoch 3 (40 s of 120 s left)``: the budget ends it."""
    if tc.max_train_seconds:
        left = max(tc.max_train_seconds - elapsed, 0.0)
        return f"epoch {epoch + 1} ({left:.0f} s of {tc.max_train_seconds:.0f} s left)"
    return f"epoch {epoch + 1}/{tc.epochs}"


def _require_same_model(ckpt: dict[str, Any], path: Path, cfg: Config, what: str, hint: str = "") -> None:
    if checkpoint_model_config(ckpt) != cfg.model:
        raise PipelineError(
            f"{what}: {path} was trained with a different model section; use the same model settings{hint}"
        )


def _load_matching(path: Path, cfg: Config, what: str) -> dict[str, Any]:
    """A checkpoint whose model section equals this config's (else a clear error)."""
    ckpt = read_checkpoint(path, what)
    _require_same_model(ckpt, path, cfg, what)
    return ckpt


def _adds_refinement_head(theirs: ModelConfig | None, ours: ModelConfig) -> bool:
    """True when `ours` is the U-Net `theirs` plus a refinement head."""
    return (
        theirs is not None and ours.name == "unet" and theirs.refine_channels == 0 < ours.refine_channels
        and theirs.model_copy(update={"refine_channels": ours.refine_channels}) == ours
    )


def _init_weights(path: Path, cfg: Config, model: nn.Module) -> None:
    """Fine-tuning start: the same model, or the same U-Net without the refinement head (which starts at zero)."""
    what = "train.init_from"
    ckpt = read_checkpoint(path, what)
    if not _adds_refinement_head(checkpoint_model_config(ckpt), cfg.model):
        _require_same_model(ckpt, path, cfg, what, " (or the same unet with refine_channels: 0, to add a refinement head)")
        model.load_state_dict(ckpt["model_state"])
        return
    missing, unexpected = model.load_state_dict(ckpt["model_state"], strict=False)
    if unexpected or any(not key.startswith("refine.") for key in missing):
        raise PipelineError(f"{what}: {path} does not hold this network's weights")


def _resume(path: Path, cfg: Config, model: nn.Module, optimizer, scheduler) -> tuple[int, dict[str, Any]]:
    ckpt = _load_matching(path, cfg, "train.resume")
    model.load_state_dict(ckpt["model_state"])
    optimizer.load_state_dict(ckpt["optimizer_state"])
    if scheduler is not None and ckpt.get("scheduler_state"):
        scheduler.load_state_dict(ckpt["scheduler_state"])
    return int(ckpt["epoch"]), dict(ckpt["state"])


def _mean_across_ranks(total: float, count: int, device: torch.device, info: DistInfo) -> float:
    if info.world > 1:
        t = torch.tensor([total, float(count)], dtype=torch.float64, device=device)
        dist.all_reduce(t)
        total, count = float(t[0]), int(t[1])
    return total / max(count, 1)


def _broadcast(a: float, b: float, device: torch.device, info: DistInfo) -> tuple[float, float]:
    if info.world > 1:
        t = torch.tensor([a, b], dtype=torch.float64, device=device)
        dist.broadcast(t, src=0)
        a, b = float(t[0]), float(t[1])
    return a, b


def write_log(rows: list[dict[str, Any]], path: Path) -> None:
    """Write the per-epoch training log as CSV (replaced whole each epoch: it is small)."""
    write_csv(rows, path, LOG_FIELDS)


def read_log(path: Path) -> list[dict[str, float]]:
    """A train_log.csv's rows with every value as a float (nan where a field is empty)."""
    return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()} for row in read_csv(path)]


def best_val_psnr(rows: list[dict[str, float]]) -> float:
    """The best validation PSNR of a training log's rows (nan when no epoch was validated)."""
    values = [row["val_psnr"] for row in rows if not math.isnan(row["val_psnr"])]
    return max(values) if values else math.nan
