"""torchrun: which process this is, its device, the process group and a barrier.

``torchrun`` starts one process per worker and sets ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK``; without them (or with ``WORLD_SIZE=1``) this is the only process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Rank and world size of this process (one process when not launched by torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes shared outputs."""
        return self.rank == 0

    @property
    def launched(self) -> bool:
        """Whether torchrun started several processes."""
        return self.world > 1


def torchrun_info(env: Mapping[str, str] | None = None) -> DistInfo:
    """The place of this process among torchrun's workers, from its environment variables."""
    env = os.environ if env is None else env
    world = int(env.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    return DistInfo(int(env.get("RANK", "0")), world, int(env.get("LOCAL_RANK", "0")))


def local_device(device: torch.device, info: DistInfo | None = None) -> torch.device:
    """`device`, or this worker's own GPU when several torchrun workers share CUDA."""
    info = torchrun_info() if info is None else info
    if device.type == "cuda" and info.launched:
        return torch.device("cuda", info.local_rank)
    return device


def init_distributed(device: torch.device, timeout: timedelta | None = None) -> DistInfo:
    """Join torchrun's process group (gloo on CPU, nccl on GPU); a single process joins nothing."""
    info = torchrun_info()
    if not info.launched:
        return info
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, **({"timeout": timeout} if timeout else {}))
    return DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank)


def wait_for_all_ranks(timeout: timedelta = timedelta(days=7)) -> bool:
    """Barrier over torchrun's workers (a gloo group of its own); False when none can be made."""
    try:
        dist.init_process_group("gloo", timeout=timeout)
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()
        return True
    except Exception as err:  # noqa: BLE001 - callers go on without the other ranks
        log.warning("could not wait for the other torchrun ranks (%s)", err)
        return False
