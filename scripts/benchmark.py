"""Benchmark on this machine: denoising quality (MNIST, radiographs) and speed.

    python scripts/benchmark.py                    # full run (see --help for the parts)
    python scripts/benchmark.py --quick --out /tmp/bench   # smoke run, a few minutes
    python scripts/benchmark.py --only speed       # one part; merged into an existing results.json

The benchmark itself is :mod:`pipeline.bench`.
"""

from __future__ import annotations

import sys

from pipeline.bench.run import main

if __name__ == "__main__":
    sys.exit(main())
