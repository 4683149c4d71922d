"""Running a benchmark: the asked parts, merged with earlier results, written as results.json and
RESULTS.md."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from bench.provenance import log, provenance
from bench.quality import run_quality
from bench.render import headline, other_pages, render_markdown
from bench.settings import Settings, settings_from_args
from bench.speed import run_speed
from bench.split import run_split_part
from pipeline.logs import setup_logging
from pipeline.records import write_json


def load_previous(out: Path) -> dict[str, Any]:
    """An earlier results.json in `out` (for --only), else empty."""
    path = out / "results.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}


def run_benchmark(settings: Settings) -> dict[str, Any]:
    """Run the asked parts, merge with earlier results for --only, write JSON and markdown."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    settings.work.mkdir(parents=True, exist_ok=True)
    results = load_previous(settings.out) if len(settings.parts) == 1 else {}
    started = time.perf_counter()
    if "quality" in settings.parts:
        results["quality"] = run_quality(settings)
    if "speed" in settings.parts:
        results["speed"] = run_speed(settings)
    if "split" in settings.parts:
        results["split"] = run_split_part(settings)
    results["headline"] = headline(results)
    results["last_run"] = {
        **provenance(settings),
        "parts": list(settings.parts),
        "seconds": time.perf_counter() - started,
        "work_dir": str(settings.work),
    }
    write_json(results, settings.out / "results.json")
    (settings.out / "RESULTS.md").write_text(render_markdown(results, other_pages(settings.out)))
    return results


def main(argv: list[str] | None = None, project: Path | None = None) -> int:
    """``python scripts/benchmark.py [options]``: parse, run, say where the results are.

    `project` is the checkout when ``--project`` is not given (else the working folder).
    """
    setup_logging()
    settings = settings_from_args(argv, project)
    results = run_benchmark(settings)
    log(
        f"done in {results['last_run']['seconds']:.0f} s: {settings.out / 'RESULTS.md'}, "
        f"{settings.out / 'results.json'} (work: {settings.work})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
