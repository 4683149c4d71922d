"""Importing the package changes nothing global; torch's thread count is put back by the
library."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from pipeline import process
from pipeline.process import torch_threads

PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: Imports the third-party packages first (they set their own loggers, filters and exit
#: hooks), records the process-wide state, imports the package, and prints what changed.
SIDE_EFFECTS = """
import atexit, json, logging, os, signal, sys, warnings
import matplotlib.pyplot, monai, pydicom, torch

def state():
    loggers = {n: l.level for n, l in logging.root.manager.loggerDict.items()
               if isinstance(l, logging.Logger)}
    return {"environment": dict(os.environ), "exit_hooks": atexit._ncallbacks(),
            "threads": torch.get_num_threads(),
            "levels": {**loggers, "": logging.root.level},
            "filters": [repr(f) for f in warnings.filters],
            "sigterm": repr(signal.getsignal(signal.SIGTERM))}

before = state()
import pipeline, pipeline.monai, pipeline.apply, pipeline.inference, pipeline.io
import pipeline.models, pipeline.export
after = state()
before["levels"] = {n: v for n, v in before["levels"].items() if n in after["levels"]}
after["levels"] = {n: v for n, v in after["levels"].items()
                   if v != logging.NOTSET or n in before["levels"]}
env_before, env_after = before.pop("environment"), after.pop("environment")
changed = {k: [before[k], after[k]] for k in before if before[k] != after[k]}
changed.update({f"${k}": [env_before.get(k), env_after.get(k)]
                for k in set(env_before) | set(env_after) if env_before.get(k) != env_after.get(k)})
print(json.dumps(changed))
"""


def test_importing_the_package_changes_no_global_state() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SIDE_EFFECTS],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {}


def test_torch_threads_are_put_back() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError("a failing block")
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


def _resident_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


@pytest.mark.skipif(
    process._glibc() is None or not Path("/proc/self/status").is_file(),
    reason="return_freed_heap acts on glibc's heap (Linux only)",
)
def test_heap_freed_by_another_thread_is_given_back() -> None:
    kept: list[bytearray] = []

    def churn() -> None:  # 100 MiB in 64 KiB blocks, every other one freed: holes in its heap
        blocks = [bytearray(b"x" * (64 * 1024)) for _ in range(1600)]
        kept.extend(blocks[::2])

    thread = threading.Thread(target=churn)
    thread.start()
    thread.join()
    before = _resident_mib()
    process.return_freed_heap()
    assert before - _resident_mib() > 25  # about 50 MiB of freed blocks
    assert len(kept) == 800
