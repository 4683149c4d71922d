"""Splits by source (stratified_split), splits fixed in a CSV (data.split_csv) and the five-source
split script."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from script_loading import load_script
from test_groups import _write_pngs

from pipeline.config import DataConfig
from pipeline.errors import PipelineError
from pipeline.ingest import load_splits
from pipeline.ingest.split_file import read_split_csv, subset_rows
from pipeline.ingest.splits import stratified_split

PROJECT = Path(__file__).resolve().parent.parent
SHARED = PROJECT.parent / "shared" / "data"


def _sources() -> dict[str, str]:
    return {
        **{f"a{i}": "big" for i in range(100)},
        **{f"b{i}": "small" for i in range(12)},
        **{f"c{i}": "mid" for i in range(40)},
    }


def test_stratified_split_keeps_every_source_in_every_part_and_the_kept_test_patients() -> None:
    where = stratified_split(
        _sources(),
        test_fraction=0.15,
        val_fraction=0.05,
        seed=0,
        min_test=8,
        min_val=1,
        keep_test={"a7", "c3"},
    )
    count = {(s, part): 0 for s in ("big", "small", "mid") for part in ("train", "val", "test")}
    for patient, part in where.items():
        count[(_sources()[patient], part)] += 1
    assert (
        count[("big", "test")] == 15
        and count[("mid", "test")] == 8
        and count[("small", "test")] == 8
    )
    assert all(count[(s, "val")] >= 1 and count[(s, "train")] >= 1 for s in ("big", "small", "mid"))
    assert where["a7"] == where["c3"] == "test"
    assert stratified_split(_sources(), 0.15, 0.05, 0, 8, 1, {"a7", "c3"}) == where, (
        "same seed, same split"
    )
    assert stratified_split(_sources(), 0.15, 0.05, 1, 8, 1) != where


def _split_csv(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "patient", "split", "source"])
        writer.writerows(rows)
    return path


def test_split_csv_fixes_the_split_and_the_run_records_sources(tmp_path: Path) -> None:
    _write_pngs(tmp_path / "data" / "s1", ["p1a.png", "p1b.png", "p2.png"])
    _write_pngs(tmp_path / "data" / "s2", ["q1.png", "q2.png", "q3.png"])
    rows = [
        ("s1/p1a.png", "p1", "train", "one"),
        ("s1/p1b.png", "p1", "train", "one"),
        ("s1/p2.png", "p2", "test", "one"),
        ("s2/q1.png", "q1", "train", "two"),
        ("s2/q2.png", "q2", "val", "two"),
        ("s2/q3.png", "q3", "test", "two"),
    ]
    cfg = DataConfig(
        kind="folder", root=tmp_path / "data", split_csv=_split_csv(tmp_path / "split.csv", rows)
    )
    splits = load_splits(cfg, seed=0)
    assert [i.meta.name for i in splits.train] == ["p1a.png", "p1b.png", "q1.png"]
    assert [i.meta.name for i in splits.val] == ["q2.png"] and [
        i.meta.name for i in splits.test
    ] == ["p2.png", "q3.png"]
    assert {(Path(a["file"]).name, a["split"], a["source"]) for a in splits.assignment} == {
        (Path(f).name, s, src) for f, _, s, src in rows
    }
    assert splits.train_sources() == ["one", "one", "two"]
    fewer = load_splits(cfg.model_copy(update={"max_train_patients": 1}), seed=0)
    assert (
        len({a["patient"] for a in fewer.assignment if a["split"] == "train"}) == 1
        and len(fewer.test) == 2
    )


def test_split_csv_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="not found"):
        read_split_csv(tmp_path / "absent.csv")
    bad = _split_csv(tmp_path / "bad.csv", [("a.png", "p", "holdout", "x")])
    with pytest.raises(PipelineError, match="split 'holdout' is not one of train, val, test"):
        read_split_csv(bad)
    crossing = _split_csv(
        tmp_path / "cross.csv", [("a.png", "p", "train", "x"), ("b.png", "p", "test", "x")]
    )
    with pytest.raises(PipelineError, match="patient p is in both train and test"):
        read_split_csv(crossing)
    with pytest.raises(ValueError, match="split_csv needs folder data"):
        DataConfig(kind="folder", root=[tmp_path, tmp_path], split_csv=bad)


def test_subset_rows_keeps_each_sources_share_and_nests() -> None:
    rows = [
        {"file": f"{s}{i}", "patient": f"{s}{i}", "split": "train", "source": s}
        for s, n in (("a", 60), ("b", 20))
        for i in range(n)
    ]
    rows.append({"file": "t", "patient": "t", "split": "test", "source": "a"})
    small, large = subset_rows(rows, 20, seed=0), subset_rows(rows, 40, seed=0)
    train = [r for r in small if r["split"] == "train"]
    assert len(train) == 20 and sum(r["source"] == "b" for r in train) == 5, (
        "a quarter of the patients are b's"
    )
    assert {r["patient"] for r in train} <= {r["patient"] for r in large}, (
        "a smaller part is inside a larger one"
    )
    assert any(r["split"] == "test" for r in small) and subset_rows(rows, None, 0) == rows


@pytest.mark.skipif(
    not (SHARED / "cxr" / "metadata" / "multisite_patients.csv").is_file(),
    reason="../shared/data is absent",
)
def test_the_committed_five_source_split_is_what_the_script_makes() -> None:
    script = load_script("make_multisite_split")
    made, refused = script.make_split(SHARED)
    committed = read_split_csv(PROJECT / "configs" / "splits" / "multisite.csv")
    assert [(r["file"], r["patient"], r["split"], r["source"]) for r in made] == [
        (r["file"], r["patient"], r["split"], r["source"]) for r in committed
    ]
    test = [r for r in committed if r["split"] == "test"]
    per_source = {
        s: len({r["patient"] for r in test if r["source"] == s})
        for s in {r["source"] for r in committed}
    }
    assert (
        len({r["patient"] for r in test}) >= 60
        and min(per_source.values()) >= 8
        and len(per_source) == 5
    )
    assert script.previous_test_patients() <= {r["patient"] for r in test}, (
        "the earlier test patients stay in test"
    )
    assert all("colour" in r["reason"] for r in refused)


def test_learning_curve_trains_each_size_and_tabulates_the_gain_over_bm3d(
    tmp_path: Path, monkeypatch
) -> None:
    names = [f"p{i}.png" for i in range(6)]
    _write_pngs(tmp_path / "data" / "site", names, noise=0.0)
    rows = [
        (f"site/{n}", n[:-4], "train" if i < 4 else "val" if i == 4 else "test", "site")
        for i, n in enumerate(names)
    ]
    split = _split_csv(tmp_path / "split.csv", rows)
    config = tmp_path / "tiny.yaml"
    config.write_text(
        f"run: {{name: lc, seed: 0, threads: 1}}\n"
        f"data: {{kind: folder, root: {tmp_path / 'data'}, split_csv: {split}}}\n"
        "noise: {kind: gaussian, sigma: 0.1}\nmodel: {name: unet, channels: [4, 8], residual: "
        "true}\ntrain: {epochs: 1, batch_size: 2, optimizer: adam, lr: 0.001, loss: mse, progress: "
        "false}\n"
    )
    script = load_script("learning_curve")
    scans = load_splits(script.load_config(config).data, 0).test
    monkeypatch.setattr(
        script, "test_images", lambda project, shared_data: (scans, "one test scan")
    )
    out = tmp_path / "curve"
    assert (
        script.main(
            [
                "--config",
                str(config),
                "--patients",
                "2",
                "0",
                "--work",
                str(tmp_path / "work"),
                "--out",
                str(out),
                "--crop",
                "0",
                "--patches-per-epoch",
                "4",
            ]
        )
        == 0
    )
    per_image = [
        yaml.safe_load(next((tmp_path / "work" / "runs" / n).glob("**/config.yaml")).read_text())[
            "data"
        ]["patches_per_image"]
        for n in ("n2", "n0")
    ]
    assert per_image == [2, 1], "every size draws the same 4 training patches per epoch"
    points = json.loads(out.with_suffix(".json").read_text())["points"]
    assert [(p["patients"], p["all"]) for p in points] == [(2, False), (4, True)]
    for p in points:
        assert set(p["gain"]) == set(script.CURVE_CONDITIONS) and all(
            np.isfinite(g["mean"]) for g in p["gain"].values()
        )
    train_parts = [
        list(
            csv.DictReader(
                next((tmp_path / "work" / "runs" / n).glob("**/split.csv")).read_text().splitlines()
            )
        )
        for n in ("n2", "n0")
    ]
    assert [len({r["patient"] for r in part if r["split"] == "train"}) for part in train_parts] == [
        2,
        4,
    ]
    table = out.with_suffix(".md").read_text()
    assert "| 2 |" in table and "| 4 (all) |" in table and out.with_suffix(".png").is_file()
    before = sorted((tmp_path / "work" / "runs").glob("**/best.pt"))
    assert (
        script.main(
            [
                "--config",
                str(config),
                "--patients",
                "2",
                "--work",
                str(tmp_path / "work"),
                "--out",
                str(out),
                "--crop",
                "0",
            ]
        )
        == 0
    )
    assert sorted((tmp_path / "work" / "runs").glob("**/best.pt")) == before, (
        "a trained size is not trained again"
    )
