"""Training losses: the per-pixel losses by name, the detail penalty and noise weighting."""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.metrics import DETAIL_SIGMA, detail_highpass
from pipeline.selfsupervised import Objective
from pipeline.transfer_loss import transfer_penalty


def make_loss(name: str, detail_weight: float = 0.0, transfer_weight: float = 0.0):
    """Loss function by name: bce, mse, l1, or ssim_mix (0.84·(1−SSIM) + 0.16·L1, Zhao et al. 2017).

    With `detail_weight` > 0 the loss adds that weight times :func:`detail_slope` squared
    (mean over the samples): a penalty on erasing the clean image's fine detail. With
    `transfer_weight` > 0 it adds that weight times
    :func:`pipeline.transfer_loss.transfer_penalty`: content lost at 0.1-0.2 cycles/pixel.
    """
    base = _base_loss(name)
    terms = [
        (weight, term)
        for weight, term in (
            (detail_weight, lambda out, target: detail_slope(out, target).square().mean()),
            (transfer_weight, transfer_penalty),
        )
        if weight > 0
    ]
    if not terms:
        return base
    return lambda out, target: (
        base(out, target) + sum(weight * term(out, target) for weight, term in terms)
    )


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
"""detail_slope: added to each sample's detail variance.

So near-flat patches give slopes near 0, not noise.
"""


def detail_slope(out: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Per sample (N,): the slope of the error regressed on the clean image's fine detail.

    The error is out − clean.

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
    """The (1, 1, k, k) kernel of scipy's Laplacian of Gaussian.

    At :data:`pipeline.metrics.DETAIL_SIGMA`.
    """
    radius = int(4 * DETAIL_SIGMA + 0.5)  # scipy's default truncation at 4 sigma
    impulse = np.zeros((2 * radius + 1, 2 * radius + 1))
    impulse[radius, radius] = 1.0
    return torch.as_tensor(detail_highpass(impulse), dtype=dtype, device=device)[None, None]


NOISE_STD_FLOOR = 0.01
"""inverse_noise weighting: noise std below this (about 2.5/255) counts as this.

So near-clean samples do not dominate.
"""


def weighted_loss(
    loss_fn, out: torch.Tensor, clean: torch.Tensor, noisy: torch.Tensor, weighting: str
) -> torch.Tensor:
    """The batch loss; with ``inverse_noise`` a weighted mean of per-sample losses.

    Weights are 1 / max(std(noisy − clean), NOISE_STD_FLOOR) per sample, normalised to mean 1
    in the batch. An L1 or MSE loss grows with the noise level, so without weights a blind
    model's training is dominated by its noisiest samples and it under-serves clean scans.
    """
    if weighting == "none":
        return loss_fn(out, clean)
    losses = torch.stack([loss_fn(out[i : i + 1], clean[i : i + 1]) for i in range(len(out))])
    std = (noisy - clean).flatten(1).std(dim=1).clamp_min(NOISE_STD_FLOOR)
    weights = 1.0 / std
    return (losses * (weights / weights.mean())).mean()


def supervised_objective(loss_fn, weighting: str) -> Objective:
    """The supervised objective: the (weighted) loss between output and clean batch."""
    return lambda forward, noisy, clean, generator: weighted_loss(
        loss_fn, forward(noisy), clean, noisy, weighting
    )
