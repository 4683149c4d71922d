"""`denoise apply`: folder in, folder out, streaming, resumable, crash-safe, split across parts."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pipeline.apply.writer
from pipeline.apply import ApplyOptions, apply_folder, merge_parts
from pipeline.apply.plan import resolve_part
from pipeline.apply.stream import WriteBehind, prefetch
from pipeline.checkpoint import (
    SHIPPED_MODEL,
    build_checkpoint,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from pipeline.cli import main
from pipeline.config import Config, InferenceConfig
from pipeline.errors import PipelineError
from pipeline.models import build_model
from pipeline.records import read_csv
from pipeline.report.apply_views import VIEWS

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FAST = ["--tile-size", "32", "--no-progress", "--device", "cpu"]
#: Many small tiles: slow enough to kill a run between two files.
SLOW = [
    "--tile-size",
    "16",
    "--overlap",
    "0.75",
    "--batch-size",
    "1",
    "--no-progress",
    "--no-report",
    "--device",
    "cpu",
]


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 4-filter conv model saved in the format pipeline.train writes."""
    cfg = Config()
    cfg.model.name = "conv"
    cfg.model.features = 4
    cfg.run.name = "tiny"
    torch.manual_seed(0)
    model = build_model(cfg.model)
    return save_checkpoint(
        build_checkpoint(model, cfg), tmp_path_factory.mktemp("model") / "tiny.pt"
    )


def _noisy(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A smooth gradient plus noise, in [0, 1]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]] / max(shape)
    return np.clip(0.3 + 0.4 * x * y + rng.normal(0, 0.05, shape), 0, 1)


def _save_png(path: Path, pixels: np.ndarray, dtype: type) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((pixels * np.iinfo(dtype).max).round().astype(dtype)).save(path)
    return path


def _png_folder(root: Path, n: int = 2, size: int = 48) -> Path:
    """`n` 16-bit PNGs in root/ and root/sub/."""
    for i in range(n):
        _save_png(
            root / ("sub" if i % 2 else "") / f"img{i}.png", _noisy((size, size), i), np.uint16
        )
    return root


@pytest.fixture
def scans(tmp_path: Path) -> Path:
    """8-bit and 16-bit PNGs in nested folders, a JPEG beside a PNG of the same stem, a broken
    file."""
    root = tmp_path / "in"
    _save_png(root / "a8.png", _noisy((40, 56), 0), np.uint8)
    _save_png(root / "sub" / "b16.png", _noisy((70, 50), 1), np.uint16)
    _save_png(root / "sub" / "deeper" / "c.png", _noisy((36, 36), 2), np.uint8)
    Image.fromarray((_noisy((36, 36), 3) * 255).astype(np.uint8)).save(
        root / "sub" / "deeper" / "c.jpg"
    )
    (root / "sub" / "broken.png").write_bytes(b"this is not a PNG")
    return root


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _outputs(root: Path) -> dict[str, bytes]:
    """Image outputs under root (records, report and hidden files left out)."""
    records = {".csv", ".html", ".md"}
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and p.suffix not in records
        and VIEWS not in p.parts
        and not p.name.startswith(".")
    }


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _apply_cmd(src: Path, dest: Path, checkpoint: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pipeline",
        "apply",
        "-i",
        str(src),
        "-o",
        str(dest),
        "--model",
        str(checkpoint),
        *extra,
    ]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        cmd,
        check=False,
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def _popen(cmd: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        cmd, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


# --------------------------------------------------------------------------- one folder


def test_apply_mirrors_tree_keeps_bit_depth_and_records_failures(
    scans: Path, tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    before = _hashes(scans)
    status = main(["apply", "-i", str(scans), "-o", str(out), "--model", str(checkpoint), *FAST])

    assert status == 1  # the broken file failed, the rest went on
    printed = capsys.readouterr().out
    assert "denoised 4 files" in printed and "1 failed" in printed
    assert f"manifest: {out / 'manifest.csv'}" in printed and "report: " in printed
    assert _hashes(scans) == before  # inputs untouched
    assert sorted(_outputs(out)) == [
        "a8.png",
        "sub/b16.png",
        "sub/deeper/c.png",
        "sub/deeper/c_jpg.png",
    ]
    for name, dtype, shape in [
        ("a8.png", np.uint8, (40, 56)),
        ("sub/b16.png", np.uint16, (70, 50)),
        ("sub/deeper/c_jpg.png", np.uint8, (36, 36)),
    ]:
        with Image.open(out / name) as img:
            assert img.format == "PNG"
            assert np.asarray(img).dtype == dtype and np.asarray(img).shape == shape

    failures = _rows(out / "failures.csv")
    assert [Path(f["path"]).name for f in failures] == ["broken.png"]
    assert "broken.png" in failures[0]["reason"]
    rows = _rows(out / "manifest.csv")
    assert len(rows) == 4
    b16 = next(r for r in rows if r["output"] == "sub/b16.png")
    assert b16["input"] == str((scans / "sub" / "b16.png").resolve())
    assert (b16["frames"], b16["height"], b16["width"], b16["megapixels"]) == (
        "1",
        "70",
        "50",
        "0.0035",
    )
    assert float(b16["noise_before_fraction_of_range"]) > 0.02 and float(b16["seconds"]) > 0
    assert "conv model from tiny.pt" in b16["model"] and len(b16["model_sha256"]) == 16
    assert (out / "report.html").is_file() and (out / VIEWS / "000_output.png").is_file()
    assert not [p for p in out.rglob("*") if ".partial-" in p.name]


def test_rerun_skips_finished_and_overwrite_redoes(
    scans: Path, tmp_path: Path, checkpoint: Path
) -> None:
    out = tmp_path / "out"
    first = apply_folder(
        scans,
        out,
        checkpoint,
        ApplyOptions(progress=False, report=False),
        InferenceConfig(tile_size=32),
    )
    assert (first.done, first.skipped, first.failed, first.exit_code) == (4, 0, 1, 1)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}

    again = apply_folder(
        scans,
        out,
        checkpoint,
        ApplyOptions(progress=False, report=False),
        InferenceConfig(tile_size=32),
    )
    assert (again.done, again.skipped, again.failed) == (0, 4, 1)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps
    assert len(_rows(out / "manifest.csv")) == 4  # earlier rows kept

    redo = apply_folder(
        scans,
        out,
        checkpoint,
        ApplyOptions(progress=False, report=False, overwrite=True),
        InferenceConfig(tile_size=32),
    )
    assert (redo.done, redo.skipped) == (4, 0)
    rows = _rows(out / "manifest.csv")
    assert len(rows) == 4 and len({r["input"] for r in rows}) == 4  # replaced, not duplicated


def test_output_folder_must_not_overlap_input(
    scans: Path, tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    for out in (scans, scans / "sub" / "out"):
        assert (
            main(["apply", "-i", str(scans), "-o", str(out), "--model", str(checkpoint), *FAST])
            == 2
        )
        assert "inside the input folder" in capsys.readouterr().err or out == scans
    assert not (scans / "sub" / "out").exists()
    with pytest.raises(PipelineError, match="input folder .* is inside the output folder"):
        apply_folder(scans, tmp_path, checkpoint, ApplyOptions(progress=False))


def test_outputs_never_leave_the_output_folder(tmp_path: Path, checkpoint: Path) -> None:
    src = _png_folder(tmp_path / "in", n=2)
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / "sub").symlink_to(elsewhere, target_is_directory=True)

    result = apply_folder(
        src,
        out,
        checkpoint,
        ApplyOptions(progress=False, report=False),
        InferenceConfig(tile_size=32),
    )
    assert (result.done, result.failed) == (1, 1)
    assert list(elsewhere.iterdir()) == []
    assert "outside" in _rows(out / "failures.csv")[0]["reason"]


def test_chosen_format_multiframe_and_volume(tmp_path: Path, checkpoint: Path) -> None:
    import nibabel as nib
    import tifffile

    src = _png_folder(tmp_path / "in", n=1)
    pages = (np.stack([_noisy((24, 32), k) for k in range(3)]) * 65535).astype(np.uint16)
    tifffile.imwrite(src / "pages.tif", pages, photometric="minisblack")
    nib.save(
        nib.Nifti1Image((pages.transpose(1, 2, 0) // 16).astype(np.int16), np.eye(4)),
        src / "vol.nii.gz",
    )

    tiff = apply_folder(
        src,
        tmp_path / "tiff",
        checkpoint,
        ApplyOptions(fmt="tiff", progress=False, report=False),
        InferenceConfig(tile_size=32),
    )
    assert tiff.failed == 0
    assert tifffile.imread(tmp_path / "tiff" / "img0.tif").dtype == np.uint16
    frames = sorted(p.name for p in (tmp_path / "tiff" / "pages.frames").iterdir())
    assert frames == ["frame_0000.tif", "frame_0001.tif", "frame_0002.tif"]

    nifti = apply_folder(
        src,
        tmp_path / "nii",
        checkpoint,
        ApplyOptions(progress=False, report=False),
        InferenceConfig(tile_size=32),
    )
    assert nifti.failed == 0
    volume = nib.load(tmp_path / "nii" / "vol.nii.gz")
    assert volume.shape == (24, 32, 3) and volume.get_data_dtype() == np.int16


@pytest.mark.filterwarnings("ignore:.*ACR-NEMA:UserWarning")
def test_dicom_outputs_form_a_derived_series(
    cxr_dir: Path, tmp_path: Path, checkpoint: Path
) -> None:
    import pydicom

    nih = next((cxr_dir / "dicom").glob("nih_cxr14_*.dcm"))
    acr = next((cxr_dir / "dicom").glob("fodicom_*.dcm"))
    src = tmp_path / "in"
    for folder in ("s1", "s2"):  # two files of one source series
        (src / folder).mkdir(parents=True)
        shutil.copy(nih, src / folder / nih.name)
    shutil.copy(acr, src / "old_acr_nema")  # no suffix, no file meta
    before = _hashes(src)

    result = apply_folder(
        src,
        tmp_path / "out",
        checkpoint,
        ApplyOptions(progress=False),
        InferenceConfig(tile_size=256),
    )
    assert (result.done, result.failed) == (3, 0)
    assert _hashes(src) == before
    source = pydicom.dcmread(nih)
    one, two = (pydicom.dcmread(tmp_path / "out" / f / nih.name) for f in ("s1", "s2"))
    assert one.SeriesInstanceUID == two.SeriesInstanceUID != source.SeriesInstanceUID
    assert one.SOPInstanceUID != two.SOPInstanceUID
    assert one.StudyInstanceUID == source.StudyInstanceUID
    assert "conv" in one.SeriesDescription and pipeline.__version__ in one.SeriesDescription
    assert "conv model from tiny.pt" in one.DerivationDescription
    assert pipeline.__version__ in one.DerivationDescription
    assert one.pixel_array.shape == source.pixel_array.shape
    acr_out = pydicom.dcmread(tmp_path / "out" / "old_acr_nema.dcm")
    assert acr_out.PhotometricInterpretation == "MONOCHROME1" and acr_out.BitsStored == 10

    again = apply_folder(
        src,
        tmp_path / "out",
        checkpoint,
        ApplyOptions(progress=False, report=False, overwrite=True),
        InferenceConfig(tile_size=256),
    )
    assert again.done == 3  # a rerun into the same folder keeps the derived series
    assert (
        pydicom.dcmread(tmp_path / "out" / "s1" / nih.name).SeriesInstanceUID
        == one.SeriesInstanceUID
    )


# --------------------------------------------------------------------------- crash safety


def test_killed_run_resumes_to_byte_identical_outputs(tmp_path: Path, checkpoint: Path) -> None:
    src = _png_folder(tmp_path / "in", n=6, size=128)
    reference = _popen(_apply_cmd(src, tmp_path / "ref", checkpoint, *SLOW))
    killed = _popen(_apply_cmd(src, tmp_path / "out", checkpoint, *SLOW))
    deadline = time.monotonic() + 90
    while (
        not (tmp_path / "out" / "img0.png").exists()
        and killed.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert reference.wait(timeout=120) == 0, reference.stderr.read()

    expected = _outputs(tmp_path / "ref")
    partial = _outputs(tmp_path / "out")
    assert 0 < len(partial) < len(expected), "the kill should land partway"
    assert all(partial[name] == expected[name] for name in partial)  # final names are complete

    resumed = _run(_apply_cmd(src, tmp_path / "out", checkpoint, *SLOW))
    assert resumed.returncode == 0, resumed.stderr
    assert f"skipped {len(partial)} already finished" in resumed.stdout
    assert _outputs(tmp_path / "out") == expected
    assert not [p for p in (tmp_path / "out").rglob("*") if ".partial-" in p.name]
    rows = _rows(tmp_path / "out" / "manifest.csv")
    assert sorted(r["output"] for r in rows) == sorted(expected)


def test_failed_write_leaves_neither_partial_nor_final_file(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = _png_folder(tmp_path / "in", n=2)

    def half_then_fail(image, path, fmt=None, **options):
        Path(path).write_bytes(b"half a PNG")
        raise OSError("No space left on device")

    monkeypatch.setattr(pipeline.apply.writer, "write_image", half_then_fail)
    result = apply_folder(
        src,
        tmp_path / "out",
        checkpoint,
        ApplyOptions(progress=False),
        InferenceConfig(tile_size=32),
    )
    assert (result.done, result.failed) == (0, 2)
    assert (
        "0 files denoised; 2 failed" in result.report.read_text()
    )  # the report lists the failures
    assert _outputs(tmp_path / "out") == {}
    assert not [p for p in (tmp_path / "out").rglob("*") if ".partial-" in p.name]
    assert "No space left on device" in _rows(tmp_path / "out" / "failures.csv")[0]["reason"]


def test_resume_with_another_model_is_refused(tmp_path: Path, checkpoint: Path) -> None:
    src = _png_folder(tmp_path / "in", n=1)
    apply_folder(
        src,
        tmp_path / "out",
        checkpoint,
        ApplyOptions(progress=False, report=False),
        InferenceConfig(tile_size=32),
    )
    other = tmp_path / "other.pt"
    state = read_checkpoint(checkpoint)
    state["model_state"] = {k: v + 0.01 for k, v in state["model_state"].items()}
    save_checkpoint(state, other)
    with pytest.raises(PipelineError, match="another model"):
        apply_folder(
            src,
            tmp_path / "out",
            other,
            ApplyOptions(progress=False, report=False),
            InferenceConfig(tile_size=32),
        )
    redo = apply_folder(
        src,
        tmp_path / "out",
        other,
        ApplyOptions(progress=False, report=False, overwrite=True),
        InferenceConfig(tile_size=32),
    )
    assert redo.done == 1


def test_partial_last_csv_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("input,output\na,b\nc,d")  # the last row was cut by a kill
    assert read_csv(path) == [{"input": "a", "output": "b"}]


def test_prefetch_reads_a_bounded_number_of_files_ahead() -> None:
    loaded: list[int] = []
    lead = []

    def load(i: int) -> int:
        loaded.append(i)
        if i == 3:
            raise ValueError("bad file")
        return i * 10

    results = []
    for consumed, (item, value, seconds) in enumerate(prefetch(range(20), load, depth=2), start=1):
        time.sleep(0.005)
        lead.append(len(loaded) - consumed)
        results.append(value if not isinstance(value, Exception) else str(value))
        assert seconds >= 0
    assert results[:5] == [0, 10, 20, "bad file", 40] and len(results) == 20
    assert max(lead) <= 3  # queue of 2 plus the one in the reader's hands
    assert not [t for t in threading.enumerate() if t.name == "denoise-reader"]


def test_write_behind_runs_calls_in_order_with_a_bounded_queue() -> None:
    done: list[int] = []
    waiting = []
    writer = WriteBehind(depth=1)
    for i in range(6):
        writer.submit(lambda i=i: (time.sleep(0.002), done.append(i)))
        waiting.append(i + 1 - len(done))
    writer.close()
    assert done == list(range(6)) and max(waiting) <= 1  # never more than one call pending
    failing = WriteBehind()
    failing.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.close()


def test_apply_output_equals_inference_on_the_array(tmp_path: Path, checkpoint: Path) -> None:
    """Reading, tiled in-place denoising and writing give the values of the network on the decoded
    array."""
    from pipeline.inference import denoiser_from_checkpoint
    from pipeline.io import read_image

    src = _png_folder(tmp_path / "in", n=1, size=150)
    apply_folder(
        src,
        tmp_path / "out",
        checkpoint,
        ApplyOptions(progress=False, report=False),
        InferenceConfig(tile_size=32, batch_size=3, device="cpu"),
    )
    denoiser, _ = denoiser_from_checkpoint(
        checkpoint, InferenceConfig(device="cpu", tile_size=32, batch_size=3)
    )
    expected = denoiser(read_image(src / "img0.png")[0].pixels)
    written = np.asarray(Image.open(tmp_path / "out" / "img0.png")).astype(np.float64)
    assert np.array_equal(written, np.rint(expected.astype(np.float64) * 65535))


# --------------------------------------------------------------------------- scale-out


def test_resolve_part_from_arguments_and_torchrun_env() -> None:
    assert resolve_part(None, None, {}) == (1, 0, False)
    assert resolve_part(None, None, {"WORLD_SIZE": "4", "RANK": "3"}) == (4, 3, True)
    assert resolve_part(3, 1, {"WORLD_SIZE": "4", "RANK": "3"}) == (3, 1, False)
    with pytest.raises(PipelineError, match="part 2 of 2"):
        resolve_part(2, 2, {})


def _assert_each_output_once(src: Path, out: Path, rows: list[dict[str, str]]) -> None:
    inputs = sorted(str(p.resolve()) for p in src.rglob("*.png"))
    assert sorted(r["input"] for r in rows) == inputs  # each input exactly once
    assert sorted(_outputs(out)) == sorted(r["output"] for r in rows)


def test_two_independent_parts_split_disjointly_then_merge(
    tmp_path: Path, checkpoint: Path
) -> None:
    src, out = _png_folder(tmp_path / "in", n=5, size=32), tmp_path / "out"
    jobs = [
        _popen(_apply_cmd(src, out, checkpoint, *FAST, "--num-parts", "2", "--part-id", str(k)))
        for k in (0, 1)
    ]
    for job in jobs:
        assert job.wait(timeout=120) == 0, job.stderr.read()
    parts = [_rows(out / f"manifest.part-{k}.csv") for k in (0, 1)]
    assert [len(p) for p in parts] == [3, 2]  # files 0, 2, 4 and 1, 3
    _assert_each_output_once(src, out, parts[0] + parts[1])
    assert not (out / "report.html").exists()

    merged = apply_folder(
        src,
        out,
        checkpoint,
        ApplyOptions(progress=False, report=False),
        InferenceConfig(tile_size=32),
    )
    assert (merged.done, merged.skipped) == (0, 5)
    _assert_each_output_once(src, out, _rows(out / "manifest.csv"))
    assert not list(out.glob("*.part-*.csv"))


def test_torchrun_two_processes_split_and_rank0_merges(tmp_path: Path, checkpoint: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.is_file():
        pytest.skip(f"{torchrun} is absent")
    src, out = _png_folder(tmp_path / "in", n=5, size=32), tmp_path / "out"
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "pipeline",
        "apply",
        "-i",
        str(src),
        "-o",
        str(out),
        "--model",
        str(checkpoint),
        *FAST,
    ]
    done = _run(cmd)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(part 0 of 2)" in done.stdout and "(part 1 of 2)" in done.stdout
    _assert_each_output_once(src, out, _rows(out / "manifest.csv"))
    assert not list(out.glob("*.part-*.csv"))
    assert (out / "report.html").is_file()


def test_merge_keeps_the_newest_row_per_input(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"x")
    header = "input,output,finished\n"
    (tmp_path / "manifest.csv").write_text(
        header + "/in/x.png,x.png,2024-01-01\n/in/gone.png,gone.png,2024-01-01\n"
    )
    (tmp_path / "manifest.part-1.csv").write_text(header + "/in/x.png,x.png,2025-01-01\n")
    (tmp_path / "failures.part-0.csv").write_text(
        "path,reason\n/in/bad.png,broken\n/in/x.png,old failure\n"
    )
    rows, failures = merge_parts(tmp_path)
    assert [(r["input"], r["finished"]) for r in rows] == [("/in/x.png", "2025-01-01")]
    assert [(str(f.path), f.reason) for f in failures] == [("/in/bad.png", "broken")]
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == ["failures.csv", "manifest.csv"]


def test_python_api_from_pipeline(tmp_path: Path, checkpoint: Path) -> None:
    from pipeline import apply_folder as api

    src = _png_folder(tmp_path / "in", n=2, size=32)
    result = api(src, tmp_path / "out", checkpoint, ApplyOptions(progress=False, report=False))
    assert (result.done, result.failed) == (2, 0) and result.exit_code == 0


@pytest.mark.slow
def test_acceptance_real_radiograph_folder(cxr_dir: Path, tmp_path: Path, checkpoint: Path) -> None:
    """The five DICOMs and the PNG/JPEG radiographs, a nested folder and broken files, in one
    command."""
    from dicom_validation import dciodvfy_errors

    from pipeline.io import detect_format, read_image

    src = tmp_path / "scans"
    (src / "nested" / "deeper").mkdir(parents=True)
    for path in sorted((cxr_dir / "dicom").iterdir()):
        shutil.copy(path, src / path.name)
    for path in sorted((cxr_dir / "png" / "nih_chestxray14").iterdir()) + sorted(
        (cxr_dir / "png" / "opencxr_tests").iterdir()
    ):
        shutil.copy(path, src / "nested" / path.name)
    for path in sorted((cxr_dir / "png" / "hannover_mhh_covid").iterdir())[:2]:
        shutil.copy(path, src / "nested" / "deeper" / path.name)
    (src / "empty.dcm").write_bytes(b"")
    (src / "nested" / "notes.png").write_text("not an image")
    (src / "nested" / "deeper" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00" * 50)
    before = _hashes(src)
    out = tmp_path / "out"
    proc = _run(_apply_cmd(src, out, checkpoint))
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert _hashes(src) == before, "inputs must never change"
    failed = {Path(r["path"]).name for r in _rows(out / "failures.csv")}
    assert failed == {"empty.dcm", "notes.png", "broken.dcm"}
    rows = _rows(out / "manifest.csv")
    assert len(rows) == 5 + 7 + 2
    for row in rows:
        source, output = Path(row["input"]), out / row["output"]
        assert output.is_file() and output.resolve().is_relative_to(out.resolve())
        source_format = detect_format(source)
        assert detect_format(output) == ("png" if source_format == "jpeg" else source_format)
        written, original = read_image(output)[0], read_image(source)[0]
        assert written.pixels.shape == original.pixels.shape
        assert written.meta.dtype == original.meta.dtype
        if source_format == "dicom":
            assert not dciodvfy_errors(output) - dciodvfy_errors(source), (
                f"{output.name} adds dciodvfy errors"
            )


def test_shipped_model_is_the_default_and_denoises(tmp_path: Path) -> None:
    loaded = load_model(None)
    assert loaded.path == SHIPPED_MODEL and SHIPPED_MODEL.stat().st_size < 10 * 1024 * 1024
    assert loaded.config.model.name == "unet" and loaded.meta["provenance"]["training_data"]
    y, x = np.mgrid[0:96, 0:96] / 95.0
    clean = (0.3 + 0.4 * np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.08)).astype(np.float32)
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.1, clean.shape), 0, 1)
    src = tmp_path / "in"
    src.mkdir()
    _save_png(src / "scan.png", noisy, np.uint16)
    result = apply_folder(src, tmp_path / "out", None, ApplyOptions(progress=False, report=False))
    assert result.done == 1
    out = np.asarray(Image.open(tmp_path / "out" / "scan.png"), dtype=np.float64) / 65535
    assert np.mean((out - clean) ** 2) < 0.25 * np.mean((noisy - clean) ** 2), (
        "the shipped model must reduce the error"
    )
