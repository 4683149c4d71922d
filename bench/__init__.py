"""Benchmarks of quality and speed, run by ``scripts/benchmark.py`` (a thin entry point).

Not part of the installed package: it needs the checkout (configs/, benchmarks/) and the
shared data, both given as :class:`~bench.settings.Settings` fields. Modules, each importing
only those before it: :mod:`~bench.settings` (what a run measures, stored as data in
results.json, and where it runs), :mod:`~bench.provenance` (command, commit, machine),
:mod:`~bench.formatting` (numbers in tables), :mod:`~bench.noise_conditions` (every noise
condition, defined once), :mod:`~bench.conditions` (test images, crops),
:mod:`~bench.models` (the networks compared), :mod:`~bench.quality` (quality tables),
:mod:`~bench.timing` (timing and MAC counting), :mod:`~bench.speed` (speed tables),
:mod:`~bench.apply_speed` (``denoise apply``'s throughput and peak memory, in a process of
its own), :mod:`~bench.split_detail` and :mod:`~bench.split` (the radiograph acceptance),
:mod:`~bench.render` (RESULTS.md) and :mod:`~bench.run` (the whole run).
"""
