"""Train variants of one config side by side for a fixed wall-clock budget (e.g. on a lent GPU).

    python scripts/train_sweep.py configs/cxr_shipped_refine.yaml --budget 440 --calibrate 40 \\
        --set run.stages=[train] --set train.workers=3 \\
        --variant unet5 "model.channels=[16,32,64,128,256]" train.lr=0.001 \\
        --variant unet4w "model.channels=[24,48,96,192]" train.lr=0.001 \\
        --out runs/sweep --export exported/

Each variant is the config plus its overrides (after the common ``--set`` ones). All variants
first run together for ``--calibrate`` seconds, which measures each one's seconds per epoch
as they share the machine; then they run together again, each for the number of epochs that
fits ``--budget`` seconds, so that each cosine schedule runs to its end. The epoch count is
written into every run's resolved config, so any run can be repeated with ``denoise run``
alone. ``sweep.json`` in ``--out`` lists each variant's overrides, seconds per epoch, epochs,
best validation PSNR and run folder. ``--export`` writes each best checkpoint without its
optimizer state (small enough to copy back from a lent machine).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipeline.checkpoint import read_checkpoint, save_checkpoint, strip_training_state
from pipeline.records import write_json
from pipeline.train import best_val_psnr, read_log

BUDGET_SHARE = 0.92
"""Share of the budget that the epoch count is planned for; the rest absorbs start-up and the final
validation."""


@dataclass
class Variant:
    name: str
    overrides: list[str]
    seconds_per_epoch: float = math.nan
    epochs: int = 0
    best_val_psnr: float = math.nan
    run_dir: str = ""
    returncode: int | None = None
    log: list[str] = field(default_factory=list)


def seconds_per_epoch(train_log: Path) -> float:
    """Mean seconds per epoch in a train_log.csv, leaving out the first (warm-up) epoch when there
    are more."""
    seconds = [row["seconds"] for row in read_log(train_log)]
    if not seconds:
        raise ValueError(f"{train_log}: no epoch finished; give the calibration more seconds")
    steady = seconds[1:] or seconds
    return sum(steady) / len(steady)


def epochs_for_budget(spe: float, budget: float) -> int:
    """Epochs that fit the budget's planned share at `spe` seconds per epoch (at least 1)."""
    return max(1, int(budget * BUDGET_SHARE / spe))


def _launch(config: str, overrides: list[str], log_path: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pipeline", "run", config]
    for item in overrides:
        cmd += ["--set", item]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:  # the child keeps its own handle
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


def _run_together(
    config: str, jobs: dict[str, list[str]], logs: Path, deadline: float
) -> dict[str, int | None]:
    """Run one `denoise run` per job at once; kill what is still running at `deadline` (seconds from
    now)."""
    procs = {
        name: _launch(config, overrides, logs / f"{name}.log") for name, overrides in jobs.items()
    }
    end = time.monotonic() + deadline
    while any(p.poll() is None for p in procs.values()) and time.monotonic() < end:
        time.sleep(1.0)
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.wait()
    return {name: p.returncode for name, p in procs.items()}


def _latest_run_dir(base: Path) -> Path:
    """The newest run folder (timestamped names sort by time) with a train_log.csv under `base`."""
    dirs = sorted(log.parent for log in base.rglob("train_log.csv"))
    if not dirs:
        raise FileNotFoundError(f"no run with a train_log.csv under {base}")
    return dirs[-1]


def export_checkpoint(src: Path, dest: Path) -> None:
    """Copy a checkpoint without its training state (optimizer, scheduler, training loop)."""
    save_checkpoint(strip_training_state(read_checkpoint(src)), dest)


def sweep(
    config: str,
    common: list[str],
    variants: list[Variant],
    budget: float,
    calibrate: float,
    out: Path,
    export: Path | None = None,
    grace: float = 60.0,
) -> list[Variant]:
    """Calibrate, then train every variant for the epochs that fit `budget`; processes still running
    `grace` seconds after a phase's time are killed (their last checkpoints stay)."""
    calib = {
        v.name: [
            *common,
            *v.overrides,
            f"run.output_dir={out / 'calibration' / v.name}",
            "train.epochs=1000000",
            f"train.max_train_seconds={calibrate}",
        ]
        for v in variants
    }
    _run_together(config, calib, out / "logs" / "calibration", deadline=calibrate + grace)
    for v in variants:
        try:
            v.seconds_per_epoch = seconds_per_epoch(
                _latest_run_dir(out / "calibration" / v.name) / "train_log.csv"
            )
        except (FileNotFoundError, ValueError) as err:  # dropped; see logs/calibration/<name>.log
            v.log.append(f"calibration: {err}")
            print(f"{v.name}: left out, {err}", flush=True)
            continue
        v.epochs = epochs_for_budget(v.seconds_per_epoch, budget)
        print(
            f"{v.name}: {v.seconds_per_epoch:.3f} s/epoch in calibration -> {v.epochs} epochs",
            flush=True,
        )
    jobs = {
        v.name: [
            *common,
            *v.overrides,
            f"run.output_dir={out / 'runs'}",
            f"run.name={v.name}",
            f"train.epochs={v.epochs}",
            f"train.max_train_seconds={budget}",
        ]
        for v in variants
        if v.epochs
    }
    codes = _run_together(config, jobs, out / "logs", deadline=budget + grace)
    for v in variants:
        if v.name not in jobs:
            continue
        v.returncode = codes[v.name]
        try:
            run_dir = _latest_run_dir(out / "runs" / v.name)
        except FileNotFoundError as err:
            v.log.append(str(err))
            continue
        v.run_dir = str(run_dir)
        v.best_val_psnr = best_val_psnr(read_log(run_dir / "train_log.csv"))
        best = run_dir / "checkpoints" / "best.pt"
        if export is not None and best.is_file():
            export_checkpoint(best, export / f"{v.name}.pt")
    write_json([asdict(v) for v in variants], out / "sweep.json")
    return variants


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("config")
    p.add_argument(
        "--variant",
        nargs="+",
        action="append",
        required=True,
        metavar="NAME [KEY=VALUE ...]",
        help="a variant: its name, then its overrides (repeatable)",
    )
    p.add_argument(
        "--set",
        dest="common",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an override for every variant (repeatable)",
    )
    p.add_argument(
        "--budget",
        type=float,
        required=True,
        help="seconds of training for the variants, run together",
    )
    p.add_argument("--calibrate", type=float, default=40.0, help="seconds of the calibration run")
    p.add_argument(
        "--grace",
        type=float,
        default=60.0,
        help="seconds past each phase's time (start-up, last validation) before a run is killed",
    )
    p.add_argument(
        "--out", type=Path, required=True, help="folder for the runs, logs and sweep.json"
    )
    p.add_argument(
        "--export",
        type=Path,
        help="write each best checkpoint here as <variant>.pt, without optimizer state",
    )
    args = p.parse_args(argv)
    variants = [Variant(name=v[0], overrides=v[1:]) for v in args.variant]
    if len({v.name for v in variants}) != len(variants):
        p.error("variant names must differ")
    done = sweep(
        args.config,
        args.common,
        variants,
        args.budget,
        args.calibrate,
        args.out,
        args.export,
        args.grace,
    )
    print(f"{'variant':<14} {'s/epoch':>8} {'epochs':>7} {'best val PSNR':>14}  exit")
    for v in done:
        print(
            f"{v.name:<14} {v.seconds_per_epoch:>8.3f} {v.epochs:>7d} {v.best_val_psnr:>14.3f}  "
            f"{v.returncode}"
        )
    return 0 if all(v.returncode == 0 for v in done) else 1


if __name__ == "__main__":
    sys.exit(main())
