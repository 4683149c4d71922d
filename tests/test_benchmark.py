"""scripts/benchmark.py end to end in a tiny configuration (no BM3D, no training)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from bench.render import headline, render_headline
from bench.run import run_benchmark
from bench.settings import Settings, settings_from_args
from pipeline.checkpoint import build_checkpoint, save_checkpoint
from pipeline.config import Config, ModelConfig
from pipeline.models import build_model
from pipeline.train import make_optimizer

#: MACs per pixel of ConvAutoencoder(features=4): 36 (1->4) + 36 (4->4 at 1/4) + 9 (at 1/16)
#: + 36 (at 1/4) + 36 (4->1), 3x3 kernels.
TINY_CONV_MACS = 153


def tiny_conv_checkpoint(path: Path) -> Path:
    """An untrained 4-filter conv autoencoder in the checkpoint format of pipeline.train."""
    cfg = Config(model=ModelConfig(name="conv", features=4))
    torch.manual_seed(0)
    model = build_model(cfg.model)
    save_checkpoint(
        build_checkpoint(
            model, cfg, epoch=1, optimizer=make_optimizer(model.parameters(), cfg.train)
        ),
        path,
    )
    return path


def write_images(folder: Path, image: np.ndarray) -> Path:
    folder.mkdir()
    for i, pixels in enumerate((image, image[::-1].T)):
        Image.fromarray((pixels[:48, :48] * 255).astype(np.uint8)).save(folder / f"scan{i}.png")
    return folder


def positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_benchmark_tiny_run_writes_finite_results(tmp_path: Path, smooth_image: np.ndarray) -> None:
    ckpt = str(tiny_conv_checkpoint(tmp_path / "conv.pt"))
    argv = [
        "--out",
        str(tmp_path / "out"),
        "--work",
        str(tmp_path / "work"),
        "--skip-bm3d",
        "--no-train",
        "--mnist-images",
        "3",
        "--mnist-conv",
        ckpt,
        "--cxr-dirs",
        str(write_images(tmp_path / "cxr", smooth_image)),
        "--cxr-crop",
        "0",
        "--cxr-conv",
        ckpt,
        "--cxr-unet",
        "none",
        "--cxr-dncnn",
        "none",
        "--sizes",
        "32",
        "--repeats",
        "1",
        "--matmul-n",
        "128",
        "--train-patch",
        "16",
        "--train-batch",
        "2",
        "--no-apply-bench",
    ]
    settings = settings_from_args(argv)
    (tmp_path / "out").mkdir()
    kept = tmp_path / "out" / "by_hand.md"
    kept.write_text("# Measured by hand\n\nfigures\n")
    run_benchmark(settings)

    page = (tmp_path / "out" / "RESULTS.md").read_text()
    assert page.startswith("# Benchmarks") and "- [Measured by hand](by_hand.md)" in page
    assert kept.read_text() == "# Measured by hand\n\nfigures\n", (
        "a run leaves the pages kept by hand"
    )
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {"quality", "speed", "headline", "last_run"} <= set(results)
    mnist, cxr = results["quality"]["mnist"], results["quality"]["cxr"]
    assert set(mnist["summary"]["methods"]) == {"noisy", "tv", "nlm", "conv"}
    assert {"dense", "best", "bm3d"} <= set(mnist["skipped"])
    assert set(cxr["conditions"]) == {
        "gaussian_15",
        "gaussian_25",
        "gaussian_50",
        "poisson_gaussian_dose_0.25",
        "poisson_gaussian_dose_0.05",
    }
    assert {"unet", "dncnn", "bm3d"} <= set(cxr["skipped"])
    tables = [mnist["summary"], *(c["summary"] for c in cxr["conditions"].values())]
    for table in tables:
        for entry in table["methods"].values():
            assert positive(entry["psnr"]["mean"]) and positive(entry["ssim"]["mean"])
            assert positive(entry["megapixels_per_second"])
    assert (
        "no radiograph model" in results["headline"]["note"]
        and results["headline"]["acceptance"] == []
    )
    assert "speed" not in results["headline"], "the speed target is at 1024², not measured here"
    assert len(cxr["models"]["conv"]["sha256"]) == 64

    cpu = results["speed"]["devices"]["cpu"]
    assert positive(cpu["matmul_peak"]["gflops"])
    assert set(cpu["images"]) == {"nlm", "tv", "conv", "unet", "dncnn"}
    for by_size in cpu["images"].values():
        assert positive(by_size["32"]["megapixels_per_second"])
    assert set(cpu["networks"]) == {"conv", "unet", "dncnn", "mnist_dense", "mnist_conv"}
    for net in cpu["networks"].values():
        assert positive(net["macs_per_pixel"]) and positive(net["training"]["samples_per_second"])
    assert cpu["networks"]["conv"]["macs_per_pixel"] == TINY_CONV_MACS
    assert positive(cpu["networks"]["conv"]["compute"]["32"]["fraction_of_peak"])
    assert positive(cpu["networks"]["mnist_dense"]["batch_inference"]["gflops"])
    assert "skipped" in results["speed"]["apply_memory"]
    assert "no radiograph model" in results["split"]["skipped"], (
        "--cxr-unet none: issue 13's tables are skipped"
    )
    recorded = Settings.from_dict(cxr["provenance"]["settings"])  # settings stored as data
    assert recorded == settings and cxr["provenance"]["settings"]["sizes"] == [32]


def test_headline_is_the_radiograph_acceptance_and_the_speed_target() -> None:
    def condition(label: str, gain: float, met: bool) -> dict[str, Any]:
        methods = {
            "bm3d": {"n": 5, "ssim": {"mean": 0.80}},
            "unet": {
                "n": 5,
                "ssim": {"mean": 0.82},
                "vs_reference": {
                    "psnr": {"mean": gain, "ci_low": gain - 0.2, "ci_high": gain + 0.2}
                },
            },
        }
        checks = {"ΔPSNR ≥ +1.0 dB": met, "higher SSIM": True}
        return {
            "label": label,
            "summary": {"methods": methods},
            "transfer": {"unet": {"T_0.1-0.2": 0.2}, "bm3d": {"T_0.1-0.2": 0.27}},
            "acceptance": {"checks": checks, "met": met},
        }

    view = {
        "models": {"unet": "pipeline/weights/cxr_default.pt"},
        "conditions": {
            "x": condition("X-ray", 1.2, True),
            "g": condition("G25", 0.3, False),
            "n": {"label": "no target", "acceptance": None},
        },
    }
    results = {
        "split": {
            "model": {"checkpoint": "pipeline/weights/cxr_default.pt", "sha256": "ab" * 32},
            "views": {"whole": view},
        },
        "speed": {
            "devices": {
                "cpu": {
                    "images": {
                        "unet": {"1024": {"megapixels_per_second": 2.5}},
                        "bm3d": {"1024": {"megapixels_per_second": 0.04}},
                    }
                }
            }
        },
    }
    h = headline(results)
    assert [(r["condition"], r["met"]) for r in h["acceptance"]] == [
        ("X-ray", True),
        ("G25", False),
    ]
    assert h["speed"]["met"] is False and h["speed_vs_bm3d"]["ratio"] == pytest.approx(62.5)
    results["headline"] = h
    page = "\n".join(render_headline(results))
    assert (
        "1 of 2 of the radiograph acceptance rows met" in page
        and "sha256 abababababab" in page
        and "0.200 vs 0.270" in page
    )
    assert (
        "| Whole images | G25 | +0.30 [+0.10, +0.50] dB | 0.820 vs 0.800 | 0.200 vs 0.270 |" in page
    )
    assert "2.50 MP/s at 1024² (target ≥ 3: not met)" in page and "62× slower" in page
    results["speed"]["devices"]["cpu"]["images"]["unet"]["1024"]["megapixels_per_second"] = 4.0
    assert headline(results)["speed"]["met"] is True


def test_results_page_lists_the_pages_kept_beside_it(tmp_path: Path) -> None:
    from bench.render import other_pages, render_markdown

    (tmp_path / "adapt.md").write_text("intro line\n# Adapting to another scanner\n\ntable\n")
    (tmp_path / "untitled.md").write_text("no heading\n")
    (tmp_path / "RESULTS.md").write_text("# Benchmarks\nold\n")
    pages = other_pages(tmp_path)
    assert pages == [("adapt.md", "Adapting to another scanner"), ("untitled.md", "untitled")]
    page = render_markdown({}, pages)
    assert (
        "- [Adapting to another scanner](adapt.md)" in page and "- [untitled](untitled.md)" in page
    )
    assert "Measured by other scripts" not in render_markdown({}), "no pages, no list"
    assert (tmp_path / "adapt.md").read_text().endswith("table\n"), (
        "listing a page leaves it as it was"
    )


def test_apply_memory_command_is_recorded_without_this_machines_paths(tmp_path: Path) -> None:
    from bench.speed import run_apply_speed

    project = Path(__file__).resolve().parents[1]
    shipped = str(project / "pipeline" / "weights" / "cxr_default.pt")
    run = run_apply_speed(
        ["--model", shipped, "--size", "x"], tmp_path / "never.json", project
    )  # a bad size: exit 2
    assert (
        run["command"]
        == "python -m bench.apply_speed --model pipeline/weights/cxr_default.pt --size x"
    )
    assert "failed (exit 2)" in run["skipped"]


def test_the_apply_script_runs_from_any_folder(tmp_path: Path) -> None:
    """scripts/bench_apply.py, a thin entry point, finds bench/ in its checkout wherever it is
    run."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_apply.py"
    done = subprocess.run(
        [sys.executable, str(script), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and "--untrained" in done.stdout
