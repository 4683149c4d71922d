r"""DICOM: read radiographs into the pipeline's convention; write results as a derived series.

Reading (see ``shared/reference/dicom.md``): stored values -> modality LUT (rescale slope
and intercept, or a Modality LUT Sequence) -> normalised over the *full stored range*
(BitsStored and PixelRepresentation, e.g. 12 bits -> [0, 4095], mapped through the
modality LUT) -> MONOCHROME1 inverted so that high = bright. VOI LUT and window tags are a
display transform: they are not applied, only kept for the writer. For DICOM images
``ImageMeta.value_min``/``value_max`` are therefore *modality* values (equal to stored
values when there is no modality LUT). pydicom's warnings never reach a message (they
quote header values), and a compressed frame cut short is refused: see
:mod:`pipeline.io.dicom_guard`.

Writing: a new derived instance in a new series (PS3.3 C.7.6.1.1.3): new Series and SOP
Instance UIDs, Patient and Study modules kept, ImageType DERIVED\SECONDARY,
DerivationDescription and SourceImageSequence, stored values on the source's scale (so the
rescale and window tags stay valid), MONOCHROME1 written inverted back, Explicit VR Little
Endian (a big-endian source's word values swapped), never compressed. Share one
:class:`DerivedSeries` across all files of a run.
"""

from pipeline.io.dicom.derived import DerivedSeries, write_dicom
from pipeline.io.dicom.modality import unit_range
from pipeline.io.dicom.read import read_dicom

__all__ = ["DerivedSeries", "read_dicom", "unit_range", "write_dicom"]
