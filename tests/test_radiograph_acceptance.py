"""Issue 13's acceptance (bench.split, scripts/radiograph_acceptance.py, benchmark --only split)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_models import save_tiny_unet

import bench.split as acc
from bench.conditions import interleaved_by_folder
from bench.run import run_benchmark
from bench.settings import as_recorded, settings_from_args
from pipeline.evaluate import read_metrics_csv
from pipeline.image import ImageMeta, ScanImage
from pipeline.provenance import file_sha256


def _image(folder: str, name: str) -> ScanImage:
    return ScanImage(np.zeros((4, 4), np.float32), ImageMeta(source=Path(folder) / name))


def test_images_are_taken_in_turn_from_each_folder() -> None:
    images = [
        _image("h", "1"),
        _image("h", "2"),
        _image("h", "3"),
        _image("n", "a"),
        _image("o", "x"),
    ]
    assert [str(i.meta.source) for i in interleaved_by_folder(images)] == [
        "h/1",
        "n/a",
        "o/x",
        "h/2",
        "h/3",
    ]


def _summary(dpsnr: float, ci_low: float, dssim: float) -> dict:
    vs = {
        "psnr": {"mean": dpsnr, "ci_low": ci_low, "ci_high": dpsnr + 1},
        "ssim": {"mean": dssim, "ci_low": -1, "ci_high": 1},
    }
    return {
        "reference": "bm3d",
        "methods": {"bm3d": {"vs_reference": None}, "unet": {"vs_reference": vs}},
    }


def _condition(
    dpsnr: float,
    ci_low: float,
    dssim: float,
    kept: tuple[float, float] = (0.3, 0.2),
    source_leads: tuple[float, ...] = (0.5,),
) -> dict:
    t = {"unet": {acc.DETAIL_COLUMN: kept[0]}, "bm3d": {acc.DETAIL_COLUMN: kept[1]}}
    sources = {
        f"site{i}": {"methods": {"unet": {"vs_reference": {"psnr": {"mean": lead}}}}}
        for i, lead in enumerate(source_leads)
    }
    return {"summary": _summary(dpsnr, ci_low, dssim), "transfer": t, "by_source": sources}


def test_acceptance_rules_per_condition() -> None:
    assert acc.judge("xray_dose_0.1", _condition(1.6, 0.3, 0.01), "unet")["met"]
    assert not acc.judge("xray_dose_0.1", _condition(1.4, 0.3, 0.01), "unet")["met"], (
        "+1.5 dB asked at dose 0.10"
    )
    assert not acc.judge("xray_dose_0.1", _condition(1.6, -0.1, 0.01), "unet")["met"], (
        "CI must lie above 0"
    )
    assert not acc.judge("xray_dose_0.25", _condition(0.9, 0.3, 0.01), "unet")["met"], "+1 dB asked"
    assert not acc.judge("gaussian_25", _condition(0.8, 0.1, 0.01, kept=(0.2, 0.27)), "unet")[
        "met"
    ], "detail kept"
    assert acc.judge("gaussian_25", _condition(0.8, 0.1, 0.01, kept=(0.27, 0.27)), "unet")["met"]
    assert not acc.judge("gaussian_50", _condition(2.1, 0.5, -0.01), "unet")["met"], (
        "higher SSIM in every condition"
    )
    behind = acc.judge("gaussian_50", _condition(2.1, 0.5, 0.01, source_leads=(3.0, -0.2)), "unet")
    assert not behind["met"] and "no source below BM3D (site1 is)" in behind["checks"]
    assert acc.judge("gaussian_50", _condition(2.1, 0.1, 0.0), "absent") is None


def test_lead_over_bm3d_is_related_to_the_references_own_noise() -> None:
    noise = {"a": 0.001, "b": 0.002, "c": 0.004, "d": 0.008, "e": 0.016}
    lead = {
        "a": 2.0,
        "b": 1.5,
        "c": 1.0,
        "d": 0.5,
        "e": 0.4,
    }  # shrinks as the reference gets noisier
    rows = [
        {"image": k, "method": m, "psnr": 30.0 + (lead[k] if m == "unet" else 0.0)}
        for k in noise
        for m in ("bm3d", "unet")
    ]
    rows.append({"image": "f", "method": "unet", "psnr": 40.0})  # no BM3D row: left out
    out = acc.lead_by_reference_noise(rows, "unet", noise)
    assert out["n"] == 5 and out["pearson_r"] < -0.8
    assert out["cleaner_half"] == pytest.approx(1.75) and out["noisier_half"] == pytest.approx(
        np.mean([1.0, 0.5, 0.4])
    )
    assert out["reference_noise_median"] == 0.004
    assert acc.lead_by_reference_noise(rows[:6], "unet", noise) is None, (
        "fewer than 4 images: no figure"
    )


def _scans(smooth_image: np.ndarray) -> list[ScanImage]:
    """Four 64x64 radiograph-like scans from two folders."""
    variants = [smooth_image, smooth_image[::-1].copy(), smooth_image.T.copy(), 1.0 - smooth_image]
    return [
        ScanImage(v.astype(np.float32), ImageMeta(source=Path(f"site{i % 2}") / f"scan{i}.png"))
        for i, v in enumerate(variants)
    ]


def test_split_table_judges_the_first_model_and_reuses_rows(
    tmp_path: Path, smooth_image: np.ndarray
) -> None:
    model = str(save_tiny_unet(tmp_path / "tiny.pt"))
    options = acc.SplitOptions(
        work=tmp_path / "work", models={"tiny": model}, crop=32, bm3d_images=2
    )
    result = acc.run_split(_scans(smooth_image), "four scans", options)
    assert result["images"] == ["scan0.png", "scan1.png", "scan2.png", "scan3.png"]
    assert set(result["conditions"]) == set(acc.TARGETS) and result["bm3d_images"] == 2
    for key, c in result["conditions"].items():
        methods = c["summary"]["methods"]
        assert set(methods) == {"noisy", "bm3d", "tiny"} and methods["tiny"]["n"] == 2, (
            "paired on BM3D's images"
        )
        assert c["noise_given"]["bm3d"] == ("psd" if key.startswith("xray") else "sigma")
        assert set(c["acceptance"]["checks"]) >= {
            f"ΔPSNR ≥ +{acc.TARGETS[key]} dB",
            "higher SSIM",
            "CI above 0",
        }
        detail_check = f"detail kept {acc.DETAIL_COLUMN} ≥ BM3D's"
        assert (c["acceptance"]["checks"].get(detail_check) is not None) == (
            key in acc.DETAIL_TARGETS
        )
        assert set(c["by_source"]) == {"site0", "site1"} and c["by_source"]["site0"]["n"] == 1, (
            "one BM3D image per site"
        )
        assert 0 < c["transfer"]["bm3d"][acc.DETAIL_COLUMN] < 1.2 and set(c["transfer"]) == {
            "noisy",
            "bm3d",
            "tiny",
        }
        assert np.isfinite(methods["tiny"]["psnr"]["mean"])
        assert c["summary"]["methods"]["tiny"]["vs_reference"]["psnr"]["mean"] == pytest.approx(
            methods["tiny"]["psnr"]["mean"] - methods["bm3d"]["psnr"]["mean"], abs=1e-9
        )
    rows_before = len(read_metrics_csv(tmp_path / "work" / "gaussian_25" / "metrics.csv"))
    again = acc.run_split(_scans(smooth_image), "four scans", options)
    assert (
        len(read_metrics_csv(tmp_path / "work" / "gaussian_25" / "metrics.csv")) == rows_before
    ), "rows reused"
    assert (
        again["conditions"]["gaussian_25"]["summary"]
        == result["conditions"]["gaussian_25"]["summary"]
    )
    text = acc.markdown(result, "*measured here*")
    assert (
        text.startswith("*measured here*")
        and "| tiny | 2 |" in text
        and "Acceptance (`tiny` against BM3D)" in text
    )


def test_benchmark_split_part_writes_the_tables(
    tmp_path: Path, smooth_image: np.ndarray, monkeypatch
) -> None:
    monkeypatch.setattr(
        acc, "test_images", lambda project, shared_data: (_scans(smooth_image), "four scans")
    )
    model = str(save_tiny_unet(tmp_path / "tiny.pt"))
    argv = [
        "--only",
        "split",
        "--out",
        str(tmp_path / "out"),
        "--work",
        str(tmp_path / "work"),
        "--cxr-unet",
        model,
        "--split-views",
        "32",
        "0",
        "--split-images",
        "3",
        "--split-bm3d-images",
        "1",
    ]
    run_benchmark(settings_from_args(argv))
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    views = results["split"]["views"]
    assert set(views) == {"crop_32", "whole"}
    assert (
        views["whole"]["images"] == ["scan0.png", "scan1.png", "scan2.png"]
        and views["whole"]["bm3d_images"] == 1
    )
    assert views["crop_32"]["models"] == {
        "unet": model
    }  # tmp_path is outside the checkout: kept as it is
    project = Path(__file__).resolve().parents[1]
    assert as_recorded({"unet": str(project / "pipeline" / "weights" / "x.pt")}, project) == {
        "unet": "pipeline/weights/x.pt"
    }
    assert (tmp_path / "work" / "split" / "crop_32" / "xray_dose_0.1" / "metrics.csv").is_file()
    page = (tmp_path / "out" / "RESULTS.md").read_text()
    assert (
        "## Radiographs split by patient" in page
        and "### 32² centre crops" in page
        and "### Whole images" in page
    )
    assert "Acceptance (`unet` against BM3D)" in page
    # the headline is the radiograph acceptance: one row per view and judged condition, as the
    # tables judged them
    head = results["headline"]
    judged = [
        (v, c["label"], c["acceptance"]["met"])
        for v, r in views.items()
        for c in r["conditions"].values()
        if c["acceptance"]
    ]
    assert [(r["view"], r["condition"], r["met"]) for r in head["acceptance"]] == judged and len(
        judged
    ) == 8
    assert head["model_info"]["sha256"] == file_sha256(model) and head["model"] == "unet"
    assert (
        f"{sum(m for *_, m in judged)} of 8 of the radiograph acceptance rows met"
        in page.split("## Radiographs split")[0]
    )
    # RESULTS.md is rendered again from results.json by any later --only run (NaN is stored as null
    # there)
    from bench.render import other_pages, render_markdown

    assert render_markdown(results, other_pages(tmp_path / "out")) == page
    no_model = [
        "--only",
        "split",
        "--out",
        str(tmp_path / "out2"),
        "--work",
        str(tmp_path / "w2"),
        "--cxr-unet",
        "none",
    ]
    skipped = run_benchmark(settings_from_args(no_model))["split"]
    assert "no radiograph model" in skipped["skipped"]


def test_quality_tables_default_to_the_patient_split_test_set(
    tmp_path: Path, smooth_image: np.ndarray, monkeypatch
) -> None:
    from bench import conditions
    from bench.settings import Settings

    monkeypatch.setattr(
        conditions,
        "patient_split_test_images",
        lambda seed, project: (_scans(smooth_image), f"split, seed {seed}"),
    )
    images, failures, description = conditions.cxr_test_images(
        Settings(out=tmp_path, work=tmp_path, seed=3, cxr_images=2)
    )
    assert (
        [i.meta.name for i in images] == ["scan0.png", "scan1.png"]
        and failures == []
        and description == "split, seed 3"
    )
    folder = tmp_path / "mine"
    folder.mkdir()
    images, failures, description = conditions.cxr_test_images(
        Settings(out=tmp_path, work=tmp_path, cxr_dirs=[folder, tmp_path / "absent"])
    )
    assert (
        images == []
        and failures == [f"{tmp_path / 'absent'}: folder absent"]
        and description == "every image of mine, absent"
    )
