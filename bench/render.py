"""RESULTS.md: the headline, the acceptance targets and every table, rendered from results.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.conditions import CXR_TRAIN_NOTE
from bench.formatting import DETAIL_COLUMN, fmt, fmt_ci
from bench.settings import LOWRES_SIZE
from bench.speed import APPLY_SIZE
from bench.split import markdown, view_title
from pipeline import report

#: Issue 13: the shipped network denoises at least this many megapixels per second at 1024² on the
#: CPU.
SPEED_TARGET_MP_PER_S = 3.0
SPEED_TARGET_SIZE = 1024


def speed_ratio(speed: dict[str, Any] | None, model: str) -> dict[str, Any] | None:
    """The model's CPU MP/s over BM3D's, at the largest size where BM3D was measured."""
    if not speed:
        return None
    table = speed["devices"]["cpu"]["images"]
    bm3d = {int(s): f for s, f in table.get("bm3d", {}).items() if "megapixels_per_second" in f}
    mine = table.get(model, {})
    common = [s for s in bm3d if "megapixels_per_second" in mine.get(str(s), {})]
    if not common:
        return None
    side = max(common)
    mp_model, mp_bm3d = (
        mine[str(side)]["megapixels_per_second"],
        bm3d[side]["megapixels_per_second"],
    )
    return {
        "size": side,
        "model_mp_per_s": mp_model,
        "bm3d_mp_per_s": mp_bm3d,
        "ratio": mp_model / mp_bm3d,
    }


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """The judged radiograph model against the radiograph acceptance targets (each view of the split
    part) and its CPU speed."""
    split = results.get("split", {})
    rows: list[dict[str, Any]] = []
    model = None
    for view, result in split.get("views", {}).items():
        model = next(iter(result["models"]), None)
        for c in result["conditions"].values():
            judged = c.get("acceptance")
            if not judged:
                continue
            mine, bm3d = c["summary"]["methods"][model], c["summary"]["methods"]["bm3d"]
            rows.append(
                {
                    "view": view,
                    "condition": c["label"],
                    "checks": judged["checks"],
                    "met": judged["met"],
                    "n": mine["n"],
                    "psnr_gain_vs_bm3d": mine["vs_reference"]["psnr"],
                    "ssim": mine["ssim"]["mean"],
                    "bm3d_ssim": bm3d["ssim"]["mean"],
                    "detail_kept": c.get("transfer", {}).get(model, {}).get(DETAIL_COLUMN),
                    "bm3d_detail_kept": c.get("transfer", {}).get("bm3d", {}).get(DETAIL_COLUMN),
                }
            )
    out: dict[str, Any] = {"model": model, "model_info": split.get("model"), "acceptance": rows}
    if not rows:
        out["note"] = split.get(
            "skipped", "the radiograph acceptance tables were not measured (run --only split)"
        )
    name = model or "unet"
    out["speed_vs_bm3d"] = speed_ratio(results.get("speed"), name)
    speed = (
        results.get("speed", {}).get("devices", {}).get("cpu", {}).get("images", {}).get(name, {})
    )
    mp = speed.get(str(SPEED_TARGET_SIZE), {}).get("megapixels_per_second")
    if mp is not None:
        out["speed"] = {
            "model": name,
            "size": SPEED_TARGET_SIZE,
            "mp_per_s": mp,
            "target": SPEED_TARGET_MP_PER_S,
            "met": mp >= SPEED_TARGET_MP_PER_S,
        }
    return out


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table followed by an empty line."""
    return [*report.markdown_table((header, rows)), ""]


def provenance_line(p: dict[str, Any]) -> str:
    m = p["machine"]
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    quick = " **(quick mode: smoke-test sizes, not results)**" if p.get("quick") else ""
    return (
        f"*Measured {p['date']} at commit `{p['git_commit']}` with `{p['command']}` on "
        f"{m['cpu_model']}, "
        f"{m['cpu_cores']} cores, {m['torch_threads']} torch threads{gpu}.*{quick}"
    )


def summary_rows(
    summary: dict[str, Any], skipped: dict[str, str], notes: dict[str, str]
) -> tuple[list[str], list[list[str]]]:
    """Method table (report.summary_table) plus a row per skipped method and a note column."""
    header, rows = report.summary_table(summary)
    header = [*header, "MP/s", "note"]
    methods = list(summary["methods"].values())
    rows = [
        [*r, fmt(m.get("megapixels_per_second"), 3), notes.get(r[0], "")]
        for r, m in zip(rows, methods)
    ]
    rows += [
        [name, "0", *["–"] * (len(header) - 3), f"skipped: {reason}"]
        for name, reason in skipped.items()
    ]
    return header, rows


def mnist_notes(mnist: dict[str, Any]) -> dict[str, str]:
    notes = {
        name: f"{info.get('origin', '')}; best checkpoint at epoch {info.get('checkpoint_epoch')}"
        for name, info in mnist["models"].items()
    }
    if "dense" in notes:
        notes["dense"] = "the tutorial's model: " + notes["dense"]
    if mnist.get("n_bm3d_images"):
        notes["bm3d"] = f"first {mnist['n_bm3d_images']} of the {mnist['n_images']} images, σ given"
    return notes


def render_headline(results: dict[str, Any]) -> list[str]:
    """The radiograph acceptance table (from the split part), the speed line, then the MNIST
    table."""
    h = results.get("headline", {})
    lines = ["## Headline", ""]
    rows = h.get("acceptance", [])
    if not rows:
        lines += [f"Radiographs: {h.get('note', 'not measured')}", ""]
    else:
        info = h.get("model_info") or {}
        sha = f", sha256 {info['sha256'][:12]}…" if info.get("sha256") else ""
        met = sum(r["met"] for r in rows)
        summary = (
            f"**Radiographs split by patient ({rows[0]['n']} test images): `{h['model']}` "
            f"(`{info.get('checkpoint', '?')}`{sha}) against BM3D given the noise PSD (X-ray) or "
            "σ (Gaussian): "
            f"{met} of {len(rows)} of the radiograph acceptance rows met.**"
        )
        lines += [summary, ""]
        table = [
            [
                view_title(r["view"]),
                r["condition"],
                f"{fmt_ci(r['psnr_gain_vs_bm3d'], 2, True)} dB",
                f"{fmt(r['ssim'], 3)} vs {fmt(r['bm3d_ssim'], 3)}",
                f"{fmt(r.get('detail_kept'), 3)} vs {fmt(r.get('bm3d_detail_kept'), 3)}",
                "; ".join(f"{name}: {'yes' if ok else 'no'}" for name, ok in r["checks"].items()),
                "yes" if r["met"] else "**no**",
            ]
            for r in rows
        ]
        lines += md_table(
            [
                "view",
                "condition",
                "ΔPSNR vs BM3D [95% CI]",
                "SSIM vs BM3D",
                f"detail kept {DETAIL_COLUMN} cyc/px vs BM3D (higher keeps more)",
                "checks",
                "met",
            ],
            table,
        )
    s = h.get("speed_vs_bm3d")
    speed = h.get("speed")
    if speed:
        ratio = (
            f"; BM3D {s['bm3d_mp_per_s']:.4f} MP/s at {s['size']}², {s['ratio']:.0f}× slower"
            if s
            else ""
        )
        line = (
            f"**Speed on CPU: `{speed['model']}` {speed['mp_per_s']:.2f} MP/s at {speed['size']}² "
            "(target ≥ "
            f"{speed['target']:g}: {'met' if speed['met'] else 'not met'}){ratio}.**"
        )
        lines += [line, ""]
    else:
        lines += ["Speed: not measured in these results (run --only speed).", ""]
    mnist = results.get("quality", {}).get("mnist")
    if mnist:
        lines += [
            f"MNIST, Gaussian noise 0.5 ({mnist['test_set']}, {mnist['n_images']} images):",
            "",
        ]
        lines += md_table(*summary_rows(mnist["summary"], mnist["skipped"], mnist_notes(mnist)))
    return lines


def render_mnist(mnist: dict[str, Any]) -> list[str]:
    lines = [
        "## Quality: MNIST details",
        "",
        provenance_line(mnist["provenance"]),
        "",
        f"Data: {mnist['data']}; first {mnist['n_images']} test images. Noise: Gaussian σ=0.5, "
        "clipped, seed shared by all methods.",
        "",
    ]
    for name, info in mnist["models"].items():
        lines.append(
            f"- `{name}`: {info['origin']}; best checkpoint at epoch {info['checkpoint_epoch']}; "
            f"trained on {info['train_data']}; {info['parameters']} parameters; "
            f"`{info['checkpoint']}`"
        )
    if mnist.get("bm3d_subset"):
        lines += ["", f"On BM3D's {mnist['n_bm3d_images']} images only (like-for-like means):", ""]
        lines += md_table(*summary_rows(mnist["bm3d_subset"], {}, {}))
    lines.append(f"Per-image rows: `{mnist['metrics_csv']}`")
    return [*lines, ""]


def render_cxr(cxr: dict[str, Any], title: str) -> list[str]:
    lines = [f"## Quality: {title}", "", provenance_line(cxr["provenance"]), ""]
    if not cxr.get("conditions"):
        return [
            *lines,
            cxr.get("note", "not run")
            + "; "
            + "; ".join(f"{k}: {v}" for k, v in cxr.get("skipped", {}).items()),
            "",
        ]
    lines += [
        f"Data: {cxr['data']}"
        + (f", center-cropped to {cxr['crop']}²" if cxr.get("crop") else "")
        + ".",
        f"Note: {cxr.get('training_note', CXR_TRAIN_NOTE)}.",
        f"Baselines: {cxr.get('baseline_sigma', '')}.",
        "",
    ]
    for name, info in cxr["models"].items():
        lines.append(
            f"- `{name}`: {info['origin']}; best checkpoint at epoch {info['checkpoint_epoch']}; "
            f"trained on {info['train_data']} ({info['train_noise']} noise); "
            f"`{info['checkpoint']}`"
        )
    lines.append("")
    conditions = cxr["conditions"]
    methods = list(next(iter(conditions.values()))["summary"]["methods"])
    header = ["method", *[c["label"] for c in conditions.values()]]
    rows = [
        [
            m,
            *[
                f"{fmt(c['summary']['methods'].get(m, {}).get('psnr', {}).get('mean'))} / "
                f"{fmt(c['summary']['methods'].get(m, {}).get('ssim', {}).get('mean'), 3)}"
                for c in conditions.values()
            ],
        ]
        for m in methods
    ]
    lines += ["Mean PSNR (dB) / SSIM per noise:", "", *md_table(header, rows)]
    for c in conditions.values():
        lines += [
            f"### {c['label']}",
            "",
            *md_table(*summary_rows(c["summary"], cxr.get("skipped", {}), {})),
        ]
    return lines


def render_speed_device(key: str, dev: dict[str, Any]) -> list[str]:
    lines = [
        f"### {'CPU' if key == 'cpu' else 'GPU'}: {dev['device']} ({dev['torch_threads']} torch "
        "threads)",
        "",
        f"Input: {dev['input']}. Matmul peak ({dev['matmul_peak']['n']}², float32): "
        f"{dev['matmul_peak']['gflops']:.1f} GFLOP/s.",
        "",
    ]
    sizes = sorted({s for by in dev["images"].values() for s in by}, key=int)
    header = ["method", *[f"{s}² MP/s (× BM3D)" for s in sizes], "runs"]
    rows = []
    for name, by in dev["images"].items():
        cells = []
        for s in sizes:
            f = by.get(s, {})
            if "megapixels_per_second" in f:
                estimated = "not measured" in f.get("ratio_basis", "")
                ratio = (
                    f" (×{f['ratio_to_bm3d']:.1f}{'*' if estimated else ''})"
                    if "ratio_to_bm3d" in f
                    else ""
                )
                cells.append(f"{f['megapixels_per_second']:.4g}{ratio}")
            else:
                cells.append("skipped" if "skipped" in f else "–")
        runs = max((len(f.get("runs_s", [])) for f in by.values()), default=0)
        rows.append([name, *cells, f"median of {runs}"])
    lines += md_table(header, rows)
    lines += [
        "\\* ratio to BM3D at its largest measured size (BM3D not measured at this size).",
        "BM3D above the --bm3d-max-size is skipped, not estimated.",
        "",
    ]
    header = [
        "network",
        "params",
        "MACs/pixel",
        *[f"GFLOP/s {s}² (% peak)" for s in sizes],
        "batch of 256 small images",
        "training",
        "weights",
    ]
    rows = []
    for name, n in dev["networks"].items():
        comp = n["compute"]
        cells = [
            f"{comp[s]['gflops']:.2f} ({100 * comp[s]['fraction_of_peak']:.1f}%)"
            if s in comp
            else "–"
            for s in sizes
        ]
        b = n.get("batch_inference")
        batch = (
            (
                f"{b['size']}²: {b['images_per_second']:.0f} img/s, {b['gflops']:.2f} GFLOP/s "
                f"({100 * b['fraction_of_peak']:.1f}%)"
            )
            if b
            else "–"
        )
        t = n["training"]
        rows.append(
            [
                name,
                str(n["parameters"]),
                f"{n['macs_per_pixel']:.0f}",
                *cells,
                batch,
                f"{t['samples_per_second']:.1f} {t['unit']} ({t['sample']}, batch {t['batch']})",
                n["weights"],
            ]
        )
    lines += md_table(header, rows)
    note = (
        "MNIST and dense networks are timed on batches of 256 images at their own size. A fraction "
        "of the matmul peak above 100% means the network's kernels ran faster than the 2048² "
        "matmul did."
    )
    return [*lines, note, ""]


def render_apply_memory(mem: dict[str, Any]) -> list[str]:
    """Peak resident memory of `denoise apply`, one line per device."""
    lines = [
        f"### Peak memory of `denoise apply` ({mem.get('size', APPLY_SIZE)}² 16-bit PNG, "
        "scripts/bench_apply.py)",
        "",
    ]
    if "skipped" in mem:
        return [*lines, f"Skipped: {mem['skipped']}", ""]
    for device, run in mem.get("runs", {}).items():
        r = run.get("result")
        if r is None:
            lines.append(f"- {device}: skipped: {run['skipped']}")
            continue
        lines.append(
            f"- {device}: peak RSS **{r.get('peak_rss_mib')} MiB** (import + model load alone: "
            f"{r.get('baseline_rss_mib')} MiB), {r.get('megapixels_per_second')} MP/s, model "
            f"{r.get('model')}, "
            f"settings {r.get('settings')}; `{run['command']}`"
        )
    return [*lines, ""]


def render_speed(speed: dict[str, Any]) -> list[str]:
    lines = ["## Speed", "", provenance_line(speed["provenance"]), ""]
    if "gpu" in speed:
        lines += [speed["gpu"] + ".", ""]
    for key, dev in speed["devices"].items():
        lines += render_speed_device(key, dev)
    lines += render_apply_memory(speed.get("apply_memory", {}))
    lines += [
        "",
        "Training throughput: training steps (forward, loss, backward, optimizer) on random "
        "tensors; data loading and noise excluded.",
        "MACs counted with forward hooks on Conv2d/ConvTranspose2d/Linear; GFLOP/s = "
        "2·MACs·pixels/s.",
        "",
    ]
    return lines


def other_pages(folder: Path) -> list[tuple[str, str]]:
    """(file name, title) of the measurement pages beside RESULTS.md that other scripts keep by
    hand."""
    pages = []
    for path in sorted(folder.glob("*.md")):
        if path.name in ("RESULTS.md", "README.md"):
            continue
        title = next(
            (line[2:].strip() for line in path.read_text().splitlines() if line.startswith("# ")),
            path.stem,
        )
        pages.append((path.name, title))
    return pages


def render_markdown(results: dict[str, Any], pages: list[tuple[str, str]] = ()) -> str:
    """RESULTS.md: headline (radiographs vs BM3D, MNIST table), the pages kept beside it, then
    detail tables."""
    lines = [
        "# Benchmarks",
        "",
        "Written by `scripts/benchmark.py`; numbers in `results.json`.",
        "",
    ]
    if pages:
        intro = (
            "Measured by other scripts and kept by hand beside this file (a run of "
            "`scripts/benchmark.py` leaves them as they are):"
        )
        lines += [intro, ""]
        lines += [f"- [{title}]({name})" for name, title in pages] + [""]
    lines += render_headline(results)
    quality = results.get("quality", {})
    if "mnist" in quality:
        lines += render_mnist(quality["mnist"])
    if "cxr" in quality:
        lines += render_cxr(quality["cxr"], "radiographs")
    if "cxr_lowres" in quality:
        lines += render_cxr(
            quality["cxr_lowres"], f"radiographs at {LOWRES_SIZE}×{LOWRES_SIZE} (low-res models)"
        )
    if "split" in results:
        lines += render_split(results["split"])
    if "speed" in results:
        lines += render_speed(results["speed"])
    return "\n".join(lines) + "\n"


def render_split(split: dict[str, Any]) -> list[str]:
    """Issue 13's acceptance tables, one per view (crops, whole images)."""
    lines = ["## Radiographs split by patient: X-ray dose and Gaussian noise", ""]
    if "skipped" in split:
        return lines + [
            provenance_line(split["provenance"]),
            "",
            f"Not measured: {split['skipped']}",
            "",
        ]
    intro = (
        "The test part of the five-source patient split (configs/splits/multisite.csv), every "
        "method on the same seeded noise; BM3D is given the noise power spectrum (X-ray) or σ "
        "(Gaussian); paired 95% CIs against BM3D, pooled and per source; detail kept: the task "
        "transfer function on the content per band (higher keeps more). Rows already in the work "
        "folder are reused (BM3D runs once per image and condition)."
    )
    lines += [intro, ""]
    for key, result in split["views"].items():
        lines += [
            f"### {view_title(key)}",
            "",
            markdown(result, provenance_line(split["provenance"])),
            "",
        ]
    return lines
