"""Inference: a trained model on arrays, in batched tiles for large images, on a chosen device.

A :class:`ModelDenoiser` maps one float32 (H, W) image in [0, 1] to its denoised version,
the same interface as the classical baselines (:mod:`pipeline.baselines`). Images larger
than ``tile_size`` are denoised in overlapping tiles blended with Gaussian weights, the
sliding window of MONAI's ``SlidingWindowInferer`` (same tile positions, weights and
blending order, so the same output up to float rounding of differently batched tiles), done
one band of tile rows at a time: besides the image and its output (which may be the same
array) only a band of a few tile rows is held, so memory grows with the image alone, not
with the network's activations over it. Whole folders are :mod:`pipeline.apply`;
checkpoints are :mod:`pipeline.checkpoint`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.data.utils import compute_importance_map, dense_patch_slices
from torch import nn

from pipeline.checkpoint import LoadedModel, load_model
from pipeline.config import InferenceConfig
from pipeline.denoiser import Kind, NoiseFact
from pipeline.distributed import local_device
from pipeline.errors import PipelineError
from pipeline.models import weight_layout

#: Settings used when none are given (tile, overlap, batch, device): the defaults of
#: :class:`pipeline.config.InferenceConfig`.
DEFAULT_INFERENCE = InferenceConfig()


def settings_from_options(options: Any) -> InferenceConfig:
    """The inference settings of a command's tile, overlap, batch and device options.

    The options are ``--tile-size``, ``--overlap``, ``--batch-size`` and ``--device``;
    ConfigError (one line naming each bad option) when they are invalid.
    """
    from pydantic import ValidationError

    from pipeline.errors import ConfigError

    values = {
        name: getattr(options, name) for name in ("tile_size", "overlap", "batch_size", "device")
    }
    try:
        return InferenceConfig.model_validate(values)
    except ValidationError as err:
        problems = [
            f"--{str(e['loc'][0]).replace('_', '-')} {e.get('input')!r}: {e['msg'].lower()}"
            for e in err.errors()
        ]
        raise ConfigError("; ".join(problems)) from None


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' → cuda when available, else cpu; 'cuda' without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise PipelineError(
            "device 'cuda' was asked for but torch sees no GPU here; use --device cpu"
        )
    return torch.device(name)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """`x` padded at the bottom and right to sides that are multiples of `multiple`; its (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def tile_positions(shape: tuple[int, int], tile: int, overlap: float) -> list[tuple[int, int]]:
    """Top-left corners of the tiles over an image of `shape` (each side >= `tile`), row-major.

    MONAI's own positions: ``dense_patch_slices`` with the scan interval of its
    ``SlidingWindowInferer`` (``int(tile * (1 - overlap))``, at least 1, or the tile when it
    spans the side); the last tile of a row or column ends exactly at the image's edge.
    """
    steps = [tile if tile == side else max(int(tile * (1 - overlap)), 1) for side in shape]
    return [
        (int(rows.start), int(cols.start))
        for rows, cols in dense_patch_slices(shape, (tile, tile), steps)
    ]


class _BandBlender:
    """Weighted sums of tile outputs over a band of rows, flushed as the rows become final.

    Rows above the next tile still to come get no more contributions: they are divided by
    their summed weights, clamped to [0, 1] and copied to the output, and the band moves down.
    The summed weights are added up at the flush, :data:`FLUSH_ROWS` rows at a time, from the
    tiles that cover the rows (in the order they came, as the outputs were summed).
    """

    #: Rows whose summed weights are computed at a time (a small temporary, not a band).
    FLUSH_ROWS = 64

    def __init__(self, out: torch.Tensor, weights: torch.Tensor, height: int) -> None:
        self.out = out
        self.weights = weights
        self.top = 0  # first row of the image held in the band
        self.tiles: list[
            tuple[int, int]
        ] = []  # (top, left) of the tiles added that reach into the band
        self.sum = torch.zeros((height, out.shape[-1]), dtype=torch.float32, device=weights.device)

    def add(self, tile: torch.Tensor, top: int, left: int) -> None:
        """Add one tile's output (already multiplied by the weights) at (top, left)."""
        self.sum[
            top - self.top : top - self.top + tile.shape[-2], left : left + tile.shape[-1]
        ] += tile
        self.tiles.append((top, left))

    def _weight_sum(self, start: int, end: int) -> torch.Tensor:
        """The summed weights of the image rows [start, end)."""
        total = torch.zeros(
            (end - start, self.sum.shape[-1]), dtype=torch.float32, device=self.sum.device
        )
        size = self.weights.shape[-1]
        for top, left in self.tiles:
            first, last = max(start, top), min(end, top + size)
            if first < last:
                total[first - start : last - start, left : left + size] += self.weights[
                    first - top : last - top
                ]
        return total

    def flush(self, end: int) -> None:
        """Write the image rows [top, end) to the output and drop them from the band."""
        n = end - self.top
        if n <= 0:
            return
        for start in range(self.top, end, self.FLUSH_ROWS):
            stop = min(start + self.FLUSH_ROWS, end)
            rows = self.sum[start - self.top : stop - self.top]
            self.out[start:stop] = (
                rows.div_(self._weight_sum(start, stop)).clamp_(0, 1).to(self.out.device)
            )
        kept = self.sum.shape[0] - n
        for row in range(0, kept, n):  # up by n rows, n at a time: no copy of the band
            self.sum[row : min(row + n, kept)] = self.sum[row + n : min(row + 2 * n, kept + n)]
        self.sum[kept:] = 0
        self.top = end
        self.tiles = [(top, left) for top, left in self.tiles if top + self.weights.shape[-2] > end]


class ModelDenoiser:
    """A trained network as a :class:`~pipeline.denoiser.Denoiser`.

    A float32 (H, W) image in, the denoised image out. The network is put in evaluation
    mode on the device, its convolution weights in
    :func:`~pipeline.models.weight_layout`.

    Blind: offered noise facts (``sigma``, ``psd``) are not used.

    Parameters
    ----------
    model: the network (see :mod:`pipeline.models`).
    settings: tiles, overlap, batch and device (default :data:`DEFAULT_INFERENCE`). Images
        with a side above ``tile_size`` go through a sliding window of that size (rounded up
        to the model's size multiple); None denoises whole images.
    device: where to run it when not ``settings.device`` (e.g. the training device).
    name: the method's name in result tables.
    """

    def __init__(
        self,
        model: nn.Module,
        settings: InferenceConfig = DEFAULT_INFERENCE,
        device: str | torch.device | None = None,
        name: str = "model",
    ) -> None:
        device = resolve_device(settings.device) if device is None else torch.device(device)
        self.model = model.eval().to(device, memory_format=weight_layout(device))
        self.device = device
        self.settings = settings
        self.multiple = int(getattr(model, "size_multiple", 1))
        self.fixed_size = getattr(model, "fixed_size", None)
        tile_size = settings.tile_size
        self.tile_size = (
            None if tile_size is None else int(np.ceil(tile_size / self.multiple) * self.multiple)
        )
        self.overlap = settings.overlap
        self.batch_size = settings.batch_size
        self.name = name
        self._weights: torch.Tensor | None = None

    def _tiled(self, shape: tuple[int, ...]) -> bool:
        """Whether an image of `shape` goes through the sliding window."""
        return (
            self.tile_size is not None
            and self.fixed_size is None
            and max(shape[-2:]) > self.tile_size
        )

    @torch.inference_mode()
    def denoise_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise a batch (N, 1, H, W) of one size; the result is on this denoiser's device."""
        if not self._tiled(x.shape):
            return self._forward_padded(x.to(self.device, torch.float32))
        out = torch.empty(x.shape, dtype=torch.float32, device=self.device)
        for image, target in zip(x[:, 0], out[:, 0]):
            self._sliding_window(image, target)
        return out

    def _forward_padded(self, x: torch.Tensor) -> torch.Tensor:
        padded, (h, w) = pad_to_multiple(x, self.multiple)
        return self.model(padded)[..., :h, :w]

    def _sliding_window(self, image: torch.Tensor, out: torch.Tensor) -> None:
        """Denoise one (H, W) image in Gaussian-blended tiles into `out` (may be `image` itself).

        Tiles are taken in row-major order, ``batch_size`` per forward pass. A side shorter
        than the tile is first padded (replicate, both ends) to the tile size.
        """
        tile = self.tile_size
        h, w = image.shape
        pad_h, pad_w = max(tile - h, 0), max(tile - w, 0)
        if pad_h or pad_w:
            padded = F.pad(
                image[None, None],
                (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2),
                mode="replicate",
            )[0, 0]
            result = torch.empty_like(padded, device=out.device)
            self._sliding_window(padded, result)
            out[:] = result[pad_h // 2 : pad_h // 2 + h, pad_w // 2 : pad_w // 2 + w]
            return
        if self._weights is None:
            self._weights = compute_importance_map(
                (tile, tile),
                mode="gaussian",
                sigma_scale=0.125,
                device=self.device,
                dtype=torch.float32,
            )
        positions = tile_positions((h, w), tile, self.overlap)
        batches = [
            positions[i : i + self.batch_size] for i in range(0, len(positions), self.batch_size)
        ]
        # the band spans from the first row of a batch's first tile row to the end of its last tile
        height = max(batch[-1][0] + tile - batch[0][0] for batch in batches)
        band = _BandBlender(out, self._weights, min(height, h))
        for index, batch in enumerate(batches):
            tiles = torch.stack(
                [image[top : top + tile, left : left + tile] for top, left in batch]
            )
            outputs = self._forward_padded(tiles[:, None].to(self.device, torch.float32))[:, 0]
            outputs *= self._weights
            for output, (top, left) in zip(outputs, batch):
                band.add(output, top, left)
            band.flush(batches[index + 1][0][0] if index + 1 < len(batches) else h)

    kind: Kind = "model"
    takes: tuple[NoiseFact, ...] = ()

    def __call__(
        self,
        pixels: np.ndarray,
        *,
        sigma: float | None = None,
        psd: np.ndarray | None = None,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """The denoised image (float32).

        Written into `out` when given, which may be `pixels` itself.
        """
        pixels = np.ascontiguousarray(pixels, np.float32)
        if out is not None and (
            out.shape != pixels.shape or out.dtype != np.float32 or not out.flags.c_contiguous
        ):
            raise ValueError(f"out must be a C-contiguous float32 array of shape {pixels.shape}")
        if not self._tiled(pixels.shape):
            result = self.denoise_tensor(torch.from_numpy(pixels)[None, None])[0, 0].cpu().numpy()
            if out is None:
                return result
            out[:] = result
            return out
        if out is None:
            out = np.empty_like(pixels)
        with torch.inference_mode():
            self._sliding_window(torch.from_numpy(pixels), torch.from_numpy(out))
        return out

    def denoise_many(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Denoise a list of images, batching consecutive images of the same shape."""
        out: list[np.ndarray] = []
        i = 0
        while i < len(images):
            shape = images[i].shape
            j = i
            while j < len(images) and j - i < self.batch_size and images[j].shape == shape:
                j += 1
            batch = torch.from_numpy(np.stack(images[i:j]).astype(np.float32))[:, None]
            out.extend(self.denoise_tensor(batch)[:, 0].cpu().numpy())
            i = j
        return out


def denoiser_from_checkpoint(
    model: str | Path | LoadedModel | None = None,
    settings: InferenceConfig = DEFAULT_INFERENCE,
) -> tuple[ModelDenoiser, LoadedModel]:
    """A checkpoint as a :class:`ModelDenoiser`.

    `model` is a file, a run folder, None for the shipped model, or a loaded one.

    `settings` decide tiles, batching and device; under torchrun with CUDA each worker
    takes its own GPU.
    """
    dev = local_device(resolve_device(settings.device))
    loaded = model if isinstance(model, LoadedModel) else load_model(model, dev)
    return ModelDenoiser(loaded.model, settings, dev, loaded.method_name), loaded
