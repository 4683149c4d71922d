"""Benchmarks of quality and speed, run by ``scripts/benchmark.py`` (a thin entry point).

Not part of the installed package: it needs the checkout (configs/, benchmarks/) and
``../shared/data``. Modules, each importing only those before it: :mod:`~bench.settings`
(what a run measures, stored as data in results.json), :mod:`~bench.provenance` (command,
commit, machine), :mod:`~bench.formatting` (numbers in tables), :mod:`~bench.conditions`
(test images, crops, noise conditions), :mod:`~bench.models` (the networks compared),
:mod:`~bench.quality` (quality tables), :mod:`~bench.timing` (timing and MAC counting),
:mod:`~bench.speed` (speed tables), :mod:`~bench.split_detail` and :mod:`~bench.split` (the
radiograph acceptance), :mod:`~bench.render` (RESULTS.md) and :mod:`~bench.run` (the whole run).
"""
