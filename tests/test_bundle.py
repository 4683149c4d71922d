"""`denoise export --format monai-bundle`: layout, MONAI's metadata check, MONAI's run command vs
`denoise apply`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from script_loading import load_script
from tiny_models import save_tiny_unet

from pipeline.bundle import METADATA_SCHEMA, write_bundle
from pipeline.cli import main
from pipeline.errors import PipelineError
from pipeline.export import sample_batch

TOL = 1e-4
PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: The offline copy of MONAI's metadata schema beside the project: verify_metadata uses an
#: existing file at its ``filepath`` instead of downloading the schema the metadata names.
SHARED_SCHEMA = PROJECT_ROOT.parent / "shared/reference/monai" / METADATA_SCHEMA.split("/")[-1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_unet(tmp_path_factory.mktemp("model") / "tiny.pt")


@pytest.fixture(scope="module")
def bundle(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bundle(tiny, tmp_path_factory.mktemp("export") / "denoiser").path


def _needs_bundle_runner() -> None:
    pytest.importorskip("fire", reason="`python -m monai.bundle` needs fire (dev extra)")
    pytest.importorskip(
        "ignite", reason="the bundle's SupervisedEvaluator needs pytorch-ignite (dev extra)"
    )


def test_bundle_has_the_standard_layout(bundle) -> None:
    for name in (
        "configs/metadata.json",
        "configs/inference.json",
        "models/model.pt",
        "docs/README.md",
        "LICENSE",
    ):
        assert (bundle / name).is_file(), name
    meta = json.loads((bundle / "configs/metadata.json").read_text())
    fmt = meta["network_data_format"]
    assert (
        fmt["inputs"]["image"]["value_range"] == [0, 1]
        and fmt["outputs"]["pred"]["num_channels"] == 1
    )
    assert meta["denoise_pipeline"]["size_multiple"] == 4
    inference = json.loads((bundle / "configs/inference.json").read_text())
    assert inference["inferer"]["roi_size"] == [512, 512]
    from monai.bundle import ConfigParser
    from monai.inferers import SlidingWindowInferer

    parser = ConfigParser()
    parser.read_config(bundle / "configs/inference.json")
    assert isinstance(parser.get_parsed_content("inferer"), SlidingWindowInferer)


@pytest.fixture(scope="module")
def monai_schema() -> Path:
    """The offline copy of MONAI's metadata schema in ../shared/reference/monai, or skip."""
    if not SHARED_SCHEMA.is_file():
        pytest.skip(f"offline copy of MONAI's metadata schema {SHARED_SCHEMA} is absent")
    return SHARED_SCHEMA


def test_monai_verify_metadata_passes(bundle, monai_schema, tmp_path) -> None:
    from monai.bundle import verify_metadata

    verify_metadata(meta_file=str(bundle / "configs/metadata.json"), filepath=str(monai_schema))
    meta = json.loads((bundle / "configs/metadata.json").read_text())
    del meta["network_data_format"]  # required by the schema: the check must refuse this
    broken = tmp_path / "metadata.json"
    broken.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="network_data_format"):
        verify_metadata(meta_file=str(broken), filepath=str(monai_schema))


def test_export_cli_writes_a_bundle_and_refuses_a_foreign_folder(tiny, tmp_path, capsys) -> None:
    assert main(["export", str(tiny), "--format", "monai-bundle", "-o", str(tmp_path / "b")]) == 0
    assert "python -m monai.bundle run" in capsys.readouterr().out
    assert (
        main(["export", str(tiny), "--format", "monai-bundle", "-o", str(tmp_path / "b")]) == 0
    )  # replaced
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(PipelineError, match="is not a MONAI bundle"):
        write_bundle(tiny, tmp_path / "other")
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def _check(rows: list[dict]) -> None:
    for row in rows:
        assert row["vs_apply_pixels"] <= TOL, row
        assert row["vs_apply_file"] <= row["file_step"] / 2 + TOL, row


@pytest.mark.slow
def test_bundle_run_matches_denoise_apply_on_synthetic_scans(tiny, tmp_path) -> None:
    _needs_bundle_runner()
    folder = tmp_path / "scans"
    folder.mkdir()
    big = sample_batch((1, 1, 530, 600), seed=1)[0, 0].numpy()  # wider than one 512-px tile
    Image.fromarray(np.round(big * 65535).astype(np.uint16)).save(folder / "wide16.png")
    small = sample_batch((1, 1, 45, 70), seed=2)[0, 0].numpy()
    Image.fromarray(np.round(small * 255).astype(np.uint8)).save(folder / "small8.png")
    rows = load_script("check_bundle").compare([folder], tiny, tmp_path / "work")
    assert [r["file"] for r in rows] == ["small8.png", "wide16.png"]
    _check(rows)


@pytest.mark.slow
def test_bundle_run_matches_denoise_apply_on_shared_radiographs(tiny, cxr_dir, tmp_path) -> None:
    _needs_bundle_runner()
    files = [
        cxr_dir
        / "dicom"
        / "fodicom_CR-MONO1-10-chest.acrnema.dcm",  # ACR-NEMA, MONOCHROME1, one tile
        cxr_dir / "png" / "opencxr_tests" / "c0001_8bit.png",
    ]
    rows = load_script("check_bundle").compare(files, tiny, tmp_path / "work")
    assert len(rows) == 2
    _check(rows)
