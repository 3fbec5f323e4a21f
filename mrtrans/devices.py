"""Which device a process computes on: one rule for train, translate, evaluate and the Python API."""

from __future__ import annotations

import torch

from mrtrans.errors import MrtransError


def plan_device(name: str, local_rank: int = 0, world: int = 1, cuda_available: bool | None = None) -> torch.device:
    """The device of this process, always with an index on CUDA.

    ``auto`` and ``cuda`` take this process's GPU (``cuda:LOCAL_RANK``; 0 outside torchrun) when CUDA is
    present; ``cpu`` is the CPU even on a GPU machine; ``cuda:N`` is GPU N for a single process.

    Raises:
        MrtransError: not a device, CUDA asked for but absent, or ``cuda:N`` under torchrun (every
            process would share one GPU).
    """
    cuda_available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if cuda_available else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise MrtransError(f"--device {name!r}: not a device (use auto, cpu, cuda or cuda:N)") from exc
    if device.type == "cuda":
        if not cuda_available:
            raise MrtransError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
        if device.index is None:
            return torch.device(f"cuda:{local_rank}")
        if world > 1:
            raise MrtransError(
                f"--device {name} under torchrun would put all {world} processes on one GPU; use --device cuda "
                f"(each process takes the GPU of its LOCAL_RANK)"
            )
    return device


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """:func:`plan_device` for one process (translate, evaluate)."""
    return plan_device(name, local_rank)
