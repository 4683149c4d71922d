"""scripts/radiograph_acceptance.py: image order for BM3D's subset, the acceptance rules, the table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from script_loading import load_script

from pipeline.image import ImageMeta, ScanImage

acc = load_script("radiograph_acceptance")


def _image(folder: str, name: str) -> ScanImage:
    return ScanImage(np.zeros((4, 4), np.float32), ImageMeta(source=Path(folder) / name))


def test_images_are_taken_in_turn_from_each_folder() -> None:
    images = [_image("h", "1"), _image("h", "2"), _image("h", "3"), _image("n", "a"), _image("o", "x")]
    assert [str(i.meta.source) for i in acc.interleaved_by_folder(images)] == ["h/1", "n/a", "o/x", "h/2", "h/3"]


def _summary(dpsnr: float, ci_low: float, dssim: float) -> dict:
    vs = {"psnr": {"mean": dpsnr, "ci_low": ci_low, "ci_high": dpsnr + 1}, "ssim": {"mean": dssim, "ci_low": -1, "ci_high": 1}}
    return {"reference": "bm3d", "methods": {"bm3d": {"vs_reference": None}, "unet": {"vs_reference": vs}}}


def test_acceptance_rules_per_condition() -> None:
    detail = {"unet": 0.05, "bm3d": 0.10}
    assert acc.judge("xray_dose_0.1", _summary(1.2, 0.3, 0.01), detail, "unet")["met"]
    assert not acc.judge("xray_dose_0.1", _summary(1.2, -0.1, 0.01), detail, "unet")["met"], "CI must lie above 0"
    assert not acc.judge("xray_dose_0.25", _summary(0.9, 0.3, 0.01), detail, "unet")["met"], "+1 dB asked"
    assert not acc.judge("gaussian_25", _summary(0.8, 0.1, 0.01), {"unet": 0.2, "bm3d": 0.1}, "unet")["met"], "detail"
    assert acc.judge("gaussian_50", _summary(2.1, -0.5, -0.01), detail, "unet")["met"], "σ 50: the margin only"
    assert acc.judge("gaussian_50", _summary(2.1, 0.1, 0.0), detail, "absent") is None


def test_lead_over_bm3d_is_related_to_the_references_own_noise() -> None:
    noise = {"a": 0.001, "b": 0.002, "c": 0.004, "d": 0.008, "e": 0.016}
    lead = {"a": 2.0, "b": 1.5, "c": 1.0, "d": 0.5, "e": 0.4}  # shrinks as the reference gets noisier
    rows = [{"image": k, "method": m, "psnr": 30.0 + (lead[k] if m == "unet" else 0.0)} for k in noise for m in ("bm3d", "unet")]
    rows.append({"image": "f", "method": "unet", "psnr": 40.0})  # no BM3D row: left out
    out = acc.lead_by_reference_noise(rows, "unet", noise)
    assert out["n"] == 5 and out["pearson_r"] < -0.8
    assert out["cleaner_half"] == pytest.approx(1.75) and out["noisier_half"] == pytest.approx(np.mean([1.0, 0.5, 0.4]))
    assert out["reference_noise_median"] == 0.004
    assert acc.lead_by_reference_noise(rows[:6], "unet", noise) is None, "fewer than 4 images: no figure"
