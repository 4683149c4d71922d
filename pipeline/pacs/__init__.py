"""PACS in the loop: denoise studies straight from a DICOM server.

- DICOMweb (``denoise apply --input dicomweb:URL``): :mod:`~pipeline.pacs.select` finds the
  instances (QIDO-RS), :mod:`~pipeline.pacs.retrieve` spools them (WADO-RS),
  :func:`pipeline.apply.apply_folder` denoises them as for a folder, and :mod:`~pipeline.pacs.store`
  stores the derived series back (STOW-RS); :mod:`~pipeline.pacs.dicomweb` runs the three at once
  (fetching ahead, storing behind). Credentials come from :mod:`~pipeline.pacs.auth` (environment or
  a netrc-style file, never the command line); :mod:`~pipeline.pacs.errors` turns HTTP failures into
  one line each.
- DICOM network (``denoise listen``): :mod:`~pipeline.pacs.listen` is a C-STORE SCP that
  spools, denoises (again through :func:`~pipeline.apply.apply_folder`) and forwards with
  :mod:`~pipeline.pacs.forward` (C-STORE SCU with retries).

The user guide is docs/pacs.md.
"""
