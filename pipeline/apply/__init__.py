"""Whole folders: ``denoise apply -i IN -o OUT`` and :func:`apply_folder`.

Every supported image under ``IN`` is denoised into ``OUT``, mirroring ``IN``'s tree.

Outputs
-------
- Same format and bit depth as the input by default (what :mod:`pipeline.io` writes:
  DICOM -> a derived DICOM series, 16-bit PNG -> 16-bit PNG, JPEG -> PNG), or the format
  chosen with ``fmt``. ``x.jpg`` -> ``x.png``; a DICOM without a suffix gets ``.dcm``; when
  two inputs would get one output name (``x.jpg`` beside ``x.png``), the one whose suffix
  changes is named ``x_jpg.png``.
- A file with several frames (multi-frame DICOM, multi-page TIFF, 3-D NIfTI) becomes a
  folder ``<name>.frames/`` of ``frame_0000<suffix>``... files, except a NIfTI output,
  which is written back as one volume.
- DICOM outputs form one new derived series per source series: the SeriesInstanceUID is
  derived from the output folder's id (kept in ``OUT/.denoise-apply.json``) and the
  model's checksum, so resumed runs and every part of a split run share it, and a
  different model gives a different series.

Streaming and crash safety
--------------------------
A reader thread loads at most :data:`~pipeline.apply.stream.PREFETCH_FILES` files ahead of the
denoiser, images go through :class:`~pipeline.inference.ModelDenoiser` in tiles (denoised in place:
the output overwrites the decoded input array), and a writer thread estimates the output noise,
encodes and writes one file while the next is denoised
(:class:`~pipeline.apply.stream.WriteBehind`), so memory grows with neither the number of files nor
the network's activations over a large image. PNGs are written at zlib level 1 (the stored values
are the same as at any level). Each output is written to ``.<name>.partial-<pid>`` beside its final
name and renamed (``os.replace``) when complete: the final name only ever holds a complete file. A
rerun skips finished outputs (``overwrite`` redoes them) and deletes the temporary files a killed
run left.

Records
-------
``OUT/manifest.csv``: one row per finished input (:data:`~pipeline.apply.records.MANIFEST_COLUMNS`;
``input`` is the absolute source path, ``output`` is relative to ``OUT``; ``seconds`` covers
reading, denoising, noise estimates and writing; noise is
:func:`~pipeline.metrics.estimate_noise_sigma` on the central crop of at most
:data:`~pipeline.apply.files.NOISE_CROP` pixels a side, in [0, 1] units). Rows of earlier runs are
kept; a redone input's row is replaced. ``OUT/failures.csv`` lists this run's failed files with the
reason; the exit status is 1 when it is not empty. A report (``report.html``, ``report.md``,
``report_views/``) is written unless ``report=False``.

Scale-out
---------
The sorted file list is split disjointly: file ``i`` goes to part ``i % num_parts``.
Parts come from ``num_parts``/``part_id`` (independent jobs) or from the ``RANK`` and
``WORLD_SIZE`` variables that ``torchrun`` sets. Part ``K`` of a split run records its
files in ``manifest.part-K.csv`` and ``failures.part-K.csv``; they are merged into
``manifest.csv`` and ``failures.csv`` (:func:`merge_parts`)

- under torchrun by rank 0, once every rank is done (a gloo barrier), which then writes
  the report;
- for independent jobs, by the next single-process run on the same folders (it finds
  every output finished, so it only merges and writes the report).

Parts of the package
--------------------
:mod:`~pipeline.apply.options` (what apply is asked to do and the result),
:mod:`~pipeline.apply.plan` (files, output names, parts), :mod:`~pipeline.apply.stream`
(read-ahead), :mod:`~pipeline.apply.writer` (atomic outputs), :mod:`~pipeline.apply.records`
(manifest, failures, merging parts), :mod:`pipeline.report.apply_page` (the report) and
:mod:`~pipeline.apply.api` (:func:`apply_folder`, which chains them).
"""

from pipeline.apply.api import ApplyResult, apply_folder
from pipeline.apply.options import ApplyOptions
from pipeline.apply.records import merge_parts

__all__ = ["ApplyOptions", "ApplyResult", "apply_folder", "merge_parts"]
