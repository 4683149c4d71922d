"""Self-supervised training objectives: learn to denoise from noisy images alone.

An objective maps (forward, noisy batch, clean batch or None, generator) to a scalar loss,
where ``forward`` is the network (with mixed precision when the trainer uses it). The
supervised objective lives in :mod:`pipeline.train`; the two here never look at ``clean``.

``blindspot``: Noise2Void (Krull et al. 2019) with a structured mask (structN2V, Broaddus
    et al. 2020). A random fraction of pixels are blind-spot centres. Each centre and a box
    of ``span`` pixels around it along each axis are hidden: their values are replaced by the
    mean of the visible pixels of a slightly larger window. The loss is the squared error
    between the prediction and the noisy value at the centres only. The prediction at a
    centre then cannot see the centre's noise nor that of the box, so as long as the box
    covers the noise's correlation length, the best prediction is the clean value.
    Replacing by a local mean of visible pixels (N2V2, Höck et al. 2022) rather than by one
    random neighbour keeps hidden values out of the input entirely.

``subsample``: Neighbor2Neighbor (Huang et al. 2021) on pixel-shuffle down-sampled
    cells as in AP-BSN (Lee et al. 2022). The image is cut into ``stride`` x ``stride``
    cells; in each cell two pixels at least ``gap`` apart (along some axis) are drawn, giving
    two sub-images whose noise is independent when ``gap`` exceeds the correlation length,
    while their clean content is nearly the same. The network maps one sub-image to the
    other, plus Neighbor2Neighbor's regulariser, which ties it to its full-resolution output
    (computed without gradient). ``stride`` 2, ``gap`` 1 is Neighbor2Neighbor's own sampler
    (which takes only horizontal and vertical neighbours; here diagonal ones too).

Neither method is taken from a library: deepinv (its Neighbor2Neighbor and SplittingLoss)
and CAREamics (structN2V masking) would each have brought another torch or torchvision into
the environment; the properties that define the methods are tested in
tests/test_selfsupervised.py (no gradient from the hidden pixels to the centre's prediction;
the sub-sampler's pairs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import product

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.config import SelfSupervisedConfig

Forward = Callable[[torch.Tensor], torch.Tensor]

#: Self-supervised objectives by name (``train.objective``); ``supervised`` is the default.
METHODS = ("blindspot", "subsample")


def step_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """A torch Generator for one training step, fixed by (seed, epoch, step).

    So resumes repeat it.
    """
    state = np.random.SeedSequence([seed, 4, epoch, step]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


# --------------------------------------------------------------------------- blind spot


@dataclass(frozen=True)
class BlindSpot:
    """Noise2Void with a structured (box) mask; see the module docstring.

    fraction: share of pixels that are blind-spot centres (the loss is taken there).
    span: half-widths (rows, columns) of the hidden box around each centre; (0, 0) is
        plain Noise2Void, (0, k) structN2V's horizontal line.
    margin: the replacement mean is taken over visible pixels of a window ``margin`` wider
        than the box on each side.
    """

    fraction: float = 0.01
    span: tuple[int, int] = (2, 2)
    margin: int = 2

    def masks(
        self, shape: tuple[int, ...], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(centres, hidden): boolean (N, 1, H, W) masks.

        Every batch item has at least one centre.
        """
        n, c, h, w = shape
        centres = torch.rand((n, c, h, w), generator=generator) < self.fraction
        empty = ~centres.flatten(1).any(dim=1)
        if empty.any():  # a small patch may draw no centre: give it one
            where = torch.randint(0, h * w, (int(empty.sum()),), generator=generator)
            flat = centres.view(n, -1)
            flat[empty.nonzero().flatten(), where] = True
        sy, sx = self.span
        hidden = (
            F.max_pool2d(centres.float(), (2 * sy + 1, 2 * sx + 1), stride=1, padding=(sy, sx)) > 0
        )
        return centres, hidden

    def hide(self, noisy: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """`noisy` with hidden pixels replaced by the mean of the visible pixels around them."""
        visible = (~hidden).to(noisy.dtype)
        ky, kx = 2 * (self.span[0] + self.margin) + 1, 2 * (self.span[1] + self.margin) + 1
        pad = (ky // 2, kx // 2)
        total = F.avg_pool2d(
            noisy * visible, (ky, kx), stride=1, padding=pad, count_include_pad=True
        )
        count = F.avg_pool2d(visible, (ky, kx), stride=1, padding=pad, count_include_pad=True)
        fallback = (noisy * visible).flatten(1).sum(1) / visible.flatten(1).sum(1).clamp_min(1)
        local = torch.where(count > 0, total / count.clamp_min(1e-12), fallback.view(-1, 1, 1, 1))
        return torch.where(hidden, local, noisy)

    def __call__(
        self,
        forward: Forward,
        noisy: torch.Tensor,
        clean: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """The loss of one batch: squared error at the hidden centres of the masked input."""
        centres, hidden = self.masks(tuple(noisy.shape), generator)
        centres, hidden = centres.to(noisy.device), hidden.to(noisy.device)
        out = forward(self.hide(noisy, hidden))
        return ((out - noisy) ** 2)[centres].mean()


# --------------------------------------------------------------------------- sub-sampling


def cell_pairs(stride: int, gap: int) -> list[tuple[int, int]]:
    """Ordered pairs (a, b) of positions in a stride x stride cell at least `gap` apart.

    A position is row * stride + col; the gap is along some axis.
    """
    cells = list(product(range(stride), range(stride)))
    return [
        (ia * stride + ja, ib * stride + jb)
        for (ia, ja), (ib, jb) in product(cells, cells)
        if max(abs(ia - ib), abs(ja - jb)) >= gap
    ]


@dataclass(frozen=True)
class Subsample:
    """Neighbor2Neighbor on pixel-shuffle down-sampled cells; see the module docstring.

    stride: side of the cells (the sub-images are `stride` times smaller along each axis).
    gap: least distance (pixels, along some axis) between the two pixels drawn from a cell.
    gamma: weight of Neighbor2Neighbor's regulariser.
    """

    stride: int = 4
    gap: int = 3
    gamma: float = 1.0

    def __post_init__(self) -> None:
        if not cell_pairs(self.stride, self.gap):
            raise ValueError(
                f"no two pixels of a {self.stride}x{self.stride} cell are {self.gap} apart; "
                "lower gap or raise stride"
            )

    def pair_indices(
        self, shape: tuple[int, ...], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices (N, 1, H/s, W/s) into each cell (row * stride + col) of the two sub-images."""
        n, c, h, w = shape
        s = self.stride
        pairs = torch.tensor(cell_pairs(s, self.gap))
        choice = torch.randint(0, len(pairs), (n, c, h // s, w // s), generator=generator)
        return pairs[choice, 0], pairs[choice, 1]

    def sub_image(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The sub-image taking, from each cell of `x`, the pixel `index` points at."""
        s = self.stride
        n, c, h, w = x.shape
        cells = F.pixel_unshuffle(x[..., : h - h % s, : w - w % s], s)  # (N, C*s*s, H/s, W/s)
        cells = cells.view(n, c, s * s, h // s, w // s)
        return torch.gather(cells, 2, index.to(x.device).unsqueeze(2)).squeeze(2)

    def __call__(
        self,
        forward: Forward,
        noisy: torch.Tensor,
        clean: torch.Tensor | None,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """The loss of one batch: reconstruction between sub-images plus gamma times consistency."""
        first, second = self.pair_indices(tuple(noisy.shape), generator)
        with torch.no_grad():
            full = forward(noisy)
        source, target = self.sub_image(noisy, first), self.sub_image(noisy, second)
        out = forward(source)
        reconstruction = F.mse_loss(out, target)
        consistency = F.mse_loss(
            out - target, self.sub_image(full, first) - self.sub_image(full, second)
        )
        return reconstruction + self.gamma * consistency


Objective = Callable[[Forward, torch.Tensor, "torch.Tensor | None", torch.Generator], torch.Tensor]


def make_objective(name: str, cfg: SelfSupervisedConfig) -> Objective:
    """The self-supervised objective `name` (one of :data:`METHODS`) with its settings."""
    if name == "blindspot":
        return BlindSpot(cfg.mask_fraction, (cfg.span[0], cfg.span[1]), cfg.margin)
    if name == "subsample":
        return Subsample(cfg.stride, cfg.gap, cfg.gamma)
    raise ValueError(
        f"unknown self-supervised objective {name!r}; choose one of {', '.join(METHODS)}"
    )
