"""When to validate, which epoch is the best so far, and when training stops.

The training state saved in checkpoints (``state``) is a dict: ``best_val_psnr`` (the best
validation PSNR so far), ``bad_epochs`` (validations since it improved) and ``log`` (the
per-epoch rows of :mod:`pipeline.train.history`).
"""

from __future__ import annotations

import math
from typing import Any

from pipeline.config import TrainConfig


def new_state() -> dict[str, Any]:
    """The training state before the first epoch."""
    return {"best_val_psnr": -math.inf, "bad_epochs": 0, "log": []}


def due_for_validation(epoch: int, tc: TrainConfig, out_of_time: bool) -> bool:
    """True when epoch `epoch` (0-based) validates.

    Every ``validate_every``, the last, and the one out of time.
    """
    return (epoch + 1) % tc.validate_every == 0 or epoch + 1 == tc.epochs or out_of_time


def record_validation(state: dict[str, Any], validated: bool, val_psnr: float) -> bool:
    """Update `state`'s best PSNR and patience count; True when this epoch is the new best.

    An epoch that did not validate changes nothing (False). A NaN PSNR (no validation
    images) counts as an improvement, so ``best.pt`` follows ``last.pt``.
    """
    if not validated:
        return False
    improved = math.isnan(val_psnr) or val_psnr > state["best_val_psnr"]
    if improved:
        state["best_val_psnr"] = val_psnr if not math.isnan(val_psnr) else state["best_val_psnr"]
        state["bad_epochs"] = 0
    else:
        state["bad_epochs"] += 1
    return improved


def past_budget(tc: TrainConfig, elapsed: float) -> bool:
    """True when ``max_train_seconds`` is set and `elapsed` seconds exceed it."""
    return bool(tc.max_train_seconds) and elapsed > tc.max_train_seconds


def patience_exhausted(state: dict[str, Any], tc: TrainConfig) -> bool:
    """True when ``early_stop_patience`` is set and that many validations did not improve."""
    return bool(tc.early_stop_patience) and state["bad_epochs"] >= tc.early_stop_patience


def epoch_label(epoch: int, tc: TrainConfig, elapsed: float) -> str:
    """``epoch 3/30``, or with a time budget ``epoch 3 (40 s of 120 s left)``.

    The budget ends it.
    """
    if tc.max_train_seconds:
        left = max(tc.max_train_seconds - elapsed, 0.0)
        return f"epoch {epoch + 1} ({left:.0f} s of {tc.max_train_seconds:.0f} s left)"
    return f"epoch {epoch + 1}/{tc.epochs}"
