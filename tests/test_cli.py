"""The `denoise` command end to end: a tiny run, clear errors without tracebacks."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.checkpoint import load_model
from pipeline.cli import main

TINY = [
    "--set",
    "train.epochs=2",
    "--set",
    "data.max_train=400",
    "--set",
    "data.max_val=50",
    "--set",
    "data.max_test=40",
    "--set",
    "train.progress=false",
    "--set",
    "run.threads=1",
    "--set",
    "evaluate.baselines=[tv, median]",
    "--set",
    "report.n_examples=4",
    "--set",
    "train.batch_size=16",
    "--set",
    "train.lr=0.005",
]


def test_tiny_run_writes_the_run_folder_and_beats_noisy(tmp_path, capsys) -> None:
    code = main(["run", "configs/mnist_conv.yaml", *TINY, "--set", f"run.output_dir={tmp_path}"])
    assert code == 0
    out = capsys.readouterr().out
    run_dirs = list((tmp_path / "mnist_conv").iterdir())
    assert len(run_dirs) == 1
    run_dir = run_dirs[0]
    for name in (
        "config.yaml",
        "environment.json",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        "train_log.csv",
        "metrics.csv",
        "summary.json",
        "report.md",
        "report.html",
        "figures/examples.png",
        "figures/loss_curve.png",
        "figures/distributions.png",
    ):
        assert (run_dir / name).is_file(), name
    assert f"report: {run_dir / 'report.html'}" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    methods = summary["methods"]
    assert set(methods) == {"noisy", "conv", "tv", "median"}
    assert methods["noisy"]["n"] == 40
    assert methods["conv"]["psnr"]["mean"] > methods["noisy"]["psnr"]["mean"] + 2.0
    html = (run_dir / "report.html").read_text()
    assert "data:image/png;base64" in html and 'src="http' not in html
    assert "zoomed crop" not in html  # 28-px digits get no crop: the caption does not promise one


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_clean_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def test_config_error_is_one_clear_message(tmp_path) -> None:
    assert_clean_error(
        run_cli("run", "configs/mnist_conv.yaml", "--set", "train.optimiser=sgd"),
        "train.optimiser",
        "unknown key",
    )


def test_missing_data_path_is_one_clear_message(tmp_path) -> None:
    proc = run_cli(
        "run",
        "configs/mnist_conv.yaml",
        "--set",
        f"data.root={tmp_path / 'nowhere'}",
        "--set",
        f"run.output_dir={tmp_path}",
    )
    assert_clean_error(proc, "MNIST data folder not found", "nowhere")


def test_corrupt_idx_is_one_clear_message(tmp_path) -> None:
    data = tmp_path / "mnist"
    data.mkdir()
    (data / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 20)
    )
    proc = run_cli(
        "run",
        "configs/mnist_conv.yaml",
        "--set",
        f"data.root={data}",
        "--set",
        f"run.output_dir={tmp_path}",
    )
    assert_clean_error(proc, "train-images-idx3-ubyte.gz", "truncated or corrupt")


def test_config_command_prints_defaults_and_resolved() -> None:
    proc = run_cli("config", "--defaults")
    assert proc.returncode == 0 and "epochs: 100" in proc.stdout
    proc = run_cli("config", "configs/mnist_dense.yaml", "--set", "run.seed=9")
    assert proc.returncode == 0 and "seed: 9" in proc.stdout


@pytest.mark.parametrize("argv", [["--version"]])
def test_version(argv) -> None:
    proc = run_cli(*argv)
    assert proc.returncode == 0 and "denoise-pipeline" in proc.stdout
    assert Path("pipeline/__init__.py").is_file()


def test_compare_puts_models_and_baselines_side_by_side(tmp_path, capsys) -> None:
    args = [
        "compare",
        "configs/mnist_dense.yaml",
        "configs/mnist_conv.yaml",
        "--baselines",
        "tv,median",
    ]
    for override in [
        "train.epochs=1",
        "data.max_train=300",
        "data.max_val=30",
        "data.max_test=20",
        "train.progress=false",
        "run.threads=1",
        "train.batch_size=32",
        f"run.output_dir={tmp_path}",
    ]:
        args += ["--set", override]
    assert main(args) == 0
    compare_dir = next((tmp_path / "compare").iterdir())
    summary = json.loads((compare_dir / "summary.json").read_text())
    assert set(summary["methods"]) == {
        "noisy",
        "dense:mnist_dense",
        "conv:mnist_conv",
        "tv",
        "median",
    }
    assert all(m["n"] == 20 for m in summary["methods"].values())
    assert (tmp_path / "mnist_dense").is_dir() and (tmp_path / "mnist_conv").is_dir()
    assert "report: " in capsys.readouterr().out


def test_openi_config_without_root_says_what_to_set(tmp_path) -> None:
    proc = run_cli("run", "configs/cxr_openi.yaml", "--set", f"run.output_dir={tmp_path}")
    assert_clean_error(proc, "data.root must be set", "OpenI")
    assert not any(tmp_path.iterdir()), "a failed start must not leave an empty run folder"


def test_cxr_quick_smoke(tmp_path, cxr_dir) -> None:
    overrides = [
        "train.epochs=3",
        "data.max_train=200",
        "data.max_val=20",
        "data.max_test=20",
        "train.batch_size=8",
        "train.progress=false",
        "run.threads=1",
        "evaluate.baselines=[tv]",
        f"run.output_dir={tmp_path}",
    ]
    args = ["run", "configs/cxr_quick.yaml"] + [x for o in overrides for x in ("--set", o)]
    assert main(args) == 0
    summary = json.loads(
        next((tmp_path / "cxr_quick").iterdir()).joinpath("summary.json").read_text()
    )
    assert summary["noise"]["sigma"] == 0.098
    assert (
        summary["methods"]["unet"]["psnr"]["mean"]
        > summary["methods"]["noisy"]["psnr"]["mean"] + 3.0
    )


def test_fetch_data_unreachable_mirror_is_one_clear_message(tmp_path) -> None:
    import socket

    with socket.socket() as sock:  # a local port with nothing listening on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = run_cli(
        "fetch-data",
        "mnist",
        "--dest",
        str(tmp_path),
        "--url",
        f"http://127.0.0.1:{port}/",
        "--no-progress",
    )
    assert_clean_error(proc, f"127.0.0.1:{port}")


def test_evaluate_a_folder_with_the_shipped_model(tmp_path, capsys) -> None:
    from PIL import Image

    y, x = np.mgrid[0:64, 0:64] / 63.0
    data = tmp_path / "clean"
    data.mkdir()
    for i in range(2):
        img = 0.3 + 0.4 * np.exp(-((x - 0.3 - 0.3 * i) ** 2 + (y - 0.5) ** 2) / 0.05)
        Image.fromarray((img * 255).round().astype(np.uint8)).save(data / f"scan{i}.png")
    args = [
        "evaluate",
        "--data",
        str(data),
        "--baselines",
        "tv",
        "--set",
        "noise.sigma=0.098",
        "--set",
        f"run.output_dir={tmp_path / 'runs'}",
        "--set",
        "train.progress=false",
    ]
    assert main(args) == 0
    summary = json.loads(
        next((tmp_path / "runs" / "evaluate").iterdir()).joinpath("summary.json").read_text()
    )
    methods = summary["methods"]
    shipped = load_model(None).method_name  # e.g. "unet:cxr_shipped_refine"
    assert set(methods) == {"noisy", shipped, "tv"} and methods["noisy"]["n"] == 2
    assert methods[shipped]["psnr"]["mean"] > methods["noisy"]["psnr"]["mean"] + 5
    kept = summary["detail_kept"]  # the task transfer function per band, pooled over the two scans
    assert set(kept) == {"noisy", shipped, "tv"} and set(kept["tv"]) == {
        "T_0.02-0.1",
        "T_0.1-0.2",
        "T_0.2-0.3",
    }
    assert kept["noisy"]["T_0.02-0.1"] > kept["tv"]["T_0.02-0.1"], (
        "noise left in is not lost detail"
    )
    run_dir = next((tmp_path / "runs" / "evaluate").iterdir())
    assert (run_dir / "figures" / "detail_kept.png").is_file() and "Detail kept T(f)" in (
        run_dir / "report.html"
    ).read_text()


def test_evaluate_data_defaults_to_a_radiograph_noise_and_says_so_first(tmp_path, capsys) -> None:
    from PIL import Image

    data = tmp_path / "clean"
    data.mkdir()
    y, x = np.mgrid[0:48, 0:48] / 47.0
    Image.fromarray((255 * (0.2 + 0.6 * x * y)).round().astype(np.uint8)).save(data / "scan.png")
    args = [
        "evaluate",
        "--data",
        str(data),
        "--set",
        f"run.output_dir={tmp_path / 'runs'}",
        "--set",
        "train.progress=false",
    ]
    assert main(args) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert (
        first.startswith("evaluate: test noise gaussian (sigma 0.098039)") and "radiograph" in first
    )
    summary = json.loads(
        next((tmp_path / "runs" / "evaluate").iterdir()).joinpath("summary.json").read_text()
    )
    assert summary["noise"]["kind"] == "gaussian" and summary["noise"]["sigma"] == pytest.approx(
        25 / 255, abs=1e-6
    )


def test_bare_evaluate_asks_for_data_instead_of_scoring_mnist(tmp_path) -> None:
    assert_clean_error(
        run_cli("evaluate", "--set", f"run.output_dir={tmp_path}"), "--data FOLDER", "CONFIG"
    )
    assert not any(tmp_path.iterdir())


def test_evaluate_missing_data_names_the_option(tmp_path) -> None:
    assert_clean_error(
        run_cli("evaluate", "--data", str(tmp_path / "missing")),
        f"--data {tmp_path / 'missing'}",
        "no such folder",
    )


def test_unknown_baseline_is_named_with_the_allowed_ones(tmp_path) -> None:
    proc = run_cli("evaluate", "--data", str(tmp_path), "--baselines", "nlm,bm4d")
    assert_clean_error(proc, "unknown baseline 'bm4d'", "bm3d, nlm, tv, wavelet, median")
    assert "evaluate.baselines.1" not in proc.stderr


def test_help_says_where_runs_go_and_defaults_list_allowed_values() -> None:
    assert "runs/<run.name>/<timestamp>/ under the current directory" in " ".join(
        run_cli("run", "--help").stdout.split()
    )
    assert "--set noise.sigma=0.098" in run_cli("evaluate", "--help").stdout
    lines = run_cli("config", "--defaults").stdout.splitlines()
    assert any(
        line.strip().startswith("optimizer:") and "One of: adadelta, adam, adamw." in line
        for line in lines
    )
    assert any(
        line.strip().startswith("baselines:") and "Any of: bm3d, nlm, tv, wavelet, median." in line
        for line in lines
    )


def test_warnings_print_once_as_one_line_without_source(capsys) -> None:
    import warnings

    from pipeline.cli import _WarningPrinter

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _WarningPrinter()
        for _ in range(3):
            warnings.warn(
                "a.dcm: no DICOM file meta information (old ACR-NEMA style file)", stacklevel=1
            )
    err = capsys.readouterr().err
    assert err == "warning: a.dcm: no DICOM file meta information (old ACR-NEMA style file)\n"


def _acr_nema_file(path: Path) -> Path:
    """A small old-style DICOM file: no preamble, no file meta information."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.Modality = "Test^ACR", "1", "CR"
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = (
        "1.2.3.4",
        "1.2.3.4.5",
        "1.2.3.4.5.6",
    )
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.Rows = ds.Columns = 64
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 10, 9, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.random.default_rng(0).integers(0, 1024, (64, 64)).astype("<u2").tobytes()
    ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    return path


def test_acr_nema_warning_once_without_source_line_and_not_on_a_rerun(tmp_path, capsys) -> None:
    src = tmp_path / "in" / "old"
    src.mkdir(parents=True)
    _acr_nema_file(src / "chest.dcm")
    args = ["apply", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--no-progress"]
    assert main(args) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "ACR-NEMA" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: ") and "chest.dcm" in lines[0], err
    assert "warnings.warn" not in err and "UserWarning" not in err  # no source line
    assert "ACR-NEMA" not in (tmp_path / "out" / "report.html").read_text()
    assert main(args) == 0  # every file is finished: skipped, the report is written again
    assert "warning" not in capsys.readouterr().err


def test_logged_warnings_print_as_one_warning_line(capsys, monkeypatch) -> None:
    import logging

    from pipeline import cli

    def warn_twice(args) -> int:
        for _ in range(2):
            logging.getLogger("pipeline.report.apply_page").warning(
                "no view of %s in the report", "a.png"
            )
        return 0

    monkeypatch.setattr(cli, "cmd_config", warn_twice)  # build_parser looks it up when called
    assert cli.main(["config"]) == 0
    assert capsys.readouterr().err == "warning: no view of a.png in the report\n"


def test_evaluate_settings_are_values_and_leave_the_options_alone(tmp_path) -> None:
    """--data named like a YAML value stays a path; the radiograph noise comes under --set."""
    import argparse

    from pipeline.cli import _evaluate_fixed, _evaluate_settings
    from pipeline.config import load_config

    args = argparse.Namespace(config=None, data=Path("null"), baselines="tv")
    cfg = load_config(
        None, ["noise.sigma=0.2"], settings=_evaluate_settings(args), fixed=_evaluate_fixed(args)
    )
    assert (
        cfg.data.test_root == Path("null")
        and cfg.data.kind == "folder"
        and cfg.evaluate.baselines == ["tv"]
    )
    assert (cfg.noise.kind, cfg.noise.sigma, cfg.run.name, cfg.run.stages) == (
        "gaussian",
        0.2,
        "evaluate",
        ["evaluate", "report"],
    )
    assert args.data == Path("null") and args.baselines == "tv"
