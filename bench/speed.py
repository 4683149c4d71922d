"""Speed tables: megapixels per second per method and size, network throughput and compute use,
`denoise apply` memory."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.provenance import cpu_model, log, provenance
from bench.settings import (
    CXR_NETWORKS,
    LOWRES_NETWORKS,
    Settings,
    as_recorded,
)
from bench.timing import CPU, macs_per_pixel, matmul_peak, speed_image, time_call
from pipeline.baselines import make_baseline
from pipeline.checkpoint import load_model
from pipeline.config import Config, InferenceConfig, ModelConfig, TrainConfig, load_config
from pipeline.denoiser import Denoiser
from pipeline.inference import ModelDenoiser
from pipeline.models import build_model, count_parameters
from pipeline.train import make_loss, make_optimizer

#: bench.apply_speed runs in a process of its own: a child's peak RSS starts from its parent's
#: peak, and this process has held large images and networks by then.
APPLY_SPEED = ["-m", "bench.apply_speed"]
APPLY_SIZE, APPLY_SIZE_QUICK = 4096, 1024


@dataclass
class Network:
    """A network timed for speed: its module, config and where its weights come from."""

    name: str
    model: nn.Module
    config: ModelConfig
    train: TrainConfig
    weights: str


def speed_network(name: str, path: str | None, fallback: Config, project: Path) -> Network:
    """The network of a checkpoint, else the architecture of `fallback` (untrained: speed only);
    the checkpoint's path recorded relative to the checkout `project`."""
    if path is not None and path.lower() != "none":
        try:
            loaded = load_model(path)
            return Network(
                name,
                loaded.model,
                loaded.config.model,
                loaded.config.train,
                f"checkpoint {as_recorded(str(loaded.path), project)}",
            )
        except Exception as err:  # noqa: BLE001 - an unusable checkpoint falls back to the architecture
            log(f"{name}: {err}; timing the default architecture")
    torch.manual_seed(0)
    model = build_model(fallback.model).eval()
    return Network(
        name,
        model,
        fallback.model,
        fallback.train,
        "untrained, architecture of its default config (speed does not depend on weights)",
    )


def speed_networks(settings: Settings) -> list[Network]:
    """conv, unet, dncnn (+ 64-px models given) for images; dense and conv MNIST for training."""
    configs = settings.project / "configs"
    shipped = load_config(configs / "cxr_shipped.yaml")
    defaults = {
        "conv": Config(model=ModelConfig(name="conv"), train=shipped.train),
        "unet": shipped,
        "dncnn": Config(model=ModelConfig(name="dncnn"), train=shipped.train),
    }
    nets = [
        speed_network(n, settings.cxr_models.get(n), defaults[n], settings.project)
        for n in CXR_NETWORKS
    ]
    for name in LOWRES_NETWORKS:
        path = settings.cxr_models.get(name)
        if path is not None and path.lower() != "none":
            nets.append(
                speed_network(
                    name,
                    path,
                    Config(model=ModelConfig(name="conv"), train=shipped.train),
                    settings.project,
                )
            )
    for name in ("dense", "conv"):
        cfg = load_config(configs / f"mnist_{name}.yaml")
        nets.append(
            speed_network(f"mnist_{name}", settings.mnist_models.get(name), cfg, settings.project)
        )
    return nets


def image_methods(
    settings: Settings, nets: list[Network], device: torch.device
) -> dict[str, Denoiser]:
    """Denoisers timed on whole images: the baselines (CPU only) and fully convolutional
    networks."""
    methods: dict[str, Denoiser] = {}
    if device.type == "cpu":
        names = (["bm3d"] if settings.bm3d else []) + ["nlm", "tv"]
        methods.update({name: make_baseline(name) for name in names})
    for net in nets:
        if getattr(net.model, "fixed_size", None) is None and not net.name.startswith("mnist_"):
            methods[net.name] = ModelDenoiser(
                net.model, InferenceConfig(tile_size=settings.tile_size), device
            )
    return methods


def time_method(
    name: str, fn: Denoiser, side: int, settings: Settings, device: torch.device
) -> dict[str, Any]:
    """Megapixels/s of one method at one size (or why it was not measured)."""
    if name == "bm3d" and side > settings.bm3d_max_size:
        return {
            "skipped": f"not measured: BM3D above {settings.bm3d_max_size}² (~35 s/MP; "
            f"--bm3d-max-size {side} measures it)"
        }
    noisy, sigma = speed_image(side, settings.seed, settings.nih_dir)
    timing = time_call(
        lambda: fn(noisy, sigma=sigma), settings.repeats, settings.slow_seconds, device
    )
    return {**timing, "megapixels_per_second": side * side / 1e6 / timing["median_s"]}


def add_ratios(table: dict[str, dict[str, Any]]) -> None:
    """Ratio of each method's MP/s to BM3D's at the same size (else BM3D's largest measured
    size)."""
    bm3d = {
        s: v["megapixels_per_second"]
        for s, v in table.get("bm3d", {}).items()
        if "megapixels_per_second" in v
    }
    if not bm3d:
        return
    largest = max(bm3d, key=int)
    for by_size in table.values():
        for size, figure in by_size.items():
            if "megapixels_per_second" not in figure:
                continue
            basis = size if size in bm3d else largest
            figure["ratio_to_bm3d"] = figure["megapixels_per_second"] / bm3d[basis]
            figure["ratio_basis"] = f"bm3d at {basis}²" + (
                "" if basis == size else " (not measured at this size)"
            )


def image_speed(settings: Settings, nets: list[Network], device: torch.device) -> dict[str, Any]:
    """MP/s of every method at every size on one device."""
    table: dict[str, dict[str, Any]] = {}
    for name, fn in image_methods(settings, nets, device).items():
        for side in settings.sizes:
            log(f"speed {device.type}: {name} at {side}²")
            table.setdefault(name, {})[str(side)] = time_method(name, fn, side, settings, device)
    add_ratios(table)
    return table


def batch_speed(
    net: Network, side: int, settings: Settings, device: torch.device
) -> dict[str, Any]:
    """MP/s and images/s of a network on batches of 256 small images (MNIST, dense models)."""
    batch = torch.rand(256, 1, side, side, device=device)
    model = net.model.to(device).eval()

    def step() -> None:
        with torch.inference_mode():
            model(batch)

    timing = time_call(step, settings.repeats, settings.slow_seconds, device)
    return {
        **timing,
        "size": side,
        "batch": 256,
        "images_per_second": 256 / timing["median_s"],
        "megapixels_per_second": 256 * side * side / 1e6 / timing["median_s"],
    }


def training_speed(net: Network, settings: Settings, device: torch.device) -> dict[str, Any]:
    """Samples/s of training steps (forward, loss, backward, optimizer) on random data.

    Image networks: ``--train-patch`` patches, ``--train-batch`` per step; MNIST networks:
    28x28 images with their config's batch size. Data loading and noise are not included.
    """
    mnist = net.name.startswith("mnist_")
    side = 28 if mnist else settings.train_patch
    side = getattr(net.model, "fixed_size", None) or side
    batch = net.train.batch_size if mnist else settings.train_batch
    torch.manual_seed(0)
    model = build_model(net.config).to(device).train()
    optimizer = make_optimizer(model.parameters(), net.train)
    loss_fn = make_loss(net.train.loss)
    x, y = (
        torch.rand(batch, 1, side, side, device=device),
        torch.rand(batch, 1, side, side, device=device),
    )

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    timing = time_call(step, settings.repeats, settings.slow_seconds, device)
    unit = "images" if mnist else "patches"
    return {
        **timing,
        "unit": f"{unit}/s",
        "sample": f"{side}x{side}",
        "batch": batch,
        "loss": net.train.loss,
        "optimizer": net.train.optimizer,
        "samples_per_second": batch / timing["median_s"],
    }


def compute_rate(
    macs_per_px: float, megapixels_per_second: float, peak_gflops: float
) -> dict[str, float]:
    """GFLOP/s = 2 * MACs/pixel * pixels/s, and its fraction of the matmul peak."""
    gflops = 2 * macs_per_px * megapixels_per_second * 1e6 / 1e9
    return {"gflops": gflops, "fraction_of_peak": gflops / peak_gflops}


def network_table(
    nets: list[Network],
    images: dict[str, Any],
    peak: float,
    settings: Settings,
    device: torch.device,
) -> dict[str, Any]:
    """Per network: parameters, MACs/pixel, and GFLOP/s and fraction of the matmul peak per size."""
    table: dict[str, Any] = {}
    for net in nets:
        model = net.model.to(device).eval()
        macs = macs_per_pixel(model, 64 if model.fixed_size is None else model.fixed_size)
        entry: dict[str, Any] = {
            "parameters": count_parameters(model),
            "macs_per_pixel": macs,
            "architecture": net.config.model_dump(mode="json"),
            "weights": net.weights,
        }
        entry["compute"] = {
            size: compute_rate(macs, f["megapixels_per_second"], peak)
            for size, f in images.get(net.name, {}).items()
            if "megapixels_per_second" in f
        }
        small = model.fixed_size or (28 if net.name.startswith("mnist_") else None)
        if small is not None:
            batch = batch_speed(net, small, settings, device)
            entry["batch_inference"] = {
                **batch,
                **compute_rate(macs, batch["megapixels_per_second"], peak),
            }
        log(f"training speed {device.type}: {net.name}")
        entry["training"] = training_speed(net, settings, device)
        table[net.name] = entry
    return table


def device_speed(settings: Settings, nets: list[Network], device: torch.device) -> dict[str, Any]:
    """All speed figures on one device."""
    log(f"speed {device.type}: matmul peak")
    peak = matmul_peak(settings.matmul_n, device, settings.repeats)
    images = image_speed(settings, nets, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    precision = {"float32_matmul_precision": torch.get_float32_matmul_precision()}
    if device.type == "cuda":
        precision |= {
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
            "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        }
    return {
        "device": name,
        "torch_threads": torch.get_num_threads(),
        "precision": precision,
        "matmul_peak": peak,
        "images": images,
        "networks": network_table(nets, images, peak["gflops"], settings, device),
        "input": "a NIH radiograph resized to each size, Gaussian noise σ=25/255 (BM3D/TV get the "
        "true σ)",
    }


def run_apply_speed(args: list[str], out: Path, project: Path) -> dict[str, Any]:
    """Run :mod:`bench.apply_speed` with `args` (writing `out`) once, in the checkout `project`; its
    JSON, or why there is none."""
    cmd = [sys.executable, *APPLY_SPEED, *args]
    log(f"apply memory: {shlex.join(cmd)}")
    shown = shlex.join(
        ["python", *APPLY_SPEED, *(as_recorded(a, project) for a in args)]
    )  # as a reader would type it, no machine's paths
    done = subprocess.run(cmd, check=False, cwd=project, capture_output=True, text=True)
    if done.returncode != 0 or not out.is_file():
        return {
            "command": shown,
            "skipped": f"bench.apply_speed failed (exit {done.returncode}): "
            f"{done.stderr.strip()[-500:]}",
        }
    return {"command": shown, "result": json.loads(out.read_text())}


def apply_memory(settings: Settings) -> dict[str, Any]:
    """Peak memory and throughput of `denoise apply` on a 4096² 16-bit PNG (1024² in --quick).

    Runs :mod:`bench.apply_speed` on the CPU (and on the GPU when there is one) with the unet
    checkpoint of this benchmark, or an untrained unet when there is none.
    """
    if not settings.apply_bench:
        return {"skipped": "not run (--no-apply-bench)"}
    unet = settings.cxr_models.get("unet")
    model = (
        ["--model", unet]
        if unet is not None and unet.lower() != "none"
        else ["--untrained", "unet"]
    )
    size = APPLY_SIZE_QUICK if settings.quick else APPLY_SIZE
    devices = ["cpu"] + (["cuda"] if settings.device != "cpu" and torch.cuda.is_available() else [])
    runs = {}
    for device in devices:
        out = settings.work / f"bench_apply_{device}.json"
        runs[device] = run_apply_speed(
            [*model, "--size", str(size), "--device", device, "--out", str(out)],
            out,
            settings.project,
        )
    return {"size": size, "runs": runs}


def run_speed(settings: Settings) -> dict[str, Any]:
    """CPU figures always, GPU figures when torch sees one (and --device is not cpu)."""
    nets = speed_networks(settings)
    speed: dict[str, Any] = {
        "provenance": provenance(settings),
        "devices": {"cpu": device_speed(settings, nets, CPU)},
    }
    if settings.device != "cpu" and torch.cuda.is_available():
        speed["devices"]["cuda"] = device_speed(settings, nets, torch.device("cuda"))
    else:
        speed["gpu"] = "no GPU visible to torch on this machine: CPU figures only"
    speed["apply_memory"] = apply_memory(settings)
    return speed
