"""MONAI transforms that denoise radiographs with a trained model, for research pipelines.

``Denoise`` (arrays) and ``Denoised`` (dictionaries) fit in a ``Compose`` after
``LoadImage``/``LoadImaged``::

    from monai.data import PILReader, PydicomReader
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged
    from pipeline.monai import Denoised

    chain = Compose([
        LoadImaged("image", reader=PydicomReader(prune_metadata=False, force=True)),
        EnsureChannelFirstd("image"),
        Denoised("image"),  # the shipped model; model="runs/.../best.pt" for another
    ])

Contract: the input is channel-first (C, spatial...) with two spatial axes; each channel is
denoised alone. The output has the input's type (MetaTensor, tensor or numpy array), dtype,
device, shape, value range and meta data. To reach the model's [0, 1], high = bright, the
values are mapped over the range the pipeline's own readers use (:class:`UnitRange`):
DICOM tags kept by MONAI's ``PydicomReader(prune_metadata=False)`` (BitsStored through the
rescale; MONOCHROME1 inverted), else the PIL mode of a PNG (8 or 16 bits), else an integer
dtype's full range, else values already in [0, 1]; ``value_range=(low, high)`` overrides it.
MONAI's readers put columns first (W, H); the model was trained on rows first, so with
``columns_first=True`` (the default) the image is transposed to (H, W) for the network and
back, which makes the result equal to ``denoise apply``'s on the same file.

The model is loaded once per transform; images larger than ``tile_size`` go through MONAI's
sliding window (:class:`~pipeline.inference.ModelDenoiser`), so memory follows the image.
:class:`TileInferer` is the same rule as a MONAI inferer, for bundles (:mod:`pipeline.bundle`).
"""

from pipeline.monai.reader import ScanReader
from pipeline.monai.transforms import Denoise, Denoised, TileInferer
from pipeline.monai.value_range import (
    UNIT_RANGE_KEY,
    FromUnitRange,
    FromUnitRanged,
    ToUnitRange,
    ToUnitRanged,
    UnitRange,
)

__all__ = [
    "UNIT_RANGE_KEY",
    "Denoise",
    "Denoised",
    "FromUnitRange",
    "FromUnitRanged",
    "ScanReader",
    "TileInferer",
    "ToUnitRange",
    "ToUnitRanged",
    "UnitRange",
]
