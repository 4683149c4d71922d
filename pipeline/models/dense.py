"""The tutorial's dense autoencoder: 784 -> latent (ReLU) -> 784 (sigmoid)."""

from __future__ import annotations

import torch
from torch import nn


class DenseAutoencoder(nn.Module):
    """Fully connected autoencoder on flattened square images of one fixed size."""

    size_multiple = 1

    def __init__(self, image_size: int = 28, latent: int = 64) -> None:
        super().__init__()
        self.fixed_size = image_size
        pixels = image_size * image_size
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, latent), nn.ReLU())
        self.decoder = nn.Sequential(nn.Linear(latent, pixels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise `x` (N, 1, H, W) of the training size; ValueError for another size."""
        n, _, h, w = x.shape
        if (h, w) != (self.fixed_size, self.fixed_size):
            raise ValueError(
                f"the dense model takes exactly {self.fixed_size}x{self.fixed_size} images (its "
                f"training size); got {h}x{w}. Use a convolutional model (conv, unet, dncnn) for "
                "other sizes."
            )
        return self.decoder(self.encoder(x)).view(n, 1, h, w)
