"""Timing tools: medians of timed runs, multiply-accumulates per pixel, matmul peak, the speed test
image."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pipeline.ingest.folder import load_folder, resize_image
from pipeline.noise import GaussianNoise, noise_rng


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CPU = torch.device("cpu")


def time_call(
    fn: Callable[[], Any], repeats: int, slow_seconds: float, device: torch.device = CPU
) -> dict[str, Any]:
    """Median seconds of `repeats` runs after one warm-up (a slow warm-up counts as a run)."""

    def once() -> float:
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        return time.perf_counter() - t0

    warm = once()
    runs = [warm] if warm > slow_seconds else []
    while len(runs) < max(repeats, 1):
        runs.append(once())
    return {
        "median_s": statistics.median(runs),
        "runs_s": runs,
        "warmup_s": warm,
        "warmup_counted": warm > slow_seconds,
    }


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass, counted by hooks on
    Conv2d/ConvTranspose2d/Linear."""
    total = 0

    def conv_hook(
        module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> None:
        nonlocal total
        kernel = module.kernel_size[0] * module.kernel_size[1]
        if isinstance(module, nn.ConvTranspose2d):
            total += inputs[0].numel() * (module.out_channels // module.groups) * kernel
        else:
            total += output.numel() * (module.in_channels // module.groups) * kernel

    def linear_hook(
        module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
    ) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def macs_per_pixel(model: nn.Module, side: int) -> float:
    """MACs per output pixel on a side x side image (the fixed size for dense models)."""
    side = getattr(model, "fixed_size", None) or side
    device = next(model.parameters()).device
    return count_macs(model, torch.zeros(1, 1, side, side, device=device)) / side**2


def matmul_peak(n: int, device: torch.device, repeats: int) -> dict[str, Any]:
    """Float32 n x n matmul throughput, GFLOP/s = 2 n^3 / t (the machine's practical peak)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    timing = time_call(lambda: torch.mm(a, b), max(repeats, 5), math.inf, device)
    return {"n": n, "gflops": 2 * n**3 / timing["median_s"] / 1e9, **timing}


@lru_cache(maxsize=8)
def speed_image(side: int, seed: int, folder: Path) -> tuple[np.ndarray, float]:
    """A noisy (sigma 25/255) radiograph of `folder` resized to side x side (synthetic without
    one)."""
    sigma = 25 / 255
    found = load_folder(folder, limit=1)[0] if folder.is_dir() else []
    if found:
        clean = resize_image(found[0], side).pixels
    else:
        y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
        clean = (0.3 + 0.4 * np.exp(-((x - 0.5) ** 2 + (y - 0.45) ** 2) / 0.08)).astype(np.float32)
    return GaussianNoise(sigma)(clean, noise_rng(seed, "test", 0, 0)), sigma
