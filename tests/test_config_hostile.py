"""Hostile configs and command lines: one `error:` line and exit status 2, at once.

One test per problem found by the hardening campaign (issue 15).
"""

from __future__ import annotations

import os
import pickle
import time

import pytest

from pipeline.checkpoint import read_checkpoint
from pipeline.cli import main
from pipeline.config import MAX_CONFIG_DEPTH, load_config
from pipeline.errors import ConfigError, PipelineError


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ("run:\n  seed: 3\n".encode("utf-16"), "UTF-16"),
        (b"run:\n  name: caf\xe9\n", "not UTF-8"),
        (b"a: " + b"[" * 20_000 + b"]" * 20_000, "nested too deeply"),
        (
            b"a:\n"
            + b"".join(b"  " * i + b"b:\n" for i in range(1, MAX_CONFIG_DEPTH + 3))
            + b"  " * 40
            + b"c: 1\n",
            f"deeper than {MAX_CONFIG_DEPTH}",
        ),
    ],
    ids=["utf-16", "latin-1", "deep-flow", "deep-block"],
)
def test_unreadable_configs_end_in_one_error_line(tmp_path, capsys, data, words):
    (tmp_path / "c.yaml").write_bytes(data)
    assert main(["config", str(tmp_path / "c.yaml")]) == 2
    assert words in error_line(capsys)


def test_yaml_alias_bomb_is_refused_fast(tmp_path):
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    (tmp_path / "bomb.yaml").write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="too many values"):
        load_config(tmp_path / "bomb.yaml")
    assert time.perf_counter() - start < 10  # 50-78 s to a MemoryError before the fix


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("run.seed=-1", "run.seed"),
        ("run.seed=1e26", "run.seed"),
        ("run.seed=4294967296", "run.seed"),
        ("train.lr=.inf", "finite"),
        ("noise.sigma=.nan", "finite"),
        ("run.name=../../x", "one folder name"),
        ("run.name=..", "one folder name"),
        ("run.name=.", "one folder name"),
    ],
)
def test_out_of_range_fields_are_config_errors(capsys, override, words):
    assert main(["config", "configs/mnist_conv.yaml", "--set", override]) == 2
    assert error_line(capsys).startswith("error: invalid configuration")
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        load_config("configs/mnist_conv.yaml", [override])


def test_largest_seed_is_accepted():
    assert load_config(None, ["run.seed=4294967295"]).run.seed == 2**32 - 1


class _Evil:
    def __reduce__(self):
        return (os.system, ("true",))


@pytest.mark.parametrize(
    "content", [pickle.dumps({"model_state": _Evil()}), b"not a checkpoint", b""]
)
def test_refused_or_corrupt_resume_checkpoint_is_a_pipeline_error(tmp_path, content):
    (tmp_path / "x.pt").write_bytes(content)
    with pytest.raises(PipelineError, match="train.resume: .* is not a readable checkpoint"):
        read_checkpoint(tmp_path / "x.pt", "train.resume")


def test_os_errors_are_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code = main(
        [
            "run",
            "configs/mnist_conv.yaml",
            "--set",
            f"run.output_dir={tmp_path / 'file' / 'runs'}",
            "--set",
            "run.stages=[report]",
        ]
    )
    assert code == 2
    assert "Not a directory" in error_line(capsys)


def test_matplotlib_cache_is_not_written_to_home(tmp_path):
    import subprocess
    import sys

    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MPLCONFIGDIR", "XDG_CACHE_HOME", "XDG_CONFIG_HOME")
    }
    env.update(HOME=str(home), TMPDIR=str(tmp_path))
    script = (
        "import sys\nfrom pipeline import cli\n"
        "def probe(args):\n    import matplotlib.pyplot  # what the report does\n    return 0\n"
        "cli.cmd_config = probe\nsys.exit(cli.main(['config']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert list(home.iterdir()) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("denoise-matplotlib-")]


# --------------------------------------------------------------------------- issue 28


def test_duplicate_yaml_keys_are_refused_with_their_path(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text(
        "train:\n  epochs: 3\n  lr: 0.1\n  epochs: 4\nrun:\n  seed: 1\n"
    )
    assert main(["config", str(tmp_path / "c.yaml")]) == 2
    assert "train.epochs is given twice (line 4)" in error_line(capsys)
    (tmp_path / "d.yaml").write_text("train:\n  epochs: 3\nrun:\n  seed: 1\ntrain:\n  lr: 0.1\n")
    assert main(["config", str(tmp_path / "d.yaml")]) == 2
    assert "key train is given twice (line 5)" in error_line(capsys)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("data.group_pattern=(", "data.group_pattern"),
        ("data.group_pattern=no_group", "data.group_pattern"),
        ("model.features=100000000", "model.features"),
        ("model.channels=[16, 100000000]", "model.channels.1"),
    ],
)
def test_impossible_values_are_user_errors_naming_the_key(capsys, override, key):
    assert main(["config", "configs/mnist_conv.yaml", "--set", override]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "this is a bug" not in err
    assert err.startswith("error:") and f"  {key}:" in err


def test_a_network_that_cannot_be_allocated_is_a_user_error(monkeypatch):
    import pipeline.models

    def refuse(*args):
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: not enough memory"
        )

    monkeypatch.setattr(pipeline.models, "ConvAutoencoder", refuse)
    with pytest.raises(PipelineError, match="does not fit in memory"):
        pipeline.models.build_model(load_config("configs/mnist_conv.yaml").model)
