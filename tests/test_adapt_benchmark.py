"""scripts/adapt_benchmark.py: its crop, paired summaries and table."""

from __future__ import annotations

import numpy as np
import pytest
from script_loading import load_script

adapt_bench = load_script("adapt_benchmark")


def test_crop_is_central_and_keeps_small_images_whole():
    image = np.arange(100, dtype=np.float32).reshape(10, 10)
    assert np.array_equal(adapt_bench.crop(image, 4), image[3:7, 3:7])
    assert (
        np.array_equal(adapt_bench.crop(image, 20), image)
        and adapt_bench.crop(image, None) is image
    )


def test_summary_pairs_methods_image_by_image():
    rows = {
        "a": [{"image": f"{i}", "psnr": 30.0 + i, "ssim": 0.8, "seconds": 1.0} for i in range(4)],
        "b": [{"image": f"{i}", "psnr": 29.0 + i, "ssim": 0.7, "seconds": 1.0} for i in range(4)],
    }
    summary = adapt_bench.summarize_rows(rows, [("a", "b"), ("a", "missing")])
    assert summary["methods"]["a"]["psnr"]["mean"] == pytest.approx(31.5)
    diff = summary["paired"]["a - b"]["psnr"]
    assert diff["mean"] == pytest.approx(1.0) and diff["ci_low"] == pytest.approx(1.0)
    assert list(summary["paired"]) == ["a - b"]
    text = adapt_bench.markdown({"conditions": {"x": {"label": "test noise", "summary": summary}}})
    assert "| a | 31.50 |" in text and "| a - b | +1.00 |" in text


def test_conditions_include_the_acceptance_noise():
    noise = adapt_bench.CONDITIONS["xray_aniso"][1]
    assert (noise.kind, noise.dose, noise.read_noise, noise.kernel_a) == (
        "xray",
        0.05,
        5.0,
        [0.6, 0.1],
    )
    assert adapt_bench.CONDITIONS["gaussian_25"][1].sigma == pytest.approx(25 / 255)
