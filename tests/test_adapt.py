"""`denoise adapt`: self-supervised fine-tuning on a folder of noisy scans, resume, apply,
checks."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_io_dicom import make_dataset, save

import pipeline
from pipeline.adapt import adapt, autocorrelation_map
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.models import build_model

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FAST = [
    "--set",
    "data.patch_size=32",
    "--set",
    "train.batch_size=4",
    "--threads",
    "1",
    "--no-progress",
]


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A small U-Net checkpoint to start from (the shipped model is slower to fine-tune in a
    test)."""
    cfg = load_config(
        None, ["model.name=unet", "model.channels=[8,16]", "model.residual=true", "run.name=tiny"]
    )
    torch.manual_seed(0)
    model = build_model(cfg.model)
    path = tmp_path / "tiny.pt"
    torch.save(
        {
            "model_state": model.state_dict(),
            "config": cfg.to_dict(),
            "version": pipeline.__version__,
        },
        path,
    )
    return path


@pytest.fixture
def noisy_scans(tmp_path: Path) -> Path:
    """Noisy scans only: two 16-bit PNGs of different sizes and a MONOCHROME1 DICOM."""
    folder = tmp_path / "scans"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(72, 64), (48, 80)]):
        y, x = np.mgrid[0:h, 0:w] / max(h, w)
        clean = 0.3 + 0.4 * np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.05)
        noisy = np.clip(clean + 0.08 * rng.standard_normal(clean.shape), 0, 1)
        Image.fromarray((noisy * 65535).astype(np.uint16)).save(folder / f"scan{i}.png")
    stored = rng.integers(1000, 3000, size=(64, 64)).astype(np.uint16)
    save(make_dataset(stored, photometric="MONOCHROME1"), folder / "cr_mono1.dcm")
    return folder


def _log(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "train_log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_adapt_reads_only_the_noisy_scans_and_writes_a_run_folder(
    tmp_path, tiny_model, noisy_scans, monkeypatch
):
    from pipeline.ingest import folder

    read: list[Path] = []
    real_read = folder.read_image
    monkeypatch.setattr(
        folder, "read_image", lambda path: read.append(Path(path)) or real_read(path)
    )
    result = adapt(
        noisy_scans,
        tmp_path / "run",
        tiny_model,
        minutes=0.05,
        threads=1,
        progress=False,
        overrides=["data.patch_size=32", "train.batch_size=4"],
    )
    assert read and all(p.parent == noisy_scans for p in read)
    assert sorted(p.name for p in set(read)) == ["cr_mono1.dcm", "scan0.png", "scan1.png"]
    for name in (
        "config.yaml",
        "environment.json",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        "train_log.csv",
        "adapt.json",
        "report.html",
        "figures/removed_autocorrelation.png",
    ):
        assert (result.run_dir / name).is_file(), name
    record = json.loads((result.run_dir / "adapt.json").read_text())
    assert record["method"] == "fitted" and record["n_scans"] == 3 and record["epochs"] >= 1
    assert set(record["noise_estimate_before"]) == {"scan0.png", "scan1.png", "cr_mono1.dcm"}
    assert record["noise_estimate_before"]["scan0.png"] == pytest.approx(0.08, rel=0.3)
    ckpt = torch.load(result.checkpoint, weights_only=True)
    assert ckpt["config"]["train"]["objective"] == "fitted"
    assert ckpt["config"]["train"]["init_from"] == str(tiny_model)
    html = (result.run_dir / "report.html").read_text()
    assert "cr_mono1.dcm" in html
    assert "Detail correlation" not in html  # dropped: it flagged the shipped model itself


def _adapt_command(scans: Path, run_dir: Path, model: Path, minutes: float) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline",
        "adapt",
        "-i",
        str(scans),
        "-o",
        str(run_dir),
        "--from",
        str(model),
        "--method",
        "subsample",
        "--minutes",
        str(minutes),
        *FAST,
    ]


def test_adapt_killed_resumes_and_apply_uses_the_result(tmp_path, tiny_model, noisy_scans):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.Popen(
        _adapt_command(noisy_scans, run_dir, tiny_model, 10),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not last.is_file() and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpt = torch.load(last, weights_only=True)
    epochs_at_kill = ckpt["epoch"]
    spent = sum(row["seconds"] for row in ckpt["state"]["log"])
    assert epochs_at_kill >= 1 and not (run_dir / "adapt.json").exists()

    # the same run, its budget set to end a few seconds after the kill (the budget may change on
    # resume; reading the scans again counts against it too)
    minutes = (spent + 5) / 60
    done = subprocess.run(
        _adapt_command(noisy_scans, run_dir, tiny_model, minutes),
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "resuming after" in done.stdout
    epochs = [int(r["epoch"]) for r in _log(run_dir)]
    assert len(epochs) > epochs_at_kill and epochs == list(
        range(1, len(epochs) + 1)
    )  # continued, not restarted
    assert json.loads((run_dir / "adapt.json").read_text())[
        "seconds_before_resume"
    ] == pytest.approx(spent)

    out = tmp_path / "denoised"
    assert main(["apply", "-i", str(noisy_scans), "-o", str(out), "--model", str(run_dir)]) == 0
    assert (out / "scan0.png").is_file() and (out / "cr_mono1.dcm").is_file()


def test_adapt_trains_one_epoch_when_preparing_used_the_whole_budget(
    tmp_path, tiny_model, noisy_scans, capsys
):
    run_dir = tmp_path / "run"  # 0.06 ms: the noise fit alone takes longer
    assert (
        main(
            [
                "adapt",
                "-i",
                str(noisy_scans),
                "-o",
                str(run_dir),
                "--from",
                str(tiny_model),
                "--minutes",
                "0.000001",
                *FAST,
            ]
        )
        == 0
    )
    assert "one epoch (preparing used the time budget)" in capsys.readouterr().out
    assert [int(r["epoch"]) for r in _log(run_dir)] == [1]
    assert (run_dir / "checkpoints" / "best.pt").is_file() and (run_dir / "adapt.json").is_file()


def test_adapt_refuses_a_folder_of_another_run(tmp_path, tiny_model, noisy_scans, capsys):
    run_dir = tmp_path / "run"
    assert (
        main(
            [
                "adapt",
                "-i",
                str(noisy_scans),
                "-o",
                str(run_dir),
                "--from",
                str(tiny_model),
                "--minutes",
                "0.02",
                "-q",
                *FAST,
            ]
        )
        == 0
    )  # -q after the command, as for every other command
    code = main(
        [
            "adapt",
            "-i",
            str(noisy_scans),
            "-o",
            str(run_dir),
            "--from",
            str(tiny_model),
            "--minutes",
            "0.02",
            "--method",
            "subsample",
            *FAST,
        ]
    )
    assert code == 2 and "other settings" in capsys.readouterr().err


def test_adapt_without_scans_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["adapt", "-i", str(tmp_path / "empty"), "-o", str(tmp_path / "run")]) == 2
    assert "no readable scans" in capsys.readouterr().err


def test_removed_white_noise_is_uncorrelated():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:256, 0:256] / 256
    clean = 0.5 + 0.3 * np.sin(12 * x) * np.cos(9 * y)
    noise = 0.05 * rng.standard_normal(clean.shape)
    corr = autocorrelation_map(noise)
    assert corr[4, 4] == pytest.approx(1.0) and abs(corr[5, 4]) < 0.03 and abs(corr[4, 5]) < 0.03
    from scipy.ndimage import gaussian_filter

    smooth = gaussian_filter(noise, 1.0)  # correlated noise: neighbours correlate
    assert autocorrelation_map(smooth)[5, 4] > 0.5


def test_adapt_fitted_learns_from_denoised_scans_with_fitted_noise_and_resumes_with_it(
    tmp_path,
    tiny_model,
    noisy_scans,
    capsys,
    caplog,
):
    run_dir = tmp_path / "run"
    options = [
        "-i",
        str(noisy_scans),
        "-o",
        str(run_dir),
        "--from",
        str(tiny_model),
        "--method",
        "fitted",
        *FAST,
    ]
    assert main(["adapt", *options, "--minutes", "0.05"]) == 0
    record = json.loads((run_dir / "adapt.json").read_text())
    fitted = record["noise_fit"]["noise"]
    assert record["method"] == "fitted" and fitted["kind"] in ("xray", "gaussian")
    assert record["noise_fit"]["evaluations"] > 10 or record["noise_fit"]["stopped_at_deadline"]
    assert record["noise_fit"]["seconds"] > 0
    shown = capsys.readouterr().out + caplog.text
    assert (
        "/100000" not in shown and "nan" not in shown.lower()
    )  # a time budget, no empty validation columns
    assert "s left)" in caplog.text
    saved = load_config(run_dir / "config.yaml")
    assert (
        saved.train.objective == "fitted"
        and saved.noise.model_dump(mode="json", exclude_none=True) == fitted
    )
    assert "noise fitted to the scans" in (run_dir / "report.html").read_text()
    # a longer budget on the same folder resumes with the noise of the checkpoint, not a new fit
    assert main(["adapt", *options, "--minutes", "0.1"]) == 0
    again = json.loads((run_dir / "adapt.json").read_text())["noise_fit"]
    assert again["from"] == "the resumed run's checkpoint" and again["noise"] == fitted


def test_run_refuses_the_fitted_objective(tmp_path, capsys):
    code = main(
        [
            "run",
            str(PROJECT_ROOT / "configs" / "mnist_conv.yaml"),
            "--set",
            "train.objective=fitted",
            "--set",
            f"run.output_dir={tmp_path}",
        ]
    )
    assert code == 2 and not any(tmp_path.iterdir())
    assert "denoise adapt --method fitted" in capsys.readouterr().err


def test_adapt_stops_within_its_time_budget_noise_fit_included(tmp_path, tiny_model, noisy_scans):
    budget = 4.0
    result = adapt(
        noisy_scans,
        tmp_path / "run",
        tiny_model,
        method="fitted",
        minutes=budget / 60,
        threads=1,
        progress=False,
        overrides=["data.patch_size=32", "train.batch_size=4"],
    )
    record = result.record
    used = record["seconds_preparing"] + record["seconds_this_run"]
    assert (
        record["noise_fit"]["seconds"] <= budget / 2 + 2.0
    )  # at most half the budget, plus one evaluation
    assert used <= budget + 2.0  # plus one training step and the last validation
    assert "s of a 0.1 min budget" in (result.run_dir / "report.html").read_text()


def test_adapt_config_takes_paths_as_paths_and_overrides_on_top(tiny_model, tmp_path, monkeypatch):
    """Scan folders named like YAML values (``true``, ``null``) stay paths: settings are values, not
    text."""
    from pipeline.adapt.setup import AdaptOptions, adapt_config

    monkeypatch.chdir(tmp_path)
    options = AdaptOptions(
        Path("true"), Path("null") / "run", "blindspot", 2.0, seed=5, overrides=("train.lr=0.0003",)
    )
    cfg = adapt_config(options, tiny_model, n_images=3)
    assert cfg.data.root == Path("true") and cfg.run.output_dir == Path("null")
    assert (cfg.train.objective, cfg.train.lr, cfg.train.max_train_seconds, cfg.run.seed) == (
        "blindspot",
        0.0003,
        120.0,
        5,
    )
    assert (
        cfg.data.patches_per_image == 22
        and cfg.train.init_from == tiny_model
        and cfg.run.stages == ["train"]
    )


def test_fitted_references_leave_the_config_as_it_is(tiny_model, noisy_scans, tmp_path):
    from pipeline.adapt.setup import AdaptOptions, adapt_config, fitted_references, load_scans

    images, _ = load_scans(noisy_scans)
    cfg = adapt_config(
        AdaptOptions(noisy_scans, tmp_path / "run", "fitted"), tiny_model, len(images)
    )
    before = cfg.to_dict()
    references, noise, record = fitted_references(
        images,
        tiny_model,
        cfg,
        tmp_path / "run",
        torch.device("cpu"),
        0,
        deadline=time.perf_counter(),
    )
    assert cfg.to_dict() == before
    assert (
        len(references) == len(images)
        and noise.kind in ("xray", "gaussian")
        and record["stopped_at_deadline"]
    )
