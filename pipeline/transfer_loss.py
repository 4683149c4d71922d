"""A training penalty on content lost in one band of spatial frequency (torch).

It is the detail kept of :mod:`pipeline.detail` (AAPM TG-233's task transfer function on the
actual content) computed on a training batch, so the loss can ask a denoiser to keep what the
acceptance measures: for the batch's clean patches ``c`` and outputs ``o`` (each mean-subtracted
and Hann-windowed), pooled over the batch,

    T = sum over the band of Re(F(o) * conj(F(c))) / sum over the band of |F(c)|^2

and the penalty is ``(1 - T)^2`` where T < 1 (none where the band is kept or sharpened). Noise
left in the output is independent of the clean patch, so it does not raise T on average: the
penalty rewards keeping content, not keeping noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from pipeline.detail import ACCEPTANCE_BAND


def _band_weights(
    height: int, width: int, band: Sequence[float], device: torch.device
) -> torch.Tensor:
    """Weight of each rfft2 coefficient of an (height, width) image inside `band` (0 outside).

    Coefficients stand for themselves and their mirror image (weight 2), except the first and,
    for even widths, the last column (weight 1), as in :mod:`pipeline.detail`.
    """
    fy = torch.fft.fftfreq(height, device=device)[:, None]
    fx = torch.fft.rfftfreq(width, device=device)[None, :]
    radius = torch.hypot(fy, fx)
    inside = (radius >= band[0]) & (radius < band[1])
    weights = torch.full((height, width // 2 + 1), 2.0, device=device)
    weights[:, 0] = 1.0
    if width % 2 == 0:
        weights[:, -1] = 1.0
    return weights * inside


def _windowed_fft(batch: torch.Tensor) -> torch.Tensor:
    """rfft2 of each image of (N, C, H, W), mean-subtracted and 2-D Hann-windowed (float32)."""
    height, width = batch.shape[-2:]
    window = (
        torch.hann_window(height, periodic=False, device=batch.device)[:, None]
        * torch.hann_window(width, periodic=False, device=batch.device)[None, :]
    )
    data = batch.float()
    return torch.fft.rfft2((data - data.mean(dim=(-2, -1), keepdim=True)) * window)


def batch_transfer(
    out: torch.Tensor, clean: torch.Tensor, band: Sequence[float] = ACCEPTANCE_BAND
) -> torch.Tensor:
    """Detail kept T in `band` (cycles/pixel), pooled over the batch (a 0-d tensor)."""
    if out.shape != clean.shape:
        raise ValueError(f"shapes differ: output {tuple(out.shape)}, clean {tuple(clean.shape)}")
    weights = _band_weights(*clean.shape[-2:], band, clean.device)
    f_clean, f_out = _windowed_fft(clean), _windowed_fft(out)
    cross = ((f_out * f_clean.conj()).real * weights).sum()
    power = (f_clean.abs().square() * weights).sum()
    return cross / power.clamp_min(torch.finfo(power.dtype).tiny)


def transfer_penalty(
    out: torch.Tensor, clean: torch.Tensor, band: Sequence[float] = ACCEPTANCE_BAND
) -> torch.Tensor:
    """``(1 - T)^2`` where the batch's detail kept T in `band` is below 1, else 0."""
    return (1.0 - batch_transfer(out, clean, band)).clamp_min(0.0).square()
