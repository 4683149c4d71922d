"""denoise-pipeline: denoising of radiographs and other scans.

Stages (each usable alone): :mod:`pipeline.ingest`, :mod:`pipeline.noise`,
:mod:`pipeline.models`, :mod:`pipeline.train`, :mod:`pipeline.denoise`,
:mod:`pipeline.metrics`, :mod:`pipeline.report`; :mod:`pipeline.runner` chains them.
"""

__version__ = "0.1.0"
