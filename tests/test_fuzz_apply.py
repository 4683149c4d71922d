"""Fuzz suite: generated hostile inputs through the real `denoise apply`, every promise checked.

The generator and the checks live in scripts/fuzz_apply.py (the campaign script); this runs
300 generated file cases in one run followed by a rerun, then two concurrent runs, within
about two minutes on two CPU cores. More cases:
``DENOISE_FUZZ_CASES=2000 pytest tests/test_fuzz_apply.py``. The other run-level cases
(checkpoints, output folders, full disks, killed runs) run in the campaign script and have
regression tests in tests/test_apply_hostile.py and tests/test_apply.py.
"""

from __future__ import annotations

import os

import pytest
from script_loading import load_script

fuzz = load_script("fuzz_apply")

CASES = int(os.environ.get("DENOISE_FUZZ_CASES", "300"))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return fuzz.tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


def test_generated_files_keep_every_promise(tmp_path, model):
    import numpy as np

    tally = fuzz.Tally()
    cases = fuzz.file_cases(np.random.default_rng(20261129), CASES)
    fuzz.file_campaign(tally, cases, tmp_path, model, per_run=len(cases))
    assert sum(tally.cases.values()) >= min(CASES, 300)
    assert tally.violations == [], "\n".join([*tally.violations, fuzz.format_tally(tally)])


def test_concurrent_runs_keep_every_promise(tmp_path, model):
    tally = fuzz.Tally()
    fuzz.run_cases(tally, tmp_path, model, quick=True)
    assert tally.violations == [], "\n".join([*tally.violations, fuzz.format_tally(tally)])


def test_run_level_honesty_cases_keep_every_promise(tmp_path, model):
    """Issue 28: a foreign file under an output name, ``-o ""``, ``--overlap 0.99``, an input
    folder without images."""
    tally = fuzz.Tally()
    fuzz.honesty_cases(tally, tmp_path, model)
    assert tally.violations == [], "\n".join([*tally.violations, fuzz.format_tally(tally)])
    assert tally.runs == 4


def test_an_onnx_model_writes_nothing_into_home_or_tmpdir(tmp_path, model):
    tally = fuzz.Tally()
    fuzz.onnx_case(tally, tmp_path, fuzz.tiny_onnx(tmp_path / "tiny.onnx", model))
    assert tally.violations == [], "\n".join([*tally.violations, fuzz.format_tally(tally)])
    assert tally.runs == 1


def test_sigterm_leaves_nothing_behind(tmp_path, model):
    tally = fuzz.Tally()
    fuzz.terminated_case(tally, tmp_path, model)
    assert tally.violations == [], "\n".join([*tally.violations, fuzz.format_tally(tally)])
