"""`denoise apply` against hostile folders, checkpoints and environments (issue 15).

One test per problem the hardening campaign found, on the smallest input that shows it.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from script_loading import load_script

import pipeline.apply.files
from pipeline.apply import ApplyOptions, apply_folder
from pipeline.apply.plan import stale_temporaries
from pipeline.apply.writer import output_lock
from pipeline.checkpoint import load_model
from pipeline.cli import main
from pipeline.config import InferenceConfig
from pipeline.errors import PipelineError
from pipeline.inference import ModelDenoiser
from pipeline.io import read_image
from pipeline.records import read_csv

fuzz = load_script("fuzz_apply")
QUIET = ApplyOptions(progress=False)
CPU_TILES = InferenceConfig(device="cpu", tile_size=32)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return fuzz.tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


def png(path, shape=(12, 10), value=90):
    path.parent.mkdir(parents=True, exist_ok=True)
    ramp = (np.add.outer(np.arange(shape[0]), np.arange(shape[1])) * 3 + value) % 256
    Image.fromarray(ramp.astype(np.uint8)).save(path)
    return path


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


# --------------------------------------------------------------------------- outputs kept apart


def test_report_views_never_overwrite_or_delete_outputs(tmp_path, model):
    png(tmp_path / "in" / "report_views" / "000_output.png", (7, 5))
    png(tmp_path / "in" / "report_views" / "noise_before_after.png", (6, 9))
    result = apply_folder(tmp_path / "in", tmp_path / "out", model, QUIET, CPU_TILES)
    assert result.failed == 0 and result.report is not None
    assert read_image(tmp_path / "out" / "report_views.input" / "000_output.png")[
        0
    ].pixels.shape == (7, 5)
    assert read_image(tmp_path / "out" / "report_views.input" / "noise_before_after.png")[
        0
    ].pixels.shape == (6, 9)
    outputs = {row["output"] for row in read_csv(tmp_path / "out" / "manifest.csv")}
    assert outputs == {
        "report_views.input/000_output.png",
        "report_views.input/noise_before_after.png",
    }
    rerun = apply_folder(
        tmp_path / "in", tmp_path / "out", model, QUIET, CPU_TILES
    )  # the report clears its own folder only
    assert (
        rerun.failed == 0 and (tmp_path / "out" / "report_views.input" / "000_output.png").is_file()
    )


def test_frames_folder_never_clashes_with_an_input_folder(tmp_path, model):
    (tmp_path / "in").mkdir()
    tifffile.imwrite(
        tmp_path / "in" / "a.tif", np.zeros((3, 8, 8), np.uint8), photometric="minisblack"
    )
    png(tmp_path / "in" / "a.frames" / "y.png", (9, 7))
    result = apply_folder(
        tmp_path / "in", tmp_path / "out", model, replace(QUIET, report=False), CPU_TILES
    )
    assert result.failed == 0
    assert read_image(tmp_path / "out" / "a.frames" / "y.png")[0].pixels.shape == (9, 7)
    assert sorted(p.name for p in (tmp_path / "out" / "a_tif.frames").iterdir()) == [
        "frame_0000.tif",
        "frame_0001.tif",
        "frame_0002.tif",
    ]
    again = apply_folder(
        tmp_path / "in", tmp_path / "out", model, replace(QUIET, report=False), CPU_TILES
    )
    assert (again.done, again.skipped, again.failed) == (0, 2, 0)


def test_unlistable_folder_is_recorded(tmp_path, model):
    source = tmp_path / "in"
    source.mkdir()
    png(source / "ok.png")
    rel = fuzz.long_path_case(source)  # a PNG whose path is over 4,096 bytes
    assert len(rel) > 4096
    result = apply_folder(source, tmp_path / "out", model, replace(QUIET, report=False), CPU_TILES)
    assert (result.done, result.failed) == (1, 1)
    (row,) = read_csv(tmp_path / "out" / "failures.csv")
    assert "cannot list this folder" in row["reason"] and len(row["reason"]) <= 300
    assert os.fsencode(row["path"]).startswith(os.fsencode(source))


def test_non_utf8_name_is_recorded_and_skipped_on_rerun(tmp_path, model):
    source = tmp_path / "in"
    source.mkdir()
    data = (png(tmp_path / "plain.png")).read_bytes()
    with open(os.path.join(os.fsencode(source), b"caf\xe9.png"), "wb") as handle:
        handle.write(data)
    result = apply_folder(source, tmp_path / "out", model, replace(QUIET, report=True), CPU_TILES)
    assert (result.done, result.failed) == (1, 0)
    (row,) = read_csv(tmp_path / "out" / "manifest.csv")
    assert row["output"] == "caf\\xe9.png" and row["input"].endswith("/caf\\xe9.png")
    assert os.path.exists(os.path.join(os.fsencode(tmp_path / "out"), b"caf\xe9.png"))
    again = apply_folder(source, tmp_path / "out", model, QUIET, CPU_TILES)
    assert (again.done, again.skipped) == (0, 1)
    assert len(read_csv(tmp_path / "out" / "manifest.csv")) == 1


def test_old_failures_csv_with_a_huge_field_is_read(tmp_path, model):
    png(tmp_path / "in" / "a.png")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "failures.csv").write_text(
        f"path,reason\n{tmp_path}/in/old.png,{'x' * 300_000}\n"
    )
    result = apply_folder(
        tmp_path / "in", tmp_path / "out", model, replace(QUIET, report=False), CPU_TILES
    )
    assert (result.done, result.failed) == (1, 0)


# --------------------------------------------------------------------------- values


def test_nan_weight_checkpoint_is_refused(tmp_path, capsys, model):
    bad = fuzz.tiny_checkpoint(
        tmp_path / "nan.pt", lambda s: {k: v * float("nan") for k, v in s.items()}
    )
    with pytest.raises(PipelineError, match="NaN or infinite"):
        load_model(bad)
    png(tmp_path / "in" / "a.png")
    assert (
        main(
            [
                "apply",
                "-i",
                str(tmp_path / "in"),
                "-o",
                str(tmp_path / "out"),
                "--model",
                str(bad),
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "NaN or infinite" in one_error_line(capsys)
    assert not (tmp_path / "out" / "a.png").exists()


def test_non_finite_model_output_is_a_failure_not_a_black_image(tmp_path, model, monkeypatch):
    png(tmp_path / "in" / "a.png")
    monkeypatch.setattr(ModelDenoiser, "__call__", lambda self, pixels, **noise: pixels * np.nan)
    result = apply_folder(
        tmp_path / "in", tmp_path / "out", model, replace(QUIET, report=False), CPU_TILES
    )
    assert (result.done, result.failed) == (0, 1)
    assert not (tmp_path / "out" / "a.png").exists()
    assert "NaN or infinite" in read_csv(tmp_path / "out" / "failures.csv")[0]["reason"]


@pytest.mark.parametrize("damage", ["truncated", "wrong-architecture", "wrong-shape", "evil"])
def test_bad_checkpoints_are_one_error_line(tmp_path, capsys, model, damage):
    ckpt = torch.load(model, weights_only=True)
    path = tmp_path / "bad.pt"
    if damage == "truncated":
        path.write_bytes(model.read_bytes()[:500])
    elif damage == "wrong-architecture":
        ckpt["model_state"] = {k + ".x": v for k, v in ckpt["model_state"].items()}
        torch.save(ckpt, path)
    elif damage == "wrong-shape":
        ckpt["config"]["model"]["features"] = 8
        torch.save(ckpt, path)
    else:
        path.write_bytes(b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR.")
    png(tmp_path / "in" / "a.png")
    assert (
        main(
            [
                "apply",
                "-i",
                str(tmp_path / "in"),
                "-o",
                str(tmp_path / "out"),
                "--model",
                str(path),
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert str(path) in one_error_line(capsys)
    assert not (tmp_path / "pwned").exists()


# --------------------------------------------------------------------------- environment


def test_out_under_a_file_is_one_error_line(tmp_path, capsys, model):
    png(tmp_path / "in" / "a.png")
    (tmp_path / "file").write_text("x")
    assert (
        main(
            [
                "apply",
                "-i",
                str(tmp_path / "in"),
                "-o",
                str(tmp_path / "file" / "out"),
                "--model",
                str(model),
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "Not a directory" in one_error_line(capsys)


def test_full_disk_stops_the_run_with_exit_2_and_keeps_finished_outputs(
    tmp_path, capsys, model, monkeypatch
):
    for name in ("a", "b", "c"):
        png(tmp_path / "in" / f"{name}.png")
    real = pipeline.apply.files.output_writer

    def filling(job, outputs, options):
        final, write = real(job, outputs, options)
        if job.source.name == "b.png":

            def write(path):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

        return final, write

    monkeypatch.setattr(pipeline.apply.files, "output_writer", filling)
    assert (
        main(
            [
                "apply",
                "-i",
                str(tmp_path / "in"),
                "-o",
                str(tmp_path / "out"),
                "--model",
                str(model),
                "--no-progress",
                "--device",
                "cpu",
                "--no-report",
            ]
        )
        == 2
    )
    assert "No space left on device" in one_error_line(capsys)
    assert (tmp_path / "out" / "a.png").is_file() and not (tmp_path / "out" / "b.png").exists()
    assert not [p for p in (tmp_path / "out").iterdir() if ".partial-" in p.name]


def test_second_run_on_a_busy_out_is_refused(tmp_path, model):
    png(tmp_path / "in" / "a.png")
    (tmp_path / "out").mkdir()
    with (
        output_lock(tmp_path / "out"),
        pytest.raises(PipelineError, match="in use by another denoise apply run"),
    ):
        apply_folder(tmp_path / "in", tmp_path / "out", model, QUIET, CPU_TILES)
    assert (
        apply_folder(
            tmp_path / "in", tmp_path / "out", model, replace(QUIET, report=False), CPU_TILES
        ).done
        == 1
    )


def test_a_live_runs_temporary_file_is_not_stale(tmp_path):
    from pipeline.apply.plan import plan_jobs

    png(tmp_path / "in" / "a.png")
    (tmp_path / "out").mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / "out" / f".a.png.partial-{sleeper.pid}"
        live.write_bytes(b"being written")
        jobs = plan_jobs(tmp_path / "in", tmp_path / "out")
        assert stale_temporaries(jobs) == []
    finally:
        sleeper.kill()
        sleeper.wait()
    assert stale_temporaries(jobs) == [live]


# --------------------------------------------------------------------------- every file recorded


def test_symbolic_links_inside_in_are_followed_and_others_recorded(tmp_path, model):
    source, elsewhere = tmp_path / "in", tmp_path / "elsewhere"
    png(source / "real" / "r.png")
    png(elsewhere / "o.png")
    (source / "inside").symlink_to(source / "real", target_is_directory=True)
    (source / "outside").symlink_to(elsewhere, target_is_directory=True)
    (source / "o.png").symlink_to(elsewhere / "o.png")
    (source / "real" / "loop").symlink_to(source, target_is_directory=True)
    result = apply_folder(source, tmp_path / "out", model, replace(QUIET, report=False), CPU_TILES)
    done = sorted(row["output"] for row in read_csv(tmp_path / "out" / "manifest.csv"))
    assert done == ["inside/r.png", "real/r.png"] and (result.done, result.failed) == (2, 4)
    reasons = {
        os.path.relpath(row["path"], source): row["reason"]
        for row in read_csv(tmp_path / "out" / "failures.csv")
    }
    assert sorted(reasons) == [
        "inside/loop",
        "o.png",
        "outside",
        "real/loop",
    ]  # the loop seen twice
    assert "skipped: symbolic link leaving the input folder" in reasons["outside"]
    assert "skipped: symbolic link leaving the input folder" in reasons["o.png"]
    assert "a loop" in reasons["real/loop"]


def test_unnamed_dicom_at_a_path_over_the_limit_is_recorded(tmp_path, model):
    """A file without a suffix whose path is over PATH_MAX (its folder's is not) cannot be
    opened to tell whether it is DICOM: it is recorded, not dropped unseen."""
    source = tmp_path / "in"
    source.mkdir()
    long_file = os.path.join(os.fsencode(source), fuzz.long_name_case(source))
    assert len(long_file) > 4096 and len(os.path.dirname(long_file)) < 4096
    result = apply_folder(source, tmp_path / "out", model, replace(QUIET, report=False), CPU_TILES)
    (row,) = read_csv(tmp_path / "out" / "failures.csv")
    assert result.failed == 1 and os.fsencode(row["path"]) == long_file
    assert "File name too long" in row["reason"]


def test_names_differing_only_in_case_get_one_row_each(tmp_path, model):
    png(tmp_path / "in" / "a.png")
    png(tmp_path / "in" / "A.png", value=40)
    png(tmp_path / "in" / "b.dcm.png")
    result = apply_folder(
        tmp_path / "in", tmp_path / "out", model, replace(QUIET, report=False), CPU_TILES
    )
    manifest, failures = (
        read_csv(tmp_path / "out" / "manifest.csv"),
        read_csv(tmp_path / "out" / "failures.csv"),
    )
    assert (result.done, result.failed) == (2, 1)
    assert sorted(os.path.basename(r["input"]) for r in manifest) == ["A.png", "b.dcm.png"]
    (row,) = failures
    assert (
        row["path"].endswith("/a.png") and "differs only in letter case from A.png" in row["reason"]
    )
