"""Training: noisy/clean pairs drawn per epoch, validation, checkpoints, resume, DDP.

Reproducibility: initialisation comes from ``torch.manual_seed(seed)``; the data order from
torch's ``DistributedSampler`` seeded with (seed, epoch); noise, patch positions and
augmentation from :func:`pipeline.noise.noise_rng` keyed by (seed, epoch, sample index).
Nothing depends on hidden generator state, so resuming from ``last.pt`` continues exactly
where an uninterrupted run would be, and ``torchrun`` workers see disjoint shards.

Parts of the package
--------------------
:mod:`~pipeline.train.trainer` (:class:`~pipeline.train.trainer.Trainer` and :func:`train`),
:mod:`~pipeline.train.data` (the training pairs), :mod:`~pipeline.train.losses`,
:mod:`~pipeline.train.validation`, :mod:`~pipeline.train.stopping` (validation schedule,
best epoch, patience, time budget) and :mod:`~pipeline.train.history` (``train_log.csv``).
Checking a checkpoint to start from or resume is :mod:`pipeline.checkpoint`'s.
"""

from pipeline.train.data import NoisyPairs
from pipeline.train.history import LOG_FIELDS, best_val_psnr, read_log, write_log
from pipeline.train.losses import (
    NOISE_STD_FLOOR,
    detail_slope,
    make_loss,
    supervised_objective,
    weighted_loss,
)
from pipeline.train.trainer import Trainer, TrainResult, make_optimizer, make_scheduler, train
from pipeline.train.validation import validate

__all__ = [
    "LOG_FIELDS",
    "NOISE_STD_FLOOR",
    "NoisyPairs",
    "TrainResult",
    "Trainer",
    "best_val_psnr",
    "detail_slope",
    "make_loss",
    "make_optimizer",
    "make_scheduler",
    "read_log",
    "supervised_objective",
    "train",
    "validate",
    "weighted_loss",
    "write_log",
]
