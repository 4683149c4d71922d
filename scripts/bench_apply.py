"""Throughput and peak memory of ``denoise apply`` against the network's own rate.

A thin entry point: the measurement is :mod:`bench.apply_speed` (see there for what is measured).

    python scripts/bench_apply.py                          # the shipped model, one 4096² scan
    python scripts/bench_apply.py --files 100 --size 1024  # a folder of 100 1024² PNGs
    python scripts/bench_apply.py --model runs/x/2025...   # a given checkpoint or run folder
    python scripts/bench_apply.py --untrained unet         # no trained model at hand
    python scripts/bench_apply.py --size 2048 --tile-size 256 --repeats 1 --out /tmp/apply.json
"""

from __future__ import annotations

import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CHECKOUT))  # the checkout: `bench` is not installed

from bench.apply_speed import main

if __name__ == "__main__":
    raise SystemExit(main(project=CHECKOUT))
