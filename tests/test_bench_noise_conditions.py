"""bench.noise_conditions: each benchmark noise condition defined once, every table taking its
own."""

from __future__ import annotations

import ast
from pathlib import Path

from script_loading import load_script

from bench import split
from bench.noise_conditions import ACCEPTANCE, ADAPT, QUALITY, all_conditions, noise_conditions
from pipeline.config import NOISE_KINDS

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: Names of the noise section classes (pipeline.config.noise).
NOISE_SECTIONS = {cls.__name__ for cls in NOISE_KINDS.values()}


def test_each_table_takes_its_conditions_in_order():
    assert list(noise_conditions(QUALITY)) == list(QUALITY)
    assert list(noise_conditions(ACCEPTANCE)) == [
        "xray_dose_0.25",
        "xray_dose_0.1",
        "gaussian_25",
        "gaussian_50",
    ]
    assert set(ACCEPTANCE) == set(split.TARGETS)  # every acceptance condition has its target
    assert set(QUALITY) | set(ACCEPTANCE) | set(ADAPT) == set(all_conditions())


def test_a_condition_shared_by_tables_is_the_same_noise():
    quality, acceptance = (
        noise_conditions(QUALITY)["gaussian_25"],
        noise_conditions(ACCEPTANCE)["gaussian_25"],
    )
    adapt = load_script("adapt_benchmark").CONDITIONS["gaussian_25"]
    assert quality == acceptance == adapt
    assert quality[1].sigma * 255 == 25 and quality[1].clip


def test_each_call_gives_new_configs():
    first, second = all_conditions(), all_conditions()
    first["xray_aniso"][1].dose = 0.5
    assert second["xray_aniso"][1].dose == 0.05


def test_no_other_benchmark_module_defines_a_noise_condition():
    """Only bench/noise_conditions.py builds a noise section among the benchmarks and scripts."""
    builders = []
    for path in sorted(
        [*(PROJECT_ROOT / "bench").glob("*.py"), *(PROJECT_ROOT / "scripts").glob("*.py")]
    ):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) in NOISE_SECTIONS
            ):
                builders.append(str(path.relative_to(PROJECT_ROOT)))
    assert set(builders) == {"bench/noise_conditions.py"}
