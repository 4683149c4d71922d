"""Copy a run's best checkpoint into the package as the shipped radiograph model.

    python scripts/ship_model.py runs/cxr_default/<timestamp>
    python scripts/ship_model.py runs/gpu/u6.pt --run-log runs/gpu/logs/runs/u6/<timestamp>

Writes pipeline/weights/cxr_default.pt (weights + resolved config + version + provenance;
no optimizer state, so it stays small) and pipeline/weights/cxr_default.json (the same
provenance, readable without torch). A checkpoint exported without its training state (as
``scripts/train_sweep.py --export`` writes them on a lent GPU) takes its epoch log and
machine from ``--run-log``, the run folder's train_log.csv and environment.json;
``--replace-path`` rewrites the recorded config's paths where the run read copies of the data
(recorded in the provenance). A run with a split file records what it learned from by the
run's split.csv (images and patients per part and source); a model fine-tuned from the shipped
one records that model's sha256 and training steps before its own.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CHECKOUT))  # the checkout: `bench` is not installed

from pipeline.checkpoint import (
    SHIPPED_MODEL,
    checkpoint_path,
    read_checkpoint,
    save_checkpoint,
    strip_training_state,
)
from pipeline.ingest.split_file import read_split_csv
from pipeline.provenance import file_sha256, git_commit
from pipeline.records import write_json
from pipeline.train import best_val_psnr, read_log

CONFIG = "configs/cxr_default.yaml"
DATA_PROVENANCE = (
    "Hannover Medical School COVID-19 chest radiograph repository (CC BY 3.0): the 67 radiographs "
    "of ../shared/data/cxr/png/hannover_mhh_covid (35 patients, from "
    "../shared/data/cxr/metadata/hannover_ccd_metadata.csv) and 3 DICOM chest radiographs of "
    "../shared/data/cxr/dicom (pydicom RG1 CR, the SIIM pneumothorax CR, the fo-dicom ACR-NEMA CR; "
    "grouped by PatientID), split by patient with seed 0: a quarter of the patients for testing "
    "(with the NIH ChestX-ray14 and openCXR radiographs), 15% for validation (3 images used), the "
    "rest for training after leaving out the references noisier than 1.53/255 (37 training "
    "images); the run's split.csv lists every file."
)


def training_record(ckpt: dict[str, Any], run_log: Path | None, run_folder: Path) -> dict[str, Any]:
    """Best validation PSNR, training seconds, machine and code commit, from the checkpoint and
    the environment.json of `run_log` (else of the checkpoint's `run_folder`)."""
    log = ckpt.get("state", {}).get("log", [])
    best = ckpt.get("state", {}).get("best_val_psnr")
    if run_log is not None:
        log = read_log(run_log / "train_log.csv")
        best = best_val_psnr(log)
        best = None if math.isnan(best) else best
    env = (run_log or run_folder) / "environment.json"
    info = json.loads(env.read_text()) if env.is_file() else None
    return {
        "best_val_psnr": best,
        "training_seconds": sum(row["seconds"] for row in log),
        "trained_on": info and {k: info.get(k) for k in ("cuda", "torch", "cpu_count", "python")},
        "training_commit": info and info.get("commit"),
    }


def split_summary(split_file: Path, split_csv: str) -> str:
    """What a run with a fixed split learned from, by its split.csv (file, patient, split,
    source)."""
    rows = read_split_csv(split_file)
    parts = {name: [r for r in rows if r["split"] == name] for name in ("train", "val", "test")}
    sources = Counter(r.get("source") or "unknown" for r in parts["train"])
    patients = {name: len({r["patient"] for r in part}) for name, part in parts.items()}
    return (
        f"the patient split {split_csv} ({len(rows)} radiographs of "
        f"{len({r['patient'] for r in rows})} patients from {len(sources)} sources): "
        f"{len(parts['train'])} training radiographs of {patients['train']} patients ("
        + ", ".join(f"{source} {n}" for source, n in sorted(sources.items()))
        + f"), {len(parts['val'])} validation radiographs of {patients['val']} patients, "
        f"{len(parts['test'])} test radiographs of {patients['test']} patients held out; "
        "references noisier than data.max_clean_noise were left out of training and "
        "validation; the run's split.csv lists every file."
    )


def initialisation(init_from: str | None) -> dict[str, Any] | None:
    """The model a run started from: its path, sha256 and, for a shipped model, its own
    training steps (read before the shipped file may be replaced)."""
    if not init_from:
        return None
    path = CHECKOUT / init_from
    record: dict[str, Any] = {"path": init_from}
    if path.is_file():
        record["sha256"] = file_sha256(path)
    sidecar = path.with_suffix(".json")
    if sidecar.is_file():
        shipped = json.loads(sidecar.read_text())
        record["training_steps"] = shipped.get("training_steps", [])
        record["commit_when_shipped"] = shipped.get("commit_when_shipped")
    return record


def replace_paths(value: Any, replacements: list[tuple[str, str]]) -> Any:
    """`value` (a config section or entry) with every string that starts with an OLD prefix given
    NEW instead."""
    if isinstance(value, dict):
        return {k: replace_paths(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_paths(v, replacements) for v in value]
    if isinstance(value, str):
        for old, new in replacements:
            if value.startswith(old):
                return new + value[len(old) :]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder (or checkpoint) of the training run")
    parser.add_argument(
        "--run-log", type=Path, help="folder with the run's train_log.csv and environment.json"
    )
    parser.add_argument("--config", default=CONFIG, help="the config that trains it, as recorded")
    parser.add_argument(
        "--replace-path",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="in the recorded config, paths starting with OLD start with NEW instead (repeatable)",
    )
    parser.add_argument("--dest", type=Path, default=SHIPPED_MODEL)
    args = parser.parse_args()
    replacements = [tuple(item.split("=", 1)) for item in args.replace_path]
    if any(len(r) != 2 for r in replacements):
        parser.error("--replace-path takes OLD=NEW")
    source = checkpoint_path(args.run)
    ckpt = read_checkpoint(source)
    ckpt["config"] = replace_paths(ckpt["config"], replacements)
    notes = [f"{old} -> {new}" for old, new in replacements]
    if Path(
        ckpt["config"]["run"]["output_dir"]
    ).is_absolute():  # the training machine's folder means nothing here
        ckpt["config"]["run"]["output_dir"] = "runs"
        notes.append("run.output_dir (absolute on the training machine) -> runs")
    init = initialisation(ckpt["config"]["train"].get("init_from"))
    split_csv = ckpt["config"]["data"].get("split_csv")
    split_file = (args.run_log or source.parent.parent) / "split.csv"
    provenance = {
        "source_checkpoint": str(source),
        "epoch": ckpt["epoch"],
        **training_record(ckpt, args.run_log, source.parent.parent),
        "training_data": split_summary(split_file, split_csv)
        if split_csv and split_file.is_file()
        else DATA_PROVENANCE,
        "config": args.config,
        "training_steps": (init or {}).get("training_steps", []) + [f"denoise run {args.config}"],
        "initialised_from": init,
        "paths_replaced": notes,
        "commit_when_shipped": git_commit(CHECKOUT) or "unknown",
        "shipped": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    save_checkpoint({**strip_training_state(ckpt), "provenance": provenance}, args.dest)
    write_json(provenance, args.dest.with_suffix(".json"))
    print(f"shipped {source} -> {args.dest} ({args.dest.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
