"""torch.distributed helpers: process-group set-up from torchrun, ranks, device, sampling.

A training run is either a single process or ``torchrun --nproc_per_node N [--nnodes M]``,
which exports ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``.
``init_distributed`` reads those (nothing to do when ``WORLD_SIZE`` is absent or 1) and
picks the backend from the device: NCCL on CUDA, gloo on CPU. Only rank 0 writes
artefacts (``is_main_process``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

log = logging.getLogger(__name__)

__all__ = [
    "DistInfo",
    "EpochSampler",
    "barrier",
    "cleanup",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_distributed",
    "is_main_process",
    "select_device",
]


def select_device(preference: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """The device to run on.

    Args:
        preference: ``"auto"`` (CUDA if present, else CPU), ``"cpu"``, ``"cuda"`` (this
            process's ``local_rank`` GPU) or ``"cuda:N"``.
        local_rank: GPU index used for ``"auto"``/``"cuda"`` (one GPU per process).

    Raises:
        RuntimeError: CUDA was asked for but is not available.
    """
    pref = str(preference).lower()
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref == "cpu":
        return torch.device("cpu")
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device={preference!r} was requested but CUDA is not available")
        return torch.device(pref if ":" in pref else f"cuda:{local_rank}")
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {preference!r}")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    initialised_here: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str | torch.device = "auto", timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group described by torchrun's environment variables.

    Safe to call when already initialised (returns the current layout) and in a plain
    single process (returns rank 0 of 1 without creating a group).

    Args:
        device: preference passed to ``select_device`` (per process: ``LOCAL_RANK``'s GPU).
        timeout_s: collective timeout.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = select_device(device, local_rank)
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), local_rank, dist.get_world_size(), dev, False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(0, 0, 1, dev, False)
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise RuntimeError(f"WORLD_SIZE={world} but {missing} are not set; launch with torchrun")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=backend, init_method="env://", timeout=timedelta(seconds=timeout_s))
    rank = dist.get_rank()
    log.info("joined process group: rank %d of %d, backend %s, device %s", rank, world, backend, dev)
    return DistInfo(rank, local_rank, world, dev, True)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0 (and in a single process): the one that writes artefacts."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for all ranks (no-op in a single process)."""
    if is_distributed():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group if one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class EpochSampler(DistributedSampler):
    """``DistributedSampler`` whose order is a function of (seed, epoch) only, and which can
    start part-way through an epoch.

    Each rank gets a disjoint ``1 / world_size`` share of a permutation seeded by
    ``seed + epoch``; ``set_epoch(epoch, skip=n)`` drops this rank's first ``n`` indices, so a
    resumed run continues exactly where the interrupted one stopped. Works with a world
    size of 1 without a process group.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = True,
    ) -> None:
        super().__init__(
            dataset,
            num_replicas=get_world_size() if num_replicas is None else num_replicas,
            rank=get_rank() if rank is None else rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:  # type: ignore[override]
        if skip < 0 or skip > self.num_samples:
            raise ValueError(f"skip must be in [0, {self.num_samples}], got {skip}")
        super().set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.skip :])

    def __len__(self) -> int:
        return self.num_samples - self.skip
