"""Benchmark on this machine: denoising quality (MNIST, radiographs) and speed.

    python scripts/benchmark.py                    # full run (see --help for the parts)
    python scripts/benchmark.py --quick --out /tmp/bench   # smoke run, a few minutes
    python scripts/benchmark.py --only speed       # one part; merged into an existing results.json

The benchmark itself is :mod:`bench`.
"""

from __future__ import annotations

import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CHECKOUT))  # the checkout: `bench` is not installed

from bench.run import main

if __name__ == "__main__":
    sys.exit(main(project=CHECKOUT))
