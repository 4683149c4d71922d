"""The trainer: set-up, one epoch, validation, checkpoints and stopping as separate steps.

:class:`Trainer` builds everything training needs when constructed (set-up);
:meth:`Trainer.train_epoch`, :meth:`Trainer.validate_epoch`, :meth:`Trainer.record_epoch`,
:meth:`Trainer.write_checkpoints` and :meth:`Trainer.should_stop` are the steps of an
epoch, which :meth:`Trainer.run_epoch` chains; :meth:`Trainer.fit` runs the epochs and
:meth:`Trainer.finish` leaves the best weights in the model. :func:`train` does all of it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from pipeline.checkpoint import (
    build_checkpoint,
    init_weights,
    read_checkpoint,
    resume_training,
    save_checkpoint,
)
from pipeline.config import Config, TrainConfig
from pipeline.distributed import DistInfo, init_distributed, local_device
from pipeline.inference import pad_to_multiple, resolve_device
from pipeline.ingest.patches import at_scales
from pipeline.ingest.scan_augment import ScanAugment
from pipeline.models import build_model, weight_layout
from pipeline.noise import NoiseModel, add_noise
from pipeline.selfsupervised import make_objective, step_generator
from pipeline.train.data import NoisyPairs, patch_counts
from pipeline.train.history import write_log
from pipeline.train.losses import make_loss, supervised_objective
from pipeline.train.stopping import (
    due_for_validation,
    epoch_label,
    new_state,
    past_budget,
    patience_exhausted,
    record_validation,
)
from pipeline.train.validation import validate

log = logging.getLogger(__name__)


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer (adadelta, adam or adamw) over `params`."""
    if cfg.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    """Cosine annealing over ``epochs`` with ``schedule: cosine``; None for a constant rate."""
    if cfg.schedule != "cosine":
        return None
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs, 1))


@dataclass
class TrainResult:
    """What training produced: checkpoint paths, the per-epoch log and the trained model."""

    best: Path
    last: Path
    log: list[dict[str, Any]]
    model: nn.Module
    stopped_early: bool = False


@dataclass
class Validation:
    """An epoch's validation: whether it ran, the mean loss and PSNR (NaN when it did not)."""

    ran: bool
    loss: float = float("nan")
    psnr: float = float("nan")


class Trainer:
    """Training of the configured model on noisy/clean pairs, writing into `out_dir`.

    Constructing it is the set-up: device and torchrun workers, the seeded network, the
    data, loss, objective, optimizer and schedule, then ``train.init_from`` or
    ``train.resume``. Only rank 0 writes ``checkpoints/{last,best}.pt`` and ``train_log.csv``.
    """

    def __init__(
        self,
        cfg: Config,
        train_images: list[np.ndarray],
        val_images: list[np.ndarray],
        noise: NoiseModel,
        out_dir: Path,
        device: str | torch.device | None = None,
        train_sources: list[str] | None = None,
    ) -> None:
        self.cfg, self.tc = cfg, cfg.train
        self.train_sources = train_sources
        device = resolve_device(cfg.run.device) if device is None else torch.device(device)
        self.info: DistInfo = init_distributed(device)
        self.device = local_device(device, self.info)
        self.seed = cfg.run.seed
        torch.manual_seed(self.seed)
        self.model = build_model(cfg.model).to(
            self.device, memory_format=weight_layout(self.device)
        )
        self.out_dir = out_dir
        self.ckpt_dir = out_dir / "checkpoints"
        if self.info.is_main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        self._set_up_data(train_images, val_images, noise)
        self.loss_fn = make_loss(self.tc.loss, self.tc.detail_weight, self.tc.transfer_weight)
        if self.tc.objective in (
            "supervised",
            "fitted",
        ):  # fitted: clean = the denoised scans (pipeline.adapt)
            self.objective = supervised_objective(self.loss_fn, self.tc.loss_weighting)
        else:
            self.objective = make_objective(self.tc.objective, self.tc.self_supervised)
        self.optimizer = make_optimizer(self.model.parameters(), self.tc)
        self.scheduler = make_scheduler(self.optimizer, self.tc)
        self.state = new_state()
        self.start_epoch = 0
        if self.tc.init_from is not None:
            init_weights(self.tc.init_from, cfg, self.model)
        if self.tc.resume is not None:
            self.start_epoch, self.state = resume_training(
                self.tc.resume, cfg, self.model, self.optimizer, self.scheduler
            )
        self.net: nn.Module = self.model
        if self.info.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.use_amp = self.tc.amp and self.device.type == "cuda"
        self.multiple = int(getattr(self.model, "size_multiple", 1))
        self.started = time.perf_counter()

    def _set_up_data(
        self, train_images: list[np.ndarray], val_images: list[np.ndarray], noise: NoiseModel
    ) -> None:
        """The training pairs, their sampler and loader, and the fixed noisy validation images."""
        data_cfg = self.cfg.data
        sources = self.train_sources
        if data_cfg.train_scales != [1.0]:
            train_images = at_scales(train_images, data_cfg.train_scales)
            sources = sources and [s for s in sources for _ in data_cfg.train_scales]
        counts = patch_counts(
            [image.shape for image in train_images],
            data_cfg.patches_per_image,
            data_cfg.patch_sampling,
            sources,
        )
        self.data = NoisyPairs(
            train_images,
            noise,
            self.seed,
            data_cfg.patch_size,
            data_cfg.patches_per_image,
            data_cfg.min_patch_std,
            data_cfg.augment,
            self.cfg.noise.fresh_each_epoch,
            counts,
            ScanAugment(**data_cfg.scan_augment.model_dump()),
        )
        self.sampler = DistributedSampler(
            self.data,
            num_replicas=self.info.world,
            rank=self.info.rank,
            shuffle=True,
            seed=self.seed,
        )
        self.loader = DataLoader(
            self.data,
            batch_size=self.tc.batch_size,
            sampler=self.sampler,
            num_workers=self.tc.workers,
            pin_memory=self.device.type == "cuda",
        )  # workers start anew each epoch, so they see the epoch set in train_epoch
        self.val_images = val_images
        self.val_noisy = add_noise(val_images, noise, self.seed, "val")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output, padded to its size multiple and cropped back.

        Sub-images may not fit the size multiple.
        """
        padded, (h, w) = pad_to_multiple(x, self.multiple)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            return self.net(padded).float()[..., :h, :w]

    def train_epoch(self, epoch: int, label: str = "") -> float:
        """One pass over this rank's shard of the pairs, then a schedule step.

        Returns the mean loss over all ranks.
        """
        self.sampler.set_epoch(epoch)
        self.data.set_epoch(epoch)
        self.net.train()
        total, count = 0.0, 0
        bar = tqdm(
            self.loader,
            desc=label,
            disable=not (self.tc.progress and self.info.is_main),
            leave=False,
        )
        for step, (noisy, clean) in enumerate(bar):
            noisy, clean = noisy.to(self.device), clean.to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.objective(
                self.forward, noisy, clean, step_generator(self.seed, epoch, step)
            )
            loss.backward()
            if self.tc.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.grad_clip)
            self.optimizer.step()
            total += loss.item() * len(noisy)
            count += len(noisy)
            bar.set_postfix(loss=f"{total / count:.4f}")
        bar.close()
        if self.scheduler is not None:
            self.scheduler.step()
        return _mean_across_ranks(total, count, self.device, self.info)

    def out_of_time(self) -> bool:
        """True when the time budget is spent; under torchrun rank 0's clock decides for all."""
        over = past_budget(self.tc, time.perf_counter() - self.started)
        if self.tc.max_train_seconds and self.info.world > 1:
            over = bool(_broadcast(float(over), 0.0, self.device, self.info)[0])
        return over

    def validate_epoch(self, epoch: int, out_of_time: bool) -> Validation:
        """Validation when this epoch is due for it.

        Rank 0 computes; every rank gets the numbers.
        """
        if not due_for_validation(epoch, self.tc, out_of_time):
            return Validation(False)
        loss = psnr = float("nan")
        if self.info.is_main:
            loss, psnr = validate(
                self.model,
                self.val_noisy,
                self.val_images,
                self.loss_fn,
                self.device,
                self.cfg.inference,
            )
        psnr, loss = _broadcast(psnr, loss, self.device, self.info)
        return Validation(True, loss, psnr)

    def record_epoch(self, epoch: int, train_loss: float, val: Validation, seconds: float) -> bool:
        """Append the epoch's log row to the training state and update the best epoch.

        True when it is the best.
        """
        self.state["log"].append(
            {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "val_loss": val.loss,
                "val_psnr": val.psnr,
                "lr": self.optimizer.param_groups[0]["lr"],
                "seconds": seconds,
                "samples_per_second": len(self.data) / seconds,
            }
        )
        return record_validation(self.state, val.ran, val.psnr)

    def write_checkpoints(self, epochs: int, best: bool) -> None:
        """Rank 0: ``last.pt`` after `epochs` epochs, ``best.pt`` too when `best`, and the log."""
        if not self.info.is_main:
            return
        ckpt = build_checkpoint(
            self.model,
            self.cfg,
            epoch=epochs,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            state=self.state,
        )
        save_checkpoint(ckpt, self.ckpt_dir / "last.pt")
        if best:
            save_checkpoint(ckpt, self.ckpt_dir / "best.pt")
        write_log(self.state["log"], self.out_dir / "train_log.csv")

    def should_stop(self, out_of_time: bool) -> bool:
        """True when the patience is exhausted or the time budget spent."""
        return patience_exhausted(self.state, self.tc) or out_of_time

    def run_epoch(self, epoch: int) -> bool:
        """Train, validate, record and checkpoint epoch `epoch` (0-based).

        True when training stops after it.
        """
        t0 = time.perf_counter()
        label = epoch_label(epoch, self.tc, t0 - self.started)
        train_loss = self.train_epoch(epoch, label)
        out_of_time = self.out_of_time()
        val = self.validate_epoch(epoch, out_of_time)
        seconds = time.perf_counter() - t0
        improved = self.record_epoch(epoch, train_loss, val, seconds)
        self.write_checkpoints(epoch + 1, improved)
        if self.info.is_main:
            if not self.val_images:
                val_words = ""
            else:
                val_words = (
                    f", val loss {val.loss:.4f}, val PSNR {val.psnr:.2f} dB"
                    if val.ran
                    else ", not validated"
                )
            log.info("%s: train loss %.4f%s (%.1f s)", label, train_loss, val_words, seconds)
        return self.should_stop(out_of_time)

    def fit(self) -> TrainResult:
        """Run the epochs from the start (or resumed) epoch until the last or a stop.

        Then :meth:`finish`.
        """
        self.started = time.perf_counter()
        stopped_early = False
        for epoch in range(self.start_epoch, self.tc.epochs):
            if self.run_epoch(epoch):
                stopped_early = True
                break
        self.finish()
        return TrainResult(
            self.ckpt_dir / "best.pt",
            self.ckpt_dir / "last.pt",
            self.state["log"],
            self.model,
            stopped_early,
        )

    def finish(self) -> None:
        """Write the checkpoints, even when no epoch ran.

        Then the model holds ``best.pt``'s weights on every rank.
        """
        if self.info.is_main and not (self.ckpt_dir / "last.pt").exists():
            self.write_checkpoints(self.start_epoch, True)
        if self.info.world > 1:
            dist.barrier()
        self.model.load_state_dict(
            read_checkpoint(self.ckpt_dir / "best.pt", "best checkpoint")["model_state"]
        )


def train(
    cfg: Config,
    train_images: list[np.ndarray],
    val_images: list[np.ndarray],
    noise: NoiseModel,
    out_dir: Path,
    device: str | torch.device | None = None,
    train_sources: list[str] | None = None,
) -> TrainResult:
    """Train the configured model into `out_dir`.

    `train_sources` are the training images' sources (for ``data.patch_sampling:
    by_source``). Writes ``checkpoints/{last,best}.pt`` and ``train_log.csv``.
    """
    return Trainer(cfg, train_images, val_images, noise, out_dir, device, train_sources).fit()


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
