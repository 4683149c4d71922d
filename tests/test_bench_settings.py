"""bench.settings: where a benchmark runs (checkout, shared data) travels as Settings fields."""

from __future__ import annotations

from pathlib import Path

from bench.settings import Settings, as_recorded, settings_from_args


def test_the_checkout_and_the_shared_data_come_from_the_options(tmp_path: Path) -> None:
    project = tmp_path / "checkout"
    settings = settings_from_args(["--project", str(project), "--quick"])
    assert (
        settings.project == project.resolve()
        and settings.shared_data == tmp_path / "shared" / "data"
    )
    assert (
        settings.out == project / "benchmarks"
        and settings.work.parent == project / "runs" / "benchmark"
    )
    assert settings.nih_dir == tmp_path / "shared/data/cxr/png/nih_chestxray14"
    mine = settings_from_args(["--shared-data", str(tmp_path / "elsewhere")], project=project)
    assert (
        mine.project == project.resolve()
        and mine.lowres_dir == tmp_path / "elsewhere/cxr/lowres/nih1000_64px"
    )


def test_the_working_folder_is_the_default_checkout(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings(out=Path("o"), work=Path("w")).project == tmp_path.resolve()
    assert settings_from_args([]).out == tmp_path.resolve() / "benchmarks"


def test_recorded_settings_are_relative_and_read_back_in_another_checkout(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "repo", tmp_path / "b" / "repo"
    settings = Settings(
        out=first / "benchmarks",
        work=first / "runs" / "x",
        project=first,
        cxr_dirs=[first.parent / "shared" / "data" / "cxr"],
        cxr_models={"unet": str(first / "w.pt")},
    )
    recorded = settings.to_dict()
    assert "project" not in recorded and "shared_data" not in recorded, (
        "where it ran is not what it measured"
    )
    assert recorded["out"] == "benchmarks" and recorded["cxr_dirs"] == ["../shared/data/cxr"]
    assert recorded["cxr_models"] == {"unet": "w.pt"}
    again = Settings.from_dict(recorded, second)
    assert again.project == second and again.out == second / "benchmarks"
    assert again.cxr_dirs == [second.parent / "shared" / "data" / "cxr"] and again.cxr_models == {
        "unet": str(second / "w.pt")
    }
    assert as_recorded(str(tmp_path.parent / "x.pt"), first) == str(tmp_path.parent / "x.pt"), (
        "outside: kept as it is"
    )
