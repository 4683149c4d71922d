"""Folder ingest on real radiographs mixed with broken files: good ones load, bad ones are
listed."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.errors import PipelineError
from pipeline.ingest.failures import Failure, write_failures_csv
from pipeline.ingest.folder import load_folder, read_files, resize_image, scan_folder

pytestmark = pytest.mark.filterwarnings(
    r"ignore:.*bad\.dcm:UserWarning"
)  # io warns on the corrupt DICOM

BAD = ("bad.dcm", "colour.jpg", "empty.png", "notes.png")


@pytest.fixture
def mixed_folder(cxr_dir: Path, tmp_path: Path) -> Path:
    """Three real scans (PNG, RGB-stored gray PNG, JPEG; two in nested folders), four bad files."""
    root = tmp_path / "scans"
    nested = root / "sub" / "deeper"
    nested.mkdir(parents=True)
    shutil.copy(
        cxr_dir / "png/nih_chestxray14/00000001_000_512px_torchxrayvision.png", root / "nih.png"
    )
    lowres = min((cxr_dir / "lowres/nih1000_64px/train/0_normal").glob("*.png"))
    shutil.copy(lowres, root / "sub" / "lowres.png")
    shutil.copy(cxr_dir / "png/hannover_mhh_covid/00cfd1c1.jpg", nested / "mhh.jpg")
    (root / "bad.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage" * 20)
    (root / "empty.png").write_bytes(b"")
    (root / "notes.png").write_text("these are not pixels\n")
    colour = np.zeros((32, 32, 3), np.uint8)
    colour[..., 0], colour[..., 1] = 200, 40
    Image.fromarray(colour).save(root / "colour.jpg", quality=95)
    (root / "README.txt").write_text("ignored: unsupported suffix\n")
    (root / ".hidden.png").write_text("ignored: hidden\n")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.png").write_text("ignored: hidden folder\n")
    return root


GOOD = ["nih.png", "sub/deeper/mhh.jpg", "sub/lowres.png"]


def _rel(paths, root: Path) -> list[str]:
    return [Path(p).relative_to(root).as_posix() for p in paths]


def test_scan_lists_candidates_in_sorted_order(mixed_folder):
    scan = scan_folder(mixed_folder)
    assert _rel(scan.files, mixed_folder) == [
        "bad.dcm",
        "colour.jpg",
        "nih.png",
        "notes.png",
        *GOOD[1:],
    ]
    assert [(f.path.name, "empty" in f.reason) for f in scan.failures] == [("empty.png", True)]


def test_good_images_load_and_exactly_the_bad_files_fail(mixed_folder):
    images, failures = load_folder(mixed_folder)
    assert _rel([im.meta.source for im in images], mixed_folder) == GOOD
    for im in images:
        assert im.pixels.ndim == 2 and im.pixels.dtype == np.float32
        assert 0.0 <= im.pixels.min() and im.pixels.max() <= 1.0 and im.pixels.std() > 0.01
    assert images[0].pixels.shape == (512, 512) and images[2].pixels.shape == (64, 64)
    assert [f.path.name for f in failures] == list(BAD)
    for failure in failures:
        assert (
            failure.path.name in failure.reason and len(failure.reason) > len(failure.path.name) + 5
        )
    assert "colour" in failures[1].reason.lower() or "color" in failures[1].reason.lower()


def test_load_is_deterministic(mixed_folder):
    a, fa = load_folder(mixed_folder)
    b, fb = load_folder(mixed_folder)
    assert [im.meta.source for im in a] == [im.meta.source for im in b] and fa == fb
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.pixels, y.pixels)


def test_strict_raises_naming_the_file(mixed_folder, tmp_path):
    with pytest.raises(PipelineError, match="empty.png"):
        load_folder(mixed_folder, strict=True)
    only_dicom = tmp_path / "only"
    only_dicom.mkdir()
    shutil.copy(mixed_folder / "bad.dcm", only_dicom / "bad.dcm")
    shutil.copy(mixed_folder / "nih.png", only_dicom / "nih.png")
    with pytest.raises(PipelineError, match=r"bad\.dcm.*strict"):
        load_folder(only_dicom, strict=True)


def test_missing_root_and_file_root(tmp_path):
    with pytest.raises(PipelineError, match="data folder not found: .*nowhere"):
        load_folder(tmp_path / "nowhere")
    (tmp_path / "f.png").write_bytes(b"x")
    with pytest.raises(PipelineError, match="not a folder"):
        scan_folder(tmp_path / "f.png")


def test_dicom_without_suffix_is_found(cxr_dir, tmp_path):
    source = next((cxr_dir / "dicom").glob("nih_cxr14_gcp_*.dcm"))  # uncompressed
    shutil.copy(source, tmp_path / "IM000001")
    (tmp_path / "IM000002").write_bytes(b"plain bytes, not DICOM")
    scan = scan_folder(tmp_path)
    assert [p.name for p in scan.files] == ["IM000001"] and scan.failures == []
    images, failures = load_folder(tmp_path, resize=64)
    assert len(images) == 1 and failures == [] and images[0].meta.format == "dicom"
    assert images[0].pixels.shape == (64, 64)


def test_limit_and_resize(mixed_folder):
    images, failures = load_folder(mixed_folder, resize=32, limit=2)
    assert _rel([im.meta.source for im in images], mixed_folder) == GOOD[:2]
    assert all(im.pixels.shape == (32, 32) for im in images)
    assert images[0].meta.extra["resized_from"] == (512, 512)
    assert len(failures) == 4  # every bad file before the limit was reached, and empty.png


def test_resize_keeps_range_and_scales_spacing(smooth_image):
    from pipeline.image import ImageMeta, ScanImage

    image = ScanImage(smooth_image, ImageMeta(spacing=(0.5, 0.25)))
    small = resize_image(image, 16)
    assert small.pixels.shape == (16, 16) and small.pixels.dtype == np.float32
    assert 0.0 <= small.pixels.min() and small.pixels.max() <= 1.0
    assert small.meta.spacing == (2.0, 1.0)
    assert abs(float(small.pixels.mean()) - float(smooth_image.mean())) < 0.02
    assert resize_image(image, 64) is image


def test_read_files_records_missing_file(tmp_path):
    images, failures = read_files([tmp_path / "gone.png"])
    assert images == [] and len(failures) == 1 and "gone.png" in failures[0].reason


def test_write_failures_csv(tmp_path):
    failures = [
        Failure(Path("/data/a.dcm"), "a.dcm: truncated,\nsecond line"),
        Failure(Path("b.png"), "b.png: empty"),
    ]
    out = write_failures_csv(failures, tmp_path / "run" / "failures.csv")
    rows = list(csv.DictReader(out.open(newline="")))
    assert rows == [
        {"path": "/data/a.dcm", "reason": "a.dcm: truncated, second line"},
        {"path": "b.png", "reason": "b.png: empty"},
    ]
    assert write_failures_csv([], tmp_path / "none.csv").read_text().strip() == "path,reason"


def test_max_clean_noise_leaves_noisy_references_out(tmp_path: Path) -> None:
    from pipeline.config import DataConfig
    from pipeline.ingest import load_splits, own_noise

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:96] / 96.0
    smooth = 0.3 + 0.4 * np.sin(3 * xx) * np.cos(2 * yy)
    root = tmp_path / "refs"
    root.mkdir()
    for i in range(4):
        Image.fromarray(np.uint16(np.clip(smooth + 0.001 * i, 0, 1) * 65535)).save(
            root / f"clean{i}.png"
        )
    grainy = np.clip(smooth + rng.normal(0, 0.02, smooth.shape), 0, 1)
    Image.fromarray(np.uint16(grainy * 65535)).save(root / "grainy.png")
    assert own_noise(grainy) > 0.015 and own_noise(smooth) < 0.002

    cfg = DataConfig(
        kind="folder",
        root=root,
        val_fraction=0.25,
        test_fraction=0.0,
        test_root=root,
        max_clean_noise=0.006,
    )
    splits = load_splits(cfg, seed=0)
    used = {img.meta.source.name for img in splits.train + splits.val}
    assert used == {f"clean{i}.png" for i in range(4)}
    assert [f.path.name for f in splits.failures] == ["grainy.png"]
    assert "above data.max_clean_noise" in splits.failures[0].reason
    assert len(splits.test) == 5, "test images are never filtered"
    everything = load_splits(cfg.model_copy(update={"max_clean_noise": None}), seed=0)
    assert len(everything.train + everything.val) == 5 and not everything.failures
    with pytest.raises(PipelineError, match="noisier than data.max_clean_noise"):
        load_splits(cfg.model_copy(update={"max_clean_noise": 1e-6}), seed=0)


def test_root_may_list_folders_and_single_files(tmp_path: Path) -> None:
    from pipeline.config import DataConfig, load_config
    from pipeline.errors import ConfigError
    from pipeline.ingest import load_splits

    folder, extra = tmp_path / "a", tmp_path / "b"
    folder.mkdir()
    extra.mkdir()
    for i in range(3):
        Image.fromarray(np.full((16, 16), 40 * i, np.uint8)).save(folder / f"f{i}.png")
    Image.fromarray(np.full((16, 16), 200, np.uint8)).save(extra / "one.png")
    Image.fromarray(np.full((16, 16), 220, np.uint8)).save(extra / "not_listed.png")
    cfg = DataConfig(
        kind="folder",
        root=[folder, extra / "one.png"],
        val_fraction=0.0,
        test_fraction=0.0,
        test_root=folder,
    )
    splits = load_splits(cfg, seed=0)
    assert sorted(img.meta.source.name for img in splits.train) == [
        "f0.png",
        "f1.png",
        "f2.png",
        "one.png",
    ]
    missing = DataConfig(
        kind="folder", root=[folder, extra / "absent"], val_fraction=0.0, test_fraction=0.0
    )
    with pytest.raises(PipelineError, match="absent"):
        load_splits(missing, seed=0)
    with pytest.raises(ConfigError, match="list only for folder data"):
        load_config(None, [f"data.root=[{folder}, {extra}]"])
