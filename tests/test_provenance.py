"""Provenance: files' SHA-256, the git commit of a checkout, the environment record."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.provenance import environment, file_sha256, git_commit


def test_file_sha256_is_the_digest_of_the_bytes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000  # more than one read block
    (tmp_path / "f").write_bytes(data)
    assert file_sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_commit_marks_uncommitted_changes(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    assert git_commit(tmp_path) is None  # not a checkout
    git("init", "-q")
    (tmp_path / "a.txt").write_text("a")
    git("add", "a.txt")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "a")
    head = git("rev-parse", "HEAD")
    assert git_commit(tmp_path) == head
    assert git_commit(tmp_path, digits=12) == head[:12]
    (tmp_path / "new.txt").write_text("untracked")
    assert git_commit(tmp_path) == head + "+dirty"
    assert git_commit(tmp_path, untracked=False) == head
    (tmp_path / "a.txt").write_text("changed")
    assert git_commit(tmp_path, untracked=False) == head + "+dirty"


def test_environment_names_the_versions() -> None:
    import monai
    import torch

    env = environment()
    assert env["monai"] == monai.__version__
    assert env["torch"] == torch.__version__
    assert env["torch_threads"] == torch.get_num_threads()
