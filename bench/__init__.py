"""Benchmarks of quality and speed, run by ``scripts/benchmark.py`` (a thin entry point).

Modules, in import order: :mod:`~pipeline.bench.settings` (what a run measures, stored as
data in results.json), :mod:`~pipeline.bench.provenance` (command, commit, machine),
:mod:`~pipeline.bench.conditions` (test images, crops, noise conditions),
:mod:`~pipeline.bench.models` (the networks compared), :mod:`~pipeline.bench.quality`
(quality tables), :mod:`~pipeline.bench.timing` (timing and MAC counting),
:mod:`~pipeline.bench.speed` (speed tables), :mod:`~pipeline.bench.render` (RESULTS.md)
and :mod:`~pipeline.bench.run` (the whole run).
"""
