"""Report writers: exact summaries, self-contained HTML, figures."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from pipeline.records import write_json
from pipeline.report import (
    describe_method,
    detail_crop,
    distribution_figure,
    example_panel_figure,
    loss_curve_figure,
    summarize_methods,
    write_report_html,
    write_report_md,
)

T_975_DF2 = 4.302652729911275  # scipy.stats.t.ppf(0.975, 2)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _rows() -> list[dict]:
    """Three images, four methods; model beats bm3d (the best baseline) by exactly 3 dB."""
    table = {
        "noisy": ([10.0, 11.0, 12.0], [0.30, 0.40, 0.50], 0.0),
        "tv": ([14.0, 15.0, 16.0], [0.50, 0.60, 0.70], 0.01),
        "bm3d": ([15.0, 16.0, 20.0], [0.60, 0.70, 0.80], 2.0),
        "model": ([18.0, 19.0, 23.0], [0.65, 0.75, 0.85], 0.5),
    }
    return [
        {"image": f"00{i}", "method": m, "psnr": p[i], "ssim": s[i], "seconds": sec}
        for m, (p, s, sec) in table.items()
        for i in range(3)
    ]


def _assert_self_contained(text: str) -> None:
    assert "data:image/png;base64," in text
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*https?://""", text, re.IGNORECASE)
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text.lower() and "<link" not in text.lower()


def test_summary_numbers_exact():
    summary = summarize_methods(_rows())
    assert summary["reference"] == "bm3d"
    assert list(summary["methods"]) == ["noisy", "tv", "bm3d", "model"]
    bm3d, model = summary["methods"]["bm3d"], summary["methods"]["model"]
    half = T_975_DF2 * math.sqrt(7.0) / math.sqrt(3.0)
    assert bm3d["n"] == 3
    assert bm3d["psnr"]["mean"] == pytest.approx(17.0)
    assert bm3d["psnr"]["std"] == pytest.approx(math.sqrt(7.0))
    assert (bm3d["psnr"]["ci_low"], bm3d["psnr"]["ci_high"]) == pytest.approx(
        (17 - half, 17 + half)
    )
    assert bm3d["ssim"]["mean"] == pytest.approx(0.7)
    assert bm3d["images_per_second"] == pytest.approx(0.5)
    assert model["images_per_second"] == pytest.approx(2.0)
    assert model["seconds_per_image"] == pytest.approx(0.5)
    d = model["vs_reference"]
    assert d["psnr"]["n"] == 3
    assert (d["psnr"]["mean"], d["psnr"]["ci_low"], d["psnr"]["ci_high"]) == pytest.approx(
        (3, 3, 3)
    )
    assert d["ssim"]["mean"] == pytest.approx(0.05)
    assert math.isnan(summary["methods"]["noisy"]["images_per_second"])


def test_summary_reference_choice():
    rows = _rows()
    assert summarize_methods(rows, "noisy")["reference"] == "noisy"
    no_baselines = [r for r in rows if r["method"] in ("noisy", "model")]
    s = summarize_methods(no_baselines)
    assert s["reference"] == "noisy"
    assert s["methods"]["model"]["vs_reference"]["psnr"]["mean"] == pytest.approx(9.0)
    assert summarize_methods([r for r in rows if r["method"] == "model"])["reference"] is None
    with pytest.raises(ValueError, match="unet"):
        summarize_methods(rows, "unet")
    rerun = [*rows, {**rows[-1], "psnr": 99.0}]  # a repeated pair counts once, last row wins
    assert summarize_methods(rerun)["methods"]["model"]["psnr"]["mean"] == pytest.approx(
        (18 + 19 + 99) / 3
    )


def test_summary_json_and_markdown(tmp_path):
    summary = summarize_methods(_rows())
    data = json.loads(write_json(summary, tmp_path / "summary.json").read_text())
    assert data["reference"] == "bm3d"
    assert data["methods"]["noisy"]["images_per_second"] is None
    md = write_report_md(summary, tmp_path / "report.md", "MNIST", ["noise: gaussian 0.5"])
    text = md.read_text()
    assert text.startswith("# MNIST")
    assert "| model | 3 | 20.00 [" in text
    assert "+3.00 [+3.00, +3.00]" in text
    assert "ΔPSNR vs bm3d" in text and "noise: gaussian 0.5" in text


def _examples(rng, clean: bool) -> list[dict]:
    out = []
    for i in range(2):
        c = np.clip(rng.random((24, 24)), 0, 1).astype(np.float32)
        n = np.clip(c + rng.normal(0, 0.1, c.shape), 0, 1).astype(np.float32)
        out.append(
            {
                "image": f"img{i}",
                "clean": c if clean else None,
                "noisy": n,
                "outputs": {"tv": (c + n) / 2, "model": c},
            }
        )
    return out


def test_figures_and_html(tmp_path, rng):
    rows = _rows()
    log = [
        {
            "epoch": e,
            "train_loss": 1 / (e + 1),
            "val_loss": 1.2 / (e + 1) if e else None,
            "val_psnr": 10 + e,
            "seconds": 1.0,
        }
        for e in range(4)
    ]
    figures = {
        "Examples": example_panel_figure(_examples(rng, clean=True), tmp_path / "fig" / "ex.png"),
        "Distributions": distribution_figure(rows, tmp_path / "fig" / "dist.png"),
        "Loss": loss_curve_figure(log, tmp_path / "fig" / "loss.png"),
    }
    for path in figures.values():
        assert path.read_bytes()[:8] == PNG_MAGIC
    page = write_report_html(
        tmp_path / "report.html",
        "Run <1>",
        summarize_methods(rows),
        figures,
        ["seed 0 & sigma 0.5"],
    )
    text = page.read_text()
    assert "<table" in text and "<td>model</td>" in text and "Run &lt;1&gt;" in text
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text
    assert "<dt>tv</dt><dd>total-variation denoising" in text
    assert text.count("data:image/png;base64,") == 3
    assert "seed 0 &amp; sigma 0.5" in text
    _assert_self_contained(text)


def test_detail_crop_lands_on_texture_not_on_flat_background_or_one_edge():
    rng = np.random.default_rng(3)
    image = np.full((400, 300), 0.2, np.float32)
    image[:, 150:] = 0.9  # one strong straight edge (a collimator border)
    image[250:330, 40:120] += 0.1 * rng.standard_normal((80, 80)).astype(np.float32)  # texture
    top, left, side = detail_crop(image, 64)
    assert side == 64
    assert 250 - 16 <= top <= 330 - 48 and 40 - 16 <= left <= 120 - 48


def test_detail_crop_keeps_inside_small_and_odd_images():
    for shape in [(28, 28), (97, 301), (301, 97)]:
        image = np.random.default_rng(0).random(shape).astype(np.float32)
        top, left, side = detail_crop(image, 40)
        assert side == min(40, *shape)
        assert 0 <= top <= shape[0] - side and 0 <= left <= shape[1] - side


def test_method_codes_in_words():
    assert describe_method("nlm").startswith("non-local means")
    assert (
        describe_method("unet:cxr_shipped_refine") == "trained residual U-Net (cxr_shipped_refine)"
    )
    assert describe_method("mystery") == "trained mystery"


def test_noisy_input_has_no_throughput(tmp_path):
    rows = [
        {**r, "kind": "input" if r["method"] == "noisy" else "model", "seconds": 0.001}
        for r in _rows()
    ]
    summary = summarize_methods(rows)
    assert math.isnan(summary["methods"]["noisy"]["images_per_second"])
    assert summary["methods"]["model"]["images_per_second"] == pytest.approx(1000.0)
    assert summary["methods"]["noisy"]["kind"] == "input"


def test_one_number_formatter_for_every_page_and_the_benchmarks() -> None:
    from bench.formatting import fmt, fmt_ci
    from pipeline.report import format_ci, format_number

    assert [format_number(v) for v in (None, "", "x", math.nan, 1.005, math.inf)] == ["–"] * 4 + [
        "1.00",
        "inf",
    ]
    assert format_number(0.5, 3, signed=True) == "+0.500" and format_number("0.25", 4) == "0.2500"
    assert format_ci({"mean": 1.0, "ci_low": math.nan}, 2) == "1.00"
    assert format_ci({"mean": 1.0, "ci_low": 0.5, "ci_high": 1.5}, 1, True) == "+1.0 [+0.5, +1.5]"
    assert format_ci(None, 2) == "–"
    assert fmt is format_number and fmt_ci is format_ci
