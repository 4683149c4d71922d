"""DnCNN (Zhang et al. 2017): a plain conv stack that predicts the noise (residual learning)."""

from __future__ import annotations

import torch
from torch import nn


class DnCNN(nn.Module):
    """`depth` 3x3 conv layers of `features` channels with ReLU; no batch norm.

    With ``residual=True`` the network predicts the noise and the output is the input minus
    it, clamped to [0, 1]. Batch norm is left out: with residual learning it is not needed
    for convergence, and it makes patch statistics differ from whole-image statistics.
    """

    size_multiple = 1
    fixed_size = None

    def __init__(self, depth: int = 17, features: int = 64, residual: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, features, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(features, features, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(features, 1, 3, padding=1))
        self.body = nn.Sequential(*layers)
        self.residual = residual
        for layer in layers:  # He initialisation: torch's default shrinks the signal ~3x per layer
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)
        if residual:  # start as the identity: the predicted noise is zero until trained
            nn.init.zeros_(layers[-1].weight)
            nn.init.zeros_(layers[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise `x` (N, 1, H, W) in [0, 1]; the output is clamped to [0, 1]."""
        out = self.body(x)
        out = x - out if self.residual else out
        return out.clamp(0.0, 1.0)
