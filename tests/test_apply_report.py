"""The report of `denoise apply`: the sample it shows, the viewer page, the files beside it."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from pipeline.apply.records import MANIFEST, NOISE_AFTER, NOISE_BEFORE, manifest_rows
from pipeline.records import write_csv
from pipeline.report.apply_page import write_apply_report
from pipeline.report.apply_sample import choose_sample
from pipeline.report.apply_views import VIEWS

UID = "1.2.826.0.1.3680043.8.498.10368940475310924637281623"


def _row(name: str, noise: float, inputs: Path = Path("/in")) -> dict:
    return {
        "input": str(inputs / name),
        "output": name,
        NOISE_BEFORE: noise,
        NOISE_AFTER: noise / 3,
        "height": 64,
        "width": 64,
        "seconds": 0.5,
        "model": "unet m",
        "model_sha256": "ab" * 32,
    }


def test_sample_covers_formats_folders_and_the_noise_range() -> None:
    rows = [_row(f"a/{i:02d}.png", 0.01 + 0.001 * i) for i in range(20)]
    rows += [_row("b/x.dcm", 0.002), _row("c/y.tif", 0.015)]
    sample = choose_sample(rows, Path("/in"), size=6)
    names = {Path(r["input"]).relative_to("/in").as_posix() for r in sample}
    assert len(sample) == 6
    assert {"b/x.dcm", "c/y.tif"} <= names  # every format and folder
    assert "a/19.png" in names and "a/00.png" in names  # both ends of the noise range
    assert [r["input"] for r in sample] == sorted(r["input"] for r in sample)
    assert choose_sample(rows[:3], Path("/in"), size=6) == rows[:3]


def _scan(shape: tuple[int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]] / max(shape)
    image = (
        0.3
        + 0.4 * np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.1)
        + 0.05 * np.sin(60 * x) * (y > 0.5)
    )
    return np.clip(image + rng.normal(0, 0.03, shape), 0, 1)


def make_apply_folder(root: Path) -> tuple[Path, Path, list[dict]]:
    """IN with scans in nested folders, OUT with 'denoised' copies and their manifest rows."""
    inputs, outputs = root / "IN", root / "OUT"
    rows = []
    for i, (name, shape) in enumerate(
        [
            (f"site A/patient 1/{UID}.1.png", (300, 240)),
            ("site A/patient 2/small.png", (64, 64)),
            ("site B/chest.png", (200, 260)),
        ]
    ):
        noisy = _scan(shape, i)
        smooth = gaussian_filter(noisy, 1.0)
        for folder, image in ((inputs, noisy), (outputs, smooth)):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.round(image * 255).astype(np.uint8)).save(folder / name)
        rows.append({**_row(name, 0.03 - 0.005 * i, inputs), "height": shape[0], "width": shape[1]})
    return inputs, outputs, rows


def test_apply_report_page_and_views(tmp_path) -> None:
    inputs, outputs, rows = make_apply_folder(tmp_path)
    written = write_apply_report(rows, outputs, inputs)
    page = written["html"].read_text()
    for fact in ("unet m", "ab" * 32, "denoise-pipeline", str(inputs), str(outputs), "command"):
        assert fact in page
    assert (
        f"site A/patient 1/{UID}.1.png" in page and str(inputs / "site B") not in page
    )  # relative to IN
    assert '<table class="sortable">' in page and "<script>" in page and "<style>" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|/)""", page)  # relative or data: only
    views = sorted(p.name for p in (outputs / VIEWS).iterdir())
    assert views == [
        f"{i:03d}_{kind}.png" for i in range(3) for kind in ("input", "output", "removed")
    ] + ["noise_before_after.png"]
    with Image.open(outputs / VIEWS / "000_input.png") as image:
        assert image.size == (240, 300)  # native resolution
    for i in range(3):
        assert f'data-removed="{VIEWS}/{i:03d}_removed.png"' in page
    md = written["markdown"].read_text()
    assert f"| site A/patient 1/{UID}.1.png |" in md
    # a rerun with fewer scans leaves no stale views behind
    write_apply_report(rows[:1], outputs, inputs)
    assert sorted(p.name for p in (outputs / VIEWS).glob("0*.png")) == [
        f"000_{k}.png" for k in ("input", "output", "removed")
    ]


def test_manifest_of_an_earlier_version_is_read_with_the_new_column_names(tmp_path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    old = {
        "input": "/in/a.png",
        "output": "a.png",
        "noise_before": "0.02",
        "noise_after": "0.005",
        "finished": "t",
    }
    write_csv([old], tmp_path / MANIFEST)
    (row,) = manifest_rows(tmp_path)
    assert row[NOISE_BEFORE] == "0.02" and row[NOISE_AFTER] == "0.005" and "noise_before" not in row


def test_views_are_the_whole_image_pictures(tmp_path) -> None:
    """The views, made a block of rows at a time, are the pictures of the whole images."""
    from pipeline.io import read_image
    from pipeline.report.apply_views import _diverging8, _gray8

    inputs, outputs, rows = make_apply_folder(tmp_path)
    write_apply_report(rows[:1], outputs, inputs)
    before = read_image(inputs / rows[0]["output"])[0].pixels
    after = read_image(outputs / rows[0]["output"])[0].pixels
    removed = before - after
    limit = float(np.percentile(np.abs(removed), 99.5))
    for kind, expected in (
        ("input", _gray8(before)),
        ("output", _gray8(after)),
        ("removed", _diverging8(removed, limit)),
    ):
        with Image.open(outputs / VIEWS / f"000_{kind}.png") as image:
            np.testing.assert_array_equal(np.asarray(image), expected)


def test_views_of_a_large_scan_need_about_two_float_images(tmp_path) -> None:
    """A 1024x1024 16-bit scan: the report holds the two float32 images (4 MiB each) and
    blocks of a few MiB, never float64 RGBA copies of the whole scan (32 MiB each)."""
    import tracemalloc

    shape = (1024, 1024)
    rows = []
    for name, image in (("scan.png", _scan(shape, 0)),):
        for folder, values in (
            (tmp_path / "IN", image),
            (tmp_path / "OUT", gaussian_filter(image, 1.0)),
        ):
            folder.mkdir(exist_ok=True)
            Image.fromarray(np.round(values * 65535).astype(np.uint16)).save(folder / name)
        rows.append({**_row(name, 0.03, tmp_path / "IN"), "height": shape[0], "width": shape[1]})
    tracemalloc.start()
    try:
        write_apply_report(rows, tmp_path / "OUT", tmp_path / "IN")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (tmp_path / "OUT" / VIEWS / "000_removed.png").is_file()
    assert peak < 40 * 2**20, f"{peak / 2**20:.0f} MiB"
