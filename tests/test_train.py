"""Training: checkpoints carry the config, resume equals an uninterrupted run, DDP with torchrun."""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.checkpoint import load_model
from pipeline.config import load_config
from pipeline.errors import PipelineError
from pipeline.metrics import detail_highpass
from pipeline.runner import run
from pipeline.train import NOISE_STD_FLOOR, detail_slope, make_loss, weighted_loss

TINY = [
    "data.max_train=256",
    "data.max_val=32",
    "data.max_test=32",
    "train.batch_size=64",
    "train.progress=false",
    "run.stages=[train]",
    "model.name=conv",
    "model.features=8",
    "train.optimizer=adam",
    "train.lr=0.003",
    "run.threads=1",
]


def tiny_config(tmp_path: Path, *extra: str):
    return load_config(None, [*TINY, f"run.output_dir={tmp_path}", *extra])


def test_checkpoint_holds_weights_config_and_version(tmp_path) -> None:
    result = run(tiny_config(tmp_path, "train.epochs=1", "run.seed=3"))
    ckpt = torch.load(result.checkpoint, weights_only=True)
    assert ckpt["config"]["run"]["seed"] == 3 and ckpt["version"]
    assert ckpt["epoch"] == 1
    loaded = load_model(result.run_dir)
    assert loaded.config.model.name == "conv"
    with open(result.run_dir / "train_log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and float(rows[0]["val_psnr"]) > 0


def test_same_seed_same_weights(tmp_path) -> None:
    a = run(tiny_config(tmp_path / "a", "train.epochs=1"))
    b = run(tiny_config(tmp_path / "b", "train.epochs=1"))
    wa = torch.load(a.checkpoint, weights_only=True)["model_state"]
    wb = torch.load(b.checkpoint, weights_only=True)["model_state"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_from_last_equals_uninterrupted_run(tmp_path) -> None:
    straight = run(tiny_config(tmp_path / "straight", "train.epochs=3", "train.schedule=cosine"))
    first = run(
        tiny_config(
            tmp_path / "first",
            "train.epochs=3",
            "train.schedule=cosine",
            "train.max_train_seconds=0.001",
        )
    )
    assert torch.load(first.run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    resumed = run(
        tiny_config(
            tmp_path / "resumed",
            "train.epochs=3",
            "train.schedule=cosine",
            f"train.resume={first.run_dir / 'checkpoints' / 'last.pt'}",
        )
    )
    w1 = torch.load(straight.run_dir / "checkpoints" / "last.pt", weights_only=True)
    w2 = torch.load(resumed.run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert w1["epoch"] == w2["epoch"] == 3
    assert all(torch.equal(w1["model_state"][k], w2["model_state"][k]) for k in w1["model_state"])
    assert [r["epoch"] for r in w2["state"]["log"]] == [1, 2, 3]


def test_early_stopping_stops(tmp_path) -> None:
    # lr 0 never improves after the first epoch: patience 1 stops at epoch 2.
    result = run(
        tiny_config(tmp_path, "train.epochs=10", "train.lr=1e-12", "train.early_stop_patience=1")
    )
    assert torch.load(result.run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 2


@pytest.mark.slow
def test_torchrun_two_processes_gloo(tmp_path) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun is not installed beside this Python")
    args = [torchrun, "--nproc_per_node=2", "--master_port=29517", "-m", "pipeline", "run"]
    args += [
        x for s in [*TINY, f"run.output_dir={tmp_path}", "train.epochs=2"] for x in ("--set", s)
    ]
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("{}\n")
    args.insert(args.index("run") + 1, str(cfg_file))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, check=False, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dirs = list((tmp_path / "run").iterdir())
    assert len(run_dirs) == 1, "both workers must share one run folder"
    ckpt = torch.load(run_dirs[0] / "checkpoints" / "last.pt", weights_only=True)
    assert ckpt["epoch"] == 2
    log = ckpt["state"]["log"]
    assert len(log) == 2 and log[1]["val_psnr"] > 0


def test_init_from_starts_from_the_weights_with_a_fresh_schedule(tmp_path) -> None:
    base = run(tiny_config(tmp_path / "base", "train.epochs=1"))
    tuned = run(
        tiny_config(tmp_path / "tuned", "train.epochs=0", f"train.init_from={base.checkpoint}")
    )
    w0 = torch.load(base.checkpoint, weights_only=True)["model_state"]
    w1 = torch.load(tuned.checkpoint, weights_only=True)
    assert w1["epoch"] == 0 and all(torch.equal(w0[k], w1["model_state"][k]) for k in w0)
    with pytest.raises(PipelineError, match="different model section"):
        run(
            tiny_config(
                tmp_path / "other",
                "train.epochs=0",
                "model.features=4",
                f"train.init_from={base.checkpoint}",
            )
        )


def test_init_from_a_plain_unet_adds_a_refinement_head_that_starts_at_zero(tmp_path) -> None:
    unet = ["model.name=unet", "model.channels=[4,8]"]
    base = run(tiny_config(tmp_path / "base", *unet, "train.epochs=1"))
    headed = run(
        tiny_config(
            tmp_path / "head",
            *unet,
            "model.refine_channels=4",
            "train.epochs=0",
            f"train.init_from={base.checkpoint}",
        )
    )
    w0 = torch.load(base.checkpoint, weights_only=True)["model_state"]
    w1 = torch.load(headed.checkpoint, weights_only=True)["model_state"]
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert any(k.startswith("refine.") for k in w1)
    assert load_model(headed.run_dir).config.model.refine_channels == 4
    with pytest.raises(
        PipelineError, match="different model section"
    ):  # the other way round is not a fine-tune
        run(
            tiny_config(
                tmp_path / "back", *unet, "train.epochs=0", f"train.init_from={headed.checkpoint}"
            )
        )


def test_checkpoints_from_before_a_new_model_option_still_match(tmp_path) -> None:
    base = run(tiny_config(tmp_path / "base", "train.epochs=1"))
    ckpt = torch.load(base.checkpoint, weights_only=True)
    del ckpt["config"]["model"]["refine_channels"]  # as written before the option existed
    torch.save(ckpt, tmp_path / "old.pt")
    tuned = run(
        tiny_config(tmp_path / "tuned", "train.epochs=0", f"train.init_from={tmp_path / 'old.pt'}")
    )
    assert torch.load(tuned.checkpoint, weights_only=True)["epoch"] == 0


def test_validate_every_skips_epochs_but_always_validates_the_last(tmp_path) -> None:
    result = run(tiny_config(tmp_path, "train.epochs=3", "train.validate_every=2"))
    log = torch.load(result.run_dir / "checkpoints" / "last.pt", weights_only=True)["state"]["log"]
    validated = [not math.isnan(r["val_psnr"]) for r in log]
    assert validated == [False, True, True]
    assert torch.load(result.checkpoint, weights_only=True)["epoch"] in (2, 3)


def test_inverse_noise_weighting_equalises_noise_levels() -> None:
    l1 = make_loss("l1")
    clean = torch.zeros(2, 1, 8, 8)
    noise = torch.randn(2, 1, 8, 8)
    noise = noise / noise.flatten(1).std(dim=1).view(2, 1, 1, 1)
    noisy = clean + noise * torch.tensor([0.05, 0.2]).view(2, 1, 1, 1)
    out = noisy.clone()  # an identity "denoiser": per-sample L1 grows with the noise level
    plain = weighted_loss(l1, out, clean, noisy, "none")
    assert torch.isclose(plain, l1(out, clean))
    weighted = weighted_loss(l1, out, clean, noisy, "inverse_noise")
    per_sample = torch.stack([l1(out[i : i + 1], clean[i : i + 1]) for i in range(2)])
    weights = torch.tensor([1 / 0.05, 1 / 0.2])
    assert torch.isclose(weighted, (per_sample * weights / weights.mean()).mean(), rtol=1e-4)
    # Each sample's weighted loss is about the same although one is 4x noisier.
    terms = per_sample * weights
    assert torch.isclose(terms[0], terms[1], rtol=0.3)
    # A clean sample is weighted as if its noise were at the floor, not infinitely.
    zero = weighted_loss(l1, out, clean, clean.clone(), "inverse_noise")
    assert torch.isfinite(zero) and NOISE_STD_FLOOR > 0


def _smooth_images(n: int, side: int = 64) -> torch.Tensor:
    from scipy.ndimage import gaussian_filter

    images = gaussian_filter(np.random.default_rng(3).random((n, side, side)), (0, 1.5, 1.5))
    images = (images - images.min()) / np.ptp(images)
    return torch.tensor(images, dtype=torch.float32)[:, None]


def test_detail_slope_measures_erased_detail_not_leftover_noise() -> None:
    from scipy.ndimage import gaussian_filter

    clean = _smooth_images(2)
    blurred = torch.tensor(gaussian_filter(clean.numpy(), (0, 0, 1, 1)))
    assert torch.equal(detail_slope(clean, clean), torch.zeros(2))
    erased = detail_slope(blurred, clean)
    assert (erased > 0.4).all()
    # Sharpening by the same amount is the opposite error; half the blur, half the slope.
    assert torch.allclose(detail_slope(2 * clean - blurred, clean), -erased, atol=1e-5)
    assert torch.allclose(detail_slope((clean + blurred) / 2, clean), erased / 2, atol=1e-5)
    # Noise left in the output is unrelated to the detail: the slope stays near 0 (a correlation
    # would fall if noise were added to a blurred output; the slope does not).
    noise = 0.05 * torch.randn(2, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    assert detail_slope(clean + noise, clean).abs().max() < 0.1 * erased.min()
    assert torch.allclose(
        detail_slope(blurred + noise, clean), erased, atol=0.1 * float(erased.min())
    )
    # The same value as a NumPy regression on scipy's Laplacian of Gaussian, inside the kernel's
    # border.
    error = (blurred - clean)[0, 0, 4:-4, 4:-4].double().numpy()
    detail = detail_highpass(clean[0, 0].double().numpy())[4:-4, 4:-4]
    error, detail = error - error.mean(), detail - detail.mean()
    expected = (error * detail).sum() / ((detail**2).sum() + 1e-6 * detail.size)
    assert math.isclose(float(erased[0]), expected, rel_tol=1e-4)


def test_detail_weight_adds_the_squared_slope_to_the_loss() -> None:
    from scipy.ndimage import gaussian_filter

    clean = _smooth_images(2)
    blurred = torch.tensor(gaussian_filter(clean.numpy(), (0, 0, 1, 1)))
    plain, weighted = make_loss("l1"), make_loss("l1", detail_weight=0.5)
    expected = plain(blurred, clean) + 0.5 * detail_slope(blurred, clean).square().mean()
    assert torch.isclose(weighted(blurred, clean), expected)
    assert torch.isclose(weighted(clean, clean), plain(clean, clean))
    # The penalty's gradient pushes a blurred output back towards the detail it lost.
    out = blurred.clone().requires_grad_(True)
    (make_loss("mse", detail_weight=1.0)(out, clean) - make_loss("mse")(out, clean)).backward()
    step = out.detach() - 0.5 * out.grad / out.grad.abs().max()
    assert (detail_slope(step, clean) < detail_slope(blurred, clean)).all()


def test_detail_weight_trains_end_to_end(tmp_path) -> None:
    result = run(
        tiny_config(
            tmp_path,
            "train.epochs=1",
            "train.loss=l1",
            "train.detail_weight=0.01",
            "data.max_train=64",
        )
    )
    saved = load_config(result.run_dir / "config.yaml")
    assert saved.train.detail_weight == 0.01
    assert result.checkpoint.exists()


def test_train_scales_adds_downscaled_training_images(tmp_path, monkeypatch) -> None:
    import pipeline.train.data as train_module

    seen: list[int] = []
    original = train_module.NoisyPairs.__init__

    def spy(self, images, *args, **kwargs):
        seen.append(len(images))
        original(self, images, *args, **kwargs)

    monkeypatch.setattr(train_module.NoisyPairs, "__init__", spy)
    run(
        tiny_config(
            tmp_path,
            "train.epochs=1",
            "data.max_train=64",
            "data.patch_size=16",
            "data.train_scales=[1.0,0.75]",
        )
    )
    assert seen == [128]


def test_patch_workers_give_the_same_weights_as_the_training_process(tmp_path) -> None:
    inline = run(tiny_config(tmp_path / "inline", "train.epochs=2"))
    workers = run(tiny_config(tmp_path / "workers", "train.epochs=2", "train.workers=2"))
    wa = torch.load(inline.checkpoint, weights_only=True)["model_state"]
    wb = torch.load(workers.checkpoint, weights_only=True)["model_state"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
