"""`denoise apply` says what happened (issue 28): no silent skips, honest records, user errors as
such.

Each test is the smallest run that showed a run ending 0 with a wrong or missing output,
or a user error reported as something else.
"""

from __future__ import annotations

import html
from dataclasses import replace

import numpy as np
import pytest
import tifffile
from PIL import Image
from script_loading import load_script
from test_apply_hostile import png
from tiny_models import save_tiny_unet

from pipeline.apply import ApplyOptions, apply_folder
from pipeline.cli import main
from pipeline.config import InferenceConfig
from pipeline.io import read_image
from pipeline.records import read_csv

fuzz = load_script("fuzz_apply")
QUIET = ApplyOptions(progress=False, report=False)
CPU_TILES = InferenceConfig(device="cpu", tile_size=32)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return fuzz.tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


# --------------------------------------------------------------------------- what "finished" means


def test_a_foreign_file_under_an_output_name_is_a_clash_not_finished(tmp_path, model):
    source = png(tmp_path / "in" / "a.png")
    png(tmp_path / "in" / "b.png", value=10)
    (tmp_path / "out").mkdir()
    foreign = tmp_path / "out" / "a.png"
    foreign.write_bytes(source.read_bytes())  # `cp in/a.png out/`: not denoised

    result = apply_folder(tmp_path / "in", tmp_path / "out", model, QUIET, CPU_TILES)

    assert (result.done, result.skipped, result.failed, result.exit_code) == (1, 0, 1, 1)
    assert foreign.read_bytes() == source.read_bytes()  # left as it is, never taken for an output
    [failure] = read_csv(tmp_path / "out" / "failures.csv")
    assert failure["path"].endswith("a.png") and "already exists" in failure["reason"]
    assert "--overwrite" in failure["reason"]
    assert [row["input"][-5:] for row in read_csv(tmp_path / "out" / "manifest.csv")] == ["b.png"]

    redo = apply_folder(
        tmp_path / "in", tmp_path / "out", model, replace(QUIET, overwrite=True), CPU_TILES
    )
    assert (redo.done, redo.failed) == (2, 0)
    assert foreign.read_bytes() != source.read_bytes()


def test_finished_means_recorded_with_the_inputs_hash_and_the_model(tmp_path, model):
    source = png(tmp_path / "in" / "a.png")
    first = apply_folder(tmp_path / "in", tmp_path / "out", model, QUIET, CPU_TILES)
    [row] = read_csv(tmp_path / "out" / "manifest.csv")
    assert first.done == 1 and len(row["input_sha256"]) == 64

    again = apply_folder(tmp_path / "in", tmp_path / "out", model, QUIET, CPU_TILES)
    assert (again.done, again.skipped) == (0, 1)

    png(source, value=200)  # the input changed since: its recorded output is stale
    changed = apply_folder(tmp_path / "in", tmp_path / "out", model, QUIET, CPU_TILES)
    assert (changed.done, changed.skipped, changed.failed) == (1, 0, 0)
    [row_after] = read_csv(tmp_path / "out" / "manifest.csv")
    assert row_after["input_sha256"] != row["input_sha256"]


# --------------------------------------------------------------------------- bit depth


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).ravel(), b.astype(np.float64).ravel())[0, 1])


def _ramp(high: int, dtype, shape=(40, 40)) -> np.ndarray:
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.round((x + y) / (shape[0] + shape[1] - 2) * high).astype(dtype)


@pytest.mark.parametrize(
    ("name", "values", "bits"),
    [
        ("wide.tif", _ramp(1_000_000, np.uint32), 20),
        ("twelve.tif", _ramp(4095, np.uint16), 12),
        ("twelve.png", _ramp(4095, np.uint16), 12),
    ],
)
def test_values_in_a_small_part_of_the_dtype_keep_their_range(tmp_path, name, values, bits):
    model = save_tiny_unet(tmp_path / "unet.pt")  # residual: its output follows its input
    path = tmp_path / "in" / name
    path.parent.mkdir()
    if name.endswith(".png"):
        Image.fromarray(values).save(path)  # no sBIT chunk: the observed range decides
    else:
        tifffile.imwrite(path, values)
    [image] = read_image(path)
    assert image.meta.bits_stored == bits and image.pixels.max() > 0.9

    result = apply_folder(tmp_path / "in", tmp_path / "out", model, QUIET, CPU_TILES)

    assert result.done == 1
    [row] = read_csv(tmp_path / "out" / "manifest.csv")
    assert row["bits_stored"] == str(bits)
    written = (
        tifffile.imread(tmp_path / "out" / name)
        if name.endswith(".tif")
        else np.asarray(Image.open(tmp_path / "out" / name))
    )
    assert written.dtype == values.dtype
    assert 0 <= written.min() and written.max() <= 2**bits - 1
    assert _correlation(written, values) > 0.9


# --------------------------------------------------------------------------- names


def test_an_escaped_name_and_the_raw_byte_name_keep_their_own_records(tmp_path, model):
    folder = tmp_path / "in"
    raw = png(tmp_path / "raw.png")
    folder.mkdir()
    with open(bytes(folder) + b"/a\xff.png", "wb") as handle:
        handle.write(raw.read_bytes())
    png(folder / "a\\xff.png", value=30)  # a literal backslash sequence in the name

    first = apply_folder(folder, tmp_path / "out", model, QUIET, CPU_TILES)
    rows = read_csv(tmp_path / "out" / "manifest.csv")
    assert first.done == 2 and len({row["input"] for row in rows}) == 2
    assert len({row["output"] for row in rows}) == 2

    again = apply_folder(folder, tmp_path / "out", model, QUIET, CPU_TILES)
    assert (again.done, again.skipped, again.failed) == (0, 2, 0)
    assert len(read_csv(tmp_path / "out" / "manifest.csv")) == 2


# --------------------------------------------------------------------------- user errors


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [line for line in err.splitlines() if line.startswith("error:")]
    return line


def test_an_empty_output_path_is_refused(tmp_path, model, capsys, monkeypatch):
    png(tmp_path / "in" / "a.png")
    monkeypatch.chdir(tmp_path)
    code = main(
        ["apply", "-i", "in", "-o", "", "--model", str(model), "--no-progress", "--device", "cpu"]
    )
    assert code == 2
    assert "-o" in _error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_an_overlap_above_the_bound_is_refused(tmp_path, model, capsys):
    png(tmp_path / "in" / "a.png")
    code = main(
        [
            "apply",
            "-i",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
            "--model",
            str(model),
            "--overlap",
            "0.99",
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert code == 2
    assert "overlap" in _error_line(capsys)


def test_an_input_folder_without_an_image_warns_and_exits_1(tmp_path, model, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "notes.txt").write_text("no image here")
    code = main(
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
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "warning:" in err and "no image" in err


def test_a_model_trained_on_mnist_warns_once_on_scans(tmp_path, model, capsys):
    png(tmp_path / "in" / "a.png")
    png(tmp_path / "in" / "b.png", value=40)
    code = main(
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
    err = capsys.readouterr().err
    assert code == 0
    assert err.count("trained on MNIST") == 1


# --------------------------------------------------------------------------- the report


def test_the_report_counts_and_lists_failures_and_draws_crops_at_native_size(tmp_path, model):
    png(tmp_path / "in" / "good.png", (100, 90))
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)

    result = apply_folder(
        tmp_path / "in", tmp_path / "out", model, replace(QUIET, report=True), CPU_TILES
    )

    assert (result.done, result.failed) == (1, 1)
    page = (tmp_path / "out" / "report.html").read_text()
    assert "1 files denoised; 1 failed" in page
    [reason] = [row["reason"] for row in read_csv(tmp_path / "out" / "failures.csv")]
    assert "Failed files" in page and "broken.png" in page
    assert html.escape(reason) in page
    assert "broken.png" in (tmp_path / "out" / "report.md").read_text()
    side = 64  # a quarter of the short side, at least CROP_MIN
    assert page.count(f'width="{side}" height="{side}"') == 3  # input, output, removed crops at 1:1
    assert ".crops img { width: 100%" not in page
    assert "sha256 (first 16 hex digits)" in page
