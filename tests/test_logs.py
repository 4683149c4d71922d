"""Logging: one logger per module, -q/-v levels, each warning printed once."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.logs import setup_logging, verbosity_level

ACR_NEMA = "fodicom_CR-MONO1-10-chest.acrnema.dcm"


def test_levels_and_each_warning_once(capsys: pytest.CaptureFixture) -> None:
    assert verbosity_level() == logging.INFO
    assert verbosity_level(quiet=1) == logging.WARNING and verbosity_level(quiet=5) == logging.ERROR
    assert verbosity_level(verbose=1) == logging.DEBUG
    log = logging.getLogger("pipeline.test_logs")
    setup_logging(verbosity_level())
    log.info("step one")
    log.warning("%s: odd header", "a.dcm")
    log.warning("%s: odd header", "a.dcm")
    log.warning("%s: odd header", "b.dcm")
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "step one",
        "warning: a.dcm: odd header",
        "warning: b.dcm: odd header",
    ]
    setup_logging(verbosity_level(quiet=1))
    log.info("hidden")
    log.warning("shown")
    assert capsys.readouterr().err.splitlines() == ["warning: shown"]
    setup_logging(verbosity_level())


def test_apply_warns_once_about_a_file_read_twice(
    cxr_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The ACR-NEMA file is read to denoise it and again for the report: one warning."""
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(cxr_dir / "dicom" / ACR_NEMA, src / ACR_NEMA)
    assert (
        main(
            [
                "apply",
                "-i",
                str(src),
                "-o",
                str(tmp_path / "out"),
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert err.count("no DICOM file meta information") == 1, err
    assert (tmp_path / "out" / "report.html").is_file()
    assert (
        main(
            [
                "-q",
                "apply",
                "-i",
                str(src),
                "-o",
                str(tmp_path / "out2"),
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "no DICOM file meta information" in capsys.readouterr().err  # -q keeps warnings
