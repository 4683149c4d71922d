"""``denoise adapt``: fine-tune a model on a user's own noisy scans, without clean images.

The scans are read with the same readers as ``denoise apply`` (any format and size, DICOM
MONOCHROME1 shown the usual way round). A model (default: the shipped one) is fine-tuned on
random patches of the scans for a time budget, by one of three methods:

- ``blindspot`` and ``subsample``: self-supervised objectives on the noisy patches
  (:mod:`pipeline.selfsupervised`);
- ``fitted``: a noise model (``xray``, or white ``gaussian`` when that matches better) is
  fitted to the scans (:mod:`pipeline.noisefit`), and the model learns, supervised, to map
  the source model's denoised scans with that noise added back to the denoised scans. The
  references are the source model's outputs, never clean images; what the model learns is
  the scans' own noise on the scans' own anatomy.

The result is an ordinary run folder::

    RUN_DIR/config.yaml            resolved config (the source model's, with the adapt settings)
    RUN_DIR/environment.json       versions, threads, load average at the start
    RUN_DIR/checkpoints/{last,best}.pt
    RUN_DIR/train_log.csv
    RUN_DIR/adapt.json             scans, noise estimates, checks, timing
    RUN_DIR/report.html, report.md, figures/

so that ``denoise apply --model RUN_DIR`` uses the adapted model. Killed runs resume: the
same command on the same RUN_DIR continues from ``last.pt`` with the time that is left.

The time budget covers everything before the report: reading the scans, the ``fitted``
method's references and noise fit (which stops at :data:`FIT_SHARE` of the budget with the
best parameters so far) and training (checked after each short epoch of
:data:`EPOCH_PATCHES` patches).

Checks without a clean reference (per scan, on the central crop of at most
:data:`CHECK_CROP` pixels a side; ``removed`` = input − output):

- noise estimate (wavelet MAD) of the input and of the output;
- autocorrelation of ``removed`` at lag 1 along rows and along columns (and a small map):
  the detector's noise is correlated over a pixel or two and no further; a removed part
  correlated far beyond that holds structure, not noise.

Modules: :mod:`~pipeline.adapt.checks` (the checks above), :mod:`~pipeline.adapt.setup`
(the config, scans, resume point and the ``fitted`` method's references),
:mod:`~pipeline.adapt.run` (:func:`adapt` itself), :mod:`~pipeline.adapt.report` (the
report page). Its command-line options are in :mod:`pipeline.cli`.
"""

from pipeline.adapt.checks import autocorrelation_map, noise_level, scan_checks
from pipeline.adapt.run import ADAPT_METHODS, DEFAULT_METHOD, AdaptResult, adapt
from pipeline.adapt.setup import adapt_config

__all__ = [
    "ADAPT_METHODS",
    "DEFAULT_METHOD",
    "AdaptResult",
    "adapt",
    "adapt_config",
    "autocorrelation_map",
    "noise_level",
    "scan_checks",
]
